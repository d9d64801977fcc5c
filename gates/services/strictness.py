"""Over-strictness: an enforced gate failing too often switches itself to monitor."""

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from gates.models import (
    Gate,
    GateEvaluation,
    GateMode,
    GateTicketLink,
    Outcome,
)
from owners.models import Priority, TicketSource
from owners.services import tickets


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
