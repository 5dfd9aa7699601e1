"""The published policy as a PDF (fpdf2 with the bundled DejaVu font, like invoices): the same text as the page."""

from __future__ import annotations

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from cspdesk.billing.documents.pdf import FONT, FONT_DIR, MARGIN

from .published import PolicyDocument


def render(doc: PolicyDocument) -> bytes:
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=MARGIN)
    pdf.add_font(FONT, "", FONT_DIR / "DejaVuSans.ttf")
    pdf.add_font(FONT, "B", FONT_DIR / "DejaVuSans-Bold.ttf")
    pdf.set_title(doc.title)
    pdf.set_lang(doc.language)
    pdf.set_creation_date(doc.updated_at)  # the same policy gives the same bytes
    pdf.add_page()
    pdf.set_font(FONT, "B", 15)
    pdf.multi_cell(0, 8, doc.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_font(FONT, size=10)
    pdf.multi_cell(0, 5, doc.intro, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for section in doc.sections:
        pdf.ln(3)
        pdf.set_font(FONT, "B", 12)
        pdf.multi_cell(0, 6, section.heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, size=10)
        for paragraph in section.paragraphs:
            pdf.multi_cell(0, 5, paragraph, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1)
        for n, item in enumerate(section.items, start=1):
            pdf.multi_cell(0, 5, f"{n}. {item}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
