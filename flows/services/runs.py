"""Flow runs: started by a trigger, advanced by events, completed by the outcome, breached
by the sweep. Everything here is idempotent: an event processed twice, or a sweep that
overlaps another, changes nothing the first did not.
"""

import logging
from collections import defaultdict
from datetime import datetime
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from deliveries.models import Deliverable, Event
from deliveries.services import trail
from flows.catalog import TEMPLATES
from flows.models import OPEN_STATES, Flow, FlowRun, FlowTicketLink, Incident, LinkKind, RunState
from meshline import bulk
from owners.models import Priority, TicketSource
from owners.services import owner_map
from owners.services.schedules import business_calendar, deadline
from owners.services.tickets import TicketRequest, open_tickets

log = logging.getLogger(__name__)


def active_flows(organization) -> list[Flow]:
    return list(Flow.objects.filter(organization=organization, is_active=True))


def install(organization, template: str, *, slug: str | None = None, owner_role=None) -> Flow:
    """Create a flow from a shipped template (idempotent per slug)."""
    values = dict(TEMPLATES[template])
    flow, _created = Flow.objects.get_or_create(
        organization=organization,
        slug=slug or template,
        defaults={**values, "template": template, "owner_role": owner_role},
    )
    return flow


# --- timers -------------------------------------------------------------------------------


def schedule(flow: Flow, run: FlowRun, spec) -> tuple[datetime | None, str]:
    """The earliest due time still ahead of a running run, and what it waits for."""
    if run.state != RunState.RUNNING:
        return None, ""
    pending = [
        (m["event_type"], m.get("due_minutes", 0), m.get("due_kind", "business"))
        for m in flow.milestones
        if m["event_type"] not in run.reached
    ]
    if flow.outcome_event_type not in run.reached:
        pending.append((flow.outcome_event_type, flow.due_minutes, flow.due_kind))
    due = [
        (deadline(spec, run.clock_start, minutes, kind), event_type)
        for event_type, minutes, kind in pending
        if minutes
    ]
    if not due:
        return None, ""
    return min(due)


def spec_for(run: FlowRun):
    """The run's business calendar; read once per processing batch and client."""
    _calendar, spec = business_calendar(run.organization, run.client)
    return spec


def breach_owner(flow: Flow, run: FlowRun, rules=None):
    """The role a breach of ``run`` goes to: the flow's owner, else the owner map's."""
    if flow.owner_role_id:
        return flow.owner_role
    resolution = owner_map.resolve(
        run.organization,
        run.due_for or flow.outcome_event_type,
        run.client.tier,
        run.deliverable.type,
        rules=rules,
    )
    return resolution.rule.owner_role if resolution.rule else None


# --- the processing step ------------------------------------------------------------------


def on_batch_processed(batch) -> None:
    """Processing step: start, advance or complete the batch's deliverables' runs.

    Runs under the deliverables' row locks (taken by processing), so two events of one
    deliverable never advance its runs at the same time. The flows and the runs they may
    touch are read once for the batch. An event goes to the run that had started when it
    happened, not to whichever run is newest when it is processed, and an event that
    started a run never starts another: replaying a deliverable's history
    (deliveries.services.replay) lands every event where it landed the first time.
    """
    flows = batch.remember("flows.active", lambda: active_flows(batch.organization))
    types = set().union(*(f.event_types for f in flows)) if flows else set()
    relevant = [(e, d) for e, d in batch.items if e.event_type in types]
    if not relevant:
        return
    runs: dict[tuple[int, int], list[FlowRun]] = defaultdict(list)
    # Locked for the batch (the breach sweep skips locked runs), so advancing one needs no
    # second read.
    flows_by_pk = {flow.pk: flow for flow in flows}
    deliverables = {d.pk: d for _e, d in relevant}
    for run in _runs_in_reach(batch.organization, flows, relevant):
        # What the batch holds already: no query per run for its flow or deliverable.
        run.organization, run.flow = batch.organization, flows_by_pk[run.flow_id]
        run.deliverable = deliverables[run.deliverable_id]
        run.client = run.deliverable.client
        runs[(run.deliverable_id, run.flow_id)].append(run)
    changes = _Changes(
        batch.organization,
        since=min(event.occurred_at for event, _d in relevant),
        deliverables=list(deliverables),
        types=types,
    )
    for event, deliverable in relevant:
        for flow in flows:
            if event.event_type not in flow.event_types:
                continue
            key = (deliverable.pk, flow.pk)
            started = _on_event(flow, runs[key], event, deliverable, changes)
            if started is not None:
                runs[key].append(started)
                runs[key].sort(key=lambda run: (run.started_at, str(run.pk)))
    changes.save(batch.organization)


class _Seen(NamedTuple):
    """An event a new run catches up on: what ``_apply`` needs of it."""

    pk: object
    deliverable_id: int
    event_type: str
    occurred_at: datetime


class _Changes:
    """What a batch changed in runs, written at its end: the runs that moved (closed ones
    among them) in one UPDATE, then the runs it started in one INSERT, the started ones an
    incident pauses, and their ``flow.completed`` entries in one ``record_many``.

    The UPDATE goes first: the deliverable's next trigger in the same batch may start a run
    of a flow whose open run an event closed, and only one may be open (flow_run_one_open).

    With the batch's deliverables and event types it also reads, once, the events a new run
    must catch up on (those of its deliverable that happened from its trigger on).
    """

    FIELDS = ("reached", "state", "completed_at", "due_at", "due_for", "updated_at")

    def __init__(self, organization=None, *, since=None, deliverables=(), types=()):
        self.organization = organization
        self.since, self.deliverables, self.types = since, deliverables, types
        self.moved: dict = {}
        self.new: dict = {}
        self.paused: list[tuple[Incident, FlowRun]] = []
        self.completed: list[trail.Entry] = []
        self._events: dict | None = None

    def events_from(self, event: Event, deliverable, types: set[str]) -> list:
        """The deliverable's events of ``types`` from ``event`` on (not itself), in time
        order: one query for the whole batch (a start outside a batch reads its own)."""
        if self.organization is None or deliverable.pk not in self.deliverables:
            return list(
                Event.objects.filter(
                    organization=event.organization,
                    deliverable=deliverable,
                    event_type__in=types,
                    occurred_at__gte=event.occurred_at,
                )
                .exclude(pk=event.pk)
                .order_by("occurred_at")
                .only("event_type", "occurred_at")
            )
        if self._events is None:
            # Plain rows, not Events: a batch of a busy day reads thousands of them.
            self._events = defaultdict(list)
            for row in (
                Event.objects.filter(
                    organization=self.organization,
                    deliverable__in=self.deliverables,
                    event_type__in=self.types,
                    occurred_at__gte=self.since,
                )
                .order_by("occurred_at")
                .values_list("pk", "deliverable_id", "event_type", "occurred_at")
            ):
                self._events[row[1]].append(_Seen(*row))
        return [
            other
            for other in self._events[deliverable.pk]
            if other.event_type in types
            and other.occurred_at >= event.occurred_at
            and other.pk != event.pk
        ]

    def started(self, run: FlowRun) -> None:
        self.new[run.pk] = run

    def moved_run(self, run: FlowRun) -> None:
        if run.pk not in self.new:  # a new run is inserted at the end, as it stands then
            self.moved[run.pk] = run

    def save(self, organization) -> None:
        now = timezone.now()
        for run in self.moved.values():
            run.updated_at = now
        FlowRun.objects.bulk_update(list(self.moved.values()), self.FIELDS)
        bulk.insert(list(self.new.values()))
        for incident, run in self.paused:
            incident.paused_runs.add(run)
        trail.record_many(organization, self.completed)


def _runs_in_reach(organization, flows: list[Flow], relevant) -> list[FlowRun]:
    """The runs the batch's events can touch, locked, oldest first.

    An event touches the open run, or the latest run started before it. So, per
    deliverable and flow: the open run, the latest run started before the batch's earliest
    event, and the runs started from then to its latest event (among them the runs its
    events triggered, when it is a replay). Older runs cannot be touched, so they are not
    read: a page republished daily for years costs as few rows as a new one. Each part is
    one index range (flow_run_deliverable_flow, flow_run_one_open), so the plan does not
    depend on the table's statistics; the rows are then locked by key.
    """
    deliverables = {deliverable.pk for _e, deliverable in relevant}
    first = min(event.occurred_at for event, _d in relevant)
    last = max(event.occurred_at for event, _d in relevant)

    def run_of(flow: Flow, *order, **conditions):
        runs = FlowRun.objects.filter(
            organization=organization, deliverable=OuterRef("pk"), flow=flow, **conditions
        )
        return Subquery(runs.order_by(*order).values("pk")[:1])

    ends = (
        Deliverable.objects.filter(organization=organization, pk__in=deliverables)
        .annotate(
            **{
                f"latest_{flow.pk}": run_of(flow, "-started_at", "-id", started_at__lt=first)
                for flow in flows
            },
            # At most one (flow_run_one_open): unordered, so its partial index finds it.
            **{f"open_{flow.pk}": run_of(flow, state__in=OPEN_STATES) for flow in flows},
        )
        .order_by()
        .values_list(*(f"{end}_{flow.pk}" for flow in flows for end in ("latest", "open")))
    )
    ids = {pk for row in ends for pk in row if pk is not None}
    ids.update(
        FlowRun.objects.filter(
            organization=organization,
            deliverable__in=deliverables,
            flow__in=flows,
            started_at__gte=first,
            started_at__lte=last,
        )
        .order_by()
        .values_list("pk", flat=True)
    )
    return list(
        FlowRun.objects.filter(organization=organization, pk__in=ids)
        .select_for_update(of=("self",))
        .order_by("started_at", "id")
    )


def _on_event(
    flow: Flow, runs: list[FlowRun], event: Event, deliverable, changes: "_Changes"
) -> FlowRun | None:
    """Apply ``event`` to the flow's runs of the deliverable (oldest first); returns a run
    it started, if any."""
    if any(run.trigger_event_id == event.pk for run in runs):
        return None  # processed before (a replay): its run has it already
    open_run = next((run for run in runs if run.is_open), None)
    if open_run is not None and open_run.started_at <= event.occurred_at:
        _advance(flow, open_run, event, changes)
        return None
    if flow.triggered_by(
        event.event_type, deliverable.client.tier, deliverable.type, event.payload
    ):
        if open_run is not None:
            _advance(flow, open_run, event, changes)  # a repeated trigger joins the open run
            return None
        return start(flow, event, deliverable, changes)
    started = [run for run in runs if run.started_at <= event.occurred_at]
    if started and started[-1].state == RunState.COMPLETED:
        # A late milestone of a closed run: the funnel counts it.
        _advance(flow, started[-1], event, changes)
    return None


def start(flow: Flow, event: Event, deliverable, changes: "_Changes") -> FlowRun:
    """Start a run at its trigger; apply events of the deliverable that arrived first."""
    run = FlowRun(
        organization=event.organization,
        flow=flow,
        deliverable=deliverable,
        client=deliverable.client,
        trigger_event=event,
        started_at=event.occurred_at,
    )
    missing = flow.missing_fields(event.payload)
    if missing:
        run.state = RunState.EXCEPTION
        run.missing_fields = missing
        run.save(force_insert=True)
        _open_ticket(run, LinkKind.EXCEPTION, event.event_type, timezone.now())
        return run
    # Events of the deliverable that arrived before their trigger (out of order).
    for other in changes.events_from(
        event, deliverable, flow.event_types - {flow.trigger_event_type}
    ):
        _apply(flow, run, other.event_type, other.occurred_at)
    if run.state == RunState.RUNNING and not flow.essential:
        # Started during an incident: paused from its start, credited when it ends.
        incident = _incident(event.organization)
        if incident is not None:
            run.state, run.paused_at = RunState.PAUSED, max(event.occurred_at, incident.started_at)
            changes.paused.append((incident, run))
    run.due_at, run.due_for = schedule(flow, run, spec_for(run))
    changes.started(run)
    if run.state == RunState.COMPLETED:
        changes.completed.append(_completed_entry(run))
    return run


def _incident(organization) -> Incident | None:
    """The organization's ongoing incident; read once per processing batch."""
    from deliveries.services.processing import current_batch

    def compute():
        return Incident.objects.filter(organization=organization, ended_at__isnull=True).first()

    batch = current_batch()
    return compute() if batch is None else batch.remember("flows.incident", compute)


def _apply(flow: Flow, run: FlowRun, event_type: str, at: datetime) -> bool:
    """Mark what ``event_type`` reaches; True if the run completed just now."""
    changed = False
    if event_type in flow.milestone_types() or event_type == flow.outcome_event_type:
        changed = run.reach(event_type, at)
    if event_type == flow.outcome_event_type and run.is_open:
        run.state = RunState.COMPLETED
        run.completed_at = at
        run.due_at, run.due_for = None, ""
        return True
    return changed


def _advance(flow: Flow, locked: FlowRun, event: Event, changes: _Changes) -> FlowRun:
    """Apply ``event`` to the run, whose row lock the caller holds (or which it created)."""
    was_open = locked.is_open
    if not _apply(flow, locked, event.event_type, event.occurred_at):
        return locked  # a duplicate, or an event this run already has: nothing moves
    if locked.state == RunState.RUNNING:
        locked.due_at, locked.due_for = schedule(flow, locked, spec_for(locked))
    changes.moved_run(locked)
    if was_open and locked.state == RunState.COMPLETED:
        changes.completed.append(_completed_entry(locked))
    return locked


def _completed_entry(run: FlowRun) -> trail.Entry:
    return trail.Entry(
        "flow.completed",
        f"flow-run:{run.pk}:completed",
        {
            "flow": run.flow.slug,
            "run_id": str(run.pk),
            "minutes": int(run.duration.total_seconds() // 60),
            "breached": run.breached_at is not None,
        },
        deliverable=run.deliverable,
        occurred_at=run.completed_at,
    )


# --- breaches -----------------------------------------------------------------------------


# Runs breached in one transaction: their tickets, links and entries written together.
BREACH_CHUNK = 200


def breach_due_runs(organization, now: datetime | None = None, limit: int = 5000) -> int:
    """Breach every running run of the organization past its due time; count them.

    Claimed in chunks with ``FOR UPDATE SKIP LOCKED`` and re-checked under the lock (as
    the escalation sweep does), so overlapping sweeps never breach a run twice. A chunk's
    tickets are opened together (``open_tickets``): a fixed number of statements per
    chunk, not per run.
    """
    now = now or timezone.now()
    ids = list(
        FlowRun.objects.filter(organization=organization, state=RunState.RUNNING, due_at__lte=now)
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(
        _breach_chunk(organization, ids[start : start + BREACH_CHUNK], now)
        for start in range(0, len(ids), BREACH_CHUNK)
    )


def _breach_chunk(organization, pks: list, now: datetime) -> int:
    with transaction.atomic():
        claim = (
            FlowRun.objects.filter(
                organization=organization, pk__in=pks, state=RunState.RUNNING, due_at__lte=now
            )
            .select_related("flow__owner_role", "deliverable__client", "client", "organization")
            .order_by("pk")
        )
        if connection.features.has_select_for_update_skip_locked:
            claim = claim.select_for_update(skip_locked=True, of=("self",))
        runs = list(claim)  # the others: another sweep has them, or an event moved them on
        for run in runs:
            run.state = RunState.BREACHED
            run.breached_at = run.due_at
            run.breached_on = run.due_for
            run.due_at, run.due_for = None, ""
            run.updated_at = now
        FlowRun.objects.bulk_update(
            runs, ["state", "breached_at", "breached_on", "due_at", "due_for", "updated_at"]
        )
        _open_tickets(runs, LinkKind.BREACH, [run.breached_on for run in runs], now)
    return len(runs)


def _open_ticket(run: FlowRun, kind: str, event_type: str, now: datetime) -> None:
    _open_tickets([run], kind, [event_type], now)


def _ticket_request(run: FlowRun, kind: str, event_type: str) -> tuple[TicketRequest, dict]:
    flow = run.flow
    if kind == LinkKind.BREACH:
        title = f"{flow.name} breached for {run.deliverable.deliverable_id}: {event_type} overdue"
        context = {"breached_at": run.breached_at.isoformat(), "waiting_for": event_type}
    else:
        title = (
            f"{flow.name} cannot start for {run.deliverable.deliverable_id}: "
            f"missing {', '.join(run.missing_fields)}"
        )
        context = {"missing_fields": run.missing_fields}
    context.update({"flow": flow.slug, "run_id": str(run.pk), "runbook": flow.runbook})
    request = TicketRequest(
        source=TicketSource.FLOW,
        source_key=f"flow-run:{run.pk}:{kind}",
        title=title,
        event_type=event_type,
        deliverable=run.deliverable,
        context=context,
        priority=Priority.P2 if flow.affects_client_sla else Priority.P3,
        owner_role=flow.owner_role,
    )
    return request, context


def _open_tickets(runs: list[FlowRun], kind: str, event_types: list[str], now: datetime) -> None:
    """Open each run's one ticket (breach or exception) with the runbook, link it to the
    run, and append the run's ``flow.breached``/``flow.exception`` entry, all together."""
    if not runs:
        return
    organization = runs[0].organization
    asked = [
        _ticket_request(run, kind, event_type)
        for run, event_type in zip(runs, event_types, strict=True)
    ]
    opened = open_tickets(organization, [request for request, _context in asked], at=now)
    links, entries, unrouted = [], [], defaultdict(list)
    for run, (_request, context), result in zip(runs, asked, opened, strict=True):
        if result.ticket is None:
            # Nobody to route to: the run says why, and the owner map's warnings show the gap.
            log.warning("flow run %s: %s", run.pk, result.no_owner)
            unrouted[result.no_owner[:2000]].append(run.pk)
            continue
        if result.created:
            links.append(
                FlowTicketLink(organization=organization, ticket=result.ticket, run=run, kind=kind)
            )
        entries.append(
            trail.Entry(
                "flow.breached" if kind == LinkKind.BREACH else "flow.exception",
                f"flow-run:{run.pk}:{kind}",
                {
                    "flow": run.flow.slug,
                    "run_id": str(run.pk),
                    "ticket_id": str(result.ticket.pk),
                    **context,
                },
                deliverable=run.deliverable,
                occurred_at=run.breached_at if kind == LinkKind.BREACH else run.started_at,
            )
        )
    for note, pks in unrouted.items():
        FlowRun.objects.filter(pk__in=pks).update(note=note)
    bulk.insert(links)
    trail.record_many(organization, entries)


def reschedule_open_runs(flow: Flow) -> int:
    """After the flow changed: recompute every running run's due time."""
    runs = list(
        FlowRun.objects.filter(
            organization=flow.organization_id, flow=flow, state=RunState.RUNNING
        ).select_related("client", "organization")
    )
    specs: dict = {}
    for run in runs:
        if run.client_id not in specs:
            specs[run.client_id] = spec_for(run)
        run.due_at, run.due_for = schedule(flow, run, specs[run.client_id])
    FlowRun.objects.bulk_update(runs, ["due_at", "due_for"])
    return len(runs)


def for_deliverable(deliverable) -> list[FlowRun]:
    return list(
        FlowRun.objects.filter(organization=deliverable.organization_id, deliverable=deliverable)
        .select_related("flow")
        .order_by("started_at")
    )


def portal_section(request, deliverable) -> dict:
    return {
        "flow_runs": for_deliverable(deliverable),
        "deliverable_ref": deliverable.deliverable_id,
    }


def trail_section(deliverable) -> list[dict]:
    return [
        {
            "id": str(run.pk),
            "flow": run.flow.slug,
            "state": run.state,
            "started_at": run.started_at.isoformat(),
            "due_at": run.due_at.isoformat() if run.due_at else None,
            "breached_at": run.breached_at.isoformat() if run.breached_at else None,
            "completed_at": run.completed_at.isoformat() if run.completed_at else None,
        }
        for run in for_deliverable(deliverable)
    ]
