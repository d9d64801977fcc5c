"""Queues by kind of work, so that each kind runs on its own worker pool.

A burst of events must not wait behind a night's exports, nor a screenshot comparison
behind a thousand cheap checks. Every Meshline task is routed here, by name, to one kind;
the queue of a kind is named after the default queue (``CELERY_TASK_DEFAULT_QUEUE``,
"meshline"): ``meshline.processing``, ``meshline.gates``... and the default kind is the
default queue itself. A worker started without ``-Q`` consumes every queue (development,
the demo, one-machine installs); production starts one pool per kind (README, "Running for
real"). A task missing from ``ROUTES`` fails tests/test_queues.py, so no new task can land
on a queue that no pool consumes.
"""

import json
import logging
import time
from collections.abc import Iterable
from contextlib import suppress
from enum import StrEnum

from kombu import Connection, Exchange, Queue

log = logging.getLogger(__name__)


class Kind(StrEnum):
    PROCESSING = "processing"  # events after ingest: lifecycle, processing steps, sweeps
    GATES = "gates"  # gate evaluations and their sweeps
    HEAVY = "heavy"  # CPU-heavy checks (screenshot comparison)
    NOTIFICATIONS = "notifications"  # anything that calls out: email, webhooks, outbound
    EXPORTS = "exports"  # nightly attribution and exports: long, never urgent
    DEFAULT = "default"  # beat fan-outs and small periodic work


ROUTES: dict[str, Kind] = {
    # deliveries
    "deliveries.process_events": Kind.PROCESSING,
    "deliveries.process_pending_events": Kind.PROCESSING,
    "deliveries.sweep_unprocessed_events": Kind.PROCESSING,
    "deliveries.compact_event_counts": Kind.DEFAULT,
    "deliveries.compact_event_counts_for": Kind.DEFAULT,
    # connectors: inbound mapping makes events (processing); outbound calls out
    "connectors.map_inbound": Kind.PROCESSING,
    "connectors.sweep_inbox": Kind.PROCESSING,
    "connectors.sweep_inbox_for": Kind.PROCESSING,
    "connectors.send_outbound": Kind.NOTIFICATIONS,
    "connectors.send_due_deliveries": Kind.NOTIFICATIONS,
    "connectors.send_due_for": Kind.NOTIFICATIONS,
    # gates
    "gates.evaluate_gate": Kind.GATES,
    "gates.evaluate_heavy": Kind.HEAVY,
    "gates.sweep_unevaluated": Kind.GATES,
    "gates.sweep_unevaluated_for": Kind.GATES,
    "gates.timer_sweep": Kind.GATES,
    "gates.expire_timers": Kind.GATES,
    "gates.compact_verdict_counts": Kind.DEFAULT,
    "gates.compact_verdict_counts_for": Kind.DEFAULT,
    # owners: escalation stays on the default pool (small, time-critical); sending is apart
    "owners.escalation_sweep": Kind.DEFAULT,
    "owners.escalate_tickets": Kind.DEFAULT,
    "owners.handoff_sweep": Kind.DEFAULT,
    "owners.record_handoffs": Kind.DEFAULT,
    "owners.send_notification": Kind.NOTIFICATIONS,
    "owners.send_notifications": Kind.NOTIFICATIONS,
    "owners.resend_pending_notifications": Kind.NOTIFICATIONS,
    # the backlog check must not wait behind the backlog it measures
    "owners.backlog_sweep": Kind.DEFAULT,
    "owners.check_backlog": Kind.DEFAULT,
    # flows
    "flows.breach_sweep": Kind.DEFAULT,
    "flows.breach_due_runs": Kind.DEFAULT,
    "flows.assurance_sweep": Kind.DEFAULT,
    "flows.review_and_assure": Kind.DEFAULT,
    # reporting
    "reporting.nightly": Kind.EXPORTS,
    "reporting.nightly_for": Kind.EXPORTS,
}


def queue_name(kind: Kind | str, default_queue: str) -> str:
    """The queue of a kind: the default queue for DEFAULT, ``<default>.<kind>`` otherwise."""
    kind = Kind(kind)
    return default_queue if kind == Kind.DEFAULT else f"{default_queue}.{kind}"


def names(default_queue: str) -> dict[Kind, str]:
    """Every kind's queue name."""
    return {kind: queue_name(kind, default_queue) for kind in Kind}


def declare(default_queue: str) -> tuple[Queue, ...]:
    """``CELERY_TASK_QUEUES``: every kind's queue, so a worker without ``-Q`` takes them all.

    One direct exchange per queue, named like it (what Celery would create for a missing
    queue), so the layout is the same on Redis and RabbitMQ.
    """
    return tuple(
        Queue(name, Exchange(name, type="direct"), routing_key=name)
        for name in names(default_queue).values()
    )


def route(name, args, kwargs, options, task=None, **kw):
    """Celery router (``CELERY_TASK_ROUTES``): the queue of the task's kind.

    Read at publish time from the app's default queue, so one setting renames them all.
    """
    kind = ROUTES.get(name)
    if kind is None:
        return None  # not a Meshline task (celery.*): Celery's default queue
    from meshline.celery import app

    return {"queue": queue_name(kind, app.conf.task_default_queue)}


def depths(app=None) -> dict[str, int]:
    """Messages waiting in each kind's queue, on any broker (kombu's passive declare).

    Redis answers from the list's length, RabbitMQ from the queue's message count. A queue
    the broker does not know yet (nothing published to it) counts 0.
    """
    from meshline.celery import app as default_app

    app = app or default_app
    with app.connection_for_read() as connection:
        return {
            kind: _depth(connection, name)
            for kind, name in names(app.conf.task_default_queue).items()
        }


def queue_names() -> list[str]:
    """Every kind's queue under the configured default queue (what the metrics report)."""
    from django.conf import settings

    return sorted(names(settings.CELERY_TASK_DEFAULT_QUEUE).values())


def queue_depths(queue_list: Iterable[str] | None = None) -> dict[str, int | None]:
    """Messages waiting in each queue (not those a worker holds); None where unknown.

    On a connection of its own with the publishers' fail-fast timeouts: a scrape or the
    backlog check must never hang on a broker that is down. A queue the broker does not
    know yet has no messages: 0. A broker that cannot be reached makes every depth unknown.
    """
    return _per_queue(
        queue_list, lambda connection, names: {n: _depth(connection, n) for n in names}
    )


def _per_queue(queue_list: Iterable[str] | None, read) -> dict:
    """``read(connection, names)`` on a connection of its own, with the publishers'
    fail-fast timeouts; every queue None (unknown) when the broker cannot be read."""
    from django.conf import settings

    wanted = list(queue_names() if queue_list is None else queue_list)
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        ) as connection:
            connection.ensure_connection(max_retries=0)
            return read(connection, wanted)
    except Exception:  # the broker is down or unusable: unknown, never an error
        log.warning("queues: broker unreachable", exc_info=True)
        return dict.fromkeys(wanted)


def _depth(connection: Connection, name: str) -> int | None:
    # A channel per queue: AMQP closes the channel on which a passive declare failed.
    channel = connection.channel()
    try:
        return channel.queue_declare(queue=name, passive=True).message_count
    except connection.channel_errors:  # NOT_FOUND: never declared, so nothing waits in it
        return 0
    finally:
        with suppress(Exception):  # already closed by the broker after NOT_FOUND
            channel.close()


# Stamped on every message as it is published (meshline.celery connects stamp_sent_at), so
# the oldest message of a queue tells how long work waits there: the queue's lag.
SENT_AT_HEADER = "meshline_sent_at"
# kombu's Redis transport keeps a queue's priorities 3, 6 and 9 in lists of their own.
REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def stamp_sent_at(headers=None, **_kwargs) -> None:
    """``before_task_publish``: when the message left (wall clock, Unix seconds)."""
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


def queue_ages(
    queue_list: Iterable[str] | None = None, now: float | None = None
) -> dict[str, float | None]:
    """Seconds the oldest message of each queue has waited: 0 for an empty queue, None
    where unknown (the broker is down, the message carries no stamp, or the broker cannot
    show a message without taking it: only Redis lists can be peeked)."""
    now = time.time() if now is None else now

    def read(connection, names):
        if connection.transport.driver_type != "redis":
            return dict.fromkeys(names)
        client = connection.default_channel.client
        return {name: _oldest_age(client, name, now) for name in names}

    return _per_queue(queue_list, read)


def _oldest_age(client, name: str, now: float) -> float | None:
    """kombu pushes on the left and takes from the right: the oldest is at index -1."""
    stamps = []
    for suffix in REDIS_PRIORITY_SUFFIXES:
        raw = client.lindex(f"{name}{suffix}", -1)
        if raw is None:
            continue
        try:
            stamps.append(float(json.loads(raw)["headers"][SENT_AT_HEADER]))
        except (ValueError, TypeError, KeyError):
            return None  # published before stamping began, or not a Celery message
    return max(0.0, now - min(stamps)) if stamps else 0.0
