"""Over-strictness: an enforced gate failing too often switches itself to monitor.

The fail rate over the last 24 hours is read from per-minute counts (``GateVerdictCount``),
not from the evaluations: a busy gate has millions a day. Only the part of the window that
does not cover a whole minute is read from the evaluations, so the rate stays exact.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q, Sum
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
    return verdict_counts_many({gate: since})[gate.pk]


def verdict_counts_many(since_by_gate: dict) -> dict[int, tuple[int, int]]:
    """``verdict_counts`` of several gates of one organization, each from its own moment,
    in two statements: one aggregate over the counts and one over the edge minutes, with
    a filtered sum per gate."""
    if not since_by_gate:
        return {}
    organization_id = next(iter(since_by_gate)).organization_id
    whole = {gate.pk: _ceil_minute(since) for gate, since in since_by_gate.items()}
    counted = GateVerdictCount.objects.filter(
        organization=organization_id, gate__in=list(whole), minute__gte=min(whole.values())
    ).aggregate(
        **{
            f"{kind}_{pk}": Sum(kind, filter=Q(gate=pk, minute__gte=start))
            for pk, start in whole.items()
            for kind in ("evaluated", "failed")
        }
    )
    totals = {pk: [counted[f"evaluated_{pk}"] or 0, counted[f"failed_{pk}"] or 0] for pk in whole}
    edges = {gate.pk: (since, whole[gate.pk]) for gate, since in since_by_gate.items()}
    edges = {pk: (since, end) for pk, (since, end) in edges.items() if end > since}
    if edges:
        edge = (
            GateEvaluation.objects.filter(
                organization=organization_id,
                gate__in=list(edges),
                mode=GateMode.ENFORCE,
                evaluated_at__gte=min(since for since, _end in edges.values()),
                evaluated_at__lt=max(end for _since, end in edges.values()),
            )
            .exclude(outcome=Outcome.ERROR)
            .aggregate(**_edge_counts(edges))
        )
        for pk in edges:
            totals[pk][0] += edge[f"total_{pk}"]
            totals[pk][1] += edge[f"failed_{pk}"]
    return {pk: (total, failed) for pk, (total, failed) in totals.items()}


def _edge_counts(edges: dict) -> dict:
    """Per gate, its evaluations in [since, end) and the failed ones among them."""
    counts = {}
    for pk, (since, end) in edges.items():
        in_edge = Q(gate=pk, evaluated_at__gte=since, evaluated_at__lt=end)
        counts[f"total_{pk}"] = Count("pk", filter=in_edge)
        counts[f"failed_{pk}"] = Count("pk", filter=in_edge & Q(outcome__in=FAILED))
    return counts


def check_strictness(gate: Gate, now: datetime | None = None) -> bool:
    """Switch an enforced gate failing too often to monitor and open a triage ticket."""
    return bool(check_strictness_many([gate], now))


def check_strictness_many(gates, now: datetime | None = None) -> list[Gate]:
    """``check_strictness`` for the gates a batch judged (one organization's): their rates
    read in three statements whatever their number; returns the gates switched."""
    now = now or timezone.now()
    enforced = {gate.pk: gate for gate in gates if gate.mode == GateMode.ENFORCE}
    if not enforced:
        return []
    since = now - WINDOW
    # Count from the latest restore: the failures that tripped a gate must not trip it
    # again on the next evaluation. Evaluations made while it was not enforced are left out.
    last_not_enforced = dict(
        Gate.history.filter(
            organization_id=next(iter(enforced.values())).organization_id,
            id__in=list(enforced),
            history_date__gte=since,
        )
        .exclude(mode=GateMode.ENFORCE)
        .order_by()
        .values("id")
        .annotate(last=Max("history_date"))
        .values_list("id", "last")
    )
    counts = verdict_counts_many(
        {gate: max(since, last_not_enforced.get(pk) or since) for pk, gate in enforced.items()}
    )
    return [gate for pk, gate in enforced.items() if _switch_if_too_strict(gate, *counts[pk], now)]


def _switch_if_too_strict(gate: Gate, total: int, failed: int, now: datetime) -> bool:
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
