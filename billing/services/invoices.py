"""Invoices: a draft from a client's approved items in a period; finalising numbers it
(gapless, per organization), totals it by the money rule (billing.services.money), digests
it and records ``invoice.generated``. Corrections are credit notes, never edits."""

import csv
import hashlib
import io
import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.models import (
    BillableItem,
    BillingSettings,
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    ItemStatus,
    ScopeAgreement,
)
from billing.services import agreements, wording
from billing.services.errors import BillingError
from billing.services.money import line_amount, totals
from deliveries.services import trail
from owners.services.tickets import Actor


def draft_invoice(
    organization, client, period_start: datetime, period_end: datetime, actor: Actor, at=None
) -> Invoice:
    """A draft of the client's approved, uninvoiced items whose work happened in
    [period_start, period_end). All must share one currency."""
    at = at or timezone.now()
    if period_end <= period_start:
        raise BillingError("invalid_period", "The period must end after it starts.", "period_end")
    with transaction.atomic():
        add_recurring_fees(organization, client, period_start, period_end)
        items = list(
            BillableItem.objects.select_for_update()
            .filter(
                organization=organization,
                client=client,
                status=ItemStatus.APPROVED,
                invoice__isnull=True,
                occurred_at__gte=period_start,
                occurred_at__lt=period_end,
            )
            .order_by("occurred_at", "id")
        )
        if not items:
            raise BillingError(
                "nothing_to_invoice",
                "No approved, uninvoiced items in this period.",
                "period_start",
            )
        currencies = sorted({item.currency for item in items})
        if len(currencies) > 1:
            raise BillingError(
                "currency_mismatch",
                f"The items are in {', '.join(currencies)}; invoice one currency at a time.",
                "currency",
            )
        settings = BillingSettings.for_organization(organization)
        invoice = Invoice.objects.create(
            organization=organization,
            client=client,
            period_start=period_start,
            period_end=period_end,
            currency=currencies[0],
            tax_rate=settings.tax_rate,
            created_by=actor.id,
            created_at=at,
        )
        _add_lines(invoice, items, sign=1)
        BillableItem.objects.filter(pk__in=[i.pk for i in items]).update(invoice=invoice)
        _total(invoice)
        invoice.save()
    return invoice


def _month_starts(start: datetime, end: datetime, zone) -> list[datetime]:
    """The first instants of the calendar months (in ``zone``) in [start, end)."""
    local = start.astimezone(zone)
    month = datetime(local.year, local.month, 1, tzinfo=zone)
    if month < start:
        month = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=zone)
    starts = []
    while month < end:
        starts.append(month)
        month = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=zone)
    return starts


def add_recurring_fees(organization, client, period_start: datetime, period_end: datetime):
    """Approved items for the recurring fees of the client's agreements, one per month
    that starts in the period (in the organization's zone) while the agreement is in
    force. Signed into the agreement, so approved as they are; keyed per agreement, fee
    and month, so drafting again (or another period over the same month) adds none."""
    months = _month_starts(period_start, period_end, organization.zone)
    if not months:
        return
    recurring = [
        agreement
        for agreement in ScopeAgreement.objects.filter(organization=organization, client=client)
        .select_related("deliverable")
        .order_by("valid_from", "version")
        if any("recurring" in entry for entry in agreement.rates.values())
    ]
    fees = []
    for agreement in recurring:
        ends = agreements.window_end(agreement)
        for month in months:
            if month < agreement.valid_from or (ends is not None and month >= ends):
                continue
            for clause, entry in agreement.rates.items():
                if entry.get("recurring") != "month":
                    continue
                rate = Decimal(entry["rate"])
                subject = agreement.deliverable.deliverable_id if agreement.deliverable else ""
                fees.append(
                    BillableItem(
                        organization=organization,
                        agreement=agreement,
                        client=client,
                        deliverable=agreement.deliverable,
                        clause=clause,
                        description=(
                            f"{subject + ': ' if subject else ''}{clause} for "
                            f"{month:%Y-%m} (agreement v{agreement.version})"
                        ),
                        quantity=Decimal("1.00"),
                        proposed_quantity=Decimal("1.00"),
                        unit=entry.get("unit") or "month",
                        rate=rate,
                        amount=line_amount(Decimal("1"), rate),
                        currency=agreement.currency,
                        evidence={"recurring": "month", "month": f"{month:%Y-%m}"},
                        occurred_at=month,
                        proposed_at=month,
                        idempotency_key=f"recurring:{agreement.pk}:{clause}:{month:%Y-%m}",
                        status=ItemStatus.APPROVED,
                        approver="signed agreement",
                        approved_at=month,
                    )
                )
    BillableItem.objects.bulk_create(fees, ignore_conflicts=True)


def _add_lines(invoice: Invoice, items, sign: int) -> None:
    InvoiceLine.objects.bulk_create(
        [
            InvoiceLine(
                organization=invoice.organization,
                invoice=invoice,
                item=item,
                position=position,
                description=item.description,
                quantity=item.quantity * sign,
                unit=item.unit,
                rate=item.rate,
                amount=item.amount * sign,
            )
            for position, item in enumerate(items, start=1)
        ]
    )


def _total(invoice: Invoice) -> None:
    amounts = list(invoice.lines.values_list("amount", flat=True))
    invoice.subtotal, invoice.tax, invoice.total = totals(amounts, invoice.tax_rate)


def document(invoice: Invoice) -> dict:
    """The invoice as digested: number, client, period, lines with the events and signed
    agreement behind each, totals."""
    # Values, not models: an invoice has hundreds of lines, and each line's item, agreement
    # (its whole signed document) and events would be built only to read a few fields.
    lines = invoice.lines.order_by("position").values_list(
        "position",
        "description",
        "quantity",
        "unit",
        "rate",
        "amount",
        "item_id",
        "item__agreement_id",
        "item__agreement__digest",
    )
    events: dict = defaultdict(list)
    links = BillableItem.events.through.objects.filter(
        billableitem__lines__invoice=invoice
    ).values_list("billableitem_id", "event_id")
    for item_id, event_id in links:
        events[item_id].append(str(event_id))
    return {
        "invoice_id": str(invoice.pk),
        "kind": invoice.kind,
        "number": invoice.label,
        "organization": invoice.organization.slug,
        "client": invoice.client.client_id,
        "period_start": invoice.period_start.isoformat(),
        "period_end": invoice.period_end.isoformat(),
        "currency": invoice.currency,
        "corrects": str(invoice.corrects_id) if invoice.corrects_id else None,
        "lines": [
            {
                "position": position,
                "description": description,
                "quantity": str(quantity),
                "unit": unit,
                "rate": str(rate),
                "amount": str(amount),
                "item_id": str(item_id),
                "agreement_id": str(agreement_id),
                "agreement_digest": digest,
                "event_ids": sorted(events[item_id]),
            }
            for position, description, quantity, unit, rate, amount, item_id, agreement_id, digest in lines
        ],
        "subtotal": str(invoice.subtotal),
        "tax_rate": str(invoice.tax_rate),
        "tax": str(invoice.tax),
        "total": str(invoice.total),
        **({"footer": invoice.footer} if invoice.footer else {}),
    }


def _allocate_number(organization) -> int:
    # The counter row is locked until the finalising transaction commits: a second
    # finalisation waits, and a rolled-back one gives its number back. Hence gapless.
    InvoiceCounter.objects.get_or_create(organization=organization)
    counter = InvoiceCounter.objects.select_for_update().get(organization=organization)
    number = counter.next_number
    counter.next_number = number + 1
    counter.save(update_fields=["next_number"])
    return number


def finalize(invoice: Invoice, actor: Actor, at=None) -> Invoice:
    """Number, total, digest and freeze the invoice; its items become invoiced."""
    at = at or timezone.now()
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status == InvoiceStatus.FINAL:
            raise BillingError("invoice_final", "This invoice is already final.", conflict=True)
        _total(invoice)
        invoice.number = _allocate_number(invoice.organization)
        invoice.finalized_at = at
        invoice.footer = _footer_text(invoice)
        doc = document(invoice)
        invoice.digest = hashlib.sha256(
            json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        invoice.status = InvoiceStatus.FINAL
        invoice.save()
        if invoice.kind == InvoiceKind.INVOICE:
            BillableItem.objects.filter(invoice=invoice).update(status=ItemStatus.INVOICED)
        _record(invoice, actor, at, doc)
    return invoice


def _footer_text(invoice: Invoice) -> str:
    template = BillingSettings.for_organization(invoice.organization).invoice_footer
    if not template.strip():
        return ""
    return wording.fill(
        template,
        {
            "organization": invoice.organization.name,
            "client": invoice.client.name,
            "number": invoice.label,
            "total": invoice.total,
            "currency": invoice.currency,
        },
    ).strip()


def _record(invoice: Invoice, actor: Actor, at, doc: dict) -> None:
    event_type = (
        "invoice.generated" if invoice.kind == InvoiceKind.INVOICE else "credit_note.issued"
    )
    trail.record(
        invoice.organization,
        event_type,
        key=f"billing:invoice:{invoice.pk}:final",
        client=invoice.client,
        actor_role=actor.role,
        actor_id=actor.id,
        occurred_at=at,
        payload={
            "invoice_id": str(invoice.pk),
            "number": invoice.label,
            "digest": invoice.digest,
            "total": str(invoice.total),
            "currency": invoice.currency,
            "lines": [
                {k: line[k] for k in ("item_id", "agreement_id", "agreement_digest", "event_ids")}
                for line in doc["lines"]
            ],
        },
    )


def credit_note(invoice: Invoice, items, reason: str, actor: Actor, at=None) -> Invoice:
    """A final credit note reversing some of a final invoice's items (each at most once)."""
    at = at or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("required", "Say why the invoice is corrected.", "reason")
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != InvoiceStatus.FINAL or invoice.kind != InvoiceKind.INVOICE:
            raise BillingError("not_final", "Only a final invoice can be credited.", conflict=True)
        on_invoice = set(invoice.lines.values_list("item_id", flat=True))
        items = list(items)
        if not items or any(item.pk not in on_invoice for item in items):
            raise BillingError("invalid_items", "Pick items of this invoice.", "items")
        credited = set(
            InvoiceLine.objects.filter(
                organization=invoice.organization,
                invoice__corrects=invoice,
                item__in=[i.pk for i in items],
            ).values_list("item_id", flat=True)
        )
        if credited:
            raise BillingError("already_credited", "An item was credited already.", "items")
        note = Invoice.objects.create(
            organization=invoice.organization,
            kind=InvoiceKind.CREDIT_NOTE,
            client=invoice.client,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            currency=invoice.currency,
            tax_rate=invoice.tax_rate,
            corrects=invoice,
            reason=reason,
            created_by=actor.id,
            created_at=at,
        )
        _add_lines(note, sorted(items, key=lambda i: (i.occurred_at, i.pk)), sign=-1)
        return finalize(note, actor, at)


def to_csv(invoice: Invoice) -> str:
    """The invoice's lines and totals, for a spreadsheet or an accounting import."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "invoice",
            "position",
            "description",
            "quantity",
            "unit",
            "rate",
            "amount",
            "currency",
            "item_id",
            "agreement_id",
        ]
    )
    doc = document(invoice)
    for line in doc["lines"]:
        writer.writerow(
            [
                doc["number"],
                line["position"],
                _safe(line["description"]),
                line["quantity"],
                line["unit"],
                line["rate"],
                line["amount"],
                doc["currency"],
                line["item_id"],
                line["agreement_id"],
            ]
        )
    for label in ("subtotal", "tax", "total"):
        writer.writerow([doc["number"], "", label, "", "", "", doc[label], doc["currency"], "", ""])
    return out.getvalue()


def _safe(text: str) -> str:
    # Spreadsheets run cells starting with = + - @ as formulas (CSV injection).
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


EXPORT_COLUMNS = [
    "number",
    "kind",
    "corrects",
    "client",
    "client_name",
    "issued_at",
    "period_start",
    "period_end",
    "currency",
    "tax_rate",
    "subtotal",
    "tax",
    "total",
    "digest",
    "position",
    "description",
    "quantity",
    "unit",
    "rate",
    "amount",
    "item_id",
]
_INVOICE_FIELDS = EXPORT_COLUMNS[:14]


def _number(kind, number) -> str:
    return f"{'CN' if kind == InvoiceKind.CREDIT_NOTE else 'INV'}-{number:06d}"


def export_lines(organization, start: datetime, end: datetime):
    """Every line of the invoices and credit notes issued in [start, end), in number
    order, as dicts of EXPORT_COLUMNS: what an accounting system imports. Streamed from
    the database in chunks, never a whole year in memory."""
    rows = (
        InvoiceLine.objects.filter(
            organization=organization,
            invoice__status=InvoiceStatus.FINAL,
            invoice__finalized_at__gte=start,
            invoice__finalized_at__lt=end,
        )
        .order_by("invoice__number", "position")
        .values_list(
            "invoice__number",
            "invoice__kind",
            "invoice__corrects__number",
            "invoice__corrects__kind",
            "invoice__client__client_id",
            "invoice__client__name",
            "invoice__finalized_at",
            "invoice__period_start",
            "invoice__period_end",
            "invoice__currency",
            "invoice__tax_rate",
            "invoice__subtotal",
            "invoice__tax",
            "invoice__total",
            "invoice__digest",
            "position",
            "description",
            "quantity",
            "unit",
            "rate",
            "amount",
            "item_id",
        )
    )
    for row in rows.iterator(chunk_size=2000):
        (number, kind, corrects, corrects_kind, *rest) = row
        values = [
            _number(kind, number),
            kind,
            _number(corrects_kind, corrects) if corrects else "",
            *rest,
        ]
        yield {
            name: value.isoformat() if isinstance(value, datetime) else str(value)
            for name, value in zip(EXPORT_COLUMNS, values, strict=True)
        }


def export_csv(organization, start: datetime, end: datetime):
    """``export_lines`` as CSV text, chunk by chunk (for a streaming response)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for n, line in enumerate(export_lines(organization, start, end), 1):
        line["description"] = _safe(line["description"])
        writer.writerow(line.values())
        if n % 500 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def export_json(organization, start: datetime, end: datetime):
    """``export_lines`` as one JSON document, each invoice once with its lines nested,
    chunk by chunk: {"invoices": [{...invoice..., "lines": [{...}, ...]}, ...]}."""
    yield '{"invoices": ['
    current, first = None, True
    for line in export_lines(organization, start, end):
        if current is not None and line["number"] != current["number"]:
            yield ("" if first else ",") + json.dumps(current)
            first = False
            current = None
        if current is None:
            current = {name: line[name] for name in _INVOICE_FIELDS}
            current["lines"] = []
        current["lines"].append({k: v for k, v in line.items() if k not in _INVOICE_FIELDS})
    if current is not None:
        yield ("" if first else ",") + json.dumps(current)
    yield "]}"
