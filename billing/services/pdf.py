"""Agreements and invoices as PDF, drawn with fpdf2 from the same document dicts that are
signed or digested (``agreements.document``, ``invoices.document``), so the PDF says exactly
what the trail entry proves. The file's dates are the document's own (accepted, finalised),
so rendering one twice gives the same bytes."""

from datetime import UTC

from billing.models import Invoice, InvoiceStatus, ScopeAgreement
from billing.services import agreements, invoices
from meshline.pdf import Document as _Document
from meshline.pdf import when as _when


def agreement_filename(agreement: ScopeAgreement) -> str:
    return f"agreement-{agreement.client.client_id}-v{agreement.version}.pdf"


def agreement_pdf(agreement: ScopeAgreement) -> bytes:
    """The signed agreement: parties, limits, rate card, terms, and how to verify it."""
    doc = agreements.document(agreement)
    verification = agreements.verify(agreement)
    subject = agreement.client.name
    if agreement.deliverable_id:
        subject += f", {doc['deliverable']}"
    pdf = _Document(f"Scope agreement v{doc['version']}: {subject}", agreement.accepted_at)
    pdf.heading(pdf.doc_title, 16)
    pdf.paragraph(
        f"Between {agreement.organization.name} and {agreement.client.name} "
        f"(client {doc['client']}). Accepted by {doc['accepted_by']} on "
        f"{_when(doc['accepted_at'])}; in force from {_when(doc['valid_from'])}"
        + (f" until {_when(doc['valid_until'])}." if doc["valid_until"] else ", until amended.")
    )
    pdf.heading("Included")
    pdf.rows(["Limit", "Included"], [[k, v] for k, v in doc["limits"].items()], (70, 30), {1})
    pdf.heading(f"Beyond the limits ({doc['currency']})")
    if doc["rates"]:
        pdf.rows(
            ["Clause", "Rate", "Per"],
            [[k, r["rate"], r["unit"]] for k, r in doc["rates"].items()],
            (60, 30, 50),
            {1},
        )
    else:
        pdf.paragraph("No rate card: work beyond the limits is priced by finance.")
    if doc.get("terms"):
        pdf.heading("Terms")
        pdf.paragraph(doc["terms"])
    pdf.heading("Signature")
    pdf.paragraph(
        "Verified: unaltered since it was signed."
        if verification.valid
        else "DOES NOT VERIFY: "
        + "; ".join(d["field"] for d in verification.differences or [{"field": "signature"}])
    )
    pdf.paragraph(f"SHA-256 of the canonical form: {agreement.digest}", 8)
    pdf.paragraph(f"Ed25519 signature (base64): {agreement.signature}", 8)
    pdf.paragraph(
        f"Key {doc['key_id']}, published at /keys/{doc['key_id']}.pem. To verify offline, "
        "check the signature over the canonical form below (UTF-8 bytes) with that key.",
        8,
    )
    pdf.heading("Canonical form (what was signed)", 10)
    pdf.paragraph(agreement.canonical, 7)
    return bytes(pdf.output())


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice (or credit note) with its lines, totals, digest, and per line the
    agreement and events it rests on."""
    doc = invoices.document(invoice)
    kind = invoice.get_kind_display()
    draft = invoice.status == InvoiceStatus.DRAFT
    pdf = _Document(f"{kind} {doc['number']}", invoice.finalized_at or invoice.created_at)
    pdf.heading(f"{kind} {doc['number']}" + (" (DRAFT, not issued)" if draft else ""), 16)
    pdf.paragraph(f"From {invoice.organization.name} to {invoice.client.name} ({doc['client']}).")
    pdf.paragraph(
        f"Work from {_when(doc['period_start'])} to {_when(doc['period_end'])}. "
        + (
            f"Issued {invoice.finalized_at.astimezone(UTC).strftime('%Y-%m-%d')}."
            if invoice.finalized_at
            else "Not issued yet: numbers and totals are final only once issued."
        )
    )
    if invoice.corrects_id:
        pdf.paragraph(f"Corrects {invoice.corrects.label}: {invoice.reason}")
    lines = doc["lines"]
    pdf.heading("Lines")
    pdf.rows(
        ["#", "Description", "Quantity", "Rate", f"Amount ({doc['currency']})"],
        [
            [
                line["position"],
                line["description"],
                f"{line['quantity']} {line['unit']}",
                line["rate"],
                line["amount"],
            ]
            for line in lines
        ],
        (8, 82, 34, 26, 30),
        {2, 3, 4},
    )
    pdf.rows(
        ["", f"{doc['currency']}"],
        [
            ["Subtotal", doc["subtotal"]],
            [f"Tax ({doc['tax_rate']})", doc["tax"]],
            ["Total", doc["total"]],
        ],
        (150, 30),
        {1},
    )
    if doc.get("footer"):
        pdf.ln(2)
        pdf.paragraph(doc["footer"])
    pdf.heading("Evidence", 10)
    pdf.paragraph(
        "Each line is work beyond a signed scope agreement; the agreement's digest and the "
        "events that caused the line are listed (all in the client's trail).",
        8,
    )
    for line in lines:
        pdf.paragraph(
            f"{line['position']}. agreement {line['agreement_id']} (sha256 "
            f"{line['agreement_digest']}); events {', '.join(line['event_ids']) or 'none'}",
            7,
        )
    if invoice.digest:
        pdf.paragraph(
            f"Invoice digest (sha256, in the trail as invoice.generated): {invoice.digest}", 8
        )
    return bytes(pdf.output())
