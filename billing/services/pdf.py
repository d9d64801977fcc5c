"""Agreements and invoices as PDF, drawn with fpdf2 from the same document dicts that are
signed or digested (``agreements.document``, ``invoices.document``), so the PDF says exactly
what the trail entry proves. The file's dates are the document's own (accepted, finalised),
so rendering one twice gives the same bytes."""

from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from billing.models import Invoice, InvoiceStatus, ScopeAgreement
from billing.services import agreements, invoices

FAMILY = "meshline"
NEXT_LINE = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}


class _Document(FPDF):
    """A4 portrait with a footer naming the document and the page."""

    def __init__(self, title: str, created: datetime):
        super().__init__(format="A4")
        self.doc_title = title
        self.set_title(title)
        self.set_creator("Meshline")
        self.set_creation_date(created)
        self.set_auto_page_break(auto=True, margin=18)
        self.unicode = _add_font(self)
        self.add_page()

    def footer(self):
        self.set_y(-12)
        self.style(8)
        self.cell(0, 6, self.text(f"{self.doc_title} · page {self.page_no()}/{{nb}}"), align="C")

    def style(self, size: float, bold: bool = False) -> None:
        family = FAMILY if self.unicode else "helvetica"
        self.set_font(family, "B" if bold else "", size)

    def text(self, value) -> str:
        """Text the font can print: everything with a TrueType font, Latin-1 with the
        built-in one (anything else becomes "?", never an exception)."""
        value = "" if value is None else str(value)
        if self.unicode:
            return value
        value = value.replace("·", "-").replace("—", "-").replace("→", "->")
        return value.encode("latin-1", "replace").decode("latin-1")

    def heading(self, value: str, size: float = 12) -> None:
        self.ln(3)
        self.style(size, bold=True)
        self.multi_cell(0, size * 0.55, self.text(value), align="L", **NEXT_LINE)
        self.style(10)

    def paragraph(self, value: str, size: float = 10) -> None:
        self.style(size)
        self.multi_cell(0, 5, self.text(value), align="L", **NEXT_LINE)

    def rows(self, header: list[str], rows: list[list], widths: tuple, align_right=()) -> None:
        self.style(9)
        with self.table(
            col_widths=widths,
            text_align=tuple("RIGHT" if i in align_right else "LEFT" for i in range(len(header))),
            first_row_as_headings=True,
            line_height=5,
        ) as table:
            for values in [header, *rows]:
                row = table.row()
                for value in values:
                    row.cell(self.text(value))
        self.style(10)


def _add_font(pdf: FPDF) -> bool:
    regular = Path(settings.MESHLINE_PDF_FONT or "")
    if not regular.is_file():
        return False
    bold = regular.with_name(f"{regular.stem}-Bold{regular.suffix}")
    pdf.add_font(FAMILY, "", str(regular))
    pdf.add_font(FAMILY, "B", str(bold if bold.is_file() else regular))
    return True


def _when(value: str | None) -> str:
    """An ISO 8601 instant of a document, as people read it (UTC, to the minute)."""
    if not value:
        return "—"
    instant = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return instant.strftime("%Y-%m-%d %H:%M UTC")


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
