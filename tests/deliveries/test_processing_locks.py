"""A processing batch never holds up ingestion of its deliverables' new events.

The batch locks its deliverables for the whole transaction. Inserting an event checks its
foreign key with a KEY SHARE lock on the deliverable, which ``FOR UPDATE`` blocks and
``FOR NO KEY UPDATE`` does not. Blocked, an API request waited for the batch to commit,
and since ingest takes those locks in event order and a batch in key order, the two could
deadlock: PostgreSQL killed the request (seen as a 500 in
tests/integration/test_queues_worker.py's burst).
"""

import threading

import pytest
from django.db import OperationalError, connection, connections, transaction
from django_scopes import scope

from deliveries.services import ingest_events, process_event
from meshline import extensions

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_ingest_goes_on_while_a_batch_holds_the_deliverable(
    org_a, client_acme, event_body, monkeypatch
):
    monkeypatch.setattr(  # stored, not dispatched: this test processes by hand
        "deliveries.services.processing.dispatch_events", lambda *args: True
    )
    with scope(organization=org_a):
        [first] = ingest_events(org_a, [event_body(idempotency_key="first")])
    outcome: dict = {}

    def ingest_meanwhile():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '3s'")  # blocked: fail, don't hang
            with scope(organization=org_a):
                [result] = ingest_events(org_a, [event_body(idempotency_key="second")])
            outcome["status"] = result.status
        except OperationalError as exc:
            outcome["error"] = str(exc)
        finally:
            connections.close_all()

    def step(batch):
        """Runs inside the batch's transaction, with its deliverables locked."""
        other = threading.Thread(target=ingest_meanwhile)
        other.start()
        other.join(10)

    with (
        extensions.processing_steps.override("tests.ingest_meanwhile", step),
        scope(organization=org_a),
    ):
        assert process_event(first.event_id)

    assert outcome == {"status": "accepted"}


def test_a_deliverable_another_worker_holds_is_taken_last_not_waited_for(
    org_a, client_acme, event_body, monkeypatch
):
    """Worker B's batch holds LP-HELD; this batch processes LP-FREE at once, then waits for
    B only for LP-HELD's event (its last pass), instead of queueing behind B for both."""
    import time

    from django.utils import timezone

    from deliveries.models import Deliverable, EventProcessing
    from deliveries.services.processing import process_batch

    monkeypatch.setattr("deliveries.services.processing.dispatch_events", lambda *args: True)
    with scope(organization=org_a):
        results = ingest_events(
            org_a,
            [
                event_body(deliverable_id="LP-HELD", idempotency_key="held"),
                event_body(deliverable_id="LP-FREE", idempotency_key="free"),
            ],
        )
    held, free = (r.event_id for r in results)
    locked, release = threading.Event(), threading.Event()
    released_at = {}

    def worker_b():
        try:
            with scope(organization=org_a), transaction.atomic():
                Deliverable.objects.select_for_update(no_key=True).get(
                    organization=org_a, deliverable_id="LP-HELD"
                )
                locked.set()
                release.wait(10)
                released_at["at"] = timezone.now()
        finally:
            connections.close_all()

    other = threading.Thread(target=worker_b)
    other.start()
    assert locked.wait(10)
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    result = process_batch(org_a, [held, free])
    other.join(10)

    assert (result.processed, result.failed) == (2, 0)
    with scope(organization=org_a):
        done = dict(EventProcessing.objects.values_list("event_id", "processed_at"))
    assert done[uuid(free)] < released_at["at"] <= done[uuid(held)]
    assert time.monotonic() - started >= 0.9  # the held one did wait for B, in the end


def uuid(value):
    import uuid as uuid_module

    return uuid_module.UUID(str(value))
