"""Celery tasks of the gates app."""

from datetime import timedelta

from celery import shared_task
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from deliveries.models import Event, ProcessingStatus
from gates import services
from gates.models import (
    CheckName,
    Gate,
    GateEvaluation,
    GateMode,
    GateVerdictCount,
    SitemapTimer,
    TimerStatus,
)
from gates.services import strictness
from gates.services.processing import HEAVY_CHECKS
from meshline import telemetry
from meshline.celery import TenantTask


@shared_task(
    base=TenantTask, name="gates.evaluate_gate", acks_late=True, time_limit=120, soft_time_limit=100
)
def evaluate_gate(*, organization, gate_id: int, event_id: str) -> str:
    gate = Gate.objects.get(organization=organization, pk=gate_id)
    event = Event.objects.select_related("deliverable").get(organization=organization, pk=event_id)
    telemetry.tag_event(event, event.deliverable)
    evaluation = services.evaluate(gate, event)
    outcome = evaluation.outcome if evaluation else "not applicable"
    telemetry.tag(gate=gate.slug, gate_check=gate.check_name, gate_outcome=outcome)
    return outcome


@shared_task(
    base=TenantTask,
    name="gates.evaluate_heavy",
    acks_late=True,
    time_limit=300,
    soft_time_limit=280,
)
def evaluate_heavy(*, organization, gate_id: int, event_id: str) -> str:
    """A CPU-heavy check (screenshot comparison), on its own queue so batches never wait."""
    return evaluate_gate.run(organization=organization, gate_id=gate_id, event_id=event_id)


@shared_task(name="gates.timer_sweep", acks_late=True, time_limit=120)
def timer_sweep() -> int:
    """Fan out: one expiry task per organization with an overdue sitemap timer."""
    return expire_timers.fan_out(
        SitemapTimer, status=TimerStatus.WAITING, due_at__lte=timezone.now()
    )


@shared_task(base=TenantTask, name="gates.expire_timers", acks_late=True, time_limit=300)
def expire_timers(*, organization) -> int:
    return services.expire_sitemap_timers(organization)


# Gates that judge events one by one (sitemap gates are judged by their timers).
EVALUATING = ~Q(mode=GateMode.OFF) & ~Q(check_name=CheckName.SITEMAP_SYNC)


@shared_task(name="gates.sweep_unevaluated", acks_late=True, time_limit=120)
def sweep_unevaluated() -> int:
    """Fan out: one safety-net sweep per organization with gates that evaluate events."""
    return sweep_unevaluated_for.fan_out(Gate, EVALUATING)


@shared_task(base=TenantTask, name="gates.sweep_unevaluated_for", acks_late=True, time_limit=300)
def sweep_unevaluated_for(*, organization) -> int:
    """Re-queue the evaluations lost while the broker was down (events of the last 24 h,
    processed at least 5 minutes ago, that a gate should have judged and has not)."""
    now = timezone.now()
    recent = Event.objects.filter(
        organization=organization,
        received_at__gte=now - timedelta(hours=24),
        received_at__lte=now - timedelta(minutes=5),
        processing__status=ProcessingStatus.PROCESSED,
    )
    queued = 0
    for gate in Gate.objects.filter(EVALUATING, organization=organization):
        # Named with its organization, the verdict lookup is an index probe
        # (evaluation_once_per_gate_event); a join through the relation would not name it.
        judged = GateEvaluation.objects.filter(
            organization=organization, gate=gate, event=OuterRef("pk")
        )
        missing = gate.judged_events(recent).exclude(Exists(judged))
        task = evaluate_heavy if gate.check_name in HEAVY_CHECKS else evaluate_gate
        for event_id in missing.values_list("pk", flat=True)[:500]:
            if not task.publish(
                organization_id=organization.pk, gate_id=gate.pk, event_id=str(event_id)
            ):
                return queued  # the broker is down again: the next sweep carries on
            queued += 1
    return queued


@shared_task(name="gates.compact_verdict_counts", acks_late=True, time_limit=120)
def compact_verdict_counts() -> int:
    """Fan out: one compaction per organization with verdict-count deltas to fold."""
    return compact_verdict_counts_for.fan_out(GateVerdictCount, compacted=False)


@shared_task(
    base=TenantTask, name="gates.compact_verdict_counts_for", acks_late=True, time_limit=300
)
def compact_verdict_counts_for(*, organization) -> int:
    return strictness.compact(organization)
