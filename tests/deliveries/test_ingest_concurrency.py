"""Concurrent requests that create the same new deliverables never fail each other.

Each request creates the deliverables its events name first, in one INSERT ... ON CONFLICT
DO NOTHING. Two requests naming the same new deliverables in opposite orders each took one
and waited for the other's: PostgreSQL found the deadlock and killed one request, a 500
(seen in bench/processing.py's burst, two senders of 500 events). They are now created in
one order, and a deadlock that still happens (with another writer) is retried.
"""

import threading

import psycopg
import pytest
from django.db import OperationalError, connections
from django_scopes import scope

from deliveries.models import Deliverable, Event
from deliveries.services import ingest, ingest_events

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 6
DELIVERABLES = 150


def test_two_requests_creating_the_same_deliverables_in_opposite_orders_both_succeed(
    org_a, client_acme, event_body, monkeypatch
):
    monkeypatch.setattr("deliveries.services.processing.dispatch_events", lambda *args: True)
    failures: list[str] = []
    statuses: list[str] = []
    start = threading.Barrier(2)

    def send(refs: list[str], sender: str):
        try:
            start.wait(5)
            with scope(organization=org_a):
                results = ingest_events(
                    org_a,
                    [
                        event_body(deliverable_id=ref, idempotency_key=f"{sender}-{ref}")
                        for ref in refs
                    ],
                )
            statuses.extend(r.status for r in results)
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            connections.close_all()

    for round_ in range(ROUNDS):
        refs = [f"LP-{round_}-{n:03d}" for n in range(DELIVERABLES)]
        threads = [
            threading.Thread(target=send, args=(refs, "up")),
            threading.Thread(target=send, args=(refs[::-1], "down")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert failures == []
    assert statuses == ["accepted"] * (2 * ROUNDS * DELIVERABLES)
    with scope(organization=org_a):
        assert Deliverable.objects.filter(organization=org_a).count() == ROUNDS * DELIVERABLES
        assert Event.objects.filter(organization=org_a).count() == 2 * ROUNDS * DELIVERABLES


def test_a_request_rolled_back_by_a_deadlock_is_stored_once_on_the_next_attempt(
    org_a, client_acme, event_body, monkeypatch
):
    """Another writer (a processing batch, an operator) can still deadlock with a request;
    PostgreSQL rolls the request back whole, and it runs again instead of answering 500."""
    monkeypatch.setattr("deliveries.services.processing.dispatch_events", lambda *args: True)
    real = ingest._store_once
    attempts = []

    def deadlock_once(organization, candidates, source):
        attempts.append(1)
        created = real(organization, candidates, source)  # written, then rolled back
        if len(attempts) == 1:
            try:
                raise psycopg.errors.DeadlockDetected("deadlock detected")
            except psycopg.errors.DeadlockDetected as cause:
                raise OperationalError("deadlock detected") from cause
        return created

    monkeypatch.setattr(ingest, "_store_once", deadlock_once)
    with scope(organization=org_a):
        results = ingest_events(
            org_a, [event_body(idempotency_key="k1"), event_body(idempotency_key="k2")]
        )
        assert [r.status for r in results] == ["accepted", "accepted"]
        assert len(attempts) == 2
        assert Event.objects.filter(organization=org_a).count() == 2


def test_other_database_errors_are_not_retried(org_a, client_acme, event_body, monkeypatch):
    calls = []

    def broken(organization, candidates, source):
        calls.append(1)
        raise OperationalError("the server closed the connection")

    monkeypatch.setattr(ingest, "_store_once", broken)
    with scope(organization=org_a), pytest.raises(OperationalError):
        ingest_events(org_a, [event_body(idempotency_key="k1")])
    assert len(calls) == 1
