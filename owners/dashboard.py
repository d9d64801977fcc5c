"""The owners panel of the dashboard: open and overdue work by owner, MTTR, SLA compliance."""

import statistics

from django.db.models import Count, Q
from django.urls import reverse

from owners.models import ACTIVE_STATUSES, Ticket, TicketStatus


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def tickets_panel(request, scope) -> dict:
    tickets = Ticket.objects.filter(organization=scope.organization)
    if scope.client:
        tickets = tickets.filter(deliverable__client=scope.client)
    now = scope.now
    overdue = Q(status=TicketStatus.OPEN, respond_due_at__lt=now) | Q(resolve_due_at__lt=now)
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
    resolved = list(
        tickets.filter(status=TicketStatus.RESOLVED, resolved_at__gte=scope.since).values_list(
            "opened_at", "resolved_at", "resolve_due_at"
        )
    )
    durations = [(closed - opened).total_seconds() for opened, closed, _due in resolved]
    in_time = sum(1 for _opened, closed, due in resolved if due is None or closed <= due)
    board = reverse("board", args=[scope.organization.slug])
    ticket_list = reverse("ticket-list", args=[scope.organization.slug])
    return {
        "open": totals["open"],
        "overdue": totals["overdue"],
        "by_role": by_role,
        "by_person": by_person,
        "resolved": len(resolved),
        "mttr_mean": _duration_text(statistics.fmean(durations) if durations else None),
        "mttr_median": _duration_text(statistics.median(durations) if durations else None),
        "sla_compliance": round(100 * in_time / len(resolved), 1) if resolved else None,
        "board_url": board,
        "list_url": ticket_list,
        "client_query": scope.query(),
    }
