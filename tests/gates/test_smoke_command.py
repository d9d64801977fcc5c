"""manage.py gate_smoke: synthetic events through the real pipeline, a table, a verdict.

The harness commits as it goes and reads the verdicts back at once, so these tests use real
transactions (processing and evaluation run eagerly, in this process, after each commit).
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_scopes import scope

from gates import checks
from gates.models import GateEvaluation
from meshline.models import Organization

pytestmark = pytest.mark.django_db(transaction=True)

CASES = 15  # 5 checks x (good, bad page), the fix, 2 sitemap cases, 2 scope cases


def smoke(*args) -> list[str]:
    out = StringIO()
    call_command("gate_smoke", *args, stdout=out)
    return out.getvalue().splitlines()


def test_gate_smoke_prints_the_table_and_passes():
    lines = smoke()
    assert lines[0].split() == ["check", "case", "expected", "got", "ok"]
    rows = lines[1:-1]
    assert len(rows) == CASES
    assert all(row.rstrip().endswith(" ok") for row in rows), "\n".join(lines)
    assert lines[-1] == f"{CASES} passed, 0 failed"
    checked = {row.split()[0] for row in rows}
    assert checked == {
        "schema_check",
        "seo_tags_present",
        "schema_version",
        "content_quality_score",
        "screenshot_regression",
        "sitemap_sync",
        "scope_limits",
    }


def test_gate_smoke_passes_again_on_a_second_run():
    def evaluations() -> int:
        organization = Organization.objects.get(slug="gate-smoke")
        with scope(organization=organization):
            return GateEvaluation.objects.filter(organization=organization).count()

    assert smoke()[-1] == f"{CASES} passed, 0 failed"
    first = evaluations()
    assert smoke()[-1] == f"{CASES} passed, 0 failed"
    # Each run uses deliverables of its own and leaves the first run's verdicts alone.
    assert evaluations() == 2 * first


def test_gate_smoke_runs_in_the_organization_it_is_given():
    assert smoke("--org", "ci-smoke")[-1] == f"{CASES} passed, 0 failed"
    assert Organization.objects.filter(slug="ci-smoke").exists()
    assert not Organization.objects.filter(slug="gate-smoke").exists()


def test_a_broken_check_makes_gate_smoke_fail(monkeypatch):
    # A schema_check that passes everything: the bad page no longer fails.
    monkeypatch.setitem(checks.CHECKS, "schema_check", lambda check_input: checks.CheckResult(True))
    out = StringIO()
    with pytest.raises(CommandError, match=r"gate_smoke: 2 case\(s\) did not behave as expected"):
        call_command("gate_smoke", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[-1] == f"{CASES - 2} passed, 2 failed"
    failed = [line for line in lines if line.rstrip().endswith("FAIL")]
    assert [line.split()[0] for line in failed] == ["schema_check", "schema_check"]


def test_a_pipeline_that_never_answers_is_reported_as_timed_out(monkeypatch):
    """With a broker and no worker, nothing is evaluated: the harness says so and fails."""
    from devtools import smoke

    monkeypatch.setattr(smoke, "ingest_events", _accept_without_processing)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("gate_smoke", "--timeout", "0.2", stdout=out)
    report = out.getvalue()
    assert "pipeline" in report and "timed out" in report
    assert "no verdicts after 0.2 s for: page verdicts" in report


def _accept_without_processing(organization, events):
    """Store nothing and process nothing, as when events wait in a queue nobody reads."""
    from deliveries.services.ingest import IngestResult, Status

    return [IngestResult(index=i, status=Status.ACCEPTED) for i in range(len(events))]
