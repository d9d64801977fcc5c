"""Celery tasks of the connectors app. They parse arguments and call services."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from connectors import services
from connectors.models import InboundDelivery, InboxState, OutboundDelivery, OutboundStatus
from meshline.celery import TenantTask

# A received row older than this has lost its publish (broker down): the sweep re-queues it.
INBOX_GRACE = timedelta(minutes=1)


@shared_task(
    base=TenantTask,
    name="connectors.map_inbound",
    acks_late=True,
    soft_time_limit=50,
    time_limit=60,
)
def map_inbound(*, organization, delivery_id: str) -> bool:
    return services.map_delivery(organization, delivery_id)


@shared_task(
    base=TenantTask,
    name="connectors.send_outbound",
    acks_late=True,
    soft_time_limit=50,
    time_limit=60,
)
def send_outbound(*, organization, delivery_id: str) -> bool:
    return services.send(organization, delivery_id) is not None


@shared_task(base=TenantTask, name="connectors.send_due_for", acks_late=True, time_limit=600)
def send_due_for(*, organization) -> int:
    return services.send_due(organization)


@shared_task(base=TenantTask, name="connectors.sweep_inbox_for", acks_late=True, time_limit=120)
def sweep_inbox_for(*, organization) -> int:
    return services.sweep_inbox(organization, timezone.now() - INBOX_GRACE)


@shared_task(name="connectors.send_due_deliveries", acks_late=True, time_limit=120)
def send_due_deliveries() -> int:
    """Beat: one send_due per organization with a pending delivery due now."""
    return send_due_for.fan_out(
        OutboundDelivery, status=OutboundStatus.PENDING, next_attempt_at__lte=timezone.now()
    )


@shared_task(name="connectors.sweep_inbox", acks_late=True, time_limit=120)
def sweep_inbox() -> int:
    """Beat: re-queue mapping of inbox rows whose publish was lost."""
    return sweep_inbox_for.fan_out(
        InboundDelivery,
        state=InboxState.RECEIVED,
        received_at__lt=timezone.now() - INBOX_GRACE,
    )
