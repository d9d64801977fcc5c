"""Processing: what happens to an event after it is stored, exactly once in effect.

Dispatch is twofold. After commit, the ingest path enqueues a task for the new events;
independently, the periodic sweeper enqueues any event still pending after a grace period.
Either may run twice or concurrently: ``process_batch`` claims the processing rows
(``FOR UPDATE SKIP LOCKED``) and skips those already done, so running twice has the effect
of running once. A batch is one transaction with a fixed number of statements: the steps
(``meshline.extensions.processing_steps``) work on the whole ``Batch`` at once.
"""

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F, Max
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from deliveries import registry
from deliveries.models import Deliverable, Event, EventProcessing, EventSource, ProcessingStatus
from meshline import extensions, metrics, telemetry
from meshline.db import is_retryable
from meshline.models import Organization

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10


def dispatch_events(
    organization_id: int, event_ids: Iterable, deliverable_ids: Iterable | None = None
) -> bool:
    """Enqueue processing for events; False if the broker could not be reached.

    Never raises: the events are committed and pending, so the sweeper will pick them up
    once the broker is back. An API request must not fail because Redis is down.

    Fewer than ``PARTITION_MIN_EVENTS`` events (a single-event request) join the
    organization's pending list instead, and one task at a time is woken to take them
    (``wakeups``): with a Redis broker, unless MESHLINE_PROCESSING_COALESCE is off.

    ``deliverable_ids`` (one per event, when the caller knows them) split a large request
    by deliverable (``partitions``): its tasks then lock disjoint deliverables, and the
    workers taking them process side by side instead of skipping and then waiting for
    each other's deliverables.
    """
    from deliveries.services import wakeups
    from deliveries.tasks import process_events

    event_ids = [str(event_id) for event_id in event_ids]
    if len(event_ids) < PARTITION_MIN_EVENTS and wakeups.enabled():
        return wakeups.enqueue(organization_id, event_ids)
    for chunk in partitions(event_ids, deliverable_ids):
        if not process_events.publish(organization_id=organization_id, event_ids=chunk):
            return False  # the rest would fail the same way; all are left for the sweeper
    return True


# Fewer events than this are one task whatever their deliverables: tiny batches would cost
# more in per-batch work than they win in parallelism.
PARTITION_MIN_EVENTS = 64


def partitions(event_ids: Iterable, deliverable_ids: Iterable | None = None) -> list[list[str]]:
    """The tasks' event ids: by deliverable key modulo MESHLINE_PROCESSING_PARTITIONS
    (the same split for every request, so tasks of different partitions never share a
    deliverable), each cut to MESHLINE_PROCESSING_BATCH_SIZE."""
    ids = [str(event_id) for event_id in event_ids]
    size = settings.MESHLINE_PROCESSING_BATCH_SIZE
    count = settings.MESHLINE_PROCESSING_PARTITIONS
    groups = [ids]
    if deliverable_ids is not None and count > 1 and len(ids) >= PARTITION_MIN_EVENTS:
        by_partition: dict[int, list[str]] = defaultdict(list)
        for event_id, deliverable_id in zip(ids, deliverable_ids, strict=True):
            by_partition[deliverable_id % count].append(event_id)
        groups = [by_partition[key] for key in sorted(by_partition)]
    return [group[start : start + size] for group in groups for start in range(0, len(group), size)]


class BatchResult(NamedTuple):
    processed: int
    skipped: int
    failed: int


@dataclass
class Batch:
    """Events of one organization processed in one transaction, and a memo for the steps.

    ``items`` are (event, deliverable) pairs, each deliverable's events in the order they
    happened; every deliverable row is locked for the transaction. Steps read what they
    need for the whole batch at once (``memo``), so a batch costs a fixed number of
    statements, not a number per event.
    """

    organization: object
    items: list[tuple[Event, Deliverable]]
    memo: dict = field(default_factory=dict)

    @property
    def events(self) -> list[Event]:
        return [event for event, _deliverable in self.items]

    @property
    def deliverables(self) -> list[Deliverable]:
        return list({d.pk: d for _event, d in self.items}.values())

    def remember(self, key, compute):
        """``compute()`` once per batch under ``key`` (several steps may need the same rows)."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


_current: ContextVar[Batch | None] = ContextVar("meshline_processing_batch", default=None)


def current_batch() -> Batch | None:
    """The batch being processed in this context (trail listeners memoise on it), or None."""
    return _current.get()


@contextmanager
def running(batch: Batch):
    """Make ``batch`` the current one (``current_batch``) while its steps run."""
    token = _current.set(batch)
    try:
        yield batch
    finally:
        _current.reset(token)


def for_each_event(step: Callable[[Event, Deliverable], None]) -> Callable[[Batch], None]:
    """A processing step written per event, run over a batch (simple steps, tests)."""

    def run(batch: Batch) -> None:
        for event, deliverable in batch.items:
            step(event, deliverable)

    run.__doc__ = step.__doc__
    return run


def process_batch(organization, event_ids: Iterable) -> BatchResult:
    """Process events of one organization; the entry point of workers, replay and the demo.

    All of them in one transaction first. If that fails, each event alone, so one bad
    event neither blocks the others nor loses their work: it keeps its error and stays
    pending for the sweeper (``record_failure``). Events another worker holds are skipped
    (it is processing them); processed ones are skipped (running twice = running once).
    """
    with scope(organization=organization):
        return _process_all(organization, [str(event_id) for event_id in event_ids])


def _process_all(organization, ids: list[str]) -> BatchResult:
    size = settings.MESHLINE_PROCESSING_BATCH_SIZE
    processed = skipped = failed = 0
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        try:
            done = _process_chunk(organization, chunk)
        except Exception:
            log.warning("process_batch: a batch of %s failed; one by one", len(chunk))
            for event_id in chunk:
                try:
                    alone = _process_chunk(organization, [event_id])
                except Exception as exc:
                    failed += 1
                    log.exception("process_batch: event %s failed", event_id)
                    record_failure(event_id, f"{type(exc).__name__}: {exc}")
                else:
                    processed += alone
                    skipped += 1 - alone
            continue
        processed += done
        skipped += len(chunk) - done
    return BatchResult(processed, skipped, failed)


def _with_deadlock_retry(
    organization, chunk: list[str], *, wait: bool, attempts: int = 3
) -> tuple[int, list[str]]:
    """Batches of overlapping deliverables' neighbours (a sitemap settling other pages'
    timers, a client-wide agreement) can deadlock; PostgreSQL aborts one, which is retried
    whole rather than split into single events."""
    for attempt in range(attempts):
        try:
            return _process_together(organization, chunk, wait=wait)
        except OperationalError as exc:
            if not is_retryable(exc) or attempt == attempts - 1:
                raise
            log.info("process_batch: deadlock, retrying a batch of %s", len(chunk))
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def process_event(event_id) -> bool:
    """Process one event (a batch of one). Returns True if this call did the work.

    Must run inside the event's organization scope (the Celery base task enters it).
    """
    organization_id = (
        EventProcessing.objects.filter(event_id=event_id)
        .values_list("organization_id", flat=True)
        .first()
    )
    if organization_id is None:
        return False
    organization = Organization.objects.get(pk=organization_id)
    return _process_chunk(organization, [str(event_id)]) == 1


# Passes over events whose deliverable another worker holds; the last one waits for it.
BUSY_PASSES = 3


def _process_chunk(organization, event_ids: list[str]) -> int:
    """Process ``event_ids``; returns how many this call processed.

    A deliverable another worker is processing is skipped, not waited for (its events are
    taken on the next pass): with a few hundred busy deliverables, waiting made workers
    queue behind each other's whole batches instead of working side by side.
    """
    done, todo = 0, event_ids
    for attempt in range(BUSY_PASSES):
        processed, todo = _with_deadlock_retry(organization, todo, wait=attempt == BUSY_PASSES - 1)
        done += processed
        if not todo:
            break
    return done


@telemetry.traced("meshline.process_batch")
def _process_together(
    organization, event_ids: list[str], *, wait: bool = True
) -> tuple[int, list[str]]:
    """Claim, lock and process ``event_ids`` in one transaction.

    Returns how many were processed, and the ids left because their deliverable is locked
    by another worker (only when not ``wait``).
    """
    with transaction.atomic():
        claimed = list(
            EventProcessing.objects.select_for_update(skip_locked=True).filter(
                organization=organization,
                event_id__in=event_ids,
                status=ProcessingStatus.PENDING,
            )
        )
        if not claimed:
            return 0, []
        events = list(
            Event.objects.filter(
                organization=organization, pk__in=[row.event_id for row in claimed]
            )
        )
        # Locked in primary-key order: two workers locking overlapping sets cannot deadlock.
        # NO KEY UPDATE: an insert of a new event for one of them (its foreign-key check
        # takes KEY SHARE) goes on instead of waiting for, or deadlocking with, the batch.
        deliverables = {
            d.pk: d
            for d in Deliverable.objects.select_for_update(
                of=("self",), no_key=True, skip_locked=not wait
            )
            .select_related("client")
            .filter(organization=organization, pk__in={e.deliverable_id for e in events})
            .order_by("pk")
        }
        busy = [str(e.pk) for e in events if e.deliverable_id not in deliverables]
        events = [e for e in events if e.deliverable_id in deliverables]
        if not events:
            return 0, busy
        for event in events:
            event.organization = organization
        events.sort(key=lambda e: (e.deliverable_id, e.occurred_at, e.received_at, e.pk))
        batch = Batch(organization, [(e, deliverables[e.deliverable_id]) for e in events])
        telemetry.tag_batch(batch.items)  # span attributes and log keys
        _advance_lifecycles(batch)
        # Later apps' steps (meshline.extensions.processing_steps), without importing them.
        with running(batch):
            for step in extensions.processing_steps:
                step(batch)
        EventProcessing.objects.filter(
            organization=organization, event_id__in=[e.pk for e in events]
        ).update(
            status=ProcessingStatus.PROCESSED,
            attempts=F("attempts") + 1,
            processed_at=timezone.now(),
            last_error="",
        )
        metrics.observe_processed([e.received_at for e in events], timezone.now())  # on commit
    return len(events), busy


def record_failure(event_id, error: str) -> None:
    """Count a failed attempt. The event stays pending, so the sweeper retries it, until
    MAX_ATTEMPTS: then it is marked failed (and shown as such) instead of looping forever."""
    EventProcessing.objects.filter(event_id=event_id).update(
        attempts=F("attempts") + 1, last_error=error[:2000]
    )
    EventProcessing.objects.filter(event_id=event_id, attempts__gte=MAX_ATTEMPTS).update(
        status=ProcessingStatus.FAILED
    )


def _advance_lifecycles(batch: Batch) -> None:
    """Move each deliverable through its events; one UPDATE for all that changed."""
    types = registry.types_for(batch.organization)
    changed: dict[int, Deliverable] = {}
    last_published = _last_published(batch)
    for event, deliverable in batch.items:
        registered = types.get(event.event_type)
        if (
            registered is not None
            and registered.advances_to
            and deliverable.advance(registered.advances_to, event.occurred_at)
        ):
            changed[deliverable.pk] = deliverable
        if deliverable.last_event_at is None or event.occurred_at > deliverable.last_event_at:
            deliverable.last_event_at = event.occurred_at
            changed[deliverable.pk] = deliverable
        url = event.payload.get("url") if event.event_type == "page.published" else None
        if (
            url
            and isinstance(url, str)
            and url[:1000] != deliverable.url
            and event.occurred_at >= last_published.get(deliverable.pk, event.occurred_at)
        ):
            deliverable.url = url[:1000]
            changed[deliverable.pk] = deliverable
    if changed:
        _save_deliverables(list(changed.values()), timezone.now())


def _last_published(batch: Batch) -> dict:
    """When each of the batch's pages was last published (one query, only for a batch that
    would change a URL): an older page.published, processed late or replayed, must not
    take back the URL a newer one set."""
    pages = {
        deliverable.pk
        for event, deliverable in batch.items
        if event.event_type == "page.published"
        and isinstance(event.payload.get("url"), str)
        and event.payload["url"][:1000] != deliverable.url
    }
    if not pages:
        return {}
    return dict(
        Event.objects.filter(
            organization=batch.organization,
            deliverable__in=pages,
            event_type="page.published",
            payload__has_key="url",
        )
        .exclude(source=EventSource.MESHLINE)
        .values("deliverable")
        .annotate(last=Max("occurred_at"))
        .values_list("deliverable", "last")
    )


def _save_deliverables(deliverables: list[Deliverable], now) -> None:
    """One executemany (pipelined by psycopg) instead of ``bulk_update``'s CASE per row and
    field, which cost more CPU than the rest of the batch."""
    fields = ["state", "state_changed_at", "last_event_at", "url"]
    meta = Deliverable._meta
    columns = ", ".join(
        f"{connection.ops.quote_name(meta.get_field(f).column)} = %s" for f in fields
    )
    sql = (
        f"UPDATE {connection.ops.quote_name(meta.db_table)} SET {columns}, "
        f"{connection.ops.quote_name(meta.get_field('updated_at').column)} = %s "
        f"WHERE {connection.ops.quote_name(meta.pk.column)} = %s"
    )
    rows = []
    for deliverable in deliverables:
        deliverable.updated_at = now
        values = [
            meta.get_field(f).get_db_prep_save(getattr(deliverable, f), connection) for f in fields
        ]
        rows.append(
            [
                *values,
                meta.get_field("updated_at").get_db_prep_save(now, connection),
                deliverable.pk,
            ]
        )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def sweep_unprocessed_events(limit: int = 5000) -> dict:
    """Enqueue events still pending after the grace period; report stuck ones.

    Runs across organizations (it is the operator's safety net) but only reads ids and
    enqueues per-organization tasks; all tenant work happens inside those tasks.
    """
    now = timezone.now()
    grace = now - timedelta(seconds=settings.MESHLINE_SWEEP_GRACE_SECONDS)
    stuck_before = now - timedelta(seconds=settings.MESHLINE_STUCK_AFTER_SECONDS)
    with scopes_disabled():
        pending = list(
            EventProcessing.objects.filter(status=ProcessingStatus.PENDING, enqueued_at__lte=grace)
            .order_by("enqueued_at")
            .values_list("organization_id", "event_id")[:limit]
        )
        stuck = EventProcessing.objects.filter(
            status=ProcessingStatus.PENDING, enqueued_at__lte=stuck_before
        ).count()
    by_org: dict[int, list] = defaultdict(list)
    for organization_id, event_id in pending:
        by_org[organization_id].append(event_id)
    dispatched = 0
    for organization_id, event_ids in by_org.items():
        if dispatch_events(organization_id, event_ids):
            dispatched += len(event_ids)
    if stuck:
        log.warning(
            "sweep: %s events unprocessed for more than %s seconds",
            stuck,
            settings.MESHLINE_STUCK_AFTER_SECONDS,
        )
    return {"pending": len(pending), "dispatched": dispatched, "stuck": stuck}
