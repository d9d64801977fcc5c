"""Processing: what happens to an event after it is stored, exactly once in effect.

Dispatch is twofold. After commit, the ingest path enqueues a task for the new events;
independently, the periodic sweeper enqueues any event still pending after a grace period.
Either may run twice or concurrently: ``process_event`` locks the processing row and
returns early once the work is done, so running twice has the effect of running once.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_scopes import scopes_disabled

from deliveries import registry
from deliveries.models import Deliverable, Event, EventProcessing, ProcessingStatus
from meshline import extensions

log = logging.getLogger(__name__)

DISPATCH_CHUNK = 200
MAX_ATTEMPTS = 10


def dispatch_events(organization_id: int, event_ids: Iterable) -> bool:
    """Enqueue processing for events; False if the broker could not be reached.

    Never raises: the events are committed and pending, so the sweeper will pick them up
    once the broker is back. An API request must not fail because Redis is down.
    """
    from deliveries.tasks import process_events

    ids = [str(event_id) for event_id in event_ids]
    for start in range(0, len(ids), DISPATCH_CHUNK):
        chunk = ids[start : start + DISPATCH_CHUNK]
        if not process_events.publish(organization_id=organization_id, event_ids=chunk):
            return False  # the rest would fail the same way; all are left for the sweeper
    return True


class BatchResult(NamedTuple):
    processed: int
    skipped: int
    failed: int


def process_batch(organization, event_ids: Iterable) -> BatchResult:
    """Process events of one organization; the entry point of workers, replay and the demo.

    One event failing does not block the rest: it keeps its error and stays pending, so the
    sweeper retries it (``record_failure``).
    """
    processed = skipped = failed = 0
    for event_id in event_ids:
        try:
            if process_event(event_id):
                processed += 1
            else:
                skipped += 1
        except Exception as exc:
            failed += 1
            log.exception("process_batch: event %s failed", event_id)
            record_failure(event_id, f"{type(exc).__name__}: {exc}")
    return BatchResult(processed, skipped, failed)


def process_event(event_id) -> bool:
    """Apply one event's effects once. Returns True if this call did the work.

    Must run inside the event's organization scope (the Celery base task enters it).
    """
    with transaction.atomic():
        processing = EventProcessing.objects.select_for_update().filter(event_id=event_id).first()
        if processing is None or processing.status == ProcessingStatus.PROCESSED:
            return False
        event = Event.objects.select_related("organization").get(pk=event_id)
        deliverable = Deliverable.objects.select_for_update().get(pk=event.deliverable_id)
        _advance_lifecycle(event, deliverable)
        # Later apps' steps (meshline.extensions.processing_steps), without importing them.
        for step in extensions.processing_steps:
            step(event, deliverable)
        processing.status = ProcessingStatus.PROCESSED
        processing.attempts += 1
        processing.processed_at = timezone.now()
        processing.last_error = ""
        processing.save(update_fields=["status", "attempts", "processed_at", "last_error"])
    return True


def record_failure(event_id, error: str) -> None:
    """Count a failed attempt. The event stays pending, so the sweeper retries it, until
    MAX_ATTEMPTS: then it is marked failed (and shown as such) instead of looping forever."""
    EventProcessing.objects.filter(event_id=event_id).update(
        attempts=F("attempts") + 1, last_error=error[:2000]
    )
    EventProcessing.objects.filter(event_id=event_id, attempts__gte=MAX_ATTEMPTS).update(
        status=ProcessingStatus.FAILED
    )


def _advance_lifecycle(event: Event, deliverable: Deliverable) -> None:
    registered = registry.types_for(event.organization).get(event.event_type)
    changed = []
    if (
        registered is not None
        and registered.advances_to
        and deliverable.advance(registered.advances_to, event.occurred_at)
    ):
        changed += ["state", "state_changed_at"]
    if deliverable.last_event_at is None or event.occurred_at > deliverable.last_event_at:
        deliverable.last_event_at = event.occurred_at
        changed.append("last_event_at")
    url = event.payload.get("url") if event.event_type == "page.published" else None
    if url and url != deliverable.url:
        deliverable.url = url[:1000]
        changed.append("url")
    if changed:
        deliverable.save(update_fields=[*changed, "updated_at"])


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
