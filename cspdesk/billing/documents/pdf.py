"""PDF rendering of an invoice or credit note with fpdf2, in the document's language.

The bundled DejaVu Sans (``fonts/``) covers every letter of our languages
(ő, ű, å, ç, à, …); no system font is used, so the output is the same on every
machine. The creation date is the issue date, so rendering the same document
twice gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Final, TypeAlias

from babel import Locale
from fpdf import FPDF
from fpdf.enums import TextMode, XPos, YPos
from fpdf.fonts import TTFFont
from fpdf.line_break import BREAKING_SPACE_SYMBOLS_STR, FORM_FEED, NBSP, SOFT_HYPHEN

from cspdesk.core import l10n, pdffonts
from cspdesk.core.l10n import babel_locale

from ..tax import VatCategory
from . import labels
from .model import Document, Line, Party

FONT_DIR: Final = Path(__file__).resolve().parent / "fonts"
FONT: Final = "DejaVuSans"
GREY: Final = (235, 235, 235)
MARGIN: Final = 15.0
# Lines table: description, period, quantity, unit price, VAT, net amount (fractions of the width).
COLUMNS: Final = (38, 17, 10, 13, 8, 14)
# The footer's page count: fpdf2 reserves one digit less than "{nb}" has characters, so a reseller's invoice of
# 1,000 pages or more overflowed it; this alias keeps room for four digits.
PAGE_COUNT: Final = "{np}"


class _Pdf(FPDF):
    def __init__(self, doc: Document) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.doc = doc
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=MARGIN + 5)
        pdffonts.add_bundled_fonts(self, FONT)
        self.set_font(FONT, size=9)
        self.alias_nb_pages(PAGE_COUNT)

    def footer(self) -> None:
        self.set_y(-MARGIN)
        self.set_font(FONT, size=7)
        self.cell(0, 4, f"{_title(self.doc)} {self.doc.number} · {self.page_no()}/{PAGE_COUNT}", align="C")


# Text layout. fpdf2's table() and multi_cell() lay every cell out twice and break text one character at a
# time through several layers of objects; for an invoice's lines that was most of the time a PDF took. The
# tables and the paragraphs are drawn here instead, with fpdf2's own rules: a line breaks at the last breaking
# space before the text overflows, or inside a word that is wider than the box; a paragraph's line broken at a
# space is justified, its other lines are not; cells are padded by 1 mm, rows are as high as their highest
# cell and each cell's text is centred in its row; horizontal rules between rows, a grey heading row repeated
# at the top of each page a table runs onto, and a table never starts with its heading alone at the foot of a
# page.

_TOLERANCE: Final = 1e-9  # fpdf.util.FloatTolerance
_LEFT_TO_FPDF: Final = (SOFT_HYPHEN, FORM_FEED, "\r")  # characters whose line breaking stays with fpdf2
# breaking spaces fpdf2 counts when it justifies a line but does not widen: such paragraphs stay with fpdf2
_UNEVEN_SPACES: Final = tuple(c for c in BREAKING_SPACE_SYMBOLS_STR if c != " ")
_MISSING: Final = object()
# a line of text as printed, its width, and whether fpdf2 justifies it in a paragraph (it was broken at a space)
_Lines: TypeAlias = tuple[tuple[str, float, bool], ...]
_wrapped: dict[tuple[str, float, float, str], _Lines | None] = {}
_WRAPPED_KEPT: Final = 100_000
PADDING: Final = 1
LINE_HEIGHT: Final = 4.5


def _break(text: str, cw: Mapping[int, float], size_pt: float, k: float, width: float) -> list[tuple[str, bool]] | None:
    """The lines fpdf2's ``multi_cell`` (word wrap) makes of ``text`` in a box ``width`` wide, each with whether
    it was broken at a space (which fpdf2 justifies), or None where fpdf2 is left to decide (soft hyphens, a
    character wider than the box)."""
    lines: list[tuple[str, bool]] = []
    n = len(text)
    i = 0
    while i < n:
        start = i
        units = 0.0
        hint = -1
        while True:
            if i == n:
                if units:
                    lines.append((text[start:], False))
                break
            c = text[i]
            if c == "\n":
                lines.append((text[start:i], False))
                i += 1
                break
            cu = cw[ord(c)]
            if (units * size_pt * 0.001) / k + (cu * size_pt * 0.001) / k - width > _TOLERANCE:
                if c in BREAKING_SPACE_SYMBOLS_STR:
                    lines.append((text[start:i], True))
                    i += 1
                elif hint >= 0:
                    lines.append((text[start:hint], True))
                    i = hint + 1
                elif i == start:
                    return None
                else:
                    lines.append((text[start:i], False))
                break
            if c in BREAKING_SPACE_SYMBOLS_STR:
                hint = i
            units += cu
            i += 1
    return lines or [("", False)]


_FAMILY: Final = FONT.lower()


def _set_font(pdf: _Pdf, style: str = "", size: float = 0) -> None:
    """``pdf.set_font(FONT, style, size)`` (style "" or "B"), doing what fpdf2 2.8's ``set_font`` does for a font
    already added, without its checks (a table's rows switch between bold and regular on every row): nothing when
    that font is the current one, else select it, to be set on the page with the next text."""
    size = size or pdf.font_size_pt
    if pdf.underline or pdf.strikethrough or style not in ("", "B"):
        pdf.set_font(FONT, style, size)
        return
    font = pdf.current_font
    if (
        pdf.font_style == style
        and pdf.font_size_pt == size
        and pdf.font_family == _FAMILY
        and font is not None
        and font.fontkey == _FAMILY + style
    ):
        return
    pdf.font_family = _FAMILY
    pdf.font_style = style
    pdf.font_size_pt = size
    pdf.current_font = pdf.fonts[_FAMILY + style]
    pdf.current_font_is_set_on_page = False


def _font(pdf: _Pdf) -> TTFFont:
    font = pdf.current_font
    assert isinstance(font, TTFFont)
    return font


def _wrap(pdf: _Pdf, text: str, width: float) -> _Lines | None:
    """``text`` broken into lines in the current font for a box ``width`` wide (margins already taken off), each
    line as fpdf2 would print it (a no-break space is printed as a space) with its width as fpdf2 measures it and
    whether it was broken at a space; None: ask fpdf2.

    A new line starts afresh after each line break, so each paragraph of the text is broken (and kept) on its own,
    ending in its line break as it does in the text: an invoice line's description recurs on every invoice, the
    reference under it does not."""
    if "\n" not in text:
        return _wrap_piece(pdf, text, width)
    *paragraphs, last = text.split("\n")
    pieces = [paragraph + "\n" for paragraph in paragraphs]
    if last:  # after a final line break, fpdf2 starts no further line
        pieces.append(last)
    lines: list[tuple[str, float, bool]] = []
    for piece in pieces:
        wrapped = _wrap_piece(pdf, piece, width)
        if wrapped is None:
            return None
        lines.extend(wrapped)
    return tuple(lines)


def _wrap_piece(pdf: _Pdf, text: str, width: float) -> _Lines | None:
    font = _font(pdf)
    size_pt = pdf.font_size_pt
    key = (font.fontkey, size_pt, width, text)
    found = _wrapped.get(key, _MISSING)
    if found is not _MISSING:
        return found  # type: ignore[return-value]
    result: _Lines | None = None
    if not any(c in text for c in _LEFT_TO_FPDF):
        cw = font.cw
        k = pdf.k
        lines = _break(text, cw, size_pt, k, width)
        if lines is not None:
            printed = [(line.replace(NBSP, " "), justified) for line, justified in lines]
            result = tuple(
                (line, (sum(cw[ord(c)] for c in line) * size_pt * 0.001) / k, justified) for line, justified in printed
            )
    if len(_wrapped) >= _WRAPPED_KEPT:
        _wrapped.clear()
    _wrapped[key] = result
    return result


def _text_width(pdf: _Pdf, text: str) -> float:
    """Width of ``text`` in the current font, as fpdf2 measures it."""
    cw = _font(pdf).cw
    return (sum(cw[ord(c)] for c in text) * pdf.font_size_pt * 0.001) / pdf.k


def _plain(pdf: _Pdf) -> bool:
    """Whether text is drawn plainly: none of the settings fpdf2's text drawing checks for (a text mode,
    underlining, a text colour, text quad points, spacing, shaping) is set. Our documents set none."""
    return not (
        pdf.text_mode is not TextMode.FILL
        or pdf.underline
        or pdf.strikethrough
        or pdf._record_text_quad_points
        or pdf.fill_color != pdf.text_color
        or pdf.font_stretching != 100
        or pdf.char_spacing
        or pdf.text_shaping
    )


def _text(pdf: _Pdf, x: float, y: float, text: str) -> None:
    """``pdf.text(x, y, text)``: the same text operator, written straight to the page (:func:`_texts`)."""
    _texts(pdf, [(x, y, text)])


def _texts(pdf: _Pdf, placed: list[tuple[float, float, str]]) -> None:
    """``pdf.text(x, y, text)`` for each ``(x, y, text)`` in turn: the same text operators, written straight to the
    page, the drawing state checked once. fpdf2's ``text`` spends longer on its checks and wrappers than on
    writing; where one of its settings is set, it draws the texts."""
    if not placed:
        return
    if not _plain(pdf):
        for x, y, text in placed:
            pdf.text(x, y, text)
        return
    font = _font(pdf)
    if not pdf.current_font_is_set_on_page:
        pdf._out(pdf._set_font_for_page(font, pdf.font_size_pt))
    k, h, encode = pdf.k, pdf.h, font.encode_text
    pdf._out("\n".join([f"BT {x * k:.2f} {(h - y) * k:.2f} Td {encode(text)} ET" for x, y, text in placed]))


def _cell(pdf: _Pdf, w: float, h: float, text: str, *, align: str = "L", next_line: bool = False) -> None:
    """``pdf.cell(w, h, text, align=align)``, then to the right of it or (``next_line``) to the next line."""
    pdf._perform_page_break_if_need_be(h)
    x = pdf.x
    if w == 0:
        w = pdf.w - pdf.r_margin - x
    if text:
        c_margin = pdf.c_margin
        dx = w - c_margin - _text_width(pdf, text) if align == "R" else c_margin
        _text(pdf, x + dx, pdf.y + (0.5 * h + 0.3 * pdf.font_size), text)
    if next_line:
        pdf.x = pdf.l_margin
        pdf.y += h
    else:
        pdf.x = x + w


def _line(pdf: _Pdf, h: float, text: str, text_w: float, word_spacing: float, link: str) -> None:
    """One line of a ``multi_cell`` paragraph as fpdf2 draws it at the current position (``FPDF.
    _render_styled_text_line``): ``word_spacing`` added at each space when justified, and a link over its text."""
    font = _font(pdf)
    assert isinstance(font, pdffonts.SharedFont)
    if not pdf.current_font_is_set_on_page:
        pdf._out(pdf._set_font_for_page(font, pdf.font_size_pt))
    k = pdf.k
    x = pdf.x + pdf.c_margin
    font_size = pdf.font_size
    if word_spacing:
        adjust = f"{-(word_spacing * k) * 1000 / pdf.font_size_pt:.3f}({font.escaped(' ')}"
        first, *words = text.split(" ")
        shown = " ".join([f"({font.escaped(first)})", *[f"{adjust}{font.escaped(word)})" for word in words]])
        shown = f"[{shown}] TJ"
    else:
        shown = f"({font.escaped(text)}) Tj"
    pdf._out(f"BT {x * k:.2f} {(pdf.h - pdf.y - 0.5 * h - 0.3 * font_size) * k:.2f} Td {shown} ET")
    if link:
        pdf.link(x, pdf.y + (0.5 * h) - (0.5 * font_size), text_w, font_size, link)


def _paragraph(pdf: _Pdf, w: float, h: float, text: str, new_x: XPos = XPos.LMARGIN, link: str = "") -> None:
    """``pdf.multi_cell(w, h, text, new_x=new_x, new_y=YPos.NEXT, link=link)``: justified, fpdf2's default."""
    x = pdf.x
    c_margin = pdf.c_margin
    box = pdf.w - pdf.r_margin - x if w == 0 else w
    # fpdf2 ends a paragraph ending in a new line with a line break, and leaves out a U+0000 in a wrapped one
    plain = _plain(pdf) and not (text.endswith("\n") or "\x00" in text or any(c in text for c in _UNEVEN_SPACES))
    lines = _wrap(pdf, text, box - c_margin - c_margin) if plain else None
    if lines is None:
        pdf.multi_cell(w, h, text, link=link or None, new_x=new_x, new_y=YPos.NEXT)
        return
    if link or len(lines) != text.count("\n") + 1:
        # wrapped, or a link: fpdf2's own line drawing
        for line, line_w, justified in lines:
            pdf._perform_page_break_if_need_be(h)
            if line:
                spaces = line.count(" ") if justified else 0
                word_spacing = (box - c_margin - c_margin - line_w) / spaces if spaces else 0.0
                _line(pdf, h, line, line_w, word_spacing, link)
            pdf.y += h
    else:
        rise = 0.5 * h + 0.3 * pdf.font_size
        for line, _, _ in lines:
            pdf._perform_page_break_if_need_be(h)
            if line:
                _text(pdf, x + c_margin, pdf.y + rise, line)
            pdf.y += h
    pdf.x = pdf.l_margin if new_x is XPos.LMARGIN else x


@dataclass(frozen=True, slots=True)
class _Row:
    """A table row: one text per column, or a single text across all columns."""

    cells: tuple[str, ...]
    bold: bool = False


@dataclass(slots=True)
class _Laid:
    row: _Row
    height: float
    # per cell: its lines and widths, or None where fpdf2's multi_cell draws it; and the cell's own height
    cells: list[tuple[_Lines | None, float]]


def _table(
    pdf: _Pdf, fractions: Sequence[float], align: Sequence[str], heading: Sequence[str], rows: Sequence[_Row]
) -> None:
    """What ``pdf.table(col_widths=fractions, text_align=align, headings_style=bold on GREY, line_height=4.5,
    padding=1, borders_layout="HORIZONTAL_LINES", width=pdf.epw)`` draws for ``heading`` and ``rows``."""
    size = pdf.font_size_pt
    left = pdf.l_margin
    width = pdf.epw
    total = sum(fractions)
    widths = [fraction / total * width for fraction in fractions]
    xs = [left]
    for w in widths:
        xs.append(xs[-1] + w)
    full = 0.0
    for w in widths:
        full += w
    table = [_Row(tuple(heading), bold=True), *rows]

    def lay(row: _Row) -> _Laid:
        _set_font(pdf, "B" if row.bold else "", size)
        cells: list[tuple[_Lines | None, float]] = []
        height = 0.0
        for j, text in enumerate(row.cells):
            if not text:
                cells.append(((), 0.0))
                continue
            w = full if len(row.cells) == 1 else widths[j]
            lines = _wrap(pdf, text, w - PADDING - PADDING)
            if lines is None:
                measured = pdf.multi_cell(w, LINE_HEIGHT, text, max_line_height=LINE_HEIGHT, padding=PADDING,
                                          new_x=XPos.RIGHT, new_y=YPos.TOP, dry_run=True, output="HEIGHT")  # fmt: skip
                assert isinstance(measured, float)
                cell_h = measured
            else:
                cell_h = len(lines) * LINE_HEIGHT + PADDING + PADDING
            cells.append((lines, cell_h))
            height = max(height, cell_h)
        return _Laid(row, height or LINE_HEIGHT, cells)

    laid = [lay(row) for row in table]
    last = len(laid) - 1
    rise = 0.5 * LINE_HEIGHT + 0.3 * size / pdf.k

    def draw(i: int) -> None:
        item = laid[i]
        y = pdf.y
        bottom = y + item.height
        if i == 0:
            with pdf.local_context(fill_color=GREY):
                pdf.rect(left, y, full, item.height, style="F")
        if i > 0:
            pdf.line(left, y, left + full, y)
        if i < last:
            pdf.line(left, bottom, left + full, bottom)
        _set_font(pdf, "B" if item.row.bold else "", size)
        single = len(item.row.cells) == 1
        placed: list[tuple[float, float, str]] = []
        for j, (lines, cell_h) in enumerate(item.cells):
            w = full if single else widths[j]
            top = y + (item.height - cell_h) / 2
            if lines is None:
                _texts(pdf, placed)
                placed = []
                pdf.set_xy(xs[j], top)
                pdf.multi_cell(w, LINE_HEIGHT, item.row.cells[j], max_line_height=LINE_HEIGHT, padding=PADDING,
                               align=align[j], new_x=XPos.RIGHT, new_y=YPos.TOP)  # fmt: skip
                continue
            x = xs[j] + PADDING
            right = align[j] == "R"
            line_y = top + PADDING + rise
            for text, text_w, _ in lines:
                if text:
                    placed.append((x + ((w - PADDING - PADDING) - text_w) if right else x, line_y, text))
                line_y += LINE_HEIGHT
        _texts(pdf, placed)
        pdf.x = left
        pdf.y = bottom

    if last > 0:
        pdf._perform_page_break_if_need_be(laid[0].height + laid[1].height)
    for i, item in enumerate(laid):
        if pdf._perform_page_break_if_need_be(item.height):
            if pdf.y + item.height > pdf.page_break_trigger:
                raise ValueError(f"The row with index {i} is too high and cannot be rendered on a single page")
            if i > 0:
                draw(0)
        draw(i)
    _set_font(pdf, "", size)


def _t(key: str, doc: Document) -> str:
    return labels.label(key, doc.language)


def _title(doc: Document) -> str:
    return _t("credit_note" if doc.is_credit_note else "invoice", doc)


def _country(code: str, doc: Document) -> str:
    return _country_name(code, doc.language)


# Local formats, kept per process: the same dates, rates and amounts recur on every line and every invoice.
# Decimals are keyed by their text, which keeps their exponent (1.0 and 1.00 are printed differently).
@lru_cache(maxsize=512)
def _country_name(code: str, language: str) -> str:
    name = Locale.parse(babel_locale(language)).territories.get(code)
    return str(name) if name else code


@lru_cache(maxsize=4096)
def _day(value: date, language: str) -> str:
    return l10n.day(value, language)


@lru_cache(maxsize=1024)
def _percent_text(rate: str, language: str) -> str:
    return l10n.percent(Decimal(rate), language)


@lru_cache(maxsize=8192)
def _number_text(value: str, language: str) -> str:
    return l10n.number(Decimal(value), language)


@lru_cache(maxsize=8192)
def _unit_price_text(value: str, currency: str, language: str) -> str:
    return l10n.unit_price(Decimal(value), currency, language)


@lru_cache(maxsize=8192)
def _money_text(value: str, currency: str, language: str) -> str:
    return l10n.money(Decimal(value), currency, language)


def _percent(rate: Decimal, language: str) -> str:
    return _percent_text(str(rate), language)


def _number(value: Decimal, language: str) -> str:
    return _number_text(str(value), language)


def _unit_price(value: Decimal, currency: str, language: str) -> str:
    return _unit_price_text(str(value), currency, language)


def _money(value: Decimal, currency: str, language: str) -> str:
    return _money_text(str(value), currency, language)


def _iban(iban: str) -> str:
    compact = iban.replace(" ", "")
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _party_block(pdf: _Pdf, x: float, width: float, heading: str, party: Party) -> float:
    doc = pdf.doc
    pdf.set_xy(x, pdf.get_y())
    _set_font(pdf, "B", 8)
    _paragraph(pdf, width, 4, heading.upper(), XPos.LEFT)
    _set_font(pdf, "B", 10)
    _paragraph(pdf, width, 5, party.name, XPos.LEFT)
    _set_font(pdf, "", 9)
    address = party.address
    lines = [address.street]
    if address.additional_street:
        lines.append(address.additional_street)
    lines.append(" ".join(p for p in (address.postal_code, address.city, address.region) if p))
    lines.append(_country(address.country, doc))
    if party.vat_id:
        lines.append(f"{_t('vat_id', doc)}: {party.vat_id}")
    if party.registration_id:
        lines.append(f"{_t('registration_id', doc)}: {party.registration_id}")
    if party.email:
        lines.append(f"{_t('email', doc)}: {party.email}")
    _paragraph(pdf, width, 4.5, "\n".join(lines), XPos.LEFT)
    return pdf.get_y()


def _header(pdf: _Pdf) -> None:
    doc = pdf.doc
    _set_font(pdf, "B", 18)
    _cell(pdf, 0, 10, _title(doc), next_line=True)
    _set_font(pdf, "", 9)
    facts = [(_t("number", doc), doc.number), (_t("issue_date", doc), _day(doc.issue_date, doc.language))]
    if doc.due_date:
        facts.append((_t("due_date", doc), _day(doc.due_date, doc.language)))
    if doc.period:
        start, end = doc.period
        facts.append((_t("period", doc), f"{_day(start, doc.language)} – {_day(end, doc.language)}"))
    if doc.buyer_reference:
        facts.append((_t("buyer_reference", doc), doc.buyer_reference))
    for key, value in facts:
        _set_font(pdf, "B", 9)
        _cell(pdf, 45, 5, key)
        _set_font(pdf, "", 9)
        _cell(pdf, 0, 5, value, next_line=True)
    if doc.preceding_invoice is not None:
        ref = doc.preceding_invoice
        _set_font(pdf, "B", 9)
        _paragraph(
            pdf, 0, 5, _t("preceding_invoice", doc).format(number=ref.number, date=_day(ref.issue_date, doc.language))
        )
    pdf.ln(4)
    top = pdf.get_y()
    half = (pdf.epw - 10) / 2
    bottom_seller = _party_block(pdf, pdf.l_margin, half, _t("seller", doc), doc.seller)
    pdf.set_y(top)
    bottom_buyer = _party_block(pdf, pdf.l_margin + half + 10, half, _t("buyer", doc), doc.buyer)
    pdf.set_xy(pdf.l_margin, max(bottom_seller, bottom_buyer) + 6)


def _rate_text(line: Line, doc: Document) -> str:
    if line.vat.category is VatCategory.STANDARD:
        return _percent(line.vat.rate, doc.language)
    return line.vat.category.value


def _lines(pdf: _Pdf) -> None:
    doc = pdf.doc
    rows: list[_Row] = []
    for group, members in doc.groups():
        rows.append(_Row((group,), bold=True))
        for line in members:
            text = line.description
            if line.reference:
                text += f"\n{_t('reference', doc)}: {line.reference}"
            period = ""
            if line.period_start and line.period_end:
                period = f"{_day(line.period_start, doc.language)} –\n{_day(line.period_end, doc.language)}"
            rows.append(
                _Row(
                    (
                        text,
                        period,
                        _number(line.quantity, doc.language),
                        _unit_price(line.unit_price, doc.currency, doc.language),
                        _rate_text(line, doc),
                        _money(line.net_amount, doc.currency, doc.language),
                    )
                )
            )
    heading = [_t(key, doc) for key in ("description", "period", "quantity", "unit_price", "vat_rate", "net_amount")]
    _table(pdf, COLUMNS, ("L", "L", "R", "R", "R", "R"), heading, rows)


def _totals(pdf: _Pdf) -> None:
    doc = pdf.doc
    t = doc.totals
    pdf.ln(3)
    label_w, value_w = 60.0, 40.0
    x = pdf.l_margin + pdf.epw - label_w - value_w
    rows = [
        ("total_net", t.tax_exclusive, False),
        ("total_vat", t.tax_total, False),
        ("total_payable", t.payable, True),
    ]
    for key, amount, bold in rows:
        pdf.set_x(x)
        _set_font(pdf, "B" if bold else "", 11 if bold else 9)
        _cell(pdf, label_w, 6, _t(key, doc), align="R")
        _cell(pdf, value_w, 6, _money(amount, doc.currency, doc.language), align="R", next_line=True)
    _set_font(pdf, "", 9)
    pdf.ln(4)


def _vat_summary(pdf: _Pdf) -> None:
    doc = pdf.doc
    _set_font(pdf, "B", 10)
    _cell(pdf, 0, 6, _t("vat_summary", doc), next_line=True)
    _set_font(pdf, "", 9)
    rows = [
        _Row(
            (
                f"{labels.category_name(entry.category, doc.language)} ({entry.category.value})",
                _percent(entry.rate, doc.language) if entry.category.has_rate else "–",
                _money(entry.taxable_amount, doc.currency, doc.language),
                _money(entry.tax_amount, doc.currency, doc.language),
            )
        )
        for entry in doc.totals.vat_breakdown
    ]
    heading = [_t(key, doc) for key in ("vat_category", "vat_rate", "taxable_amount", "vat_amount")]
    _table(pdf, (40, 15, 20, 20), ("L", "R", "R", "R"), heading, rows)
    pdf.ln(2)
    for note in doc.notes():
        _set_font(pdf, "B", 9)
        _paragraph(pdf, 0, 5, note)
    _set_font(pdf, "", 9)
    if doc.exchange_rate is not None:
        _paragraph(pdf, 0, 5, labels.exchange_rate_sentence(doc.exchange_rate, doc.currency, doc.language))
    if doc.note:
        _paragraph(pdf, 0, 5, doc.note)
    pdf.ln(3)


def _payment(pdf: _Pdf) -> None:
    doc = pdf.doc

    def pair(key: str, value: str, link: str = "") -> None:
        _set_font(pdf, "B", 9)
        _cell(pdf, 45, 5, _t(key, doc))
        _set_font(pdf, "", 9)
        _paragraph(pdf, 0, 5, value, link=link)

    if doc.payment_terms:
        pair("payment_terms", doc.payment_terms)
    if doc.due_date:
        pair("due_date", _day(doc.due_date, doc.language))
    if doc.bank is not None:
        pdf.ln(1)
        _set_font(pdf, "B", 10)
        _cell(pdf, 0, 6, _t("bank_details", doc), next_line=True)
        if doc.bank.account_name:
            pair("account_name", doc.bank.account_name)
        pair("iban", _iban(doc.bank.iban))
        if doc.bank.bic:
            pair("bic", doc.bank.bic)
        pair("reference", doc.number)
    if doc.portal_url:
        pdf.ln(1)
        pair("portal", doc.portal_url, link=doc.portal_url)
    if doc.policy_url:
        pair("collections_policy", doc.policy_url, link=doc.policy_url)


def render(doc: Document) -> bytes:
    """The document as PDF bytes."""
    return bytes(_document(doc).output(output_producer_class=pdffonts.OutputProducer))


def _document(doc: Document) -> _Pdf:
    """The document drawn, not yet written."""
    pdf = _Pdf(doc)
    title = f"{_title(doc)} {doc.number}"
    pdf.set_title(title)
    pdf.set_author(doc.seller.name)
    pdf.set_subject(f"{title} – {doc.buyer.name}")
    pdf.set_lang(babel_locale(doc.language).replace("_", "-"))
    pdf.set_creation_date(datetime.combine(doc.issue_date, time(0, 0), tzinfo=UTC))
    pdf.add_page()
    _header(pdf)
    _lines(pdf)
    _totals(pdf)
    _vat_summary(pdf)
    _payment(pdf)
    return pdf
