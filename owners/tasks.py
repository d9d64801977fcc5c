"""Celery tasks of the owners app: escalation sweep, handoff recording, notification sending.

The beat tasks fan out one task per organization; each organization's task runs in its
scope (TenantTask) and is idempotent, so overlapping or repeated runs are harmless.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone
from django_scopes import scopes_disabled

from deliveries.services import backlog
from meshline.celery import TenantTask
from owners.models import (
    ACTIVE_STATUSES,
    BacklogIncident,
    DeliveryStatus,
    Notification,
    Rota,
    Ticket,
)
from owners.services import backlog_incidents, escalation, notifications, rotas

log = logging.getLogger(__name__)
NOTIFY_MAX_RETRIES = 5


class DeliveryFailed(Exception):
    """A notification attempt failed; retried with backoff."""


@shared_task(name="owners.escalation_sweep", acks_late=True, time_limit=120)
def escalation_sweep() -> int:
    """Fan out: one escalation task per organization that has a due ticket."""
    return escalate_tickets.fan_out(
        Ticket, status__in=ACTIVE_STATUSES, next_escalation_at__lte=timezone.now()
    )


@shared_task(base=TenantTask, name="owners.escalate_tickets", acks_late=True, time_limit=300)
def escalate_tickets(*, organization) -> int:
    return escalation.escalate_due_tickets(organization)


@shared_task(name="owners.handoff_sweep", acks_late=True, time_limit=120)
def handoff_sweep() -> int:
    return record_handoffs.fan_out(Rota)


@shared_task(base=TenantTask, name="owners.record_handoffs", acks_late=True, time_limit=300)
def record_handoffs(*, organization) -> int:
    return sum(
        rotas.record_handoffs(rota) for rota in Rota.objects.filter(organization=organization)
    )


@shared_task(
    base=TenantTask,
    bind=True,
    name="owners.send_notification",
    acks_late=True,
    time_limit=60,
    max_retries=NOTIFY_MAX_RETRIES,
)
def send_notification(self, *, organization, notification_id: int) -> bool:
    """One attempt; on failure retry after 30 s, 60 s, 120 s, ... then mark failed."""
    if notifications.send(notification_id):
        return True
    if self.request.retries >= NOTIFY_MAX_RETRIES:
        notifications.give_up(notification_id)
        return False
    raise self.retry(exc=DeliveryFailed(notification_id), countdown=30 * 2**self.request.retries)


@shared_task(base=TenantTask, name="owners.send_notifications", acks_late=True, time_limit=120)
def send_notifications(*, organization, notification_ids: list) -> int:
    """Fan out: one send_notification task per id. Lets the escalation sweep publish one
    message per chunk of tickets; sending and retries stay per notification."""
    notifications.dispatch(organization.pk, notification_ids)
    return len(notification_ids)


@shared_task(name="owners.resend_pending_notifications", acks_late=True, time_limit=120)
def resend_pending_notifications() -> int:
    """Safety net for notifications whose task was never enqueued (broker down)."""
    stale = timezone.now() - timedelta(minutes=15)
    with scopes_disabled():
        rows = list(
            Notification.objects.filter(
                status=DeliveryStatus.PENDING, attempts=0, created_at__lte=stale
            ).values_list("organization_id", "pk")[:1000]
        )
    for organization_id, pk in rows:
        send_notification.publish(organization_id=organization_id, notification_id=pk)
    return len(rows)


@shared_task(name="owners.backlog_sweep", acks_late=True, time_limit=120)
def backlog_sweep() -> int:
    """Fan out: one backlog check per organization past a limit or with an incident open
    (which only a check can close)."""
    limits = backlog_incidents.Limits.from_settings()
    past = backlog.organizations_past(
        timezone.now(), lag_seconds=limits.lag_seconds, pending=limits.pending
    )
    with scopes_disabled():
        open_incidents = list(
            BacklogIncident.objects.filter(closed_at__isnull=True).values_list(
                "organization_id", flat=True
            )
        )
    return check_backlog.fan_out_to([*past, *open_incidents])


@shared_task(base=TenantTask, name="owners.check_backlog", acks_late=True, time_limit=120)
def check_backlog(*, organization) -> str:
    """Open, keep or close the organization's backlog incident, measured now."""
    incident = backlog_incidents.check(organization, timezone.now())
    if incident is None:
        return "none"
    return "closed" if incident.closed_at else "open"
