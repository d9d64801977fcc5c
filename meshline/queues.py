"""The Celery queues Meshline publishes to, and how many messages wait in each.

Depth is read from the broker through kombu (a passive queue declaration answers the
message count on Redis and RabbitMQ alike), on a connection of its own with the
publishers' fail-fast timeouts: a scrape or a check must never hang on a broker that is
down. What cannot be read is reported as unknown (None), never as 0 and never raised.
"""

import logging
from collections.abc import Iterable, Mapping
from contextlib import suppress

from django.conf import settings
from kombu import Connection

log = logging.getLogger(__name__)


def _name(queue) -> str:
    """A queue given by name or as a kombu Queue."""
    return queue if isinstance(queue, str) else str(getattr(queue, "name", "") or "")


def _declared(queues) -> list[str]:
    """Names in CELERY_TASK_QUEUES: kombu Queues (or names), or a dict of name -> options."""
    if not queues:
        return []
    if isinstance(queues, Mapping):
        return [str(name) for name in queues]
    return [_name(queue) for queue in queues]


def _routed(routes) -> list[str]:
    """Queues named in CELERY_TASK_ROUTES: a dict of pattern -> queue name or options, or a
    list of such dicts (router functions, given as callables or dotted paths, are skipped)."""
    if not routes:
        return []
    if isinstance(routes, Mapping):
        return [
            route if isinstance(route, str) else _name(route.get("queue"))
            for route in routes.values()
            if isinstance(route, str | Mapping)
        ]
    if isinstance(routes, list | tuple):
        return [
            name for router in routes if isinstance(router, Mapping) for name in _routed(router)
        ]
    return []


def queue_names() -> list[str]:
    """The default queue plus every queue named in CELERY_TASK_QUEUES and CELERY_TASK_ROUTES."""
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    names.update(_declared(getattr(settings, "CELERY_TASK_QUEUES", None)))
    names.update(_routed(getattr(settings, "CELERY_TASK_ROUTES", None)))
    return sorted(name for name in names if name)


def queue_depths(names: Iterable[str] | None = None) -> dict[str, int | None]:
    """Messages waiting in each queue (not those a worker holds); None where unknown.

    A queue the broker does not know yet has no messages: 0. A broker that cannot be
    reached makes every depth unknown.
    """
    names = list(queue_names() if names is None else names)
    depths: dict[str, int | None] = dict.fromkeys(names)
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        ) as connection:
            connection.ensure_connection(max_retries=0)
            for name in names:
                depths[name] = _depth(connection, name)
    except Exception:  # the broker is down or unusable: depth unknown, never an error
        log.warning("queue depth: broker unreachable", exc_info=True)
    return depths


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
