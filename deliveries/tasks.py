"""Celery tasks of the deliveries app. They parse arguments and call services."""

from celery import shared_task

from deliveries.models import EventCount
from deliveries.services import processing, throughput, wakeups
from meshline.celery import TenantTask


@shared_task(
    base=TenantTask,
    name="deliveries.process_events",
    acks_late=True,
    soft_time_limit=240,
    time_limit=300,
)
def process_events(*, organization, event_ids: list[str]) -> dict:
    """Process a chunk of events; one failing event does not block the rest."""
    return processing.process_batch(organization, event_ids)._asdict()


@shared_task(
    base=TenantTask,
    name="deliveries.process_pending_events",
    acks_late=True,
    soft_time_limit=240,
    time_limit=300,
)
def process_pending_events(*, organization) -> dict:
    """A wake-up: process the events small requests left in the organization's list."""
    return wakeups.drain(organization)._asdict()


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
