"""Celery tasks of the reporting app: the nightly attribution and export."""

from datetime import date, timedelta

from celery import shared_task
from django.utils import timezone

from deliveries.models import Deliverable
from meshline.celery import TenantTask
from reporting.models import ExportFormat
from reporting.services import attribution, audits, exports


@shared_task(name="reporting.nightly", acks_late=True, time_limit=120)
def nightly() -> int:
    """Fan out: one attribution-and-export run per organization with deliverables."""
    return nightly_for.fan_out(Deliverable)


@shared_task(base=TenantTask, name="reporting.nightly_for", acks_late=True, time_limit=3600)
def nightly_for(*, organization, day: str | None = None) -> dict:
    """Attribute and export one day (default: yesterday in the organization's zone).

    Idempotent per day: both steps replace the day's rows and files, so a retry, a
    duplicate delivery or a re-run for a past day changes nothing further.
    """
    target = (
        date.fromisoformat(day)
        if day
        else attribution.local_day(organization, timezone.now()) - timedelta(days=1)
    )
    result = attribution.compute_day(organization, target)
    for fmt in ExportFormat.values:
        exports.run_export(organization, target, fmt)
    # The last month that has ended by the end of the day: drawn once, on the first run
    # after it ends (a no-op on every later run).
    ended = audits.month_start(target + timedelta(days=1)) - timedelta(days=1)
    audits.draw(organization, audits.month_start(ended))
    return {"day": target.isoformat(), "facts": result.facts, "opened": result.mismatches_opened}
