"""Portal pages of billing: the approval queue, items, agreements, invoices.

Every member reads (account managers see what is pending per client); finance and admins
decide and invoice. Outsiders never get here (TenantMiddleware answers 404).
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_scopes import scope

from billing.filters import ItemFilter
from billing.forms import (
    AdjustForm,
    DecideDisputeForm,
    DisputeForm,
    ExportForm,
    InvoiceForm,
    ReasonForm,
)
from billing.models import (
    OPEN_ITEM_STATUSES,
    BillableItem,
    Dispute,
    DisputeStatus,
    Invoice,
    ItemStatus,
    ScopeAgreement,
    SigningKey,
)
from billing.services import BillingError, agreements, approvals, disputes, invoices, pdf
from billing.services.finance_report import Quarter
from billing.services.finance_report import finance_report as finance_report_rows
from billing.services.finance_report import to_csv as report_csv
from meshline.ids import uuid_or_404
from meshline.models import Role
from owners.services.tickets import Actor

DECIDING_ROLES = frozenset({Role.ADMIN, Role.FINANCE})
# Who may record a client's dispute: whoever hears from the client.
DISPUTING_ROLES = frozenset({Role.ADMIN, Role.FINANCE, Role.ACCOUNT_MANAGER})
QUEUE_SIZE = 100


def _require_finance(request) -> Actor:
    if request.membership.role not in DECIDING_ROLES:
        raise PermissionDenied("Only finance and admins decide on billing.")
    return Actor.for_user(request.user)


def _items(request):
    return BillableItem.objects.filter(organization=request.organization).select_related(
        "client", "deliverable", "agreement"
    )


def queue(request, org_slug):
    """Open items, oldest first, and what is pending per client."""
    filterset = ItemFilter(request.GET, queryset=_items(request))
    items = filterset.qs
    if not request.GET.get("status"):
        items = items.filter(status__in=OPEN_ITEM_STATUSES)
    pending = (
        BillableItem.objects.filter(
            organization=request.organization, status__in=OPEN_ITEM_STATUSES
        )
        .values("client__client_id", "client__name", "currency")
        .annotate(count=Count("id"), amount=Sum("amount"))
        .order_by("client__name")
    )
    return render(
        request,
        "billing/queue.html",
        {
            "filter": filterset,
            "items": list(items.order_by("proposed_at", "id")[:QUEUE_SIZE]),
            "pending": list(pending),
            "can_decide": request.membership.role in DECIDING_ROLES,
            "open_disputes": Dispute.objects.filter(
                organization=request.organization, status=DisputeStatus.OPEN
            ).count(),
        },
    )


def _get_item(request, item_id) -> BillableItem:
    return get_object_or_404(_items(request), pk=uuid_or_404(item_id))


def item_detail(request, org_slug, item_id, **forms):
    item = _get_item(request, item_id)
    return render(
        request,
        "billing/item_detail.html",
        {
            "item": item,
            "events": list(item.events.order_by("occurred_at")),
            "reject_form": forms.get("reject_form") or ReasonForm(),
            "adjust_form": forms.get("adjust_form")
            or AdjustForm(initial={"quantity": item.quantity, "rate": item.rate}),
            "can_decide": request.membership.role in DECIDING_ROLES,
            "disputes": list(item.disputes.order_by("-raised_at")),
            "dispute_form": forms.get("dispute_form") or DisputeForm(),
            "can_dispute": request.membership.role in DISPUTING_ROLES
            and item.status == ItemStatus.INVOICED,
        },
        status=forms.get("status", 200),
    )


def _decide(request, org_slug, item_id, action):
    actor = _require_finance(request)
    item = _get_item(request, item_id)
    try:
        action(item, actor)
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing-item", org_slug=org_slug, item_id=item.pk)
    next_url = request.POST.get("next")
    if next_url and next_url.startswith(f"/o/{request.organization.slug}/"):
        return redirect(next_url)
    return redirect("billing-item", org_slug=org_slug, item_id=item.pk)


@require_POST
def item_approve(request, org_slug, item_id):
    def act(item, actor):
        item = approvals.approve(item, actor)
        messages.success(request, f"{item.get_status_display()}: {item.description}")

    return _decide(request, org_slug, item_id, act)


@require_POST
def item_reject(request, org_slug, item_id):
    form = ReasonForm(request.POST)
    if not form.is_valid():
        _require_finance(request)
        return item_detail(request, org_slug, item_id, reject_form=form, status=400)
    return _decide(
        request,
        org_slug,
        item_id,
        lambda item, actor: approvals.reject(item, actor, form.cleaned_data["reason"]),
    )


@require_POST
def item_adjust(request, org_slug, item_id):
    form = AdjustForm(request.POST)
    if not form.is_valid():
        _require_finance(request)
        return item_detail(request, org_slug, item_id, adjust_form=form, status=400)
    data = form.cleaned_data
    return _decide(
        request,
        org_slug,
        item_id,
        lambda item, actor: approvals.adjust(
            item, actor, quantity=data["quantity"], rate=data["rate"], reason=data["reason"]
        ),
    )


@require_POST
def item_dispute(request, org_slug, item_id):
    """Record the client's dispute of an invoiced line."""
    if request.membership.role not in DISPUTING_ROLES:
        raise PermissionDenied("Viewers cannot record disputes.")
    item = _get_item(request, item_id)
    form = DisputeForm(request.POST)
    if not form.is_valid():
        return item_detail(request, org_slug, item_id, dispute_form=form, status=400)
    try:
        dispute = disputes.open_dispute(
            item, Actor.for_user(request.user), form.cleaned_data["reason"]
        )
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing-item", org_slug=org_slug, item_id=item.pk)
    messages.success(request, "Dispute recorded; finance decides it.")
    return redirect("billing-dispute", org_slug=org_slug, dispute_id=dispute.pk)


def _quarter(request) -> tuple[Quarter | None, str]:
    """The quarter asked for (default: the current one in the organization's zone), or an
    error message."""
    text = request.GET.get("quarter")
    if not text:
        return Quarter.containing(timezone.localdate(timezone=request.organization.zone)), ""
    try:
        return Quarter.parse(text), ""
    except BillingError as exc:
        return None, str(exc)


def finance_report(request, org_slug):
    """The quarterly review per client: billed overruns, approval times, disputes, credit
    notes, and the SLA scorecard."""
    quarter, error = _quarter(request)
    current = Quarter.containing(timezone.localdate(timezone=request.organization.zone))
    choices = [current]
    while len(choices) < 8:
        choices.append(choices[-1].previous())
    rows = finance_report_rows(request.organization, quarter) if quarter else []
    return render(
        request,
        "billing/report.html",
        {
            "quarter": quarter,
            "error": error,
            "asked": request.GET.get("quarter", ""),
            "choices": choices,
            "rows": rows,
        },
        status=400 if error else 200,
    )


def finance_report_csv(request, org_slug):
    quarter, error = _quarter(request)
    if error:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    rows = finance_report_rows(request.organization, quarter)
    response = HttpResponse(report_csv(quarter, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="finance-{request.organization.slug}-{quarter}.csv"'
    )
    return response


def _disputes(request):
    return Dispute.objects.filter(organization=request.organization).select_related(
        "client", "item", "invoice", "credit_note"
    )


def dispute_list(request, org_slug):
    """Open disputes first (oldest first), then the latest decided ones."""
    rows = _disputes(request)
    return render(
        request,
        "billing/dispute_list.html",
        {
            "open": list(rows.filter(status=DisputeStatus.OPEN).order_by("raised_at")[:200]),
            "decided": list(
                rows.exclude(status=DisputeStatus.OPEN).order_by("-decided_at", "-id")[:100]
            ),
        },
    )


def dispute_detail(request, org_slug, dispute_id, form=None, status=200):
    """The dispute with its evidence: the agreement's verification, the events, the approvals."""
    dispute = get_object_or_404(
        _disputes(request).select_related("item__agreement__signing_key", "item__deliverable"),
        pk=uuid_or_404(dispute_id),
    )
    item = dispute.item
    return render(
        request,
        "billing/dispute_detail.html",
        {
            "dispute": dispute,
            "item": item,
            "events": list(item.events.order_by("occurred_at", "id")),
            "verification": agreements.verify(item.agreement),
            "form": form or DecideDisputeForm(),
            "can_decide": request.membership.role in DECIDING_ROLES,
        },
        status=status,
    )


@require_POST
def dispute_decide(request, org_slug, dispute_id):
    actor = _require_finance(request)
    dispute = get_object_or_404(_disputes(request), pk=uuid_or_404(dispute_id))
    form = DecideDisputeForm(request.POST)
    if not form.is_valid():
        return dispute_detail(request, org_slug, dispute_id, form=form, status=400)
    try:
        dispute = disputes.decide(
            dispute, actor, form.cleaned_data["outcome"], form.cleaned_data["note"]
        )
    except BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Dispute {dispute.get_status_display().lower()}.")
    return redirect("billing-dispute", org_slug=org_slug, dispute_id=dispute.pk)


def dispute_evidence(request, org_slug, dispute_id):
    dispute = get_object_or_404(
        _disputes(request).select_related("item__agreement__signing_key", "organization"),
        pk=uuid_or_404(dispute_id),
    )
    response = HttpResponse(disputes.evidence_bundle(dispute), content_type="application/zip")
    response["Content-Disposition"] = (
        f'attachment; filename="dispute-{dispute.invoice.label}-{dispute.pk}.zip"'
    )
    return response


def agreement_list(request, org_slug):
    rows = (
        ScopeAgreement.objects.filter(organization=request.organization)
        .select_related("client", "deliverable")
        .order_by("-accepted_at", "-version")[:200]
    )
    return render(request, "billing/agreement_list.html", {"agreements": list(rows)})


def _get_agreement(request, agreement_id) -> ScopeAgreement:
    return get_object_or_404(
        ScopeAgreement.objects.filter(organization=request.organization).select_related(
            "client", "deliverable", "signing_key", "organization"
        ),
        pk=uuid_or_404(agreement_id),
    )


def pdf_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def agreement_detail(request, org_slug, agreement_id):
    """The agreement as a document, with its signature and a live verification."""
    agreement = _get_agreement(request, agreement_id)
    return render(
        request,
        "billing/agreement_document.html",
        {
            "agreement": agreement,
            "verification": agreements.verify(agreement),
            "public_key_pem": agreements.public_key_pem(agreement.signing_key),
        },
    )


def agreement_pdf(request, org_slug, agreement_id):
    agreement = _get_agreement(request, agreement_id)
    return pdf_response(pdf.agreement_pdf(agreement), pdf.agreement_filename(agreement))


def _invoices(request):
    return Invoice.objects.filter(organization=request.organization).select_related("client")


def invoice_list(request, org_slug):
    form = InvoiceForm(organization=request.organization)
    return _invoice_list(request, form)


def _invoice_list(request, form, status=200, export_form=None):
    rows = _invoices(request).order_by("-created_at", "-id")[:200]
    return render(
        request,
        "billing/invoice_list.html",
        {
            "invoices": list(rows),
            "form": form,
            "export_form": export_form or ExportForm(initial={"output": "csv"}),
            "can_decide": request.membership.role in DECIDING_ROLES,
        },
        status=status,
    )


@require_POST
def invoice_create(request, org_slug):
    actor = _require_finance(request)
    form = InvoiceForm(request.POST, organization=request.organization)
    if not form.is_valid():
        return _invoice_list(request, form, status=400)
    data = form.cleaned_data
    try:
        invoice = invoices.draft_invoice(
            request.organization, data["client"], data["period_start"], data["period_end"], actor
        )
    except BillingError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _invoice_list(request, form, status=400)
    return redirect("billing-invoice", org_slug=org_slug, invoice_id=invoice.pk)


def _get_invoice(request, invoice_id) -> Invoice:
    return get_object_or_404(_invoices(request), pk=uuid_or_404(invoice_id))


def invoice_detail(request, org_slug, invoice_id):
    invoice = _get_invoice(request, invoice_id)
    return render(
        request,
        "billing/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": list(invoice.lines.select_related("item__agreement")),
            "credit_notes": list(invoice.credit_notes.all()),
            "can_decide": request.membership.role in DECIDING_ROLES,
            "credit_form": ReasonForm(),
        },
    )


@require_POST
def invoice_finalize(request, org_slug, invoice_id):
    actor = _require_finance(request)
    invoice = _get_invoice(request, invoice_id)
    try:
        invoice = invoices.finalize(invoice, actor)
        messages.success(request, f"Issued {invoice.label}.")
    except BillingError as exc:
        messages.error(request, str(exc))
    return redirect("billing-invoice", org_slug=org_slug, invoice_id=invoice.pk)


@require_POST
def invoice_credit(request, org_slug, invoice_id):
    """A credit note for the ticked lines' items."""
    actor = _require_finance(request)
    invoice = _get_invoice(request, invoice_id)
    ids = [uuid_or_404(value) for value in request.POST.getlist("items")]
    items = BillableItem.objects.filter(organization=request.organization, pk__in=ids)
    try:
        note = invoices.credit_note(invoice, items, request.POST.get("reason", ""), actor)
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing-invoice", org_slug=org_slug, invoice_id=invoice.pk)
    messages.success(request, f"Issued {note.label}.")
    return redirect("billing-invoice", org_slug=org_slug, invoice_id=note.pk)


def invoice_export(request, org_slug):
    """Issued invoices and credit notes of a date range, for an accounting system."""
    form = ExportForm(request.GET)
    if not form.is_valid():
        blank = InvoiceForm(organization=request.organization)
        return _invoice_list(request, blank, status=400, export_form=form)
    return export_response(
        request.organization, *form.bounds(request.organization.zone), form.cleaned_data
    )


def _in_scope(organization, stream):
    # A streaming body is read after the view returned, outside the request's tenant scope.
    with scope(organization=organization):
        yield from stream


def export_response(organization, start, end, data) -> StreamingHttpResponse:
    kind = data["output"]
    stream = (invoices.export_csv if kind == "csv" else invoices.export_json)(
        organization, start, end
    )
    response = StreamingHttpResponse(
        _in_scope(organization, stream),
        content_type="text/csv; charset=utf-8" if kind == "csv" else "application/json",
    )
    name = f"invoices-{organization.slug}-{data['start']}-{data['end']}.{kind}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def invoice_csv(request, org_slug, invoice_id):
    invoice = _get_invoice(request, invoice_id)
    response = HttpResponse(invoices.to_csv(invoice), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{invoice.label}.csv"'
    return response


def invoice_pdf(request, org_slug, invoice_id):
    invoice = _get_invoice(request, invoice_id)
    return pdf_response(pdf.invoice_pdf(invoice), f"{invoice.label}.pdf")


def public_key(request, key_id):
    """The public half of a signing key, for anyone verifying an agreement offline.
    Public on purpose; found by fingerprint, so it names no organization."""
    from django.http import Http404
    from django_scopes import scopes_disabled

    with scopes_disabled():
        key = SigningKey.objects.filter(key_id=key_id).first()
    if key is None:
        raise Http404("No such key")
    return HttpResponse(agreements.public_key_pem(key), content_type="application/x-pem-file")


def deliverable_section(request, deliverable) -> dict:
    """The deliverable page's billing block: its agreements and items."""
    return {
        "billing_agreements": list(
            ScopeAgreement.objects.filter(
                organization=deliverable.organization_id, deliverable=deliverable
            ).order_by("-version")
        ),
        "billing_items": list(
            BillableItem.objects.filter(
                organization=deliverable.organization_id, deliverable=deliverable
            ).order_by("-proposed_at")[:50]
        ),
    }
