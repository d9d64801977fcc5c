"""Over-strictness: an enforced gate failing too often switches itself to monitor.

The fail rate over the last 24 hours is read from per-minute counts (``GateVerdictCount``),
not from the evaluations: a busy gate has millions a day. Only the part of the window that
does not cover a whole minute is read from the evaluations, so the rate stays exact.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from gates.models import (
    Gate,
    GateEvaluation,
    GateMode,
    GateTicketLink,
    GateVerdictCount,
    Outcome,
)
from meshline import counters
from owners.models import Priority, TicketSource
from owners.services import tickets

WINDOW = timedelta(hours=24)
MINUTE = timedelta(minutes=1)
FAILED = (Outcome.FAIL, Outcome.MONITOR)
COMPACT_CHUNK = 5_000


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime) -> datetime:
    floored = floor_minute(moment)
    return floored if floored == moment else floored + MINUTE


def count_verdicts(evaluations) -> None:
    """Add new evaluations to their gates' per-minute counts (one INSERT). Every writer of
    evaluations calls this in the transaction that writes them; only enforced verdicts
    that are not errors count, as ``check_strictness`` reads them."""
    evaluated: Counter = Counter()
    failed: Counter = Counter()
    organizations = {}
    for evaluation in evaluations:
        if evaluation.mode != GateMode.ENFORCE or evaluation.outcome == Outcome.ERROR:
            continue
        bucket = (evaluation.gate_id, floor_minute(evaluation.evaluated_at))
        organizations[bucket] = evaluation.organization_id
        evaluated[bucket] += 1
        failed[bucket] += evaluation.outcome in FAILED
    GateVerdictCount.objects.bulk_create(
        GateVerdictCount(
            organization_id=organizations[bucket],
            gate_id=bucket[0],
            minute=bucket[1],
            evaluated=n,
            failed=failed[bucket],
        )
        for bucket, n in evaluated.items()
    )


def compact(organization, now: datetime | None = None, chunk: int = COMPACT_CHUNK) -> int:
    """Fold the organization's deltas into one row per gate and minute, and drop minutes
    older than any window reads. Returns how many deltas were folded."""
    now = now or timezone.now()
    folded = counters.fold(
        GateVerdictCount, organization, ("gate_id", "minute"), ("evaluated", "failed"), chunk
    )
    GateVerdictCount.objects.filter(
        organization=organization, compacted=True, minute__lt=now - 2 * WINDOW
    ).delete()
    return folded


def verdict_counts(gate: Gate, since: datetime) -> tuple[int, int]:
    """(evaluated, failed) enforced verdicts of ``gate`` at or after ``since``, errors left
    out: whole minutes from the counts, the minute ``since`` falls in from the evaluations."""
    whole_minutes_from = _ceil_minute(since)
    counted = GateVerdictCount.objects.filter(
        organization=gate.organization_id, gate=gate, minute__gte=whole_minutes_from
    ).aggregate(evaluated=Sum("evaluated"), failed=Sum("failed"))
    total, failed = counted["evaluated"] or 0, counted["failed"] or 0
    if whole_minutes_from > since:
        edge = (
            GateEvaluation.objects.filter(
                organization=gate.organization_id,
                gate=gate,
                mode=GateMode.ENFORCE,
                evaluated_at__gte=since,
                evaluated_at__lt=whole_minutes_from,
            )
            .exclude(outcome=Outcome.ERROR)
            .aggregate(total=Count("pk"), failed=Count("pk", filter=Q(outcome__in=FAILED)))
        )
        total, failed = total + edge["total"], failed + edge["failed"]
    return total, failed


def check_strictness(gate: Gate, now: datetime | None = None) -> bool:
    """Switch an enforced gate failing too often to monitor and open a triage ticket."""
    now = now or timezone.now()
    if gate.mode != GateMode.ENFORCE:
        return False
    since = now - WINDOW
    # Count from the latest restore: the failures that tripped the gate must not trip it
    # again on the next evaluation. Evaluations made while it was not enforced are left out.
    last_not_enforced = (
        gate.history.filter(history_date__gte=since)
        .exclude(mode=GateMode.ENFORCE)
        .values_list("history_date", flat=True)
        .first()
    )
    total, failed = verdict_counts(gate, max(since, last_not_enforced or since))
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
            ticket, _created = tickets.open_ticket(
                gate.organization,
                source=TicketSource.TRIAGE,
                source_key=f"gate:{gate.pk}:triage:{now.isoformat()}",
                title=f"Triage gate '{gate.name}': too many failures",
                event_type=(gate.event_types or [""])[0],
                context={
                    "gate": gate.name,
                    "reason": reason,
                    "remediation": "Check the gate's parameters against recent failures, "
                    "then restore it to enforce in the admin.",
                },
                priority=Priority.P2,
            )
            GateTicketLink.objects.get_or_create(
                ticket=ticket, defaults={"organization_id": gate.organization_id, "gate": gate}
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
