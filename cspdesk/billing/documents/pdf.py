"""PDF rendering of an invoice or credit note with fpdf2, in the document's language.

The bundled DejaVu Sans (``fonts/``) covers every letter of our languages
(ő, ű, å, ç, à, …); no system font is used, so the output is the same on every
machine. The creation date is the issue date, so rendering the same document
twice gives the same bytes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Final

from babel import Locale
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

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


class _Pdf(FPDF):
    def __init__(self, doc: Document) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.doc = doc
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=MARGIN + 5)
        pdffonts.add_bundled_fonts(self, FONT)
        self.set_font(FONT, size=9)

    def footer(self) -> None:
        self.set_y(-MARGIN)
        self.set_font(FONT, size=7)
        self.cell(0, 4, f"{_title(self.doc)} {self.doc.number} · {self.page_no()}/{{nb}}", align="C")


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
    pdf.set_font(FONT, "B", 8)
    pdf.multi_cell(width, 4, heading.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FONT, "B", 10)
    pdf.multi_cell(width, 5, party.name, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
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
    pdf.multi_cell(width, 4.5, "\n".join(lines), new_x=XPos.LEFT, new_y=YPos.NEXT)
    return pdf.get_y()


def _header(pdf: _Pdf) -> None:
    doc = pdf.doc
    pdf.set_font(FONT, "B", 18)
    pdf.cell(0, 10, _title(doc), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    facts = [(_t("number", doc), doc.number), (_t("issue_date", doc), _day(doc.issue_date, doc.language))]
    if doc.due_date:
        facts.append((_t("due_date", doc), _day(doc.due_date, doc.language)))
    if doc.period:
        start, end = doc.period
        facts.append((_t("period", doc), f"{_day(start, doc.language)} – {_day(end, doc.language)}"))
    if doc.buyer_reference:
        facts.append((_t("buyer_reference", doc), doc.buyer_reference))
    for key, value in facts:
        pdf.set_font(FONT, "B", 9)
        pdf.cell(45, 5, key)
        pdf.set_font(FONT, size=9)
        pdf.cell(0, 5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if doc.preceding_invoice is not None:
        ref = doc.preceding_invoice
        pdf.set_font(FONT, "B", 9)
        pdf.multi_cell(
            0,
            5,
            _t("preceding_invoice", doc).format(number=ref.number, date=_day(ref.issue_date, doc.language)),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
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
    heading = FontFace(emphasis="BOLD", fill_color=GREY)
    group_style = FontFace(emphasis="BOLD")
    with pdf.table(
        col_widths=COLUMNS,
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        headings_style=heading,
        line_height=4.5,
        padding=1,
        borders_layout="HORIZONTAL_LINES",
        width=pdf.epw,
    ) as table:
        row = table.row()
        for key in ("description", "period", "quantity", "unit_price", "vat_rate", "net_amount"):
            row.cell(_t(key, doc))
        for group, members in doc.groups():
            table.row().cell(group, colspan=len(COLUMNS), style=group_style)
            for line in members:
                text = line.description
                if line.reference:
                    text += f"\n{_t('reference', doc)}: {line.reference}"
                period = ""
                if line.period_start and line.period_end:
                    period = f"{_day(line.period_start, doc.language)} –\n{_day(line.period_end, doc.language)}"
                row = table.row()
                row.cell(text)
                row.cell(period)
                row.cell(_number(line.quantity, doc.language))
                row.cell(_unit_price(line.unit_price, doc.currency, doc.language))
                row.cell(_rate_text(line, doc))
                row.cell(_money(line.net_amount, doc.currency, doc.language))


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
        pdf.set_font(FONT, "B" if bold else "", 11 if bold else 9)
        pdf.cell(label_w, 6, _t(key, doc), align="R")
        pdf.cell(value_w, 6, _money(amount, doc.currency, doc.language), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    pdf.ln(4)


def _vat_summary(pdf: _Pdf) -> None:
    doc = pdf.doc
    pdf.set_font(FONT, "B", 10)
    pdf.cell(0, 6, _t("vat_summary", doc), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    with pdf.table(
        col_widths=(40, 15, 20, 20),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
        headings_style=FontFace(emphasis="BOLD", fill_color=GREY),
        line_height=4.5,
        padding=1,
        borders_layout="HORIZONTAL_LINES",
        width=pdf.epw,
    ) as table:
        row = table.row()
        for key in ("vat_category", "vat_rate", "taxable_amount", "vat_amount"):
            row.cell(_t(key, doc))
        for entry in doc.totals.vat_breakdown:
            row = table.row()
            row.cell(f"{labels.category_name(entry.category, doc.language)} ({entry.category.value})")
            row.cell(_percent(entry.rate, doc.language) if entry.category.has_rate else "–")
            row.cell(_money(entry.taxable_amount, doc.currency, doc.language))
            row.cell(_money(entry.tax_amount, doc.currency, doc.language))
    pdf.ln(2)
    for note in doc.notes():
        pdf.set_font(FONT, "B", 9)
        pdf.multi_cell(0, 5, note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    if doc.exchange_rate is not None:
        pdf.multi_cell(
            0,
            5,
            labels.exchange_rate_sentence(doc.exchange_rate, doc.currency, doc.language),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
    if doc.note:
        pdf.multi_cell(0, 5, doc.note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)


def _payment(pdf: _Pdf) -> None:
    doc = pdf.doc

    def pair(key: str, value: str, link: str = "") -> None:
        pdf.set_font(FONT, "B", 9)
        pdf.cell(45, 5, _t(key, doc))
        pdf.set_font(FONT, size=9)
        pdf.multi_cell(0, 5, value, link=link or None, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if doc.payment_terms:
        pair("payment_terms", doc.payment_terms)
    if doc.due_date:
        pair("due_date", _day(doc.due_date, doc.language))
    if doc.bank is not None:
        pdf.ln(1)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(0, 6, _t("bank_details", doc), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
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
    return bytes(pdf.output())
