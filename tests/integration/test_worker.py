"""Events travel the whole data path: API, PostgreSQL, Redis, a real Celery worker.

The broker only makes processing fast; the database remembers what is still to do. These
tests post through the API, stop the broker (by pointing the publisher at a closed port),
and check that every committed event is processed once the broker is back: by the
sweeper called directly, and by beat with no test calling anything.
"""

import logging
import time

import pytest
from django.conf import settings
from django.test import override_settings
from django_scopes import scopes_disabled

from deliveries.models import Deliverable, EventProcessing, LifecycleState, ProcessingStatus
from deliveries.services import dispatch_events, sweep_unprocessed_events
from meshline.celery import app as celery_app
from tests.integration.conftest import UNREACHABLE_BROKER, wait_until

PROCESS_TIMEOUT = 20
# Generous: a refused connection fails in milliseconds; only a retrying publisher is slow.
INGEST_DEADLINE = 5


def _statuses(event_ids) -> dict[str, str]:
    with scopes_disabled():
        return {
            str(event_id): status
            for event_id, status in EventProcessing.objects.filter(
                event_id__in=event_ids
            ).values_list("event_id", "status")
        }


def wait_processed(event_ids) -> None:
    def all_processed() -> bool:
        statuses = _statuses(event_ids)
        return len(statuses) == len(event_ids) and set(statuses.values()) == {
            ProcessingStatus.PROCESSED
        }

    wait_until(
        all_processed,
        PROCESS_TIMEOUT,
        message=lambda: f"events processed by the worker; statuses: {_statuses(event_ids)}",
    )


def _post_events(api, bodies) -> list[str]:
    response = api.post("/api/v1/events", {"events": bodies}, format="json")
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * len(bodies), results
    return [r["id"] for r in results]


def _page(event_body, n: int) -> dict:
    return event_body(
        deliverable_id=f"LP-{n}",
        idempotency_key=f"cms-evt-{n}",
        payload={"url": f"https://acme.example/lp/{n}"},
    )


@pytest.mark.worker
def test_event_posted_through_api_is_processed_by_the_worker(
    worker, api_a, client_acme, event_body
):
    response = api_a.post("/api/v1/events", event_body(), format="json")
    assert response.status_code == 202, response.json()
    event_id = response.json()["id"]

    wait_processed([event_id])

    with scopes_disabled():
        processing = EventProcessing.objects.get(event_id=event_id)
        deliverable = Deliverable.objects.get(deliverable_id="LP-2041")
    assert processing.attempts == 1
    assert processing.processed_at is not None
    assert deliverable.state == LifecycleState.PUBLISHED
    assert deliverable.url == "https://acme.example/lp/spring"
    # The work happened in the worker process, not eagerly in this one: the wake-up task
    # that takes single events from the organization's list.
    assert "deliveries.process_pending_events" in worker.log_since_mark()
    trail = api_a.get(f"/api/v1/events/{event_id}").json()
    assert trail["processing"]["status"] == ProcessingStatus.PROCESSED


@pytest.mark.worker
def test_events_stored_while_broker_is_down_are_processed_after_a_sweep(
    worker, publisher, api_a, client_acme, event_body, caplog
):
    publisher.use(UNREACHABLE_BROKER)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="deliveries.services.processing"):
        response = api_a.post("/api/v1/events", event_body(), format="json")
    single_elapsed = time.monotonic() - started
    assert response.status_code == 202, response.json()
    started = time.monotonic()
    batch_ids = _post_events(api_a, [_page(event_body, n) for n in range(3)])
    batch_elapsed = time.monotonic() - started
    assert single_elapsed < INGEST_DEADLINE
    assert batch_elapsed < INGEST_DEADLINE
    assert "broker unreachable" in caplog.text
    event_ids = [response.json()["id"], *batch_ids]
    assert set(_statuses(event_ids).values()) == {ProcessingStatus.PENDING}

    publisher.use(settings.REDIS_URL)
    with override_settings(MESHLINE_SWEEP_GRACE_SECONDS=0):
        swept = sweep_unprocessed_events()
    assert swept["dispatched"] == len(event_ids)

    wait_processed(event_ids)
    with scopes_disabled():
        states = set(Deliverable.objects.values_list("state", flat=True))
    assert states == {LifecycleState.PUBLISHED}


@pytest.mark.worker
@pytest.mark.parametrize("coalesce", [False, True])
def test_duplicate_dispatch_is_processed_once_by_the_worker(
    worker, publisher, api_a, org_a, client_acme, event_body, coalesce
):
    publisher.use(UNREACHABLE_BROKER)  # store only; we dispatch by hand below
    event_ids = _post_events(api_a, [_page(event_body, n) for n in range(2)])
    publisher.use(settings.REDIS_URL)

    # At-least-once delivery: the after-commit task and a sweep may both arrive. Two
    # tasks, or (coalesced) the same ids twice in the list of one wake-up.
    with override_settings(MESHLINE_PROCESSING_COALESCE=coalesce):
        assert dispatch_events(org_a.pk, event_ids)
        assert dispatch_events(org_a.pk, event_ids)

    wait_processed(event_ids)
    # One delivery did the work, the other found it done (coalesced: the wake-up took each
    # id once). Other apps' steps may enqueue tasks of their own, so look for these
    # results, not a count of tasks.
    results = [
        "'processed': 2, 'skipped': 0, 'failed': 0",
        *([] if coalesce else ["'processed': 0, 'skipped': 2, 'failed': 0"]),
    ]
    wait_until(
        lambda: all(result in worker.log_since_mark() for result in results),
        PROCESS_TIMEOUT,
        message=lambda: f"both deliveries handled; worker log:\n{worker.log_since_mark()}",
    )
    with scopes_disabled():
        attempts = set(
            EventProcessing.objects.filter(event_id__in=event_ids).values_list(
                "attempts", flat=True
            )
        )
    assert attempts == {1}


@pytest.mark.worker
def test_beat_sweeps_events_stored_while_broker_was_down(
    worker, publisher, celery_beat, api_a, client_acme, event_body
):
    publisher.use(UNREACHABLE_BROKER)
    event_ids = _post_events(api_a, [_page(event_body, n) for n in range(3)])
    assert set(_statuses(event_ids).values()) == {ProcessingStatus.PENDING}

    # Nothing in this test dispatches: beat sends the sweep task, the worker sweeps (grace 0
    # in its environment) and processes what the sweep enqueued.
    celery_beat()
    wait_processed(event_ids)
    assert "deliveries.sweep_unprocessed_events" in worker.log_since_mark()


@pytest.mark.parametrize(
    ("coalesce", "said"),
    [
        (True, "broker unreachable (Redis), 1 events left for the sweeper"),
        (False, "deliveries.process_events: broker unreachable, left for the sweeper"),
    ],
)
def test_ingest_answers_and_stores_when_broker_is_unreachable(
    publisher, api_a, client_acme, event_body, django_capture_on_commit_callbacks, caplog,
    coalesce, said,
):  # fmt: skip
    """Needs no servers: the broker is a closed port, and the event stays for the sweeper."""
    publisher.use(UNREACHABLE_BROKER)
    started = time.monotonic()
    with (
        override_settings(MESHLINE_PROCESSING_COALESCE=coalesce),
        caplog.at_level(logging.WARNING),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api_a.post("/api/v1/events", event_body(), format="json")
    elapsed = time.monotonic() - started

    assert response.status_code == 202, response.json()
    assert elapsed < INGEST_DEADLINE
    # The after-commit dispatch was attempted, failed, and said so.
    assert said in caplog.text
    assert _statuses([response.json()["id"]]) == {response.json()["id"]: ProcessingStatus.PENDING}


@pytest.mark.parametrize("entry", sorted(settings.CELERY_BEAT_SCHEDULE))
def test_every_beat_task_can_be_published(entry, publisher):
    """Beat publishes each entry; Celery refuses, e.g., a soft time limit above the hard one.

    Published to an in-memory broker, so nothing runs.
    """
    schedule = settings.CELERY_BEAT_SCHEDULE[entry]
    publisher.use("memory://")
    celery_app.loader.import_default_modules()  # every app's tasks, as beat and workers do
    task = celery_app.tasks[schedule["task"]]

    task.apply_async(schedule.get("args", ()), schedule.get("kwargs", {}))
