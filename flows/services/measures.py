"""Measures of flows: started, completed, breached, completion rate, time to outcome,
exceptions, manual handoffs (reassignments of the tickets runs opened), and the funnel of
one flow's milestones.

Mean and p90 time to outcome are computed from the completed runs' two timestamps in
Python: one query, portable (the demo runs on SQLite), linear in completed runs. A
percentile in SQL (PostgreSQL's percentile_cont) is the step when that gets large.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, Sum

from flows.models import Flow, FlowRun, FlowTicketLink, RunState


@dataclass
class Measures:
    started: int = 0
    running: int = 0
    completed: int = 0
    breached: int = 0
    exceptions: int = 0
    handoffs: int = 0
    durations: list[timedelta] = field(default_factory=list)
    # The mean straight from SQL, when the durations were not fetched (the dashboard).
    mean_duration: timedelta | None = None

    @property
    def completion_rate(self) -> float | None:
        """Completed out of runs that could complete (exceptions never start counting)."""
        eligible = self.started - self.exceptions
        return round(100 * self.completed / eligible, 1) if eligible else None

    @property
    def mean_minutes(self) -> float | None:
        if not self.durations:
            if self.mean_duration is None:
                return None
            return round(self.mean_duration.total_seconds() / 60, 1)
        total = sum(self.durations, timedelta())
        return round(total.total_seconds() / 60 / len(self.durations), 1)

    @property
    def p90_minutes(self) -> float | None:
        if not self.durations:
            return None
        ordered = sorted(self.durations)
        index = max(0, math.ceil(0.9 * len(ordered)) - 1)  # nearest-rank
        return round(ordered[index].total_seconds() / 60, 1)

    def as_dict(self) -> dict:
        return {
            "started": self.started,
            "running": self.running,
            "completed": self.completed,
            "breached": self.breached,
            "exceptions": self.exceptions,
            "manual_handoffs": self.handoffs,
            "completion_rate": self.completion_rate,
            "mean_minutes_to_outcome": self.mean_minutes,
            "p90_minutes_to_outcome": self.p90_minutes,
        }


COUNTS = {
    "started": Count("pk"),
    "running": Count("pk", filter=Q(state=RunState.RUNNING)),
    "completed": Count("pk", filter=Q(state=RunState.COMPLETED)),
    "breached": Count("pk", filter=Q(breached_at__isnull=False)),
    "exceptions": Count("pk", filter=Q(state=RunState.EXCEPTION)),
}


def _runs(organization, client=None, since: datetime | None = None):
    runs = FlowRun.objects.filter(organization=organization)
    if client is not None:
        runs = runs.filter(client=client)
    if since is not None:
        runs = runs.filter(started_at__gte=since)
    return runs


def per_flow(organization, client=None, since: datetime | None = None) -> dict[int, Measures]:
    """Measures per flow id, in three queries whatever the number of flows and runs."""
    runs = _runs(organization, client, since)
    result: dict[int, Measures] = {}
    for row in runs.values("flow_id").annotate(**COUNTS):
        flow_id = row.pop("flow_id")
        result[flow_id] = Measures(**row)
    for flow_id, started_at, completed_at in runs.filter(state=RunState.COMPLETED).values_list(
        "flow_id", "started_at", "completed_at"
    ):
        result[flow_id].durations.append(completed_at - started_at)
    for flow_id, handoffs in (
        FlowTicketLink.objects.filter(organization=organization, run__in=runs.values("pk"))
        .values("run__flow_id")
        .annotate(handoffs=Sum("ticket__reassignments"))
        .values_list("run__flow_id", "handoffs")
    ):
        result[flow_id].handoffs = handoffs or 0
    return result


def overall(organization, client=None, since: datetime | None = None) -> Measures:
    """Every flow together, in one query (the dashboard): the counts and the mean time to
    outcome, averaged by the database; no p90 here."""
    totals = _runs(organization, client, since).aggregate(
        **COUNTS,
        mean_duration=Avg(
            ExpressionWrapper(F("completed_at") - F("started_at"), output_field=DurationField()),
            filter=Q(state=RunState.COMPLETED),
        ),
    )
    return Measures(**totals)


def funnel(flow: Flow, client=None, since: datetime | None = None) -> list[dict]:
    """Runs that reached each step, in order: started, each milestone, the outcome."""
    steps = [*flow.milestones, {"event_type": flow.outcome_event_type, "name": "Outcome"}]
    counts = _runs(flow.organization_id, client, since).filter(flow=flow)
    totals = counts.aggregate(
        started=Count("pk", filter=~Q(state=RunState.EXCEPTION)),
        **{
            f"step{index}": Count(
                "pk", filter=Q(reached__has_key=step["event_type"]) & ~Q(state=RunState.EXCEPTION)
            )
            for index, step in enumerate(steps)
        },
    )
    started = totals["started"]
    rows = [{"name": "Started", "event_type": flow.trigger_event_type, "count": started}]
    for index, step in enumerate(steps):
        rows.append(
            {
                "name": step.get("name") or step["event_type"],
                "event_type": step["event_type"],
                "count": totals[f"step{index}"],
            }
        )
    for row in rows:
        row["percent"] = round(100 * row["count"] / started, 1) if started else None
    return rows
