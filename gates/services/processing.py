"""The gates step of event processing: sitemap timers, and every gate's verdict on the batch.

Gates are judged inside the processing transaction, on the whole batch at once: the gates,
the verdicts already stored, the open gate tickets and the checks' history are read once
per batch, and the verdicts are written together: their rows in one INSERT, the failures'
trail entries and the tickets they open each in a fixed number of statements. A pass that
resolves a ticket takes the per-verdict path (``record_verdict``), in event order.

CPU-heavy checks (screenshot comparison) are not judged here: each is a task on the
``heavy`` queue (``gates.evaluate_heavy``), so a batch of pages never waits on images.
"""

import time
import uuid
from collections import defaultdict
from datetime import timedelta

from django.db.models import F, FloatField, Window
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, RowNumber

from deliveries.models import Deliverable, Event, EventSource
from deliveries.services import trail
from gates import checks
from gates.models import (
    CheckName,
    Gate,
    GateEvaluation,
    GateMode,
    GateTicketLink,
    Outcome,
    SitemapTimer,
)
from gates.services.sitemaps import DEFAULT_SITEMAP_HOURS, settle_sitemap_timers
from gates.services.strictness import check_strictness_many, count_verdicts
from gates.services.verdicts import (
    HISTORY_LIMIT,
    Failure,
    applies,
    event_view,
    failed_entry,
    failed_later,
    history_for,
    history_types,
    link_failure_tickets,
    new_evaluation,
    open_failure_tickets,
    outcome_of,
    record_verdict,
)
from meshline import bulk, metrics, telemetry
from owners.models import ACTIVE_STATUSES

# Checks too slow to hold a batch's transaction: each gets a task on its own queue.
HEAVY_CHECKS = frozenset({CheckName.SCREENSHOT_REGRESSION})


def active_gates(batch) -> list[Gate]:
    return batch.remember(
        "gates.active",
        lambda: list(
            Gate.objects.filter(organization=batch.organization).exclude(mode=GateMode.OFF)
        ),
    )


def on_batch_processed(batch) -> None:
    """Processing step: start/settle sitemap timers, judge the events, queue heavy checks."""
    submitted = [(e, d) for e, d in batch.items if e.source != EventSource.MESHLINE]
    if not submitted:
        return
    gates = active_gates(batch)
    timers, judged, heavy = [], [], []
    for event, deliverable in submitted:
        for gate in gates:
            if not applies(gate, event, deliverable):
                continue
            if gate.check_name == CheckName.SITEMAP_SYNC:
                if event.event_type == "page.published":
                    timers.append(_timer(gate, event, deliverable))
            elif gate.check_name in HEAVY_CHECKS:
                heavy.append((gate.pk, str(event.pk)))
            else:
                judged.append((gate, event, deliverable))
    # A replayed batch finds its timers: the unique (gate, started_by) keeps the first.
    SitemapTimer.objects.bulk_create([t for t in timers if t is not None], ignore_conflicts=True)
    # After the timers: a sitemap in the same batch as its page settles the page's timer.
    sitemaps = [event for event, _d in submitted if event.event_type == "sitemap.submitted"]
    verdicts = settle_sitemap_timers(batch.organization, sitemaps) if sitemaps else []
    if judged or verdicts:
        judge(batch, judged, settled=verdicts)
    if heavy:
        # A replayed event: a heavy check that judged it keeps its verdict, unqueued.
        done = set(
            GateEvaluation.objects.filter(
                organization=batch.organization,
                event__in={event_id for _gate_id, event_id in heavy},
                gate__in={gate_id for gate_id, _event_id in heavy},
            ).values_list("gate_id", "event_id")
        )
        heavy = [(g, e) for g, e in heavy if (g, uuid.UUID(e)) not in done]
    if heavy:
        # In the batch's trace, whenever the commit comes.
        telemetry.on_commit(lambda: _queue_heavy(batch.organization.pk, heavy))


def _timer(gate, event, deliverable) -> SitemapTimer | None:
    url = event.payload.get("url") or deliverable.url
    if not url:
        return None
    hours = float((gate.parameters or {}).get("deadline_hours", DEFAULT_SITEMAP_HOURS))
    return SitemapTimer(
        organization_id=event.organization_id,
        gate=gate,
        started_by=event,
        deliverable=deliverable,
        url=url,
        due_at=event.occurred_at + timedelta(hours=hours),
    )


def _queue_heavy(organization_id: int, pairs: list[tuple[int, str]]) -> None:
    from gates.tasks import evaluate_heavy

    for gate_id, event_id in pairs:
        # Broker down: gates.tasks.sweep_unevaluated re-queues the rest.
        if not evaluate_heavy.publish(
            organization_id=organization_id, gate_id=gate_id, event_id=event_id
        ):
            return


@telemetry.traced("meshline.judge_gates")
def judge(batch, judged: list[tuple[Gate, Event, Deliverable]], settled=()) -> None:
    """Each (gate, event) verdict once; a fixed number of statements for the whole batch.

    ``judged`` are run through their checks; ``settled`` are verdicts reached already
    (sitemap timers settled: ``(gate, event, deliverable, result)``). Verdicts are written
    together (``_Unwritten``): their rows, the failures' ``gate.failed`` entries and the
    tickets the first failures of a (gate, deliverable) open. A pass that resolves a ticket,
    or a verdict with artifacts, takes the per-verdict path (``record_verdict``) after what
    came before it is written: once per (gate, deliverable) change, in order.
    """
    organization = batch.organization
    event_ids = {event.pk for _gate, event, _d in judged} | {v[1].pk for v in settled}
    done = set(
        GateEvaluation.objects.filter(organization=organization, event__in=event_ids).values_list(
            "gate_id", "event_id", "deliverable_id"
        )
    )
    deliverable_ids = {d.pk for _g, _e, d in judged} | {v[2].pk for v in settled}
    unwritten = _Unwritten(
        organization,
        {
            (gate_id, deliverable_id): ticket_id
            for gate_id, deliverable_id, ticket_id in GateTicketLink.objects.filter(
                organization=organization,
                deliverable__in=deliverable_ids,
                ticket__status__in=ACTIVE_STATUSES,
            ).values_list("gate_id", "deliverable_id", "ticket_id")
        },
    )
    verdicts = [
        (gate, event, deliverable, result, 0.0) for gate, event, deliverable, result in settled
    ]
    verdicts += _run_checks(organization, judged, done)
    judged_gates: dict[int, Gate] = {}
    for gate, event, deliverable, result, duration_ms in verdicts:
        if (gate.pk, event.pk, deliverable.pk) in done:
            continue
        done.add((gate.pk, event.pk, deliverable.pk))
        judged_gates[gate.pk] = gate
        outcome = outcome_of(gate, result)
        key = (gate.pk, deliverable.pk)
        if (outcome == Outcome.PASS and unwritten.has_ticket(key)) or result.artifacts:
            unwritten.write()  # what record_verdict reads must be stored first
            evaluation = record_verdict(gate, event, deliverable, result, duration_ms)
            if outcome == Outcome.FAIL and evaluation.ticket_id is not None:
                unwritten.open_tickets[key] = evaluation.ticket_id
            elif outcome == Outcome.PASS and not failed_later(gate, event, deliverable):
                unwritten.open_tickets.pop(key, None)  # resolved (an older pass resolves nothing)
            continue
        unwritten.add(new_evaluation(gate, event, deliverable, result, duration_ms), result)
    unwritten.write()
    # Passes (a settled sitemap) cannot make a gate too strict.
    check_strictness_many(
        gate for gate in judged_gates.values() if gate.check_name != CheckName.SITEMAP_SYNC
    )


class _Unwritten:
    """A batch's verdicts not written yet, with the gate tickets open for its deliverables.

    ``write`` stores them together: the failures' ``gate.failed`` entries, the tickets of
    the failures that are the first of their (gate, deliverable) with none open
    (``open_failure_tickets``; later failures of the key join that ticket), the verdict
    rows, and the tickets' links: the same statements for one such failure or fifty.
    """

    def __init__(self, organization, open_tickets: dict[tuple[int, int], object]):
        self.organization = organization
        self.open_tickets = open_tickets  # (gate id, deliverable id) -> open ticket's id
        self.verdicts: list[tuple[GateEvaluation, checks.CheckResult]] = []
        self.opening: dict[tuple[int, int], list[GateEvaluation]] = {}

    def has_ticket(self, key: tuple[int, int]) -> bool:
        return key in self.open_tickets or key in self.opening

    def add(self, evaluation: GateEvaluation, result: checks.CheckResult) -> None:
        if evaluation.outcome == Outcome.FAIL:
            key = (evaluation.gate_id, evaluation.deliverable_id)
            if key in self.open_tickets:
                evaluation.ticket_id = self.open_tickets[key]
            else:
                self.opening.setdefault(key, []).append(evaluation)
        self.verdicts.append((evaluation, result))

    def write(self) -> None:
        if not self.verdicts:
            return
        results = {evaluation.pk: result for evaluation, result in self.verdicts}
        failed = [e for e, _result in self.verdicts if e.outcome == Outcome.FAIL]
        # gate.failed before the ticket.opened it causes, as on the per-verdict path.
        trail.record_many(
            self.organization,
            [failed_entry(e.gate, e.event, e.deliverable, e, results[e.pk]) for e in failed],
        )
        failures = [
            Failure(first.gate, first.event, first.deliverable, first, results[first.pk])
            for first, *_later in self.opening.values()
        ]
        opened = open_failure_tickets(self.organization, failures)
        for (key, evaluations), outcome in zip(self.opening.items(), opened, strict=True):
            for evaluation in evaluations:
                if outcome.ticket is not None:
                    evaluation.ticket_id = self.open_tickets[key] = outcome.ticket.pk
                elif evaluation is not evaluations[0]:  # nobody owns it: each says so
                    evaluation.details = {**evaluation.details, "ticket_error": outcome.no_owner}
        written = [evaluation for evaluation, _result in self.verdicts]
        bulk.insert(written)
        link_failure_tickets(list(zip(failures, opened, strict=True)))
        count_verdicts(written)
        metrics.observe_evaluated(
            (e.gate.check_name, e.event.received_at, e.evaluated_at) for e in written
        )
        self.verdicts, self.opening = [], {}


def _run_checks(organization, judged, done) -> list[tuple]:
    """Run each (gate, event) check not judged before, on the batch's history."""
    judged = [(g, e, d) for g, e, d in judged if (g.pk, e.pk, d.pk) not in done]
    if not judged:
        return []
    needs = {gate.pk: history_types(gate) for gate, _event, _deliverable in judged}
    history = BatchHistory(
        organization, judged, set().union(*needs.values()), _needs_totals(judged)
    )
    verdicts = []
    for gate, event, deliverable in judged:
        check_input = checks.CheckInput(
            event=event_view(event),
            deliverable_type=deliverable.type,
            deliverable_url=deliverable.url,
            history=history.before(event, needs[gate.pk]),
            parameters=gate.parameters or {},
            totals=history.totals(gate, event),
        )
        started = time.perf_counter()
        result = checks.run(gate.check_name, check_input)
        duration_ms = (time.perf_counter() - started) * 1000
        verdicts.append((gate, event, deliverable, result, duration_ms))
    return verdicts


def _needs_totals(judged) -> bool:
    return any(gate.check_name == CheckName.SCOPE_LIMITS for gate, _e, _d in judged)


class BatchHistory:
    """The deliverables' earlier events the checks read, fetched once for a whole batch.

    Per deliverable, the newest events of the needed types up to its latest event in the
    batch; an event whose window that fetch may have cut short falls back to its own query
    (``history_for``), so what a check sees never depends on how events were batched.
    """

    def __init__(self, organization, judged, event_types: set[str], with_totals: bool):
        self.organization = organization
        events_by_deliverable = defaultdict(list)
        for _gate, event, _deliverable in judged:
            events_by_deliverable[event.deliverable_id].append(event)
        self.span = {
            d: (min(e.occurred_at for e in evs), max(e.occurred_at for e in evs))
            for d, evs in events_by_deliverable.items()
        }
        self.rows: dict[int, list[checks.EventView]] = defaultdict(list)
        self.limit = HISTORY_LIMIT + max(
            (len(v) for v in events_by_deliverable.values()), default=0
        )
        self.cut: set[int] = set()
        if event_types:
            self._fetch(event_types)
        self.hours_rows: dict[int, list[Event]] = defaultdict(list)
        if with_totals:
            self._fetch_hours()

    def _earlier(self):
        return Event.objects.filter(organization=self.organization).exclude(
            source=EventSource.MESHLINE
        )

    def _fetch(self, event_types: set[str]) -> None:
        """One query: per deliverable, its newest events of these types up to the batch's
        latest event, as the views checks read (no model instances: a batch reads
        thousands of these rows, and building Events cost more than the query)."""
        ranked = (
            self._earlier()
            .filter(
                deliverable__in=list(self.span),
                event_type__in=event_types,
                occurred_at__lte=max(last for _first, last in self.span.values()),
            )
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("deliverable")],
                    order_by=[F("occurred_at").desc(), F("id").desc()],
                )
            )
            .filter(rank__lte=self.limit)
            .order_by()
            .values_list("deliverable_id", "id", "event_type", "occurred_at", "payload")
        )
        for deliverable_id, pk, event_type, occurred_at, payload in ranked:
            self.rows[deliverable_id].append(
                checks.EventView(str(pk), event_type, occurred_at, payload)
            )
        for deliverable_id, rows in self.rows.items():
            rows.sort(key=lambda view: (view.occurred_at, view.id))  # oldest first
            if len(rows) >= self.limit:
                self.cut.add(deliverable_id)

    def before(self, event: Event, event_types: set[str]) -> tuple[checks.EventView, ...]:
        if not event_types:
            return ()
        if event.deliverable_id in self.cut:
            return history_for(event, event_types)
        own = str(event.pk)
        earlier = [
            view
            for view in self.rows.get(event.deliverable_id, ())
            if view.id != own
            and view.event_type in event_types
            and view.occurred_at <= event.occurred_at
        ]
        return tuple(earlier[-HISTORY_LIMIT:])

    def _fetch_hours(self) -> None:
        """Every ``time.logged`` of the batch's deliverables up to their latest batch event:
        one query through the (organization, event_type) index; each event's total is
        summed from them exactly."""
        logged = (
            self._earlier()
            .filter(
                event_type="time.logged",
                deliverable__in=list(self.span),
                occurred_at__lte=max(end for _start, end in self.span.values()),
            )
            .annotate(h=Cast(KT("payload__hours"), FloatField()))
            .only("id", "deliverable", "occurred_at")
        )
        for event in logged:
            self.hours_rows[event.deliverable_id].append(event)

    def totals(self, gate: Gate, event: Event) -> dict:
        if gate.check_name != CheckName.SCOPE_LIMITS:
            return {}
        total = sum(
            e.h or 0.0
            for e in self.hours_rows.get(event.deliverable_id, ())
            if e.pk != event.pk and e.occurred_at <= event.occurred_at
        )
        return {"hours": total}
