"""Processing: effects once however often an event is delivered; failures counted, isolated.

Events are stored with ``ingest_events`` inside the test's transaction, so their after-commit
dispatch never runs: each test decides how (and how often) they are processed.
"""

import ast
import itertools
import logging
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from deliveries import tasks
from deliveries.models import (
    Deliverable,
    Event,
    EventProcessing,
    LifecycleState,
    ProcessingStatus,
)
from deliveries.services import (
    ingest_events,
    process_event,
    sweep_unprocessed_events,
)
from deliveries.services.processing import MAX_ATTEMPTS, for_each_event, record_failure
from meshline import extensions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(event_body):
    """Store events for an organization, unprocessed; returns their ids."""

    def store_events(organization, *bodies) -> list[str]:
        with scope(organization=organization):
            results = ingest_events(organization, list(bodies))
        assert [r.status for r in results] == ["accepted"] * len(bodies), [
            r.errors for r in results
        ]
        return [r.event_id for r in results]

    return store_events


@pytest.fixture
def steps():
    """Register processing steps for one test only; they are removed afterwards."""
    with ExitStack() as stack:
        numbers = itertools.count()

        def register(step):
            name = f"test.step{next(numbers)}"
            return stack.enter_context(
                extensions.processing_steps.override(name, for_each_event(step))
            )

        yield register


@pytest.fixture
def step_calls(steps):
    """A step that records which events it saw: effects must happen once per event."""
    calls: list[str] = []

    def record(event, deliverable):
        calls.append(str(event.pk))

    steps(record)
    return calls


@pytest.fixture
def broker(monkeypatch):
    """Stands in for the broker: keeps every published process_events message, in order.

    Replaying them delivers each exactly as often as it was published, which is what an
    at-least-once broker may do.
    """
    messages: list[dict] = []

    def publish(args=None, kwargs=None, **options):
        messages.append(kwargs)

    monkeypatch.setattr(tasks.process_events, "apply_async", publish)
    return messages


def _processing(event_id) -> EventProcessing:
    with scopes_disabled():
        return EventProcessing.objects.get(event_id=event_id)


def _asset_uploaded(event_body, key: str, occurred_at: str) -> dict:
    return event_body(
        event_type="asset.uploaded",
        idempotency_key=key,
        occurred_at=occurred_at,
        payload={"asset_id": "hero.png", "size_bytes": 1024},
    )


def test_process_event_twice_applies_its_effects_once(
    org_a, client_acme, store, event_body, step_calls
):
    (event_id,) = store(org_a, event_body())
    with scope(organization=org_a):
        assert process_event(event_id) is True
        assert process_event(event_id) is False
        deliverable = Deliverable.objects.get(deliverable_id="LP-2041")

    assert step_calls == [event_id]
    processing = _processing(event_id)
    assert processing.status == ProcessingStatus.PROCESSED
    assert processing.attempts == 1
    assert processing.processed_at is not None
    assert deliverable.state == LifecycleState.PUBLISHED
    assert deliverable.state_changed_at.isoformat() == "2026-11-21T10:00:00+00:00"
    assert deliverable.url == "https://acme.example/lp/spring"


def test_late_arriving_earlier_event_never_moves_the_state_backwards(
    org_a, client_acme, store, event_body
):
    published, uploaded = store(
        org_a,
        event_body(idempotency_key="published"),
        _asset_uploaded(event_body, "uploaded", "2026-11-20T09:00:00Z"),
    )
    with scope(organization=org_a):
        assert process_event(published)
        assert process_event(uploaded)
        deliverable = Deliverable.objects.get(deliverable_id="LP-2041")

    assert deliverable.state == LifecycleState.PUBLISHED
    # The trail still counts the late event as processed, and last_event_at stays the latest.
    assert _processing(uploaded).status == ProcessingStatus.PROCESSED
    assert deliverable.last_event_at.isoformat() == "2026-11-21T10:00:00+00:00"


def test_process_events_task_reports_what_it_did(org_a, client_acme, store, event_body):
    event_ids = store(org_a, event_body(idempotency_key="a"), event_body(idempotency_key="b"))

    first = tasks.process_events.apply(kwargs={"organization_id": org_a.pk, "event_ids": event_ids})
    again = tasks.process_events.apply(kwargs={"organization_id": org_a.pk, "event_ids": event_ids})

    assert first.get() == {"processed": 2, "skipped": 0, "failed": 0}
    assert again.get() == {"processed": 0, "skipped": 2, "failed": 0}


def test_sweeping_twice_dispatches_twice_but_processes_once(
    org_a, client_acme, store, event_body, broker, step_calls
):
    event_ids = store(org_a, event_body(idempotency_key="a"), event_body(idempotency_key="b"))

    with override_settings(MESHLINE_SWEEP_GRACE_SECONDS=0):
        first = sweep_unprocessed_events()
        second = sweep_unprocessed_events()
    assert first == {"pending": 2, "dispatched": 2, "stuck": 0}
    assert second == {"pending": 2, "dispatched": 2, "stuck": 0}
    assert len(broker) == 2

    results = [tasks.process_events.apply(kwargs=message).get() for message in broker]

    assert results == [
        {"processed": 2, "skipped": 0, "failed": 0},
        {"processed": 0, "skipped": 2, "failed": 0},
    ]
    assert sorted(step_calls) == sorted(event_ids)
    assert {_processing(e).attempts for e in event_ids} == {1}


def test_sweeper_leaves_fresh_events_to_their_after_commit_task(
    org_a, client_acme, store, event_body, broker
):
    store(org_a, event_body())

    with override_settings(MESHLINE_SWEEP_GRACE_SECONDS=60):
        swept = sweep_unprocessed_events()

    assert swept == {"pending": 0, "dispatched": 0, "stuck": 0}
    assert broker == []


def test_sweeper_dispatches_each_organization_under_its_own_id(
    org_a, org_b, client_acme, client_b_acme, store, event_body, broker
):
    (event_a,) = store(org_a, event_body())
    (event_b,) = store(org_b, event_body())

    with override_settings(MESHLINE_SWEEP_GRACE_SECONDS=0):
        sweep_unprocessed_events()

    assert sorted(broker, key=lambda m: m["organization_id"]) == sorted(
        [
            {"organization_id": org_a.pk, "event_ids": [event_a]},
            {"organization_id": org_b.pk, "event_ids": [event_b]},
        ],
        key=lambda m: m["organization_id"],
    )


def test_sweep_task_can_be_published(org_a, client_acme, store, event_body):
    """Beat publishes it: its time limits must be consistent or Celery refuses to send it."""
    (event_id,) = store(org_a, event_body())

    with override_settings(MESHLINE_SWEEP_GRACE_SECONDS=0):
        result = tasks.sweep_unprocessed_events.delay()

    assert result.get() == {"pending": 1, "dispatched": 1, "stuck": 0}
    assert _processing(event_id).status == ProcessingStatus.PROCESSED


def test_record_failure_counts_attempts_and_gives_up_at_max_attempts(
    org_a, client_acme, store, event_body, broker
):
    (event_id,) = store(org_a, event_body())

    with scope(organization=org_a):
        for _ in range(MAX_ATTEMPTS - 1):
            record_failure(event_id, "TimeoutError: upstream")
    processing = _processing(event_id)
    assert processing.attempts == MAX_ATTEMPTS - 1
    assert processing.status == ProcessingStatus.PENDING
    assert processing.last_error == "TimeoutError: upstream"

    with scope(organization=org_a):
        record_failure(event_id, "TimeoutError: upstream, again")
    processing = _processing(event_id)
    assert processing.attempts == MAX_ATTEMPTS
    assert processing.status == ProcessingStatus.FAILED
    assert processing.last_error == "TimeoutError: upstream, again"

    # A failed event is shown as failed, not retried by every sweep forever.
    with override_settings(MESHLINE_SWEEP_GRACE_SECONDS=0):
        assert sweep_unprocessed_events()["pending"] == 0
    assert broker == []


def test_failing_step_leaves_its_event_pending_and_does_not_block_the_others(
    org_a, client_acme, store, event_body, steps, caplog
):
    def refuse_lp_bad(event, deliverable):
        if deliverable.deliverable_id == "LP-BAD":
            raise RuntimeError("gate service unavailable")

    steps(refuse_lp_bad)
    bad, good = store(
        org_a,
        event_body(deliverable_id="LP-BAD", idempotency_key="bad"),
        event_body(deliverable_id="LP-GOOD", idempotency_key="good"),
    )

    with caplog.at_level(logging.ERROR, logger="deliveries.services.processing"):
        result = tasks.process_events.apply(
            kwargs={"organization_id": org_a.pk, "event_ids": [bad, good]}
        ).get()

    assert result == {"processed": 1, "skipped": 0, "failed": 1}
    failed = _processing(bad)
    assert failed.status == ProcessingStatus.PENDING
    assert failed.attempts == 1
    assert failed.last_error == "RuntimeError: gate service unavailable"
    assert f"event {bad} failed" in caplog.text
    assert _processing(good).status == ProcessingStatus.PROCESSED
    with scopes_disabled():
        states = dict(Deliverable.objects.values_list("deliverable_id", "state"))
    # The failed event's transaction was rolled back whole: its deliverable did not move.
    assert states == {"LP-BAD": LifecycleState.NEW, "LP-GOOD": LifecycleState.PUBLISHED}


def test_event_that_failed_before_is_processed_by_a_later_attempt(
    org_a, client_acme, store, event_body, steps
):
    outage = {"on": True}

    def flaky(event, deliverable):
        if outage["on"]:
            raise ConnectionError("redis went away")

    steps(flaky)
    (event_id,) = store(org_a, event_body())
    kwargs = {"organization_id": org_a.pk, "event_ids": [event_id]}

    assert tasks.process_events.apply(kwargs=kwargs).get() == {
        "processed": 0,
        "skipped": 0,
        "failed": 1,
    }
    outage["on"] = False
    assert tasks.process_events.apply(kwargs=kwargs).get() == {
        "processed": 1,
        "skipped": 0,
        "failed": 0,
    }

    processing = _processing(event_id)
    assert processing.status == ProcessingStatus.PROCESSED
    assert processing.attempts == 2
    assert processing.last_error == ""


def test_stuck_events_are_counted_and_logged_by_the_sweeper(
    org_a, client_acme, store, event_body, broker, caplog
):
    stuck, _fresh = store(
        org_a, event_body(idempotency_key="old"), event_body(idempotency_key="new")
    )
    with scopes_disabled():
        EventProcessing.objects.filter(event_id=stuck).update(
            enqueued_at=timezone.now() - timedelta(seconds=120)
        )

    with (
        override_settings(MESHLINE_STUCK_AFTER_SECONDS=60, MESHLINE_SWEEP_GRACE_SECONDS=30),
        caplog.at_level(logging.WARNING, logger="deliveries.services.processing"),
    ):
        swept = sweep_unprocessed_events()

    assert swept == {"pending": 1, "dispatched": 1, "stuck": 1}
    assert broker == [{"organization_id": org_a.pk, "event_ids": [stuck]}]
    assert "sweep: 1 events unprocessed for more than 60 seconds" in caplog.text


def test_nothing_stuck_means_no_warning(org_a, client_acme, store, event_body, broker, caplog):
    store(org_a, event_body())

    with caplog.at_level(logging.WARNING, logger="deliveries.services.processing"):
        sweep_unprocessed_events()

    assert "unprocessed for more than" not in caplog.text


# --- The trail stays append-only ----------------------------------------------------------

APP_PACKAGES = ["deliveries", "meshline", "owners", "gates", "billing"]
CHANGING_QUERYSET_METHODS = {"update", "delete", "bulk_update", "update_or_create", "_raw_delete"}


def _event_row(event_id) -> dict:
    with scopes_disabled():
        return Event.objects.filter(pk=event_id).values().get()


@pytest.fixture
def detached_event(org_a, client_acme, store, event_body):
    """A stored event without its processing row, so nothing but the trigger stops a DELETE."""
    (event_id,) = store(org_a, event_body())
    with scopes_disabled():
        EventProcessing.objects.filter(event_id=event_id).delete()
    return event_id


def _orm_save(event_id):
    with scopes_disabled():
        event = Event.objects.get(pk=event_id)
        event.correlation_id = "rewritten"
        event.save()


def _orm_update(event_id):
    with scopes_disabled():
        Event.objects.filter(pk=event_id).update(payload={})


def _orm_delete(event_id):
    with scopes_disabled():
        Event.objects.get(pk=event_id).delete()


def _orm_queryset_delete(event_id):
    with scopes_disabled():
        Event.objects.filter(pk=event_id).delete()


def _sql_update(event_id):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE deliveries_event SET actor_id = 'x' WHERE id = %s", [event_id])


def _sql_delete(event_id):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM deliveries_event WHERE id = %s", [event_id])


@pytest.mark.postgres
def test_append_only_trigger_is_installed(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger "
            "WHERE tgrelid = 'deliveries_event'::regclass AND NOT tgisinternal"
        )
        triggers = {name for (name,) in cursor.fetchall()}
    assert "deliveries_event_append_only" in triggers


@pytest.mark.postgres
@pytest.mark.parametrize(
    "change",
    [_orm_save, _orm_update, _orm_delete, _orm_queryset_delete, _sql_update, _sql_delete],
    ids=lambda f: f.__name__.lstrip("_"),
)
def test_postgresql_refuses_to_change_or_delete_an_event(detached_event, change):
    before = _event_row(detached_event)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        change(detached_event)

    assert _event_row(detached_event) == before


def test_processing_and_sweeping_never_change_the_stored_event(
    org_a, client_acme, store, event_body, steps, broker
):
    """On PostgreSQL the trigger would also make any such write fail outright."""
    (event_id,) = store(org_a, event_body())
    before = _event_row(event_id)

    steps(lambda event, deliverable: None)
    with scope(organization=org_a):
        assert ingest_events(org_a, [event_body()])[0].status == "duplicate"
        record_failure(event_id, "RuntimeError: once")
    with override_settings(MESHLINE_SWEEP_GRACE_SECONDS=0):
        sweep_unprocessed_events()
    for message in [*broker, *broker]:
        tasks.process_events.apply(kwargs=message).get()

    assert _processing(event_id).status == ProcessingStatus.PROCESSED
    assert _event_row(event_id) == before


def _changing_calls_on_event(tree: ast.AST):
    """Calls like ``Event.objects....update(...)``, however the chain is split over lines."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in CHANGING_QUERYSET_METHODS:
            continue
        receiver = node.func.value
        while isinstance(receiver, ast.Call | ast.Attribute | ast.Subscript):
            if (
                isinstance(receiver, ast.Attribute)
                and receiver.attr == "objects"
                and isinstance(receiver.value, ast.Name)
                and receiver.value.id == "Event"
            ):
                yield node.lineno
                break
            receiver = receiver.func if isinstance(receiver, ast.Call) else receiver.value


def _event_saves_with_update_fields(tree: ast.AST):
    """``event.save(update_fields=...)``: only ever an UPDATE of an existing row."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "save"
            and isinstance(node.func.value, ast.Name)
            and "event" in node.func.value.id.lower()
            and any(keyword.arg == "update_fields" for keyword in node.keywords)
        ):
            yield node.lineno


def test_no_code_path_updates_or_deletes_an_event():
    offenders = []
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for lineno in [*_changing_calls_on_event(tree), *_event_saves_with_update_fields(tree)]:
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}")
    assert offenders == [], "the event trail is append-only"


def test_a_deadlocked_batch_is_retried_whole(org_a, client_acme, store, event_body, monkeypatch):
    """PostgreSQL aborts one of two deadlocked transactions: the batch runs again, whole."""
    import psycopg
    from django.db import OperationalError

    from deliveries.services import processing

    ids = store(org_a, event_body(idempotency_key="a"), event_body(idempotency_key="b"))
    real = processing._process_together
    calls = []

    def deadlock_once(organization, chunk, *, wait=True):
        calls.append(list(chunk))
        if len(calls) == 1:
            try:
                raise psycopg.errors.DeadlockDetected("deadlock detected")
            except psycopg.Error as cause:
                raise OperationalError("deadlock detected") from cause
        return real(organization, chunk, wait=wait)

    monkeypatch.setattr(processing, "_process_together", deadlock_once)
    monkeypatch.setattr(processing.time, "sleep", lambda seconds: None)
    result = processing.process_batch(org_a, ids)

    assert (result.processed, result.failed) == (2, 0)
    assert calls == [ids, ids]  # retried as one batch, not split into single events
    assert {_processing(e).attempts for e in ids} == {1}


def test_an_older_page_published_never_takes_back_the_deliverables_url(
    org_a, client_acme, store, event_body, replay_events
):
    """Processed late, or replayed: the newest page.published's URL stands."""
    older = event_body(
        idempotency_key="page-old",
        occurred_at="2026-11-20T10:00:00Z",
        payload={"url": "https://acme.example/old", "html": "<html></html>"},
    )
    newer = event_body(
        idempotency_key="page-new",
        occurred_at="2026-11-21T10:00:00Z",
        payload={"url": "https://acme.example/new", "html": "<html></html>"},
    )
    old_id, new_id = store(org_a, older, newer)
    with scope(organization=org_a):
        process_event(new_id)
        process_event(old_id)  # arrives late
        assert Deliverable.objects.get(organization=org_a).url == "https://acme.example/new"
    replay_events(org_a, [old_id])
    with scope(organization=org_a):
        assert Deliverable.objects.get(organization=org_a).url == "https://acme.example/new"


def test_a_large_request_is_split_by_deliverable_the_same_way_every_time(settings):
    from deliveries.services.processing import PARTITION_MIN_EVENTS, partitions

    settings.MESHLINE_PROCESSING_PARTITIONS = 4
    settings.MESHLINE_PROCESSING_BATCH_SIZE = 30
    deliverables = [n % 10 for n in range(100)]
    events = [f"e{n}" for n in range(100)]
    chunks = partitions(events, deliverables)
    # every event once, no chunk over the batch size, each chunk one partition's
    assert sorted(e for chunk in chunks for e in chunk) == sorted(events)
    assert max(len(chunk) for chunk in chunks) == 30
    by_partition = {}
    for chunk in chunks:
        keys = {deliverables[int(e[1:])] % 4 for e in chunk}
        assert len(keys) == 1
        by_partition.setdefault(keys.pop(), []).extend(chunk)
    assert set(by_partition) == {0, 1, 2, 3}
    # small requests, and callers that do not know the deliverables, are not split
    few = events[: PARTITION_MIN_EVENTS - 1]
    assert partitions(few, deliverables[: len(few)]) == [few[:30], few[30:60], few[60:]]
    assert partitions(events) == [events[i : i + 30] for i in range(0, 100, 30)]
