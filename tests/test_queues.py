"""Queues by kind: every task is routed on purpose, and a worker without -Q takes them all."""

import uuid

import pytest
import redis
from django.conf import settings

from meshline import queues
from meshline.celery import app as celery_app
from meshline.queues import Kind
from tests.integration.conftest import Publisher


def _meshline_tasks() -> list[str]:
    celery_app.loader.import_default_modules()  # every app's tasks, as workers load them
    return sorted(
        name
        for name in celery_app.tasks
        if not name.startswith(("celery.", "tests."))  # Celery's own; tests' throwaways
    )


def test_every_meshline_task_has_an_explicit_route():
    """A task missing here would go to the default queue, which the pool for its kind may
    not consume: route it in meshline/queues.py (and say why there)."""
    unrouted = [name for name in _meshline_tasks() if name not in queues.ROUTES]
    assert unrouted == []


def test_routes_name_no_task_that_is_gone():
    """Except the heavy-check task another change adds: routed ahead, by name."""
    stale = set(queues.ROUTES) - set(_meshline_tasks()) - {"gates.evaluate_heavy"}
    assert stale == set()


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("deliveries.process_events", "meshline.processing"),
        ("deliveries.sweep_unprocessed_events", "meshline.processing"),
        ("gates.evaluate_gate", "meshline.gates"),
        ("gates.evaluate_heavy", "meshline.heavy"),
        ("owners.send_notification", "meshline.notifications"),
        ("connectors.send_outbound", "meshline.notifications"),
        ("reporting.nightly_for", "meshline.exports"),
        ("owners.escalate_tickets", "meshline"),
        ("celery.backend_cleanup", "meshline"),
    ],
)
def test_each_kind_of_task_is_published_to_its_own_queue(task, queue):
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "meshline"
    routed = celery_app.amqp.router.route({}, task)["queue"]
    assert (routed.name, routed.exchange.name, routed.routing_key) == (queue, queue, queue)


def test_queue_names_follow_the_default_queue():
    assert queues.names("acme-meshline") == {
        Kind.PROCESSING: "acme-meshline.processing",
        Kind.GATES: "acme-meshline.gates",
        Kind.HEAVY: "acme-meshline.heavy",
        Kind.NOTIFICATIONS: "acme-meshline.notifications",
        Kind.EXPORTS: "acme-meshline.exports",
        Kind.DEFAULT: "acme-meshline",
    }


def test_a_worker_without_queues_consumes_every_kind():
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert declared == set(queues.names("meshline").values())
    # What `celery worker` without -Q consumes: the app's queues, all of them.
    assert set(celery_app.amqp.queues) == declared


@pytest.mark.redis
def test_depths_count_waiting_messages_per_kind():
    namespace = f"meshline-test-depths-{uuid.uuid4().hex[:8]}"
    publisher = Publisher(celery_app, namespace)
    publisher.use(settings.REDIS_URL, queue=namespace)
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for _ in range(3):
            celery_app.send_task("deliveries.process_events", kwargs={"event_ids": []})
        celery_app.send_task("reporting.nightly_for", kwargs={})
        assert queues.depths(celery_app) == {
            Kind.PROCESSING: 3,
            Kind.GATES: 0,
            Kind.HEAVY: 0,
            Kind.NOTIFICATIONS: 0,
            Kind.EXPORTS: 1,
            Kind.DEFAULT: 0,
        }
    finally:
        publisher.restore()
        for key in client.scan_iter(f"*{namespace}*"):
            client.delete(key)


@pytest.mark.redis
def test_the_oldest_message_of_each_queue_tells_how_long_work_has_waited_there():
    import json
    from datetime import UTC, datetime

    import time_machine
    from django.test import override_settings

    namespace = f"meshline-test-ages-{uuid.uuid4().hex[:8]}"
    publisher = Publisher(celery_app, namespace)
    publisher.use(settings.REDIS_URL, queue=namespace)
    client = redis.Redis.from_url(settings.REDIS_URL)
    first = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    processing, gates, heavy = (
        f"{namespace}.processing",
        f"{namespace}.gates",
        f"{namespace}.heavy",
    )
    try:
        with time_machine.travel(first, tick=False):
            celery_app.send_task("deliveries.process_events", kwargs={"event_ids": []})
        with time_machine.travel(first.timestamp() + 30, tick=False):
            celery_app.send_task("deliveries.process_events", kwargs={"event_ids": []})
            celery_app.send_task("gates.evaluate_gate", kwargs={}, priority=6)  # its own list
        # A message from before stamping began (or not Celery's): its age is unknown.
        client.lpush(heavy, json.dumps({"headers": {"task": "gates.evaluate_heavy"}}))
        with override_settings(CELERY_BROKER_URL=settings.REDIS_URL):
            ages = queues.queue_ages(
                [processing, gates, heavy, f"{namespace}.exports"], now=first.timestamp() + 100
            )
        assert ages == {
            processing: 100.0,  # the older of its two messages
            gates: 70.0,
            heavy: None,
            f"{namespace}.exports": 0.0,  # nothing waits
        }
    finally:
        publisher.restore()
        for key in client.scan_iter(f"*{namespace}*"):
            client.delete(key)


def test_queue_ages_are_unknown_where_the_broker_cannot_show_a_message():
    from django.test import override_settings

    with override_settings(CELERY_BROKER_URL="memory://"):
        assert queues.queue_ages(["meshline.processing"]) == {"meshline.processing": None}
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):  # refused at once
        assert queues.queue_ages(["meshline.processing"]) == {"meshline.processing": None}
