"""Evaluate a gate on an event and act on the verdict: open, keep or resolve its ticket.

Evaluation runs in a Celery task per (gate, event), under a lock on the deliverable row,
so two verdicts for one deliverable never race to open two tickets. A verdict is stored
once (unique per gate, event and deliverable): a retried task returns the stored one.
"""

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, FloatField, Sum, Window
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, RowNumber
from django.utils import timezone

from deliveries.models import Deliverable, Event, EventSource
from deliveries.services import trail
from gates import checks
from gates.checks.content import REVISION_EVENT_TYPES
from gates.models import (
    Artifact,
    CheckName,
    Gate,
    GateEvaluation,
    GateMode,
    GateTicketLink,
    Outcome,
)
from gates.services.strictness import check_strictness, count_verdicts
from meshline import metrics
from owners.models import ACTIVE_STATUSES, Ticket, TicketSource
from owners.services import tickets

HISTORY_LIMIT = 50


def gate_source_prefix(gate_id, deliverable_id) -> str:
    """The start of a failure ticket's idempotency key; what opened it is in GateTicketLink."""
    return f"gate:{gate_id}:deliverable:{deliverable_id}:"


def event_view(event: Event) -> checks.EventView:
    """What a check may see of a stored event."""
    return checks.EventView(str(event.pk), event.event_type, event.occurred_at, event.payload)


def history_types(gate: Gate) -> set[str]:
    """The event types a check reads from the deliverable's history (empty: none).

    Only the latest HISTORY_LIMIT events of these types are passed: without the filter, a
    live page's daily search exports would push its accepted scope (or its baseline
    screenshot) out of reach. Checks that read no history get none, and cost no query:
    the history's payloads are whole pages and screenshots.
    """
    if gate.check_name == CheckName.SCOPE_LIMITS:
        parameters = gate.parameters or {}
        revisions = parameters.get("revision_event_types", REVISION_EVENT_TYPES)
        return {"scope.accepted", *revisions}
    if gate.check_name == CheckName.SCREENSHOT_REGRESSION:
        return set(gate.event_types)
    return set()


def _earlier(event: Event):
    """The deliverable's submitted events up to this one (Meshline's own entries excluded)."""
    return (
        Event.objects.filter(
            organization=event.organization_id,
            deliverable=event.deliverable_id,
            occurred_at__lte=event.occurred_at,
        )
        .exclude(pk=event.pk)
        .exclude(source=EventSource.MESHLINE)
    )


def history_for(event: Event, event_types: set[str]) -> tuple[checks.EventView, ...]:
    if not event_types:
        return ()
    earlier = _earlier(event).filter(event_type__in=event_types)
    earlier = earlier.order_by("-occurred_at", "-id")[:HISTORY_LIMIT]
    return tuple(event_view(e) for e in reversed(list(earlier)))


def totals_for(gate: Gate, event: Event) -> dict:
    """Sums a check needs over the deliverable's whole earlier history, in one query:
    scope_limits' logged hours (a timesheet outgrows any bounded history)."""
    if gate.check_name != CheckName.SCOPE_LIMITS:
        return {}
    hours = (
        _earlier(event)
        .filter(event_type="time.logged")
        .aggregate(hours=Sum(Cast(KT("payload__hours"), FloatField())))["hours"]
    )
    return {"hours": hours or 0.0}


def applies(gate: Gate, event: Event, deliverable: Deliverable) -> bool:
    """Whether ``gate`` judges ``event``: never Meshline's own entries, else its mode, event
    types, client tiers and deliverable types (``Gate.applies_to``)."""
    if event.source == EventSource.MESHLINE:
        return False
    tier = deliverable.client.tier if deliverable.client_id else ""
    return gate.applies_to(event.event_type, tier, deliverable.type)


def evaluate(gate: Gate, event: Event) -> GateEvaluation | None:
    """Evaluate once; act on the verdict (ticket, auto-resolve, strictness).

    None when the gate does not apply to the event (any longer): whoever queued the task
    (processing, the safety-net sweep, a retry after the gate was switched off) is held to
    the same rule as the batch (``applies``), here, where every path passes.
    """
    with transaction.atomic():
        deliverable = (
            # NO KEY UPDATE, as processing: never holds up an insert of the deliverable's events.
            Deliverable.objects.select_for_update(of=("self",), no_key=True)
            .select_related("client")
            .get(pk=event.deliverable_id)
        )
        existing = GateEvaluation.objects.filter(
            organization=event.organization_id, gate=gate, event=event, deliverable=deliverable
        ).first()
        if existing is not None:
            return existing
        if not applies(gate, event, deliverable):
            return None
        check_input = checks.CheckInput(
            event=event_view(event),
            deliverable_type=deliverable.type,
            deliverable_url=deliverable.url,
            history=history_for(event, history_types(gate)),
            parameters=gate.parameters or {},
            totals=totals_for(gate, event),
        )
        started = time.perf_counter()  # the check's own time, not the history query's
        result = checks.run(gate.check_name, check_input)
        duration_ms = (time.perf_counter() - started) * 1000
        evaluation = record_verdict(gate, event, deliverable, result, duration_ms)
    check_strictness(gate)
    return evaluation


def outcome_of(gate: Gate, result: checks.CheckResult) -> str:
    if result.error:
        return Outcome.ERROR
    if result.passed:
        return Outcome.PASS
    return Outcome.FAIL if gate.mode == GateMode.ENFORCE else Outcome.MONITOR


def new_evaluation(
    gate, event, deliverable, result: checks.CheckResult, duration_ms: float, at=None
) -> GateEvaluation:
    """The verdict's row, unsaved."""
    return GateEvaluation(
        organization_id=event.organization_id,
        gate=gate,
        event=event,
        deliverable=deliverable,
        outcome=outcome_of(gate, result),
        mode=gate.mode,
        reasons=result.reasons,
        details=result.details,
        billing_flag=result.billing_flag,
        duration_ms=round(duration_ms, 3),
        evaluated_at=at or timezone.now(),
    )


def record_verdict(
    gate,
    event,
    deliverable,
    result: checks.CheckResult,
    duration_ms: float,
    at: datetime | None = None,
) -> GateEvaluation:
    """Store the verdict; an enforced failure opens (or keeps) the ticket, a pass resolves it."""
    evaluation = new_evaluation(gate, event, deliverable, result, duration_ms, at)
    outcome = evaluation.outcome
    evaluation.save(force_insert=True)
    count_verdicts([evaluation])
    for artifact in result.artifacts:
        Artifact.objects.create(
            organization_id=event.organization_id,
            evaluation=evaluation,
            name=artifact.name,
            content_type=artifact.content_type,
            data=artifact.data,
        )
    metrics.observe_evaluated([(gate.check_name, event.received_at, evaluation.evaluated_at)])
    if outcome == Outcome.FAIL:
        _open_failure_ticket(gate, event, deliverable, evaluation, result)
    elif outcome == Outcome.PASS:
        _resolve_failure_tickets(gate, event, deliverable, evaluation)
    return evaluation


def last_events_of(organization, deliverable_ids, limit: int = 3) -> dict[int, list[dict]]:
    """Each deliverable's ``limit`` latest submitted events, as a failure ticket shows them:
    one query for any number of deliverables."""
    ranked = (
        Event.objects.filter(organization=organization, deliverable__in=list(deliverable_ids))
        .exclude(source=EventSource.MESHLINE)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("deliverable")],
                order_by=[F("occurred_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=limit)
        .order_by()
        .values_list("deliverable_id", "id", "event_type", "occurred_at", "actor_role", "actor_id")
    )
    latest = defaultdict(list)
    for deliverable_id, pk, event_type, occurred_at, actor_role, actor_id in sorted(
        ranked, key=lambda row: (row[3], row[1]), reverse=True
    ):
        latest[deliverable_id].append(
            {
                "id": str(pk),
                "event_type": event_type,
                "occurred_at": occurred_at.isoformat(),
                "actor": f"{actor_role}:{actor_id}",
            }
        )
    return latest


def _page_url(event: Event, deliverable: Deliverable) -> str:
    """The page the failure is about, so its owner can open it from the ticket.

    Only http(s): an organization's own event types may carry any string as ``url``, and
    the portal renders this as a link.
    """
    for url in (
        event.payload.get("url") if isinstance(event.payload, dict) else None,
        deliverable.url,
    ):
        if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            return url
    return ""


def active_failure_tickets(gate, deliverable):
    """The gate's open tickets for this deliverable, through their links (one, normally)."""
    return Ticket.objects.filter(
        organization=deliverable.organization_id,
        gate_link__gate=gate,
        gate_link__deliverable=deliverable,
        status__in=ACTIVE_STATUSES,
    )


def failed_entry(gate, event, deliverable, evaluation, result) -> trail.Entry:
    """The ``gate.failed`` trail entry of an enforced failure."""
    return trail.Entry(
        "gate.failed",
        f"gate:{gate.pk}:evaluation:{evaluation.pk}",
        {
            "gate": gate.slug,
            "check": gate.check_name,
            "reasons": result.reasons,
            "evaluation_id": str(evaluation.pk),
            "event_id": str(event.pk),
        },
        deliverable=deliverable,
        occurred_at=evaluation.evaluated_at,
    )


@dataclass(frozen=True)
class Failure:
    """An enforced failure whose gate has no ticket open for the deliverable yet."""

    gate: Gate
    event: Event
    deliverable: Deliverable
    evaluation: GateEvaluation
    result: checks.CheckResult

    def request(self, last_events: list[dict]) -> tickets.TicketRequest:
        gate, event, deliverable, result = self.gate, self.event, self.deliverable, self.result
        context = {
            "gate": gate.name,
            "check": gate.check_name,
            "evaluation_id": str(self.evaluation.pk),
            "event_id": str(event.pk),
            "reasons": result.reasons,
            "details": result.details,
            "artifacts": [a.name for a in result.artifacts]
            or [result.details.get("artifact") or "event payload"],
            "page_url": _page_url(event, deliverable),
            "last_events": last_events,
            "remediation": gate.playbook,
            "billing_flag": result.billing_flag,
        }
        return tickets.TicketRequest(
            source=TicketSource.GATE_FAILURE,
            source_key=f"{gate_source_prefix(gate.pk, deliverable.pk)}{self.evaluation.pk}",
            title=f"{gate.name} failed for {deliverable.deliverable_id}",
            event_type=event.event_type,
            deliverable=deliverable,
            context=context,
            priority=gate.priority,
            # Opened when the failure was judged, as one by one: before the next verdict.
            at=self.evaluation.evaluated_at,
        )


def open_failure_tickets(organization, failures: list[Failure]) -> list[tickets.Opened]:
    """The failures' tickets, opened together (``tickets.open_tickets``), their context
    completed with the owner and deadline the owner map chose: a fixed number of statements
    for any number of failures. A failure nobody owns gets ``ticket_error`` in its
    evaluation's details (not saved here) rather than losing its verdict: the owner map
    needs a rule. Link each ticket (``link_failure_tickets``) once its evaluation is stored.
    """
    if not failures:
        return []
    latest = last_events_of(organization, {f.deliverable.pk for f in failures})
    opened = tickets.open_tickets(
        organization, [f.request(latest[f.deliverable.pk]) for f in failures]
    )
    created = [o.ticket for o in opened if o.created]
    now = timezone.now()
    for ticket in created:
        ticket.updated_at = now
        ticket.context = {
            **ticket.context,
            "owner_role": ticket.owner_role.name,
            "sla_deadline": ticket.resolve_due_at.isoformat(),
        }
    Ticket.objects.bulk_update(created, ["context", "updated_at"])
    for failure, outcome in zip(failures, opened, strict=True):
        if outcome.ticket is None:
            evaluation = failure.evaluation
            evaluation.details = {**evaluation.details, "ticket_error": outcome.no_owner}
    return opened


def link_failure_tickets(pairs: list[tuple[Failure, tickets.Opened]]) -> None:
    """Which gate, deliverable and evaluation opened each ticket (one INSERT; a ticket
    linked already keeps its link)."""
    GateTicketLink.objects.bulk_create(
        [
            GateTicketLink(
                organization_id=opened.ticket.organization_id,
                ticket=opened.ticket,
                gate=failure.gate,
                deliverable=failure.deliverable,
                evaluation=failure.evaluation,
            )
            for failure, opened in pairs
            if opened.ticket is not None
        ],
        ignore_conflicts=True,
    )


def _open_failure_ticket(gate, event, deliverable, evaluation, result) -> None:
    active = active_failure_tickets(gate, deliverable).first()
    trail.record_many(
        deliverable.organization, [failed_entry(gate, event, deliverable, evaluation, result)]
    )
    if active is not None:
        evaluation.ticket = active
        evaluation.save(update_fields=["ticket"])
        return
    failure = Failure(gate, event, deliverable, evaluation, result)
    [opened] = open_failure_tickets(deliverable.organization, [failure])
    link_failure_tickets([(failure, opened)])
    evaluation.ticket = opened.ticket
    evaluation.save(update_fields=["ticket", "details"])


def failed_later(gate, event, deliverable) -> bool:
    """Whether the gate failed the deliverable on an event after ``event``: then a pass on
    ``event`` (processed late, or replayed) fixes nothing newer and resolves nothing."""
    return GateEvaluation.objects.filter(
        organization=event.organization_id,
        gate=gate,
        deliverable=deliverable,
        outcome=Outcome.FAIL,
        event__occurred_at__gt=event.occurred_at,
    ).exists()


def _resolve_failure_tickets(gate, event, deliverable, evaluation) -> None:
    """A pass resolves the gate's open tickets for the deliverable, unless a later event
    failed (``failed_later``)."""
    active = list(active_failure_tickets(gate, deliverable))
    if active and failed_later(gate, event, deliverable):
        return
    for ticket in active:
        tickets.resolve(
            ticket,
            tickets.MESHLINE,
            note=f"{gate.name} passed on event {event.pk} ({event.event_type}).",
        )
    if active:
        trail.record(
            deliverable.organization,
            "gate.passed",
            key=f"gate:{gate.pk}:evaluation:{evaluation.pk}",
            deliverable=deliverable,
            payload={
                "gate": gate.slug,
                "evaluation_id": str(evaluation.pk),
                "resolved_tickets": [str(t.pk) for t in active],
            },
        )


def latest_outcome(gate_id, deliverable_id) -> str | None:
    return (
        GateEvaluation.objects.filter(gate=gate_id, deliverable=deliverable_id)
        .order_by("-evaluated_at")
        .values_list("outcome", flat=True)
        .first()
    )


def resolve_guard(ticket, waiver_reason: str) -> None:
    """A gate ticket cannot be closed by hand while its gate still fails, unless waived."""
    link = GateTicketLink.objects.filter(ticket=ticket, deliverable__isnull=False).first()
    if link is None:  # not a gate failure ticket
        return
    if (
        latest_outcome(link.gate_id, link.deliverable_id) == Outcome.FAIL
        and not waiver_reason.strip()
    ):
        raise tickets.TicketError(
            "The gate still fails for this deliverable: fix it and resubmit, or waive the "
            "ticket with a reason.",
            "gate_still_failing",
            field="waiver_reason",
        )
