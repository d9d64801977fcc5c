"""Portal pages of the reporting app: the Reporting page, forensic reports, export files,
and the dashboard panel and deliverable section it contributes."""

from datetime import date, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Sum
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from deliveries.dashboard import bar_chart
from deliveries.models import Deliverable
from reporting.forms import ReportingForm
from reporting.models import (
    AttributionMismatch,
    AttributionShare,
    AuditFinding,
    DailyExport,
    MismatchStatus,
    SampleAudit,
    SampleAuditItem,
    SearchPerformance,
)
from reporting.services import attribution, audits, forensic_pdf, forensics, roi

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
            "audits": SampleAudit.objects.filter(organization=organization)[:12],
            "rate": attribution.mismatch_rate(organization),
            "chart": chart,
        },
    )


def _deliverable(request, deliverable_id) -> Deliverable:
    return get_object_or_404(
        Deliverable.objects.select_related("client", "organization"),
        organization=request.organization,
        deliverable_id=deliverable_id,
    )


def forensic_report(request, org_slug, deliverable_id):
    """The forensic report of one deliverable, from its events to its revenue rows."""
    deliverable = _deliverable(request, deliverable_id)
    return render(
        request,
        "reporting/forensic_report.html",
        {"deliverable": deliverable, "report": forensics.report(deliverable)},
    )


def forensic_report_pdf(request, org_slug, deliverable_id):
    """The same report as a PDF file."""
    deliverable = _deliverable(request, deliverable_id)
    return forensic_pdf_response(deliverable)


def forensic_pdf_response(deliverable) -> HttpResponse:
    report = forensics.report(deliverable)
    response = HttpResponse(
        forensic_pdf.render(report, deliverable.created_at), content_type="application/pdf"
    )
    response["Content-Disposition"] = f'attachment; filename="{forensic_pdf.filename(report)}"'
    return response


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


def _audit(request, month: str) -> SampleAudit:
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise Http404("No such month.") from None
    return get_object_or_404(SampleAudit, organization=request.organization, month=first)


def _audit_item(request, audit: SampleAudit, position: int) -> SampleAuditItem:
    return get_object_or_404(
        SampleAuditItem.objects.select_related("deliverable"),
        organization=request.organization,
        audit=audit,
        position=position,
    )


def audit_detail(request, org_slug, month, errors=None, status=200):
    """One month's sample: each deliverable's frozen report, and who reviewed it."""
    audit = _audit(request, month)
    items = list(audit.items.select_related("deliverable", "reviewed_by"))
    return render(
        request,
        "reporting/audit_detail.html",
        {
            "audit": audit,
            "items": items,
            "findings": AuditFinding.choices,
            "errors": errors or {},
            "reviewed": sum(1 for item in items if item.reviewed_at),
        },
        status=status,
    )


@require_POST
def audit_review(request, org_slug, month, position: int):
    audit = _audit(request, month)
    item = _audit_item(request, audit, position)
    try:
        audits.record_review(
            item,
            request.user,
            finding=request.POST.get("finding", ""),
            notes=request.POST.get("notes", "")[:5000],
        )
    except audits.AuditError as exc:
        errors = {position: {exc.field: str(exc)}}
        return audit_detail(request, org_slug, month, errors=errors, status=400)
    messages.success(request, f"Recorded your review of {item.deliverable.deliverable_id}.")
    return redirect("audit-detail", org_slug=org_slug, month=month)


def audit_report(request, org_slug, month, position: int):
    """The forensic report as frozen at the draw."""
    audit = _audit(request, month)
    item = _audit_item(request, audit, position)
    return FileResponse(
        item.report.open("rb"),
        as_attachment=True,
        filename=f"audit-{audit.label}-{item.position:02d}-{item.deliverable.deliverable_id}.pdf",
    )
