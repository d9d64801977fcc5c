"""Portal pages of the reporting app: the Reporting page, forensic reports, export files,
and the dashboard panel and deliverable section it contributes."""

from datetime import timedelta

from django.core.paginator import Paginator
from django.db.models import Sum
from django.http import FileResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from deliveries.dashboard import bar_chart
from deliveries.models import Deliverable
from reporting.forms import ReportingForm
from reporting.models import (
    AttributionMismatch,
    AttributionShare,
    DailyExport,
    MismatchStatus,
    SearchPerformance,
)
from reporting.services import attribution, forensics, roi

PAGE_SIZE = 50


def reporting(request, org_slug):
    """Deliverable ROI for a period, open attribution mismatches, unmatched URLs, exports."""
    organization = request.organization
    form = ReportingForm(request.GET or None, organization=organization)
    since, until = form.period()
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    settings = attribution.settings_for(organization)
    sort = roi.SORTS.get(data.get("sort") or "revenue", "attributed_revenue")
    rows = roi.roi_queryset(
        organization,
        settings.attribution_model,
        since,
        until,
        client=data.get("client"),
        deliverable_type=data.get("type") or "",
    ).order_by(f"-{sort}" if sort != "deliverable_id" else sort, "deliverable_id")
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    for row in page.object_list:
        row.ctr, row.avg_position = roi.ratios(row)
    mismatches = (
        AttributionMismatch.objects.filter(organization=organization, status=MismatchStatus.OPEN)
        .select_related("deliverable", "ticket")
        .order_by("-impressions")[:50]
    )
    unmatched = (
        SearchPerformance.objects.filter(
            organization=organization,
            deliverable__isnull=True,
            date__gte=since,
            date__lte=until,
        )
        .values("url")
        .annotate(impressions=Sum("impressions"), clicks=Sum("clicks"))
        .order_by("-impressions")[:20]
    )
    daily = roi.daily_totals(
        organization,
        settings.attribution_model,
        since,
        until,
        client=data.get("client"),
        deliverable_type=data.get("type") or "",
    )
    days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
    chart = bar_chart(
        {day: impressions for day, (impressions, _clicks) in daily.items()},
        days,
        lambda day: day.strftime("%b %d"),
    )
    chart["clicks"] = sum(clicks for _impressions, clicks in daily.values())
    querystring = request.GET.copy()
    querystring.pop("page", None)
    return render(
        request,
        "reporting/reporting.html",
        {
            "form": form,
            "since": since,
            "until": until,
            "settings": settings,
            "page": page,
            "querystring": querystring.urlencode(),
            "mismatches": mismatches,
            "unmatched": unmatched,
            "exports": DailyExport.objects.filter(organization=organization)[:30],
            "rate": attribution.mismatch_rate(organization),
            "chart": chart,
        },
    )


def forensic_report(request, org_slug, deliverable_id):
    """The forensic report of one deliverable, from its events to its revenue rows."""
    deliverable = get_object_or_404(
        Deliverable.objects.select_related("client", "organization"),
        organization=request.organization,
        deliverable_id=deliverable_id,
    )
    return render(
        request,
        "reporting/forensic_report.html",
        {"deliverable": deliverable, "report": forensics.report(deliverable)},
    )


def export_download(request, org_slug, export_id):
    """An export file, addressed by its UUID."""
    export = get_object_or_404(DailyExport, organization=request.organization, pk=export_id)
    return FileResponse(export.file.open("rb"), as_attachment=True, filename=export.filename)


def attribution_panel(request, scope) -> dict:
    return {
        **attribution.mismatch_rate(scope.organization),
        "reporting_url": reverse("reporting", args=[scope.organization.slug]),
    }


def revenue_section(request, deliverable) -> dict:
    model = attribution.settings_for(request.organization).attribution_model
    totals = AttributionShare.objects.filter(
        organization=deliverable.organization_id, deliverable=deliverable, model=model
    ).aggregate(amount=Sum("amount"))
    search = SearchPerformance.objects.filter(
        organization=deliverable.organization_id, deliverable=deliverable
    ).aggregate(impressions=Sum("impressions"), clicks=Sum("clicks"))
    return {
        "deliverable": deliverable,
        "model": model,
        "attributed": totals["amount"],
        **search,
        "report_url": reverse(
            "forensic-report", args=[request.organization.slug, deliverable.deliverable_id]
        ),
    }
