"""Celery tasks of the gates app."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone
from django_scopes import scopes_disabled

from deliveries.models import Event
from gates import services
from gates.models import CheckName, Gate, GateMode, SitemapTimer, TimerStatus
from meshline.celery import TenantTask
from meshline.models import Organization


@shared_task(
    base=TenantTask, name="gates.evaluate_gate", acks_late=True, time_limit=120, soft_time_limit=100
)
def evaluate_gate(*, organization_id: int, gate_id: int, event_id: str) -> str:
    gate = Gate.objects.get(pk=gate_id)
    event = Event.objects.get(pk=event_id)
    evaluation = services.evaluate(gate, event)
    return evaluation.outcome if evaluation else "not applicable"


@shared_task(name="gates.timer_sweep", acks_late=True, time_limit=120)
def timer_sweep() -> int:
    """Fan out: one expiry task per organization with an overdue sitemap timer."""
    with scopes_disabled():
        org_ids = list(
            SitemapTimer.objects.filter(status=TimerStatus.WAITING, due_at__lte=timezone.now())
            .order_by()  # no default ordering in the DISTINCT: one row per organization
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
    """Fan out: one safety-net sweep per organization with gates that evaluate events."""
    with scopes_disabled():
        org_ids = list(
            Gate.objects.exclude(mode=GateMode.OFF)
            .exclude(check_name=CheckName.SITEMAP_SYNC)
            .order_by()  # no default ordering in the DISTINCT: one row per organization
            .values_list("organization_id", flat=True)
            .distinct()
        )
    for organization_id in org_ids:
        sweep_unevaluated_for.apply_async(kwargs={"organization_id": organization_id})
    return len(org_ids)


@shared_task(base=TenantTask, name="gates.sweep_unevaluated_for", acks_late=True, time_limit=300)
def sweep_unevaluated_for(*, organization_id: int) -> int:
    """Re-queue the evaluations lost while the broker was down (events of the last 24 h,
    processed at least 5 minutes ago, that a gate should have judged and has not)."""
    now = timezone.now()
    recent = Event.objects.filter(
        organization=organization_id,
        received_at__gte=now - timedelta(hours=24),
        received_at__lte=now - timedelta(minutes=5),
        processing__status="processed",
    )
    gates = (
        Gate.objects.filter(organization=organization_id)
        .exclude(mode=GateMode.OFF)
        .exclude(check_name=CheckName.SITEMAP_SYNC)
    )
    queued = 0
    for gate in gates:
        missing = gate.judged_events(recent).exclude(gate_evaluations__gate=gate)
        for event_id in missing.values_list("pk", flat=True)[:500]:
            evaluate_gate.apply_async(
                kwargs={
                    "organization_id": organization_id,
                    "gate_id": gate.pk,
                    "event_id": str(event_id),
                }
            )
            queued += 1
    return queued
