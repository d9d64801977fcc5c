"""Celery tasks of the flows app: the breach sweep."""

from celery import shared_task
from django.utils import timezone

from flows.models import FlowRun, RunState
from flows.services import runs
from meshline.celery import TenantTask


@shared_task(name="flows.breach_sweep", acks_late=True, time_limit=120)
def breach_sweep() -> int:
    """Fan out: one breach task per organization with a running run past its due time."""
    return breach_due_runs.fan_out(FlowRun, state=RunState.RUNNING, due_at__lte=timezone.now())


@shared_task(base=TenantTask, name="flows.breach_due_runs", acks_late=True, time_limit=300)
def breach_due_runs(*, organization) -> int:
    return runs.breach_due_runs(organization)
