"""Coalesced dispatch against a real Redis: small requests share one wake-up, nothing is lost.

This process publishes to Redis for real (``Publisher``), to queues named after this test
run so that no worker consumes them; the wake-up messages are counted in the queue and the
drains run in-process (``apply``), where their effects can be checked.
"""

import logging
import uuid

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from django_scopes import scope, scopes_disabled
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deliveries.models import EventProcessing, ProcessingStatus
from deliveries.services import dispatch_events, ingest_events, wakeups
from deliveries.tasks import process_pending_events
from meshline import queues, telemetry
from meshline.celery import app as celery_app
from tests.integration.conftest import UNREACHABLE_BROKER, Publisher

pytestmark = [pytest.mark.redis]


@pytest.fixture
def broker():
    """This process publishing to the test Redis, under queue names of its own."""
    namespace = f"meshline-test-wakeups-{uuid.uuid4().hex[:8]}"
    publisher = Publisher(celery_app, namespace)
    publisher.use(settings.REDIS_URL)
    client = redis.Redis.from_url(settings.REDIS_URL)
    processing_queue = queues.queue_name(queues.Kind.PROCESSING, namespace)
    yield client, processing_queue
    client.delete(*client.keys(f"{processing_queue}*") or [processing_queue])
    publisher.restore()


def _wakeups(client, processing_queue) -> list[str]:
    """The task names of the messages waiting in the processing queue."""
    import json

    return [json.loads(m)["headers"]["task"] for m in client.lrange(processing_queue, 0, -1)]


def _ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def test_small_requests_share_one_wakeup_until_a_drain_takes_them(broker, org_a):
    client, processing_queue = broker
    first, second, third = _ids(1), _ids(1), _ids(2)

    assert dispatch_events(org_a.pk, first)
    assert dispatch_events(org_a.pk, second)
    assert dispatch_events(org_a.pk, third)
    # One wake-up for the three requests; every id waits in the organization's list.
    assert _wakeups(client, processing_queue) == ["deliveries.process_pending_events"]

    taken, _parents = wakeups.take(org_a.pk, 3)
    assert taken == first + second + third[:1]
    # One id was left behind: the drain woke another before starting its own work...
    assert len(_wakeups(client, processing_queue)) == 2
    # ... and a request meanwhile joins that drain instead of publishing a third.
    assert dispatch_events(org_a.pk, second)
    assert len(_wakeups(client, processing_queue)) == 2

    taken, _parents = wakeups.take(org_a.pk, 10)
    assert taken == third[1:] + second
    assert len(_wakeups(client, processing_queue)) == 2  # nothing left: nobody else woken
    # The list is empty and no drain is waiting: the next request wakes one.
    assert dispatch_events(org_a.pk, first)
    assert len(_wakeups(client, processing_queue)) == 3


def test_large_requests_still_go_to_tasks_split_by_deliverable(broker, org_a):
    client, processing_queue = broker
    ids = _ids(100)

    assert dispatch_events(org_a.pk, ids, [n % 4 for n in range(100)])

    assert _wakeups(client, processing_queue) == ["deliveries.process_events"] * 4
    assert wakeups.take(org_a.pk, 10) == ([], [])


def test_coalescing_can_be_turned_off(broker, org_a):
    client, processing_queue = broker
    with override_settings(MESHLINE_PROCESSING_COALESCE=False):
        assert dispatch_events(org_a.pk, _ids(1))
        assert dispatch_events(org_a.pk, _ids(1))
    assert _wakeups(client, processing_queue) == ["deliveries.process_events"] * 2


def test_lists_are_per_organization(broker, org_a, org_b):
    client, processing_queue = broker
    ids_a, ids_b = _ids(2), _ids(1)

    dispatch_events(org_a.pk, ids_a)
    dispatch_events(org_b.pk, ids_b)

    assert len(_wakeups(client, processing_queue)) == 2  # one drain each
    assert wakeups.take(org_b.pk, 10)[0] == ids_b
    assert wakeups.take(org_a.pk, 10)[0] == ids_a


def test_a_drain_processes_each_queued_event_once(broker, org_a, client_acme, event_body):
    with scope(organization=org_a):
        results = ingest_events(
            org_a,
            [event_body(deliverable_id=f"LP-{n}", idempotency_key=f"k-{n}") for n in range(3)],
        )
    ids = [r.event_id for r in results]
    # At-least-once: the request's dispatch, then a sweep queueing the same events again.
    assert dispatch_events(org_a.pk, ids)
    assert dispatch_events(org_a.pk, ids[:2])

    result = process_pending_events.apply(kwargs={"organization_id": org_a.pk}).get()

    assert result == {"processed": 3, "skipped": 0, "failed": 0}
    with scopes_disabled():
        rows = EventProcessing.objects.filter(event_id__in=ids)
        assert {(row.status, row.attempts) for row in rows} == {(ProcessingStatus.PROCESSED, 1)}
    # A wake-up whose ids another drain took finds nothing to do.
    again = process_pending_events.apply(kwargs={"organization_id": org_a.pk}).get()
    assert again == {"processed": 0, "skipped": 0, "failed": 0}


def test_a_drain_only_takes_its_own_organizations_events(
    broker, org_a, org_b, client_acme, event_body
):
    with scope(organization=org_a):
        [result] = ingest_events(org_a, [event_body()])
    dispatch_events(org_a.pk, [result.event_id])

    # org_b's wake-up (a forged or stale one) reads org_b's list, which is empty.
    other = process_pending_events.apply(kwargs={"organization_id": org_b.pk}).get()

    assert other == {"processed": 0, "skipped": 0, "failed": 0}
    with scopes_disabled():
        assert EventProcessing.objects.get(event_id=result.event_id).status == "pending"
    assert wakeups.take(org_a.pk, 10)[0] == [result.event_id]


def test_unreachable_redis_leaves_the_events_for_the_sweeper(broker, org_a, caplog):
    publisher = Publisher(celery_app, "meshline-test-wakeups-down")
    publisher.use(UNREACHABLE_BROKER)
    try:
        with caplog.at_level(logging.WARNING, logger="deliveries.services.wakeups"):
            assert dispatch_events(org_a.pk, _ids(1)) is False
    finally:
        publisher.restore()
    assert "broker unreachable (Redis), 1 events left for the sweeper" in caplog.text


def test_a_failed_wakeup_is_retried_by_the_next_request(broker, org_a, monkeypatch):
    client, processing_queue = broker
    attempts = []
    monkeypatch.setattr(
        process_pending_events, "publish", lambda **kwargs: attempts.append(kwargs) or False
    )

    assert dispatch_events(org_a.pk, _ids(1)) is False
    assert dispatch_events(org_a.pk, _ids(1)) is False

    # The flag was cleared after each failure: both requests tried to wake a drain.
    assert attempts == [{"organization_id": org_a.pk}] * 2
    assert _wakeups(client, processing_queue) == []
    assert len(wakeups.take(org_a.pk, 10)[0]) == 2


@pytest.fixture
def spans(monkeypatch):
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "psycopg")
    exporter = InMemorySpanExporter()
    telemetry.setup("web", span_exporter=exporter, global_provider=False)
    yield exporter
    telemetry.shutdown()
    telemetry.clear_keys()


def test_the_drain_links_to_the_trace_of_every_request_it_serves(
    broker, spans, org_a, client_acme, event_body
):
    with scope(organization=org_a):
        results = ingest_events(
            org_a, [event_body(deliverable_id=f"LP-{n}", idempotency_key=f"t-{n}") for n in (1, 2)]
        )
    requests = []
    for result in results:
        with telemetry.tracer().start_as_current_span("request") as request:
            dispatch_events(org_a.pk, [result.event_id])
        requests.append(request)

    process_pending_events.apply(kwargs={"organization_id": org_a.pk}).get()

    [drain] = [s for s in spans.get_finished_spans() if s.name == "meshline.process_pending"]
    assert {(link.context.trace_id, link.context.span_id) for link in drain.links} == {
        (r.context.trace_id, r.context.span_id) for r in requests
    }
    [batch] = [s for s in spans.get_finished_spans() if s.name == "meshline.process_batch"]
    assert batch.parent.span_id == drain.context.span_id
    assert batch.attributes["meshline.event_count"] == 2
