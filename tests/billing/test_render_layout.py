"""The invoice PDF draws its tables and one-line paragraphs itself (cspdesk.billing.documents.pdf): its line
breaking must be fpdf2's, and long tables must run onto further pages under a repeated heading."""

from __future__ import annotations

import dataclasses
import io
import warnings

import pytest
from fpdf.enums import XPos, YPos
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from cspdesk.billing.documents import pdf

from . import fixtures

TEXTS = (
    "Azure plan – subscription 4f2a",
    "Microsoft 365 Business Premium – proration 15 Oct\nRef.: recon 2026-10 row 26",
    "1 ott 2026 –\n31 ott 2026",
    "4\u00a0759,2288\u00a0Ft",
    "Mennyiség",
    "Supercalifragilisticexpialidocious-ÁÉÍÓÖŐÚÜŰ-unbreakablewordthatislong and more words",
    "two  spaces  between   words that may fall at the end of a line",
    "ends with a space \nand a newline\n",
    "\n\nblank lines\n\n",
    "Győri Műhely · à la carte · Håkan Gonçalves",
    "",
)
WIDTHS = (8.0, 12.4, 20.0, 33.2, 66.4, 178.0)


@pytest.mark.parametrize("style", ["", "B"])
def test_lines_are_broken_where_fpdf2_breaks_them(style: str) -> None:
    doc = fixtures.domestic_hu()
    page = pdf._Pdf(doc)
    page.add_page()
    page.set_font(pdf.FONT, style, 9)
    for text in TEXTS:
        for width in WIDTHS:
            ours = pdf._wrap(page, text, width - 2 * pdf.PADDING)
            assert ours is not None
            theirs = page.multi_cell(
                width,
                pdf.LINE_HEIGHT,
                text,
                padding=pdf.PADDING,
                new_x=XPos.RIGHT,
                new_y=YPos.TOP,
                dry_run=True,
                output="LINES",
            )
            assert [line for line, _, _ in ours] == (theirs if text else [""]), (text, width)
            for line, line_width, _ in ours:
                assert line_width == pytest.approx(page.get_string_width(line))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.lists(st.sampled_from(["word", "Árvíztűrő", "x" * 40, " ", "  ", "\n", "\u00a0", "ő"]), max_size=30).map(
        "".join
    ),
    width=st.sampled_from(WIDTHS),
    style=st.sampled_from(["", "B"]),
)
def test_text_broken_paragraph_by_paragraph_is_broken_as_a_whole(text: str, width: float, style: str) -> None:
    """Each paragraph of a text is broken (and kept) on its own: the lines, their widths and which are justified
    are those of breaking the whole text at once, and the lines are fpdf2's."""
    page = pdf._Pdf(fixtures.domestic_hu())
    page.add_page()
    page.set_font(pdf.FONT, style, 9)
    box = width - 2 * pdf.PADDING
    ours = pdf._wrap(page, text, box)
    font = page.current_font
    whole = pdf._break(text, font.cw, page.font_size_pt, page.k, box)
    if whole is None:
        assert ours is None
        return
    assert ours is not None
    assert [(line, justified) for line, _, justified in ours] == [(ln.replace("\u00a0", " "), j) for ln, j in whole]
    theirs = page.multi_cell(width, pdf.LINE_HEIGHT, text, padding=pdf.PADDING, new_x=XPos.RIGHT, new_y=YPos.TOP,
                             dry_run=True, output="LINES")  # fmt: skip
    assert [line for line, _, _ in ours] == (theirs if text else [""])
    for line, line_width, _ in ours:
        assert line_width == pytest.approx(page.get_string_width(line))


def _pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def test_a_long_invoice_repeats_the_table_heading_on_every_page() -> None:
    specs = tuple(
        (f"Service {i} – a description long enough to wrap " + "word " * (i % 7), f"Group {i // 10}", "1", "9.99", "")
        for i in range(120)
    )
    doc = fixtures.document(fixtures.SELLER_IT, fixtures.BUYER_US, "USD", "en", specs=specs)
    pages = _pages(pdf.render(doc))
    assert len(pages) > 3
    table_pages = [text for text in pages if "Service" in text]
    assert len(table_pages) == len(pages) or len(table_pages) == len(pages) - 1
    assert all("Description" in text and "Net amount" in text for text in table_pages)
    everything = "".join("".join(text.split()) for text in pages)
    positions = [everything.index(f"Service{i}–") for i in range(120)]
    assert positions == sorted(positions)


def test_an_invoice_of_over_a_thousand_pages_prints_its_page_count_whole() -> None:
    """A reseller's invoice lists every customer's lines: over 1,000 pages happen, and the footer has room."""
    specs = tuple((f"Customer {i}" + "\n·" * 50, f"Reseller group {i}", "1", "1.00", "") for i in range(1000))
    doc = fixtures.document(fixtures.SELLER_IT, fixtures.BUYER_US, "USD", "en", specs=specs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fpdf2 warns when the count is wider than the room kept for it
        data = pdf.render(doc)
    reader = PdfReader(io.BytesIO(data))
    total = len(reader.pages)
    assert total >= 1000
    assert reader.pages[-1].extract_text().rstrip().endswith(f"· {total}/{total}")
    assert reader.pages[9].extract_text().rstrip().endswith(f"· 10/{total}")


def test_wrapped_paragraphs_are_left_to_fpdf2_and_keep_their_words() -> None:
    note = "A note long enough to need several lines on the page. " * 8
    doc = dataclasses.replace(fixtures.domestic_it(), note=note)
    text = "".join("".join(page.split()) for page in _pages(pdf.render(doc)))
    assert "".join(note.split()) in text
