"""The per-process font caches behind PDF rendering (cspdesk.core.pdffonts) keep documents apart."""

from __future__ import annotations

import io

from pypdf import PdfReader

from cspdesk.billing.documents import pdf
from cspdesk.core import pdffonts

from . import fixtures


def _text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_documents_in_different_languages_each_get_their_own_text() -> None:
    hungarian, swedish = fixtures.domestic_hu(), fixtures.domestic_se()
    for _ in range(2):
        hu_text, se_text = _text(pdf.render(hungarian)), _text(pdf.render(swedish))
        assert "Számla" in hu_text and "Faktura" not in hu_text
        assert "Faktura" in se_text and "Számla" not in se_text


def test_a_cached_subset_is_the_subset_made_from_the_whole_font() -> None:
    """A document's font is cut from the glyphs used so far, or taken from the cache: the same bytes as a
    fresh process would write."""
    docs = [fixtures.domestic_it(), fixtures.domestic_se(), fixtures.reverse_charge_pt(), fixtures.domestic_hu()]
    pdffonts._sources.clear()
    fresh = [pdf.render(doc) for doc in docs]  # each new glyph set cut from the whole font, then cached
    for source in pdffonts._sources.values():
        source._subsets.clear()  # keep the font of glyphs seen so far: cut from it now
    assert [pdf.render(doc) for doc in reversed(docs)] == list(reversed(fresh))
    assert [pdf.render(doc) for doc in docs] == fresh  # from the cache
    pdffonts._sources.clear()
    assert pdf.render(docs[0]) == fresh[0]


def test_text_widths_do_not_depend_on_what_was_measured_before() -> None:
    doc = fixtures.domestic_hu()
    pdffonts._sources.clear()
    first = pdf.render(doc)
    for source in pdffonts._sources.values():
        source.widths.clear()
    assert pdf.render(doc) == first
