"""Celery tasks of the deliveries app. They parse arguments and call services."""

import logging

from celery import shared_task

from deliveries.models import EventCount
from deliveries.services import processing, throughput
from meshline.celery import TenantTask

log = logging.getLogger(__name__)


@shared_task(
    base=TenantTask,
    name="deliveries.process_events",
    acks_late=True,
    soft_time_limit=240,
    time_limit=300,
)
def process_events(*, organization, event_ids: list[str]) -> dict:
    """Process each event in its own transaction; one failing event does not block the rest."""
    done = failed = 0
    for event_id in event_ids:
        try:
            if processing.process_event(event_id):
                done += 1
        except Exception as exc:
            # Left pending: the sweeper retries it later. Logged with the traceback.
            failed += 1
            log.exception("process_events: event %s failed", event_id)
            processing.record_failure(event_id, f"{type(exc).__name__}: {exc}")
    return {"processed": done, "failed": failed}


@shared_task(name="deliveries.sweep_unprocessed_events", acks_late=True, time_limit=120)
def sweep_unprocessed_events() -> dict:
    return processing.sweep_unprocessed_events()


@shared_task(name="deliveries.compact_event_counts", acks_late=True, time_limit=120)
def compact_event_counts() -> int:
    """Fan out: one compaction per organization with delta rows to fold."""
    return compact_event_counts_for.fan_out(EventCount, compacted=False)


@shared_task(
    base=TenantTask, name="deliveries.compact_event_counts_for", acks_late=True, time_limit=300
)
def compact_event_counts_for(*, organization) -> int:
    return throughput.compact(organization)
