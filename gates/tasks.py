"""Celery tasks of the gates app."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone
from django_scopes import scopes_disabled

from deliveries.models import Event
from gates import services
from gates.models import Gate, SitemapTimer, TimerStatus
from meshline.celery import TenantTask
from meshline.models import Organization


@shared_task(
    base=TenantTask, name="gates.evaluate_gate", acks_late=True, time_limit=120, soft_time_limit=100
)
def evaluate_gate(*, organization_id: int, gate_id: int, event_id: str) -> str:
    gate = Gate.objects.get(pk=gate_id)
    event = Event.objects.get(pk=event_id)
    return services.evaluate(gate, event).outcome


@shared_task(name="gates.timer_sweep", acks_late=True, time_limit=120)
def timer_sweep() -> int:
    """Fan out: one expiry task per organization with an overdue sitemap timer."""
    with scopes_disabled():
        org_ids = list(
            SitemapTimer.objects.filter(status=TimerStatus.WAITING, due_at__lte=timezone.now())
            .values_list("organization_id", flat=True)
            .distinct()
        )
    for organization_id in org_ids:
        expire_timers.apply_async(kwargs={"organization_id": organization_id})
    return len(org_ids)


@shared_task(base=TenantTask, name="gates.expire_timers", acks_late=True, time_limit=300)
def expire_timers(*, organization_id: int) -> int:
    return services.expire_sitemap_timers(Organization.objects.get(pk=organization_id))


@shared_task(name="gates.sweep_unevaluated", acks_late=True, time_limit=120)
def sweep_unevaluated() -> int:
    """Safety net: re-queue evaluations lost while the broker was down (last 24 h)."""
    since = timezone.now() - timedelta(hours=24)
    queued = 0
    with scopes_disabled():
        gates = list(Gate.objects.exclude(mode="off").exclude(check_name="sitemap_sync"))
        for gate in gates:
            missing = (
                Event.objects.filter(
                    organization=gate.organization_id,
                    event_type__in=gate.event_types,
                    received_at__gte=since,
                    received_at__lte=timezone.now() - timedelta(minutes=5),
                    processing__status="processed",
                )
                .exclude(gate_evaluations__gate=gate)
                .values_list("pk", flat=True)[:500]
            )
            for event_id in missing:
                evaluate_gate.apply_async(
                    kwargs={
                        "organization_id": gate.organization_id,
                        "gate_id": gate.pk,
                        "event_id": str(event_id),
                    }
                )
                queued += 1
    return queued
