"""PDF documents drawn with fpdf2 (pure Python: the SQLite demo renders them on a bare
machine): A4 pages with a footer, headings, paragraphs and tables, in the font
``MESHLINE_PDF_FONT`` names (any script), or Helvetica (Latin-1; the rest prints "?").
Billing's agreements and invoices and reporting's forensic reports use it."""

from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from fpdf import FPDF
from fpdf.enums import XPos, YPos

FAMILY = "meshline"
NEXT_LINE = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}


class Document(FPDF):
    """A4 portrait with a footer naming the document and the page."""

    def __init__(self, title: str, created: datetime):
        super().__init__(format="A4")
        self.doc_title = title
        self.set_title(title)
        self.set_creator("Meshline")
        self.set_creation_date(created)
        self.set_auto_page_break(auto=True, margin=18)
        self.unicode = add_font(self)
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

    def rows(
        self, header: list[str], rows: list[list], widths: tuple, align_right=(), size: float = 9
    ) -> None:
        self.style(size)
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


def add_font(pdf: FPDF) -> bool:
    regular = Path(settings.MESHLINE_PDF_FONT or "")
    if not regular.is_file():
        return False
    bold = regular.with_name(f"{regular.stem}-Bold{regular.suffix}")
    pdf.add_font(FAMILY, "", str(regular))
    pdf.add_font(FAMILY, "B", str(bold if bold.is_file() else regular))
    return True


def when(value: str | None) -> str:
    """An ISO 8601 instant of a document, as people read it (UTC, to the minute)."""
    if not value:
        return "—"
    instant = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return instant.strftime("%Y-%m-%d %H:%M UTC")
