"""Gate workflows: pick the gates an event triggers, evaluate, act on the verdict.

Evaluation runs in a Celery task per (gate, event), under a lock on the deliverable row,
so two verdicts for one deliverable never race to open two tickets. A verdict is stored
once (unique per gate, event and deliverable): a retried task returns the stored one.
"""

import time
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Prefetch, Q
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
    Outcome,
    SitemapTimer,
    TimerStatus,
)
from owners.models import ACTIVE_STATUSES, Ticket, TicketSource
from owners.services import tickets

HISTORY_LIMIT = 50
DEFAULT_SITEMAP_HOURS = 24


def gate_source_prefix(gate_id, deliverable_id) -> str:
    return f"gate:{gate_id}:deliverable:{deliverable_id}:"


def applicable_gates(event: Event, deliverable: Deliverable) -> list[Gate]:
    gates = Gate.objects.filter(organization=event.organization_id).exclude(mode=GateMode.OFF)
    tier = deliverable.client.tier if deliverable.client_id else ""
    return [g for g in gates if g.applies_to(event.event_type, tier, deliverable.type)]


def on_event_processed(event: Event, deliverable: Deliverable) -> None:
    """Processing step: start/settle sitemap timers, and queue the other gates' evaluations."""
    if event.source == EventSource.MESHLINE:
        return
    if event.event_type == "sitemap.submitted":
        settle_sitemap_timers(event)
    to_evaluate = []
    for gate in applicable_gates(event, deliverable):
        if gate.check_name == CheckName.SITEMAP_SYNC:
            if event.event_type == "page.published":
                start_sitemap_timer(gate, event, deliverable)
        else:
            to_evaluate.append(gate.pk)
    if to_evaluate:
        organization_id, event_id = event.organization_id, str(event.pk)

        def enqueue():
            from gates.tasks import evaluate_gate

            for gate_id in to_evaluate:
                try:
                    evaluate_gate.apply_async(
                        kwargs={
                            "organization_id": organization_id,
                            "gate_id": gate_id,
                            "event_id": event_id,
                        }
                    )
                except Exception:  # broker down: gates.tasks.sweep_unevaluated re-queues
                    return

        transaction.on_commit(enqueue)


def event_view(event: Event) -> checks.EventView:
    """What a check may see of a stored event."""
    return checks.EventView(str(event.pk), event.event_type, event.occurred_at, event.payload)


def history_types(gate: Gate) -> set[str] | None:
    """The event types a check reads from the history (None: it reads none in particular).

    Only the latest HISTORY_LIMIT events are passed: without this filter, a live page's daily
    search exports would push its accepted scope (or its baseline screenshot) out of reach.
    """
    if gate.check_name == CheckName.SCOPE_LIMITS:
        parameters = gate.parameters or {}
        revisions = parameters.get("revision_event_types", REVISION_EVENT_TYPES)
        return {"scope.accepted", *revisions}
    if gate.check_name == CheckName.SCREENSHOT_REGRESSION:
        return set(gate.event_types)
    return None


def history_for(event: Event, event_types: set[str] | None = None) -> tuple[checks.EventView, ...]:
    earlier = (
        Event.objects.filter(
            organization=event.organization_id,
            deliverable=event.deliverable_id,
            occurred_at__lte=event.occurred_at,
        )
        .exclude(pk=event.pk)
        .exclude(source=EventSource.MESHLINE)
    )
    if event_types is not None:
        earlier = earlier.filter(event_type__in=event_types)
    earlier = earlier.order_by("-occurred_at", "-id")[:HISTORY_LIMIT]
    return tuple(event_view(e) for e in reversed(list(earlier)))


def evaluate(gate: Gate, event: Event) -> GateEvaluation:
    """Evaluate once; act on the verdict (ticket, auto-resolve, strictness)."""
    with transaction.atomic():
        deliverable = (
            Deliverable.objects.select_for_update(of=("self",))
            .select_related("client")
            .get(pk=event.deliverable_id)
        )
        existing = GateEvaluation.objects.filter(
            organization=event.organization_id, gate=gate, event=event, deliverable=deliverable
        ).first()
        if existing is not None:
            return existing
        check_input = checks.CheckInput(
            event=event_view(event),
            deliverable_type=deliverable.type,
            deliverable_url=deliverable.url,
            history=history_for(event, history_types(gate)),
            parameters=gate.parameters or {},
        )
        started = time.perf_counter()  # the check's own time, not the history query's
        result = checks.run(gate.check_name, check_input)
        duration_ms = (time.perf_counter() - started) * 1000
        evaluation = record_verdict(gate, event, deliverable, result, duration_ms)
    check_strictness(gate)
    return evaluation


def record_verdict(
    gate,
    event,
    deliverable,
    result: checks.CheckResult,
    duration_ms: float,
    at: datetime | None = None,
) -> GateEvaluation:
    """Store the verdict; an enforced failure opens (or keeps) the ticket, a pass resolves it."""
    if result.error:
        outcome = Outcome.ERROR
    elif result.passed:
        outcome = Outcome.PASS
    else:
        outcome = Outcome.FAIL if gate.mode == GateMode.ENFORCE else Outcome.MONITOR
    evaluation = GateEvaluation.objects.create(
        organization_id=event.organization_id,
        gate=gate,
        event=event,
        deliverable=deliverable,
        outcome=outcome,
        mode=gate.mode,
        reasons=result.reasons,
        details=result.details,
        billing_flag=result.billing_flag,
        duration_ms=round(duration_ms, 3),
        evaluated_at=at or timezone.now(),
    )
    for artifact in result.artifacts:
        Artifact.objects.create(
            organization_id=event.organization_id,
            evaluation=evaluation,
            name=artifact.name,
            content_type=artifact.content_type,
            data=artifact.data,
        )
    if outcome == Outcome.FAIL:
        _open_failure_ticket(gate, event, deliverable, evaluation, result)
    elif outcome == Outcome.PASS:
        _resolve_failure_tickets(gate, event, deliverable, evaluation)
    return evaluation


def _last_events(deliverable: Deliverable, limit: int = 3) -> list[dict]:
    events = (
        Event.objects.filter(organization=deliverable.organization_id, deliverable=deliverable)
        .exclude(source=EventSource.MESHLINE)
        .order_by("-occurred_at", "-id")[:limit]
    )
    return [
        {
            "id": str(e.pk),
            "event_type": e.event_type,
            "occurred_at": e.occurred_at.isoformat(),
            "actor": f"{e.actor_role}:{e.actor_id}",
        }
        for e in events
    ]


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


def _open_failure_ticket(gate, event, deliverable, evaluation, result) -> None:
    prefix = gate_source_prefix(gate.pk, deliverable.pk)
    active = Ticket.objects.filter(
        organization=event.organization_id,
        source=TicketSource.GATE_FAILURE,
        source_key__startswith=prefix,
        status__in=ACTIVE_STATUSES,
    ).first()
    trail.record(
        deliverable.organization,
        "gate.failed",
        key=f"gate:{gate.pk}:evaluation:{evaluation.pk}",
        deliverable=deliverable,
        payload={
            "gate": gate.slug,
            "check": gate.check_name,
            "reasons": result.reasons,
            "evaluation_id": str(evaluation.pk),
            "event_id": str(event.pk),
        },
    )
    if active is not None:
        evaluation.ticket = active
        evaluation.save(update_fields=["ticket"])
        return
    context = {
        "gate_id": gate.pk,
        "gate": gate.name,
        "check": gate.check_name,
        "evaluation_id": str(evaluation.pk),
        "event_id": str(event.pk),
        "reasons": result.reasons,
        "details": result.details,
        "artifacts": [a.name for a in result.artifacts]
        or [result.details.get("artifact") or "event payload"],
        "page_url": _page_url(event, deliverable),
        "last_events": _last_events(deliverable),
        "remediation": gate.playbook,
        "billing_flag": result.billing_flag,
    }
    try:
        ticket, _created = tickets.open_ticket(
            deliverable.organization,
            source=TicketSource.GATE_FAILURE,
            source_key=f"{prefix}{evaluation.pk}",
            title=f"{gate.name} failed for {deliverable.deliverable_id}",
            event_type=event.event_type,
            deliverable=deliverable,
            context=context,
            priority=gate.priority,
        )
    except tickets.NoOwnerError as exc:
        # Nobody to assign: keep the verdict rather than roll it back, which would fail the
        # task and have sweep_unevaluated retry it forever. The owner map needs a rule.
        evaluation.details = {**evaluation.details, "ticket_error": str(exc)}
        evaluation.save(update_fields=["details"])
        return
    ticket.context = {
        **ticket.context,
        "owner_role": ticket.owner_role.name,
        "sla_deadline": ticket.resolve_due_at.isoformat(),
    }
    ticket.save(update_fields=["context", "updated_at"])
    evaluation.ticket = ticket
    evaluation.save(update_fields=["ticket"])


def _resolve_failure_tickets(gate, event, deliverable, evaluation) -> None:
    active = list(
        Ticket.objects.filter(
            organization=event.organization_id,
            source=TicketSource.GATE_FAILURE,
            source_key__startswith=gate_source_prefix(gate.pk, deliverable.pk),
            status__in=ACTIVE_STATUSES,
        )
    )
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
    if ticket.source != TicketSource.GATE_FAILURE or not ticket.source_key.startswith("gate:"):
        return
    parts = ticket.source_key.split(":")
    gate_id, deliverable_id = parts[1], parts[3]
    if latest_outcome(gate_id, deliverable_id) == Outcome.FAIL and not waiver_reason.strip():
        raise tickets.TicketError(
            "The gate still fails for this deliverable: fix it and resubmit, or waive the "
            "ticket with a reason.",
            "gate_still_failing",
        )


def pass_rates(organization, since: datetime) -> dict[int, dict]:
    """Per gate: evaluations and failures since ``since`` (monitor counts as a failure)."""
    rows = (
        GateEvaluation.objects.filter(organization=organization, evaluated_at__gte=since)
        .exclude(outcome=Outcome.ERROR)
        .values("gate")
        .annotate(total=Count("pk"), failed=Count("pk", filter=~Q(outcome=Outcome.PASS)))
    )
    return {
        row["gate"]: {
            "total": row["total"],
            "failed": row["failed"],
            "pass_rate": (row["total"] - row["failed"]) / row["total"] if row["total"] else None,
        }
        for row in rows
    }


def check_strictness(gate: Gate, now: datetime | None = None) -> bool:
    """Switch an enforced gate failing too often to monitor and open a triage ticket."""
    now = now or timezone.now()
    if gate.mode != GateMode.ENFORCE:
        return False
    since = now - timedelta(hours=24)
    # Count from the latest restore: the failures that tripped the gate must not trip it
    # again on the next evaluation. Evaluations made while it was not enforced are left out.
    last_not_enforced = (
        gate.history.filter(history_date__gte=since)
        .exclude(mode=GateMode.ENFORCE)
        .values_list("history_date", flat=True)
        .first()
    )
    stats = (
        GateEvaluation.objects.filter(
            gate=gate,
            mode=GateMode.ENFORCE,
            evaluated_at__gte=max(since, last_not_enforced or since),
        )
        .exclude(outcome=Outcome.ERROR)
        .aggregate(
            total=Count("pk"),
            failed=Count("pk", filter=Q(outcome__in=[Outcome.FAIL, Outcome.MONITOR])),
        )
    )
    total, failed = stats["total"], stats["failed"]
    if total < gate.min_evaluations or failed / total <= gate.max_fail_rate:
        return False
    with transaction.atomic():
        gate = Gate.objects.select_for_update().get(pk=gate.pk)
        if gate.mode != GateMode.ENFORCE:
            return False
        reason = (
            f"Failed {failed} of {total} evaluations ({failed / total:.0%}) in the last 24 h, "
            f"above {gate.max_fail_rate:.0%}: switched to monitor on {now:%Y-%m-%d %H:%M} UTC."
        )
        try:
            # One triage ticket per switch (a restored gate may trip again within the hour).
            tickets.open_ticket(
                gate.organization,
                source=TicketSource.TRIAGE,
                source_key=f"gate:{gate.pk}:triage:{now.isoformat()}",
                title=f"Triage gate '{gate.name}': too many failures",
                event_type=(gate.event_types or [""])[0],
                context={
                    "gate_id": gate.pk,
                    "gate": gate.name,
                    "reason": reason,
                    "remediation": "Check the gate's parameters against recent failures, "
                    "then restore it to enforce in the admin.",
                },
                priority="p2",
            )
        except tickets.NoOwnerError as exc:
            # Still switch: a gate must stop flooding people even if nobody owns triage.
            reason = f"{reason} No triage ticket: {exc}"
        gate.mode = GateMode.MONITOR
        gate.auto_monitored_at = now
        gate.auto_monitor_reason = reason
        # The history's change reason holds 100 characters; the full reason is on the gate.
        gate._change_reason = f"auto monitor: failed {failed} of {total} in 24 h"
        gate.save()
    return True


def restore_gate(gate: Gate) -> Gate:
    gate.mode = GateMode.ENFORCE
    gate.auto_monitored_at = None
    gate.auto_monitor_reason = ""
    gate._change_reason = "restored to enforce"
    gate.save()
    return gate


# --- sitemap timers -----------------------------------------------------------------------


def start_sitemap_timer(gate: Gate, event: Event, deliverable: Deliverable) -> SitemapTimer | None:
    url = event.payload.get("url") or deliverable.url
    if not url:
        return None
    hours = float((gate.parameters or {}).get("deadline_hours", DEFAULT_SITEMAP_HOURS))
    timer, _ = SitemapTimer.objects.get_or_create(
        organization_id=event.organization_id,
        gate=gate,
        started_by=event,
        defaults={
            "deliverable": deliverable,
            "url": url,
            "due_at": event.occurred_at + timedelta(hours=hours),
        },
    )
    return timer


def settle_sitemap_timers(event: Event) -> int:
    """A sitemap listing a waiting timer's URL before its deadline passes that gate."""
    urls = set(event.payload.get("urls") or [])
    with transaction.atomic():
        # Locked (and the WAITING condition re-checked after the lock): the expiry sweep may be
        # failing the same timer right now, and a timer must get exactly one verdict.
        waiting = (
            SitemapTimer.objects.filter(
                organization=event.organization_id, status=TimerStatus.WAITING, url__in=urls
            )
            .select_related("gate", "deliverable")
            .select_for_update(of=("self",))
        )
        settled = 0
        for timer in waiting:
            if event.occurred_at > timer.due_at:
                continue  # too late: the expiry sweep fails it
            timer.status = TimerStatus.SATISFIED
            timer.settled_by = event
            timer.save(update_fields=["status", "settled_by"])
            if GateEvaluation.objects.filter(
                organization=event.organization_id,
                gate=timer.gate,
                event=event,
                deliverable=timer.deliverable,
            ).exists():  # one sitemap settling two timers of one deliverable: one verdict
                settled += 1
                continue
            record_verdict(
                timer.gate,
                event,
                timer.deliverable,
                checks.CheckResult(
                    True, details={"url": timer.url, "due_at": timer.due_at.isoformat()}
                ),
                0.0,
            )
            settled += 1
        return settled


def expire_sitemap_timers(organization, now: datetime | None = None) -> int:
    """Fail every waiting timer past its deadline (idempotent: each timer expires once)."""
    now = now or timezone.now()
    expired = 0
    ids = list(
        SitemapTimer.objects.filter(
            organization=organization, status=TimerStatus.WAITING, due_at__lte=now
        ).values_list("pk", flat=True)[:1000]
    )
    gates = {}
    for timer_id in ids:
        with transaction.atomic():
            timer = (
                SitemapTimer.objects.select_for_update(of=("self",))
                .select_related("gate", "deliverable", "started_by")
                .filter(pk=timer_id, status=TimerStatus.WAITING)
                .first()
            )
            if timer is None:
                continue
            timer.status = TimerStatus.EXPIRED
            timer.save(update_fields=["status"])
            record_verdict(
                timer.gate,
                timer.started_by,
                timer.deliverable,
                checks.CheckResult.fail(
                    f"No sitemap listing {timer.url} arrived by {timer.due_at:%Y-%m-%d %H:%M} UTC.",
                    details={
                        "url": timer.url,
                        "due_at": timer.due_at.isoformat(),
                        "artifact": "sitemap listing",
                    },
                ),
                0.0,
                at=now,
            )
            gates[timer.gate_id] = timer.gate
            expired += 1
    # Expiries are failures like any other: a sitemap gate failing too often must switch to
    # monitor too. (Settlements are passes: they cannot make a gate too strict.)
    for gate in gates.values():
        check_strictness(gate, now)
    return expired


# --- visibility -----------------------------------------------------------------------------


def evaluations_for(deliverable: Deliverable):
    return (
        GateEvaluation.objects.filter(
            organization=deliverable.organization_id, deliverable=deliverable
        )
        .select_related("gate")
        # Names and links only: the image bytes are served by their own view.
        .prefetch_related(Prefetch("artifacts", queryset=Artifact.objects.defer("data")))
        .order_by("evaluated_at")
    )


def trail_section(deliverable: Deliverable) -> list[dict]:
    """Gate evaluations for the deliverable trail API."""
    return [
        {
            "id": str(e.pk),
            "gate": e.gate.slug,
            "check": e.gate.check_name,
            "event_id": str(e.event_id),
            "outcome": e.outcome,
            "mode": e.mode,
            "reasons": e.reasons,
            "billing_flag": e.billing_flag,
            "duration_ms": e.duration_ms,
            "evaluated_at": e.evaluated_at.isoformat(),
            "ticket_id": str(e.ticket_id) if e.ticket_id else None,
            "artifacts": [a.name for a in e.artifacts.all()],
        }
        for e in evaluations_for(deliverable)
    ]


def portal_section(request, deliverable: Deliverable) -> dict:
    return {"evaluations": list(evaluations_for(deliverable))}
