"""Celery tasks of the flows app: the breach sweep, reviews and the weekly assurance check."""

from celery import shared_task
from django.utils import timezone

from flows.models import FlowRun, RunState
from flows.services import assurance, runs
from meshline.celery import TenantTask
from meshline.models import Organization


@shared_task(name="flows.breach_sweep", acks_late=True, time_limit=120)
def breach_sweep() -> int:
    """Fan out: one breach task per organization with a running run past its due time."""
    return breach_due_runs.fan_out(FlowRun, state=RunState.RUNNING, due_at__lte=timezone.now())


@shared_task(base=TenantTask, name="flows.breach_due_runs", acks_late=True, time_limit=300)
def breach_due_runs(*, organization) -> int:
    return runs.breach_due_runs(organization)


@shared_task(name="flows.assurance_sweep", acks_late=True, time_limit=120)
def assurance_sweep() -> int:
    """Fan out hourly: every organization syncs its reviews, opens the week's assurance
    checks (once a week) and escalates the missed ones. Each step is idempotent."""
    return review_and_assure.fan_out_to(Organization.objects.values_list("pk", flat=True))


@shared_task(base=TenantTask, name="flows.review_and_assure", acks_late=True, time_limit=300)
def review_and_assure(*, organization) -> dict:
    now = timezone.now()
    overdue = assurance.sync(organization, now)
    opened = assurance.open_week(organization, now)
    missed = assurance.escalate_missed(organization, now)
    return {"reviews_overdue": len(overdue), "checks_opened": len(opened), "missed": len(missed)}
