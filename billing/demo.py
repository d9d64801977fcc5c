"""The demo's finance story: a rate card and the agency's own terms, overruns on a few
deliverables (found by the real processing step), two approved and invoiced, one line of
that invoice disputed by the client, the rest left pending for finance."""

from datetime import timedelta
from decimal import Decimal

from django.db.models import Min

from billing.models import BillableItem, BillingSettings, Invoice, ItemStatus
from billing.services import approvals, disputes, invoices
from deliveries.models import Deliverable, EventProcessing, ProcessingStatus
from deliveries.services import ingest_events
from deliveries.services.processing import process_event
from owners.services.tickets import Actor

DEMO_RATES = {
    "revisions": {"rate": "120.00", "unit": "revision"},
    "hours": {"rate": "95.00", "unit": "hour"},
    "asset_size_mb": {"rate": "45.00", "unit": "oversize asset"},
}
FINANCE = Actor("user", "finance@northwind.example")
ACCOUNT_MANAGER = Actor("user", "am@northwind.example")
DEMO_TERMS = (
    "$organization delivers the work above for $client in $currency from $valid_from "
    "($valid_until). Work beyond the included limits is billed at the rates above, once "
    "approved by $organization's finance team, and invoiced monthly. Accepted by $accepted_by."
)
DEMO_FOOTER = (
    "Payable within 30 days to Northwind Digital GmbH, IBAN DE89 3704 0044 0532 0130 00, "
    "quoting $number. Questions about a line: reply to this invoice, we keep the evidence."
)


def configure(organization, users_by_email) -> None:
    BillingSettings.objects.update_or_create(
        organization=organization,
        defaults={
            "currency": "EUR",
            "tax_rate": Decimal("0.19"),
            "second_approval_above": Decimal("1000.00"),
            "default_rates": DEMO_RATES,
            "agreement_terms": DEMO_TERMS,
            "invoice_footer": DEMO_FOOTER,
        },
    )


def after_events(organization) -> None:
    """Work beyond scope on the first scoped deliverables; invoice some of it."""
    if Invoice.objects.filter(organization=organization).exists():
        return  # seeded already
    scoped = list(
        Deliverable.objects.filter(organization=organization, agreements__isnull=False)
        .annotate(scoped_at=Min("agreements__valid_from"))
        .select_related("client")
        .order_by("deliverable_id")[:3]
    )
    events = []
    for n, deliverable in enumerate(scoped):
        at = deliverable.scoped_at + timedelta(hours=6)
        for i in range(3 + n):  # the demo scope includes 2 revisions
            events.append(
                _event(
                    "change.requested",
                    deliverable,
                    at + timedelta(hours=i),
                    f"demo-billing-{deliverable.deliverable_id}-change-{i}",
                    {"summary": f"Client change {i + 1}"},
                )
            )
        events.append(
            _event(
                "time.logged",
                deliverable,
                at + timedelta(hours=8),
                f"demo-billing-{deliverable.deliverable_id}-time",
                {"hours": 14.5, "person": "designer@northwind.example"},
            )
        )
    ingest_events(organization, events)
    pending = EventProcessing.objects.filter(
        organization=organization, status=ProcessingStatus.PENDING
    ).values_list("event_id", flat=True)
    for event_id in list(pending):
        process_event(event_id)
    items = list(
        BillableItem.objects.filter(organization=organization, status=ItemStatus.PROPOSED)
        .select_related("client")
        .order_by("occurred_at", "id")
    )
    if not items:
        return
    first_client = items[0].client
    to_invoice = [i for i in items if i.client_id == first_client.pk][:2]
    for item in to_invoice:
        approvals.approve(item, FINANCE, at=item.occurred_at + timedelta(days=1))
    start = min(i.occurred_at for i in to_invoice) - timedelta(days=1)
    end = max(i.occurred_at for i in to_invoice) + timedelta(seconds=1)
    draft = invoices.draft_invoice(organization, first_client, start, end, FINANCE, at=end)
    invoice = invoices.finalize(draft, FINANCE, at=end)
    disputes.open_dispute(
        to_invoice[-1],
        ACCOUNT_MANAGER,
        "The client says this change was part of the original brief (call on Tuesday).",
        at=invoice.finalized_at + timedelta(days=2),
    )


def _event(event_type, deliverable, at, key, payload):
    return {
        "event_type": event_type,
        "deliverable_id": deliverable.deliverable_id,
        "client_id": deliverable.client.client_id,
        "idempotency_key": key,
        "actor": {"role": "pm_tool", "id": "asana"},
        "occurred_at": at.isoformat(),
        "payload": payload,
    }
