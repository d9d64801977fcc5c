"""Portal pages of the deliveries app. The tenant scope is already active (TenantMiddleware)."""

from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, render

from deliveries.filters import DeliverableFilter
from deliveries.models import Client, Deliverable, Event

PAGE_SIZE = 50


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
            "clients": Client.objects.filter(organization=organization).only("client_id", "name"),
            "querystring": _querystring_without_page(request),
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
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    return render(
        request,
        "deliveries/deliverable_detail.html",
        {"deliverable": deliverable, "page": page},
    )


def client_list(request, org_slug):
    clients = Client.objects.filter(organization=request.organization).annotate(
        deliverable_count=Count("deliverables")
    )
    page = Paginator(clients, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "deliveries/client_list.html", {"page": page})


def _querystring_without_page(request) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()
