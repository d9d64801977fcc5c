"""More than one machine: two worker nodes, each consuming its own kinds of queue, share a
burst of events; every event is processed once and judged once per gate.

The nodes are separate processes named as separate nodes (``processing@host`` and
``rest@host``), as on two hosts; they meet only in Redis and PostgreSQL. The burst is
posted through the API, in batches and one by one, while the nodes work.
"""

import re

import pytest
from django.conf import settings
from django.db.models import Count
from django_scopes import scope, scopes_disabled

from deliveries.models import EventProcessing, ProcessingStatus
from devtools.factories import GateFactory
from gates.models import CheckName, GateEvaluation, GateMode
from meshline import queues
from meshline.queues import Kind
from tests.integration.conftest import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.redis]

BATCHES, BATCH_SIZE, SINGLES = 6, 50, 30
EVENTS = BATCHES * BATCH_SIZE + SINGLES
# Two judged inside the processing batch; screenshots on the heavy queue, one task per event.
GATES = (CheckName.SEO_TAGS_PRESENT, CheckName.SCHEMA_VERSION, CheckName.SCREENSHOT_REGRESSION)
HEAVY = re.compile(r"gates\.evaluate_heavy\[[0-9a-f-]+\] succeeded")
# Batches go to process_events tasks; the single events to the wake-ups that take them.
PROCESSED = re.compile(
    r"deliveries\.process_(?:pending_)?events\[[0-9a-f-]+\] succeeded .*'processed': (\d+)"
)


def _page(event_body, n: int) -> dict:
    return event_body(
        deliverable_id=f"LP-{n % 40}",  # several events per deliverable, as in real traffic
        idempotency_key=f"burst-{n}",
        payload={"url": f"https://acme.example/lp/{n % 40}", "html": f"<html>{n}</html>"},
    )


def _counts() -> tuple[int, int]:
    with scopes_disabled():
        processed = EventProcessing.objects.filter(status=ProcessingStatus.PROCESSED).count()
        return processed, GateEvaluation.objects.count()


def test_two_nodes_on_their_own_queues_process_a_burst_once(
    start_worker, publisher, celery_queue, org_a, api_a, client_acme, event_body
):
    namespace = f"{celery_queue}-nodes"
    names = queues.names(namespace)
    prefork = ["--pool=prefork", "--concurrency=2"]
    processing = start_worker(
        "processing", default_queue=namespace, queues=[names[Kind.PROCESSING]], args=prefork
    )
    rest = start_worker(
        "rest",
        default_queue=namespace,
        queues=[name for kind, name in names.items() if kind != Kind.PROCESSING],
        args=prefork,
    )
    with scope(organization=org_a):
        for check in GATES:
            GateFactory(organization=org_a, check_name=check, mode=GateMode.MONITOR)
    publisher.use(settings.REDIS_URL, queue=namespace)

    bodies = [_page(event_body, n) for n in range(EVENTS)]
    for start in range(0, BATCHES * BATCH_SIZE, BATCH_SIZE):
        response = api_a.post(
            "/api/v1/events", {"events": bodies[start : start + BATCH_SIZE]}, format="json"
        )
        assert response.status_code == 200, response.json()
        assert {r["status"] for r in response.json()["results"]} == {"accepted"}
    for body in bodies[BATCHES * BATCH_SIZE :]:
        response = api_a.post("/api/v1/events", body, format="json")
        assert response.status_code == 202, response.json()

    wait_until(
        lambda: _counts() == (EVENTS, EVENTS * len(GATES)),
        120,
        message=lambda: f"(processed, evaluations) == {(EVENTS, EVENTS * len(GATES))}: {_counts()}",
    )

    with scopes_disabled():
        attempts = EventProcessing.objects.values_list("attempts", flat=True).distinct()
        per_gate_and_event = set(
            GateEvaluation.objects.values("gate", "event")
            .annotate(n=Count("pk"))
            .values_list("n", flat=True)
        )
    assert list(attempts) == [1]  # no event processed twice
    assert per_gate_and_event == {1}  # no event judged twice by a gate

    # Each node did its own kind of work, and only that.
    processing_log, rest_log = processing.log(), rest.log()
    assert "processing@" in processing_log and "rest@" in rest_log
    # (Both banners list every registered task; the tasks they received are these lines.)
    assert "Task gates.evaluate_heavy[" not in processing_log
    assert "Task deliveries.process_events[" not in rest_log
    assert "Task deliveries.process_pending_events[" not in rest_log
    # The tasks' own accounts: each event counted as processed once in all, each heavy
    # check run once.
    wait_until(
        lambda: (
            sum(int(n) for n in PROCESSED.findall(processing.log())) == EVENTS
            and len(HEAVY.findall(rest.log())) == EVENTS
        ),
        10,
        message="the nodes' logs to account for every task",
    )
    assert sum(int(n) for n in PROCESSED.findall(processing.log())) == EVENTS
