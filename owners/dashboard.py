"""The owners panel of the dashboard: open and overdue work by owner, MTTR, SLA compliance."""

import statistics
from collections import defaultdict
from dataclasses import dataclass

from django.db import connection
from django.db.models import Aggregate, Avg, Count, F, FloatField, Func, Q
from django.urls import reverse

from owners.models import ACTIVE_STATUSES, Ticket, TicketStatus, overdue_q
from owners.services import backlog_incidents


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


@dataclass
class ResolutionStats:
    """MTTR and SLA compliance of a set of resolved tickets (seconds; None when empty)."""

    count: int
    mean_seconds: float | None
    median_seconds: float | None
    in_time: int

    @property
    def compliance_percent(self) -> float | None:
        """Share resolved by their deadline (no deadline counts as in time)."""
        return round(100 * self.in_time / self.count, 1) if self.count else None


class _Median(Aggregate):
    """PostgreSQL's continuous median (the mean of the two middle values, as statistics.median)."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _seconds(expression) -> Func:
    return Func(
        expression, template="EXTRACT(EPOCH FROM %(expressions)s)", output_field=FloatField()
    )


def _in_time():
    return Q(resolve_due_at=None) | Q(resolved_at__lte=F("resolve_due_at"))


def _aggregates() -> dict:
    duration = _seconds(F("resolved_at") - F("opened_at"))
    return {
        "count": Count("pk"),
        "mean": Avg(duration),
        "median": _Median(duration),
        "in_time": Count("pk", filter=_in_time()),
    }


def _summarize(rows) -> ResolutionStats:
    """ResolutionStats of (opened_at, resolved_at, resolve_due_at) rows, in Python."""
    durations = [(closed - opened).total_seconds() for opened, closed, _due in rows]
    return ResolutionStats(
        count=len(rows),
        mean_seconds=statistics.fmean(durations) if durations else None,
        median_seconds=statistics.median(durations) if durations else None,
        in_time=sum(1 for _opened, closed, due in rows if due is None or closed <= due),
    )


def resolution_stats(resolved_tickets) -> ResolutionStats:
    """MTTR and SLA compliance of resolved tickets.

    On PostgreSQL one aggregate query: a month of an agency's tickets is tens of thousands
    of rows, and reading their timestamps into Python cost the dashboard ~250 ms. Elsewhere
    (the SQLite demo, small by construction) the rows are read and summarized in Python.
    """
    if connection.vendor == "postgresql":
        row = resolved_tickets.aggregate(**_aggregates())
        return ResolutionStats(row["count"], row["mean"], row["median"], row["in_time"])
    return _summarize(
        list(resolved_tickets.values_list("opened_at", "resolved_at", "resolve_due_at"))
    )


def resolution_stats_by(resolved_tickets, field: str) -> dict:
    """``resolution_stats`` per value of ``field`` (e.g. the deliverable's client): one
    grouped query on PostgreSQL, whatever the number of groups."""
    if connection.vendor == "postgresql":
        rows = resolved_tickets.values(field).annotate(**_aggregates()).order_by()
        return {
            row[field]: ResolutionStats(row["count"], row["mean"], row["median"], row["in_time"])
            for row in rows
        }
    grouped = defaultdict(list)
    for key, *times in resolved_tickets.values_list(
        field, "opened_at", "resolved_at", "resolve_due_at"
    ):
        grouped[key].append(times)
    return {key: _summarize(rows) for key, rows in grouped.items()}


def tickets_panel(request, scope) -> dict:
    tickets = Ticket.objects.filter(organization=scope.organization)
    if scope.client:
        # Naming the deliverables' organization lets the join use deliverable_client_state.
        tickets = tickets.filter(
            deliverable__organization=scope.organization, deliverable__client=scope.client
        )

    now = scope.now
    overdue = overdue_q(now)
    active = tickets.filter(status__in=ACTIVE_STATUSES)
    totals = active.aggregate(open=Count("pk"), overdue=Count("pk", filter=overdue))
    by_role = list(
        active.values("owner_role__slug", "owner_role__name")
        .annotate(open=Count("pk"), overdue=Count("pk", filter=overdue))
        .order_by("-overdue", "-open", "owner_role__name")[:10]
    )
    by_person = list(
        active.values("assignee__email")
        .annotate(open=Count("pk"), overdue=Count("pk", filter=overdue))
        .order_by("-overdue", "-open", "assignee__email")[:10]
    )
    resolved = resolution_stats(
        tickets.filter(status=TicketStatus.RESOLVED, resolved_at__gte=scope.since)
    )
    board = reverse("board", args=[scope.organization.slug])
    ticket_list = reverse("ticket-list", args=[scope.organization.slug])
    return {
        "open": totals["open"],
        "overdue": totals["overdue"],
        "by_role": by_role,
        "by_person": by_person,
        "resolved": resolved.count,
        "mttr_mean": duration_text(resolved.mean_seconds),
        "mttr_median": duration_text(resolved.median_seconds),
        "sla_compliance": resolved.compliance_percent,
        "board_url": board,
        "list_url": ticket_list,
        "client_query": scope.query(),
    }


def backlog_panel(request, scope) -> dict:
    """Processing backlog incident: the open one (or the last), and when one opens."""
    limits = backlog_incidents.Limits.from_settings()
    incident = backlog_incidents.latest(scope.organization)
    return {
        "incident": incident,
        "lag_limit_minutes": round(limits.lag_seconds / 60, 1),
        "depth_limit": limits.pending,
        "lag_minutes": round(incident.lag_seconds / 60, 1) if incident else None,
        "peak_lag_minutes": round(incident.peak_lag_seconds / 60, 1) if incident else None,
    }
