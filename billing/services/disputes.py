"""Disputes: a client objects to an invoiced line; finance upholds it (a credit note for
the item) or rejects it (with the reason). The evidence pack gathers everything that
defends the line, as one zip anyone can check without Meshline."""

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from billing.models import (
    BillableItem,
    Dispute,
    DisputeStatus,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    ItemStatus,
)
from billing.services import agreements, invoices, pdf
from billing.services.errors import BillingError
from deliveries.models import Event
from deliveries.services import trail
from owners.services.tickets import Actor

OUTCOMES = {"upheld": DisputeStatus.UPHELD, "rejected": DisputeStatus.REJECTED}


def _reason(text: str, field: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise BillingError("required", what, field)
    if len(text) > 4000:
        raise BillingError("too_long", f"{field} has at most 4,000 characters.", field)
    return text


def _record(dispute: Dispute, step: str, actor: Actor, at: datetime, **payload) -> None:
    trail.record(
        dispute.organization,
        f"dispute.{step}",
        key=f"billing:dispute:{dispute.pk}:{step}",
        deliverable=dispute.item.deliverable,
        client=dispute.client,
        actor_role=actor.role,
        actor_id=actor.id,
        occurred_at=at,
        payload={
            "dispute_id": str(dispute.pk),
            "item_id": str(dispute.item_id),
            "invoice_id": str(dispute.invoice_id),
            "invoice_number": dispute.invoice.label,
            "amount": str(dispute.item.amount),
            "currency": dispute.item.currency,
            **payload,
        },
    )


def open_dispute(item: BillableItem, actor: Actor, reason: str, at=None) -> Dispute:
    """Record the client's objection to an invoiced item (one open dispute per item)."""
    at = at or timezone.now()
    reason = _reason(reason, "reason", "Say what the client disputes.")
    with transaction.atomic():
        item = (
            BillableItem.objects.select_for_update(of=("self",))
            .select_related("invoice")
            .get(pk=item.pk)
        )
        invoice = item.invoice
        if (
            item.status != ItemStatus.INVOICED
            or invoice is None
            or invoice.status != InvoiceStatus.FINAL
            or invoice.kind != InvoiceKind.INVOICE
        ):
            raise BillingError(
                "not_invoiced", "Only a line of an issued invoice can be disputed.", conflict=True
            )
        if InvoiceLine.objects.filter(
            organization=item.organization, item=item, invoice__kind=InvoiceKind.CREDIT_NOTE
        ).exists():
            raise BillingError("already_credited", "This item was credited already.", conflict=True)
        if Dispute.objects.filter(
            organization=item.organization, item=item, status=DisputeStatus.OPEN
        ).exists():
            raise BillingError("dispute_open", "This item is disputed already.", conflict=True)
        # The item's row lock serialises two requests; dispute_open_once_per_item backs it.
        dispute = Dispute.objects.create(
            organization=item.organization,
            item=item,
            invoice=invoice,
            client_id=item.client_id,
            reason=reason,
            raised_by=actor.id,
            raised_at=at,
        )
        _record(dispute, "opened", actor, at, reason=reason)
    return dispute


def decide(dispute: Dispute, actor: Actor, outcome: str, note: str, at=None) -> Dispute:
    """Uphold (the item is credited on a credit note) or reject the dispute, with a note."""
    at = at or timezone.now()
    if outcome not in OUTCOMES:
        raise BillingError("invalid_outcome", "Choose upheld or rejected.", "outcome")
    note = _reason(note, "note", "Say why the dispute is decided this way.")
    with transaction.atomic():
        dispute = (
            Dispute.objects.select_for_update(of=("self",))
            .select_related("item__deliverable", "invoice", "client")
            .get(pk=dispute.pk)
        )
        if dispute.status != DisputeStatus.OPEN:
            raise BillingError(
                "already_decided",
                f"This dispute is already {dispute.get_status_display().lower()}.",
                conflict=True,
            )
        if outcome == "upheld":
            dispute.credit_note = invoices.credit_note(
                dispute.invoice, [dispute.item], f"Dispute upheld: {note}", actor, at
            )
        dispute.status = OUTCOMES[outcome]
        dispute.decided_by = actor.id
        dispute.decided_at = at
        dispute.outcome_note = note
        dispute.save()
        _record(
            dispute,
            "resolved",
            actor,
            at,
            outcome=outcome,
            note=note,
            credit_note=dispute.credit_note.label if dispute.credit_note else None,
        )
    return dispute


def _json(value) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()


def _event(event: Event) -> dict:
    return {
        "id": str(event.pk),
        "event_type": event.event_type,
        "occurred_at": event.occurred_at.isoformat(),
        "received_at": event.received_at.isoformat(),
        "idempotency_key": event.idempotency_key,
        "content_digest": event.content_digest,
        "actor_role": event.actor_role,
        "actor_id": event.actor_id,
        "payload": event.payload,
    }


README = """Evidence for dispute {dispute_id} of invoice {number}, line "{description}".

agreement/canonical.json   the scope agreement exactly as signed (UTF-8 bytes)
agreement/signature.b64    its Ed25519 signature (base64)
agreement/public_key.pem   the organization's public key ({key_id})
agreement/verification.json whether it still verifies, field by field
agreement/agreement.pdf    the agreement as a document
events.json                the events that caused the item, with their content digests
approvals.json             how finance decided the item: proposals, approvals, adjustments
invoice/document.json      the invoice as digested; its SHA-256 is invoice/digest.txt
invoice/invoice.pdf        the invoice as issued
dispute.json               the dispute: who raised it, when, why, and its outcome
manifest.json              the SHA-256 of every file above

Verify the agreement offline (Python, cryptography):
  from cryptography.hazmat.primitives.serialization import load_pem_public_key
  key = load_pem_public_key(open("agreement/public_key.pem", "rb").read())
  key.verify(base64.b64decode(open("agreement/signature.b64").read()),
             open("agreement/canonical.json", "rb").read())   # raises if altered
"""


def evidence_bundle(dispute: Dispute) -> bytes:
    """The evidence pack as a zip: the signed agreement and its verification, the events
    behind the item with their digests, the approvals, the invoice and the dispute."""
    item = dispute.item
    agreement = item.agreement
    invoice = dispute.invoice
    doc = invoices.document(invoice)
    canonical_doc = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    approvals_trail = Event.objects.filter(
        organization=dispute.organization,
        deliverable_id=item.deliverable_id,
        event_type__startswith="billing.item_",
        payload__item_id=str(item.pk),
    ).order_by("occurred_at", "id")
    files = {
        "README.txt": README.format(
            dispute_id=dispute.pk,
            number=invoice.label,
            description=item.description,
            key_id=agreement.signing_key.key_id,
        ).encode(),
        "agreement/canonical.json": agreement.canonical.encode(),
        "agreement/signature.b64": agreement.signature.encode() + b"\n",
        "agreement/public_key.pem": agreements.public_key_pem(agreement.signing_key).encode(),
        "agreement/verification.json": _json(agreements.verify(agreement).as_dict()),
        "agreement/agreement.pdf": pdf.agreement_pdf(agreement),
        "events.json": _json([_event(e) for e in item.events.order_by("occurred_at", "id")]),
        "approvals.json": _json(
            {
                "item_id": str(item.pk),
                "clause": item.clause,
                "proposed_quantity": str(item.proposed_quantity),
                "quantity": str(item.quantity),
                "rate": str(item.rate),
                "amount": str(item.amount),
                "currency": item.currency,
                "proposed_at": item.proposed_at.isoformat(),
                "first_approver": item.first_approver,
                "first_approved_at": item.first_approved_at,
                "approver": item.approver,
                "approved_at": item.approved_at,
                "adjustments": item.adjustments,
                "trail": [_event(e) for e in approvals_trail],
            }
        ),
        "invoice/document.json": _json(doc),
        "invoice/digest.txt": (
            f"stored  {invoice.digest}\n"
            f"computed {hashlib.sha256(canonical_doc).hexdigest()}\n"
            "computed = SHA-256 of document.json with sorted keys and no whitespace\n"
        ).encode(),
        "invoice/invoice.pdf": pdf.invoice_pdf(invoice),
        "dispute.json": _json(
            {
                "dispute_id": str(dispute.pk),
                "status": dispute.status,
                "reason": dispute.reason,
                "raised_by": dispute.raised_by,
                "raised_at": dispute.raised_at,
                "decided_by": dispute.decided_by,
                "decided_at": dispute.decided_at,
                "outcome_note": dispute.outcome_note,
                "credit_note": dispute.credit_note.label if dispute.credit_note_id else None,
            }
        ),
    }
    files["manifest.json"] = _json(
        {name: hashlib.sha256(b).hexdigest() for name, b in files.items()}
    )
    stamp = dispute.raised_at.astimezone(UTC).timetuple()[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(f"evidence/{name}", date_time=stamp), content)
    return out.getvalue()
