"""Coalesced dispatch: small requests' events wait in a Redis list; one task wakes to take them.

Publishing a Celery task for every single-event request was the largest part of such a
request (bench/ingest_profile.py), and it gave the worker batches of one event, each paying
a batch's fixed statements. A request of fewer than ``PARTITION_MIN_EVENTS`` events instead
appends its event ids to its organization's pending list and publishes a wake-up
(``deliveries.process_pending_events``) only when none is waiting already: a flag set with
NX in the same MULTI as the push.

The woken task clears the flag and takes up to a batch of ids in one MULTI. So an id pushed
at any moment is either in the list a drain takes from, or its push finds the flag cleared
and wakes a new drain: none waits for the next request. A drain that leaves ids behind wakes
another before it starts working, so every worker process helps with a long list. While
workers keep up, batches stay small and latency low; when they fall behind, wake-ups wait
in the queue, requests stop publishing and each drain takes a fuller batch.

Nothing is lost if Redis loses a list or a drain dies after taking its ids: the events are
committed and pending, and the sweeper dispatches them after its grace period, as it does
when a publish fails. An id taken twice (the sweeper and a drain) is processed once.

Traces: the wake-up message carries the trace of the request that published it; every id
carries the W3C traceparent of its own request, and the drain's span links to all of them.

The keys are named after the processing queue (``<default queue>.processing.pending.<org>``):
publishers and workers of one installation agree on it, and installations (or test runs)
sharing one Redis under different queue names never take each other's events.
"""

import logging

from celery import current_app
from django.conf import settings

from meshline import queues, telemetry

log = logging.getLogger(__name__)

# A wake-up flag outlives its message by at most this long (a message lost with its
# worker): after it, the next request publishes again. Longer waits are the sweeper's.
WAKE_TTL_SECONDS = 60

_clients: dict[str, object] = {}


def enabled() -> bool:
    """Coalescing is on, tasks go to a real broker, and that broker is Redis."""
    conf = current_app.conf
    return (
        settings.MESHLINE_PROCESSING_COALESCE
        and not conf.task_always_eager
        and (conf.broker_url or "").startswith(("redis://", "rediss://", "unix://"))
    )


def _client():
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    url = current_app.conf.broker_url
    if url not in _clients:
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        _clients[url] = redis.Redis.from_url(
            url,
            socket_connect_timeout=options.get("socket_connect_timeout", 1),
            socket_timeout=options.get("socket_timeout", 5),
            retry=Retry(NoBackoff(), 0),  # fail fast, as publishers do (settings)
        )
    return _clients[url]


def _keys(organization_id: int) -> tuple[str, str]:
    prefix = queues.queue_name(queues.Kind.PROCESSING, current_app.conf.task_default_queue)
    return f"{prefix}.pending.{organization_id}", f"{prefix}.wake.{organization_id}"


def enqueue(organization_id: int, event_ids: list[str]) -> bool:
    """Queue the events for the organization's next drain; False if Redis or the broker
    could not be reached (the sweeper will dispatch them). Never raises."""
    pending, flag = _keys(organization_id)
    parent = telemetry.traceparent()
    entries = [f"{event_id} {parent}" if parent else str(event_id) for event_id in event_ids]
    try:
        with _client().pipeline(transaction=True) as pipe:
            pipe.rpush(pending, *entries)
            pipe.set(flag, 1, nx=True, ex=WAKE_TTL_SECONDS)
            _length, woken = pipe.execute()
    except Exception:  # Redis down or misconfigured: the sweeper is the safety net
        log.warning(
            "processing: broker unreachable (Redis), %s events left for the sweeper",
            len(entries),
            exc_info=True,
        )
        return False
    return _wake(organization_id, flag) if woken else True


def _wake(organization_id: int, flag: str) -> bool:
    """Publish a drain; on failure clear the flag, so the next request tries again."""
    from deliveries.tasks import process_pending_events

    if process_pending_events.publish(organization_id=organization_id):
        return True
    try:
        _client().delete(flag)
    except Exception:
        log.warning("processing: could not clear the wake-up flag; it expires by itself")
    return False


def take(organization_id: int, size: int) -> tuple[list[str], list[str]]:
    """Up to ``size`` ids from the organization's list, and their traceparents; wakes
    another drain when ids are left behind."""
    pending, flag = _keys(organization_id)
    client = _client()
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(flag)  # first: a push from now on wakes a new drain
        pipe.lpop(pending, size)
        pipe.llen(pending)
        _deleted, popped, left = pipe.execute()
    if left and client.set(flag, 1, nx=True, ex=WAKE_TTL_SECONDS):
        _wake(organization_id, flag)
    event_ids: dict[str, None] = {}  # an id queued twice (a sweep, a retry) is taken once
    parents = []
    for entry in popped or []:
        event_id, _, parent = entry.decode().partition(" ")
        event_ids[event_id] = None
        parents.append(parent)
    return list(event_ids), parents


def drain(organization):
    """The wake-up task's work: take a batch of the organization's pending ids and process
    them, in a span linked to the traces of the requests that sent them."""
    from deliveries.services.processing import BatchResult, process_batch

    event_ids, parents = take(organization.pk, settings.MESHLINE_PROCESSING_BATCH_SIZE)
    if not event_ids:
        return BatchResult(0, 0, 0)
    with telemetry.span_linked_to("meshline.process_pending", parents):
        return process_batch(organization, event_ids)
