"""The customer statement: invoices, credit notes, payments and refunds with a running balance, as a PDF in
the customer's language (the billing documents' font, labels and local formats)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from cspdesk.billing.documents import labels as billing_labels
from cspdesk.billing.documents.pdf import FONT, GREY, MARGIN
from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.core import clock, l10n, pdffonts
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import NotFound
from cspdesk.core.money import quantize
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.models import Customer
from cspdesk.tenancy.permissions import Perm

from .models import Payment, Refund, WriteOff

ZERO = Decimal(0)

LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {"statement": "Statement of account", "as_of": "As of", "date": "Date", "document": "Document",
           "debit": "Debit", "credit": "Credit", "balance": "Balance", "payment": "Payment", "refund": "Refund",
           "closing": "Balance due", "currency": "Currency", "due": "due",
           "write_off": "Write-off"},
    "it": {"statement": "Estratto conto", "as_of": "Alla data del", "date": "Data", "document": "Documento",
           "debit": "Dare", "credit": "Avere", "balance": "Saldo", "payment": "Pagamento", "refund": "Rimborso",
           "closing": "Saldo da pagare", "currency": "Valuta", "due": "scad.",
           "write_off": "Stralcio"},
    "sv": {"statement": "Kontoutdrag", "as_of": "Per", "date": "Datum", "document": "Dokument",
           "debit": "Debet", "credit": "Kredit", "balance": "Saldo", "payment": "Betalning", "refund": "Återbetalning",
           "closing": "Att betala", "currency": "Valuta", "due": "förfaller",
           "write_off": "Avskrivning"},
    "pt-pt": {"statement": "Extrato de conta", "as_of": "Em", "date": "Data", "document": "Documento",
              "debit": "Débito", "credit": "Crédito", "balance": "Saldo", "payment": "Pagamento",
              "refund": "Reembolso", "closing": "Saldo em dívida", "currency": "Moeda", "due": "venc.",
              "write_off": "Anulação de dívida"},
    "hu": {"statement": "Folyószámla-kivonat", "as_of": "Fordulónap", "date": "Dátum", "document": "Bizonylat",
           "debit": "Tartozik", "credit": "Követel", "balance": "Egyenleg", "payment": "Befizetés",
           "refund": "Visszatérítés", "closing": "Fizetendő egyenleg", "currency": "Pénznem", "due": "esed.",
           "write_off": "Leírás"},
}  # fmt: skip


@dataclass(frozen=True)
class Row:
    day: dt.date
    kind: str  # invoice, credit_note, payment, write_off, refund
    reference: str
    debit: Decimal
    credit: Decimal
    due: dt.date | None = None


def statement_rows(customer: Customer, currency: str, until: dt.date) -> list[Row]:
    rows: list[Row] = []
    docs = Invoice.objects.filter(customer=customer, currency=currency, status=InvoiceStatus.FINALIZED,
                                  issue_date__lte=until)  # fmt: skip
    for inv in docs:
        assert inv.issue_date is not None
        if inv.kind == InvoiceKind.INVOICE:
            rows.append(Row(inv.issue_date, "invoice", inv.number, quantize(inv.total, currency), ZERO, inv.due_date))
        else:
            rows.append(Row(inv.issue_date, "credit_note", inv.number, ZERO, quantize(inv.total, currency)))
    for p in Payment.objects.filter(customer=customer, currency=currency, received_on__lte=until):
        rows.append(Row(p.received_on, "payment", p.reference[:60] or f"#{p.pk}", ZERO, quantize(p.amount, currency)))
    for r in Refund.objects.filter(payment__customer=customer, payment__currency=currency, refunded_on__lte=until):
        rows.append(Row(r.refunded_on, "refund", r.reason[:60] or f"#{r.payment_id}", quantize(r.amount, currency),
                        ZERO))  # fmt: skip
    write_offs = WriteOff.objects.filter(
        invoice__customer=customer, invoice__currency=currency, written_off_on__lte=until, reversed_at__isnull=True
    ).select_related("invoice")
    for w in write_offs:
        rows.append(Row(w.written_off_on, "write_off", w.invoice.number, ZERO, quantize(w.amount, currency)))
    order = {"invoice": 0, "credit_note": 1, "payment": 2, "write_off": 3, "refund": 4}
    return sorted(rows, key=lambda r: (r.day, order[r.kind], r.reference))


def statement_data(actor: Actor, customer_id: int, until: dt.date | None = None) -> dict[str, Any]:
    permissions.require(actor, Perm.PAYMENTS_READ)
    customer = tenancy_selectors.get_or_404(tenancy_selectors.customers_for(actor), customer_id, "customer")
    if actor.kind is ActorKind.STAFF and customer.organisation_id != actor.organisation_id:
        raise NotFound(f"no customer with id {customer_id}")  # a provider does not read a reseller's ledger
    until = until or clock.today()
    currencies = sorted(
        set(
            Invoice.objects.filter(customer=customer, status=InvoiceStatus.FINALIZED).values_list("currency", flat=True)
        )
        | set(Payment.objects.filter(customer=customer).values_list("currency", flat=True))
        or {customer.currency}
    )
    sections = []
    for currency in currencies:
        balance = ZERO
        lines = []
        for row in statement_rows(customer, currency, until):
            balance += row.debit - row.credit
            lines.append({**row.__dict__, "balance": balance})
        sections.append({"currency": currency, "lines": lines, "balance": balance})
    return {"customer": customer, "as_of": until, "sections": sections}


def render(data: dict[str, Any]) -> bytes:
    customer: Customer = data["customer"]
    seller = customer.organisation
    lang = l10n.normalize_language(customer.locale)
    t = LABELS[lang]

    def kind_label(kind: str) -> str:
        if kind in ("invoice", "credit_note"):
            return billing_labels.label(kind, lang)
        return t[kind]

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=MARGIN + 5)
    pdffonts.add_bundled_fonts(pdf, FONT)
    pdf.set_title(f"{t['statement']} – {customer.name}")
    pdf.set_author(seller.legal_name)
    pdf.set_lang(l10n.babel_locale(lang).replace("_", "-"))
    pdf.set_creation_date(dt.datetime.combine(data["as_of"], dt.time(0, 0), tzinfo=dt.UTC))
    pdf.add_page()
    pdf.set_font(FONT, "B", 18)
    pdf.cell(0, 10, t["statement"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    for key, value in (
        (billing_labels.label("seller", lang), f"{seller.legal_name}, {seller.city}"),
        (billing_labels.label("buyer", lang), f"{customer.name}, {customer.city}"),
        (t["as_of"], l10n.day(data["as_of"], lang)),
    ):
        pdf.set_font(FONT, "B", 9)
        pdf.cell(45, 5, key)
        pdf.set_font(FONT, size=9)
        pdf.cell(0, 5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for section in data["sections"]:
        cur = section["currency"]
        pdf.ln(4)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(0, 6, f"{t['currency']}: {cur}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, size=8)
        with pdf.table(col_widths=(14, 34, 14, 14, 14), text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
                       headings_style=FontFace(emphasis="BOLD", fill_color=GREY), line_height=4.5, padding=1,
                       borders_layout="HORIZONTAL_LINES", width=pdf.epw) as table:  # fmt: skip
            head = table.row()
            for key in ("date", "document", "debit", "credit", "balance"):
                head.cell(t[key])
            for line in section["lines"]:
                row = table.row()
                row.cell(l10n.day(line["day"], lang))
                text = f"{kind_label(line['kind'])} {line['reference']}"
                if line["due"]:
                    text += f" ({t['due']} {l10n.day(line['due'], lang)})"
                row.cell(text)
                row.cell(l10n.money(line["debit"], cur, lang) if line["debit"] else "")
                row.cell(l10n.money(line["credit"], cur, lang) if line["credit"] else "")
                row.cell(l10n.money(line["balance"], cur, lang))
        pdf.ln(2)
        pdf.set_font(FONT, "B", 11)
        pdf.cell(0, 6, f"{t['closing']}: {l10n.money(section['balance'], cur, lang)}", align="R",
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    return bytes(pdf.output())


def statement_pdf(actor: Actor, customer_id: int, until: dt.date | None = None) -> tuple[bytes, str]:
    data = statement_data(actor, customer_id, until)
    return render(data), f"statement-{customer_id}-{data['as_of']:%Y%m%d}.pdf"
