"""gate_smoke against the deployed shape: API-equivalent ingest, Redis, a real worker.

CI runs ``gate_smoke`` with eager tasks on a fresh database; this runs it with the
worker doing all processing and evaluation, the harness waiting for each verdict.
"""

import io

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.redis]


def test_gate_smoke_passes_with_a_real_worker_doing_the_work(worker):
    out = io.StringIO()
    call_command("gate_smoke", "--timeout", "30", stdout=out)

    report = out.getvalue()
    assert report.strip().endswith("15 passed, 0 failed"), report
    # The verdicts came from the worker process, not from this one.
    log = worker.log_since_mark()
    # Verdicts inside the processing batches; screenshots as heavy tasks of their own.
    assert "gates.evaluate_heavy" in log and "deliveries.process_pending_events" in log, log[-2000:]
