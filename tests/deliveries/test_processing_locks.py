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
from django.db import OperationalError, connection, connections
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
