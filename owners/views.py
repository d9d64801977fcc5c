"""Portal pages of the owners app: remediation board, tickets, my queue, rotas.

Actions answer htmx with the ticket card partial (swapped in place) and plain form posts
with a redirect, so the board works without JavaScript too. Viewers read; they cannot act.
"""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_POST

from meshline import extensions
from meshline.ids import uuid_or_404
from owners import rota_schedule
from owners.filters import TicketFilter
from owners.forms import CancelForm, ReassignForm, ResolveForm
from owners.models import ACTIVE_STATUSES, Rota, Ticket, TicketStatus
from owners.services import rotas, tickets
from owners.services.schedules import rota_spec

BOARD_COLUMN_SIZE = 25
PAGE_SIZE = 50


def _tickets(request):
    return Ticket.objects.filter(organization=request.organization).select_related(
        "owner_role", "assignee", "deliverable", "deliverable__client"
    )


def board(request, org_slug):
    """Tickets by status, filtered; each column shows the most urgent first."""
    filterset = TicketFilter(request.GET, queryset=_tickets(request))
    base = filterset.qs
    columns = []
    for status, label, order in (
        (TicketStatus.OPEN, "Open", "respond_due_at"),
        (TicketStatus.ACKNOWLEDGED, "Acknowledged", "resolve_due_at"),
        (TicketStatus.RESOLVED, "Resolved (7 days)", "-resolved_at"),
    ):
        column = base.filter(status=status)
        if status == TicketStatus.RESOLVED:
            column = column.filter(resolved_at__gte=timezone.now() - timedelta(days=7))
        rows = list(column.order_by(order, "pk")[: BOARD_COLUMN_SIZE + 1])
        columns.append(
            {
                "status": status,
                "label": label,
                "tickets": rows[:BOARD_COLUMN_SIZE],
                "more": len(rows) > BOARD_COLUMN_SIZE,
            }
        )
    return render(
        request,
        "owners/board.html",
        {"filter": filterset, "columns": columns, "querystring": request.GET.urlencode()},
    )


def ticket_list(request, org_slug):
    filterset = TicketFilter(request.GET, queryset=_tickets(request))
    page = Paginator(filterset.qs.order_by("-opened_at", "pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "owners/ticket_list.html",
        {"filter": filterset, "page": page, "querystring": params.urlencode()},
    )


def _get_ticket(request, ticket_id) -> Ticket:
    return get_object_or_404(_tickets(request), pk=uuid_or_404(ticket_id))


def ticket_detail(request, org_slug, ticket_id):
    ticket = _get_ticket(request, ticket_id)
    return render(request, "owners/ticket_detail.html", _ticket_context(request, ticket))


def _ticket_context(request, ticket, with_history=True, **forms):
    """The ticket page's context; htmx partials (card, actions) show no history: skip it."""
    from deliveries.models import Event

    events = []
    if with_history and ticket.deliverable_id:
        events = list(
            Event.objects.filter(
                organization=request.organization,
                deliverable=ticket.deliverable_id,
                payload__ticket_id=str(ticket.pk),
            ).order_by("occurred_at", "id")
        )
    return {
        "ticket": ticket,
        "events": events,
        "resolve_form": forms.get("resolve_form") or ResolveForm(),
        "reassign_form": forms.get("reassign_form")
        or ReassignForm(organization=request.organization),
        "cancel_form": forms.get("cancel_form") or CancelForm(),
        "can_act": request.membership.can_act,
        "can_close": request.membership.can_close_tickets,
    }


def _respond(request, ticket, error_forms=None, status=200):
    """htmx: the card, swapped in place. Plain POST: back to where the user was."""
    ticket = _get_ticket(request, ticket.pk)
    if request.headers.get("HX-Request"):
        template = (
            "owners/partials/ticket_actions.html"
            if request.headers.get("HX-Target", "").startswith("actions-")
            else "owners/partials/ticket_card.html"
        )
        context = _ticket_context(request, ticket, with_history=False, **(error_forms or {}))
        return render(request, template, context, status=status)
    if error_forms:
        context = _ticket_context(request, ticket, **error_forms)
        return render(request, "owners/ticket_detail.html", context, status=status)
    next_url = request.POST.get("next")
    if next_url and next_url.startswith(f"/o/{request.organization.slug}/"):
        return redirect(next_url)
    return redirect("ticket-detail", org_slug=request.organization.slug, ticket_id=ticket.pk)


def _require_actor(request, closing: bool = False):
    if not request.membership.can_act:
        raise PermissionDenied("Viewers cannot change tickets.")
    if closing and not request.membership.can_close_tickets:
        raise PermissionDenied("Your role cannot resolve or cancel tickets.")
    return tickets.Actor.for_user(request.user)


@require_POST
def ticket_acknowledge(request, org_slug, ticket_id):
    actor = _require_actor(request)
    ticket = _get_ticket(request, ticket_id)
    try:
        tickets.acknowledge(ticket, actor)
        messages.success(request, f"Acknowledged: {ticket.title}")
    except tickets.TicketError as exc:
        messages.error(request, str(exc))
    return _respond(request, ticket)


@require_POST
def ticket_reassign(request, org_slug, ticket_id):
    actor = _require_actor(request)
    ticket = _get_ticket(request, ticket_id)
    form = ReassignForm(request.POST, organization=request.organization)
    if not form.is_valid():
        return _respond(request, ticket, {"reassign_form": form}, status=400)
    try:
        tickets.reassign(ticket, actor, form.cleaned_data["assignee"])
        messages.success(request, f"Reassigned to {form.cleaned_data['assignee'].email}")
    except tickets.TicketError as exc:
        form.add_error("assignee", str(exc))
        return _respond(request, ticket, {"reassign_form": form}, status=400)
    return _respond(request, ticket)


@require_POST
def ticket_resolve(request, org_slug, ticket_id):
    actor = _require_actor(request, closing=True)
    ticket = _get_ticket(request, ticket_id)
    form = ResolveForm(request.POST)
    if not form.is_valid():
        return _respond(request, ticket, {"resolve_form": form}, status=400)
    try:
        tickets.resolve(ticket, actor, **form.cleaned_data)
        messages.success(request, f"Resolved: {ticket.title}")
    except tickets.TicketError as exc:
        form.add_error(exc.field, str(exc))
        return _respond(request, ticket, {"resolve_form": form}, status=400)
    return _respond(request, ticket)


@require_POST
def ticket_cancel(request, org_slug, ticket_id):
    actor = _require_actor(request, closing=True)
    ticket = _get_ticket(request, ticket_id)
    form = CancelForm(request.POST)
    if not form.is_valid():
        return _respond(request, ticket, {"cancel_form": form}, status=400)
    try:
        tickets.cancel(ticket, actor, form.cleaned_data["reason"])
    except tickets.TicketError as exc:
        form.add_error("reason", str(exc))
        return _respond(request, ticket, {"cancel_form": form}, status=400)
    return _respond(request, ticket)


def my_queue(request, org_slug):
    """The signed-in person's open work and when they are on duty."""
    now = timezone.now()
    mine = (
        _tickets(request)
        .filter(assignee=request.user, status__in=ACTIVE_STATUSES)
        .order_by("resolve_due_at", "pk")
    )
    page = Paginator(mine, PAGE_SIZE).get_page(request.GET.get("page"))
    duties = []
    for rota in _rotas(request):
        spec = rota_spec(rota)
        upcoming = [
            shift
            for shift in rota_schedule.shifts(spec, now, now + timedelta(days=14))
            if shift.person == request.user.pk
        ]
        if upcoming:
            duties.append(
                {"role": rota.role, "shifts": upcoming[:5], "on_now": upcoming[0].start <= now}
            )
    sections = [
        render_to_string(section.template, section.context(request, now), request)
        for section in extensions.queue_sections
    ]
    return render(
        request,
        "owners/my_queue.html",
        {"page": page, "duties": duties, "now": now, "sections": sections},
    )


def _rotas(request):
    return (
        Rota.objects.filter(organization=request.organization)
        .select_related("role")
        .prefetch_related("layers", "overrides")
        .order_by("role__name")
    )


def rota_overview(request, org_slug):
    """For each role: on duty now and next, upcoming handoffs, coverage problems (7 days)."""
    from django.contrib.auth import get_user_model

    now = timezone.now()
    horizon = now + timedelta(days=7)
    rows, people = [], set()
    for rota in _rotas(request):
        spec = rota_spec(rota)
        current = rota_schedule.on_duty(spec, now)
        upcoming = rota_schedule.handoffs(spec, now, horizon)
        rows.append({"rota": rota, "current": current, "handoffs": upcoming[:6]})
        people.update(p for p in (current.primary, current.backup) if p)
        people.update(h.to_person for h in upcoming[:6] if h.to_person)
    users = get_user_model().objects.in_bulk(people)
    for row in rows:
        row["primary"] = users.get(row["current"].primary)
        row["backup"] = users.get(row["current"].backup)
        row["until"] = row["current"].shift_end if row["current"].shift_end.year < 9000 else None
        row["handoffs"] = [(h.at, users.get(h.to_person)) for h in row["handoffs"]]
    problems = rotas.coverage_report(request.organization, now, horizon)
    return render(
        request,
        "owners/rotas.html",
        {"rows": rows, "problems": problems, "now": now, "horizon": horizon},
    )
