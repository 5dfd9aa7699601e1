"""The invoice PDF's shortcuts past fpdf2 (cspdesk.billing.documents.pdf, cspdesk.core.pdffonts) write what
fpdf2 itself writes: the text operators, the justified paragraphs and their links, and the font objects."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from fpdf.enums import XPos, YPos
from fpdf.syntax import PDFObject

from cspdesk.billing.documents import pdf
from cspdesk.billing.documents.model import Document
from cspdesk.core import pdffonts

from . import fixtures

NOTE = "A note long enough to need several lines on the page, justified as fpdf2 justifies it. " * 3


def _documents() -> dict[str, Document]:
    docs = {name: make() for name, make in fixtures.SCENARIOS.items()}
    docs["wrapped-note"] = dataclasses.replace(fixtures.domestic_hu(), note=NOTE)
    specs = tuple((f"Service {i} – " + "word " * (i % 9), f"Group {i // 10}", "1", "9.99", "") for i in range(60))
    docs["long"] = fixtures.document(fixtures.SELLER_SE, fixtures.BUYER_SE, "SEK", "sv", specs=specs)
    return docs


@pytest.mark.parametrize("name", list(_documents()))
def test_the_fonts_are_written_as_fpdf2_writes_them(name: str) -> None:
    doc = _documents()[name]
    ours = pdf.render(doc)
    assert bytes(pdf._document(doc).output()) == ours  # fpdf2's own OutputProducer
    assert pdf.render(doc) == ours  # and again, from what was kept


def test_font_objects_have_the_entries_fpdf2_would_list() -> None:
    page = pdf._document(fixtures.domestic_it())
    page.output(output_producer_class=pdffonts.OutputProducer)
    font = page.fonts["dejavusans"]
    objects: list[PDFObject] = [font.desc, pdffonts._Font("Type0", "X", "Identity-H", 1000, "[]"),
                                pdffonts._SystemInfo(), pdffonts._Stream(b"x", compress=True),
                                pdffonts._FontStream(b"x")]  # fmt: skip
    for n, obj in enumerate(objects, start=1):
        obj.id = n
        assert pdffonts._own_attributes(obj) == PDFObject._build_obj_dict(obj)


PARAGRAPHS = (
    NOTE,
    "Two  spaces  here and   three there, with words enough to wrap the line more than once or twice. " * 3,
    "Amounts\u00a0in\u00a0EUR are due within thirty\u00a0days; late payment interest applies as the law says. " * 3,
    "Word " + "x" * 150 + " and after it more words to fill the next line of the paragraph up.",
    "First line.\n\nAfter a blank line, a long sentence that wraps over to a second line of text in the note.\nLast",
    "Ends with spaces and is long enough to wrap onto another line of the paragraph in the note     ",
    "Győri Műhely · à la carte · Håkan Gonçalves · Ærø · Łódź · Čapek · (parentheses) and a \\ backslash " * 3,
    "short",
    "",
)


def _page() -> pdf._Pdf:
    page = pdf._Pdf(fixtures.domestic_hu())
    page.set_creation_date(datetime(2026, 11, 3, tzinfo=UTC))
    page.add_page()
    return page


@pytest.mark.parametrize("link", ["", "https://portal.example/invoices/123"])
@pytest.mark.parametrize("width", [0.0, 60.0, 87.5])
def test_paragraphs_are_drawn_as_multi_cell_draws_them(width: float, link: str) -> None:
    ours, theirs = _page(), _page()
    for text in PARAGRAPHS * 3:  # runs onto a second page
        for page, draw in ((ours, pdf._paragraph), (theirs, None)):
            page.set_font(pdf.FONT, "B" if len(text) % 2 else "", 9)
            page.set_x(page.l_margin + 10)
            if draw is None:
                page.multi_cell(width, 5, text, link=link or None, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            else:
                draw(page, width, 5, text, XPos.LMARGIN, link)
            assert (page.x, page.y) == (ours.x, ours.y)
    assert ours.page > 1
    assert bytes(ours.output()) == bytes(theirs.output())


def test_text_is_written_as_fpdf2_writes_it() -> None:
    ours, theirs = _page(), _page()
    for n, text in enumerate(["Számla", "(a) \\ b", "", "1\u00a0234,50\u00a0Ft", "Ærø – Łódź"]):
        for page in (ours, theirs):
            page.set_font(pdf.FONT, "B" if n % 2 else "", 8 + n)
        pdf._text(ours, 20.5 + n, 30.25 + 7 * n, text)
        theirs.text(20.5 + n, 30.25 + 7 * n, text)
    assert bytes(ours.output()) == bytes(theirs.output())
