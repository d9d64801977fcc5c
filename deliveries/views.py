"""Portal pages of the deliveries app. The tenant scope is already active (TenantMiddleware)."""

import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from deliveries.dashboard import dashboard_scope
from deliveries.filters import DeliverableFilter, EventFilter
from deliveries.models import Client, Deliverable, Event, EventSource
from deliveries.services import replay
from meshline import extensions
from meshline.ids import uuid_or_404
from meshline.models import Role

PAGE_SIZE = 50
EVENT_PAGE_SIZE = 100


def dashboard(request, org_slug):
    """Where delivery stands: panels from every app, filtered by client and period."""
    scope, form = dashboard_scope(request)
    rendered = [
        render_to_string(panel.template, {**panel.context(request, scope), "scope": scope}, request)
        for panel in extensions.dashboard_panels
    ]
    return render(
        request,
        "deliveries/dashboard.html",
        {"form": form, "scope": scope, "panels": rendered, "clients": _client_options(request)},
    )


def deliverable_list(request, org_slug):
    organization = request.organization
    queryset = Deliverable.objects.filter(organization=organization).select_related("client")
    filterset = DeliverableFilter(request.GET, queryset=queryset)
    filterset.form.fields["client"].widget.attrs["list"] = "client-options"
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "deliveries/deliverable_list.html",
        {
            "filter": filterset,
            "page": page,
            "clients": _client_options(request),
            "querystring": _querystring_without(request, "page"),
        },
    )


def deliverable_detail(request, org_slug, deliverable_id):
    organization = request.organization
    deliverable = get_object_or_404(
        Deliverable.objects.select_related("client"),
        organization=organization,
        deliverable_id=deliverable_id,
    )
    events = (
        Event.objects.filter(organization=organization, deliverable=deliverable)
        .select_related("processing")
        .order_by("occurred_at", "id")
    )
    page = Paginator(events, EVENT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "deliveries/deliverable_detail.html",
        {
            "deliverable": deliverable,
            "page": page,
            # Sections contributed by higher layers (tickets, gate evaluations, billing).
            "sections": [
                render_to_string(section.template, section.context(request, deliverable), request)
                for section in extensions.deliverable_sections
            ],
        },
    )


def event_list(request, org_slug):
    """Events, newest first, by keyset (``?before=<id>``): no COUNT over a million rows."""
    queryset = Event.objects.filter(organization=request.organization).select_related(
        "deliverable", "processing"
    )
    filterset = EventFilter(request.GET, queryset=queryset)
    events = filterset.qs.order_by("-id")
    before = request.GET.get("before")
    if before:
        try:
            events = events.filter(id__lt=uuid.UUID(before))
        except ValueError:
            before = None
    rows = list(events[: EVENT_PAGE_SIZE + 1])
    has_next = len(rows) > EVENT_PAGE_SIZE
    rows = rows[:EVENT_PAGE_SIZE]
    return render(
        request,
        "deliveries/event_list.html",
        {
            "is_admin": request.membership.role == Role.ADMIN,
            "filter": filterset,
            "events": rows,
            "next_before": rows[-1].pk if has_next else None,
            "is_first_page": not before,
            "querystring": _querystring_without(request, "before"),
            "clients": _client_options(request),
        },
    )


@require_POST
def event_retry(request, org_slug, event_id):
    """An admin retries an event whose processing failed: reset and queued, like the
    Django admin's action; the worker does the processing."""
    if request.membership.role != Role.ADMIN:
        raise PermissionDenied("Only admins retry processing.")
    event = get_object_or_404(
        Event.objects.exclude(source=EventSource.MESHLINE),
        organization=request.organization,
        pk=uuid_or_404(event_id),
    )
    failing = Event.objects.filter(organization=request.organization, pk=event.pk).filter(
        replay.failed_condition()
    )
    count, queued = replay.queue_replay(request.organization, failing)
    if not count:
        messages.info(request, "That event's processing is not failing: nothing to retry.")
    elif queued:
        messages.success(request, "The event is queued for processing again.")
    else:
        messages.warning(
            request, "The queue could not be reached: the sweeper will process the event soon."
        )
    next_url = request.POST.get("next")
    if next_url and next_url.startswith(f"/o/{request.organization.slug}/"):
        return redirect(next_url)
    return redirect("event-list", org_slug=request.organization.slug)


def client_list(request, org_slug):
    # Meta.ordering is dropped from GROUP BY queries, so the annotated list needs its own
    # order_by, or pages could repeat or skip clients.
    clients = (
        Client.objects.filter(organization=request.organization)
        .annotate(deliverable_count=Count("deliverables"))
        .order_by("name", "client_id")
    )
    page = Paginator(clients, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "deliveries/client_list.html", {"page": page})


def client_detail(request, org_slug, client_id):
    client = get_object_or_404(Client, organization=request.organization, client_id=client_id)
    states = (
        Deliverable.objects.filter(organization=request.organization, client=client)
        .values("state")
        .annotate(n=Count("pk"))
        .order_by("state")
    )
    recent = Deliverable.objects.filter(organization=request.organization, client=client).order_by(
        "-last_event_at"
    )[:20]
    # Entries about the client as a whole (invoices, credit notes, client-wide agreements),
    # newest first, along event_client_recent.
    account_trail = Event.objects.filter(
        organization=request.organization, client=client, deliverable__isnull=True
    ).order_by("-id")[:20]
    return render(
        request,
        "deliveries/client_detail.html",
        {
            "client": client,
            "states": list(states),
            "recent": recent,
            "account_trail": list(account_trail),
        },
    )


CLIENT_SUGGESTIONS = 500  # a datalist, not a list page: the filter accepts any reference


def _client_options(request):
    clients = Client.objects.filter(organization=request.organization).order_by("name")
    return clients.only("client_id", "name")[:CLIENT_SUGGESTIONS]


def _querystring_without(request, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()
