"""How far processing is behind: an organization's stored-but-unprocessed events.

The database is the source of truth for what is still to do (the broker only makes things
fast), so an organization's backlog is its pending ``EventProcessing`` rows: how many, and
how long the oldest has waited (the lag). Broker queues are shared by every organization;
their depth is in ``meshline.queues`` and on /metrics, never in one tenant's numbers.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q
from django_scopes import scopes_disabled

from deliveries.models import EventProcessing, ProcessingStatus


@dataclass(frozen=True)
class Backlog:
    """One organization's pending events at ``measured_at``."""

    pending: int
    oldest_enqueued_at: datetime | None
    measured_at: datetime

    @property
    def lag(self) -> timedelta:
        """How long the oldest pending event has waited (zero with nothing pending)."""
        if self.oldest_enqueued_at is None:
            return timedelta(0)
        return max(timedelta(0), self.measured_at - self.oldest_enqueued_at)

    @property
    def lag_seconds(self) -> int:
        return int(self.lag.total_seconds())


def measure(organization, now: datetime) -> Backlog:
    """The organization's backlog at ``now``, in one aggregate query."""
    row = EventProcessing.objects.filter(
        organization=organization, status=ProcessingStatus.PENDING
    ).aggregate(n=Count("pk"), oldest=Min("enqueued_at"))
    return Backlog(row["n"], row["oldest"], now)


def organizations_past(now: datetime, *, lag_seconds: int, pending: int) -> list[int]:
    """Ids of organizations whose oldest pending event has waited longer than ``lag_seconds``
    or that have more than ``pending`` pending events: one grouped query across tenants (a beat
    task's fan-out; each organization's own task measures again, in its scope)."""
    cutoff = now - timedelta(seconds=lag_seconds)
    with scopes_disabled():
        return list(
            EventProcessing.objects.filter(status=ProcessingStatus.PENDING)
            .order_by()
            .values("organization_id")
            .annotate(n=Count("pk"), oldest=Min("enqueued_at"))
            .filter(Q(oldest__lt=cutoff) | Q(n__gt=pending))
            .values_list("organization_id", flat=True)
        )
