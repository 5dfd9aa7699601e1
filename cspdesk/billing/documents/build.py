"""The :class:`Document` of a stored invoice or credit note, and its PDF and UBL renderings."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from django.conf import settings

from cspdesk.core.l10n import normalize_language

from ..models import Invoice, InvoiceKind, InvoiceStatus
from . import pdf, ubl
from .model import Address, BankAccount, Document, DocumentKind, ExchangeRate, Line, Party, PrecedingInvoice

TERMS = {
    "en": "{days} days net from the invoice date",
    "it": "{days} giorni data fattura",
    "sv": "{days} dagar netto från fakturadatum",
    "pt-pt": "{days} dias a contar da data da fatura",
    "hu": "a számla keltétől számított {days} nap",
}


def _party(name: str, obj: object, vat_id: str, email: str = "") -> Party:
    address = Address(
        street=getattr(obj, "address_line1", "") or "-",
        additional_street=getattr(obj, "address_line2", ""),
        city=getattr(obj, "city", "") or "-",
        postal_code=getattr(obj, "postal_code", ""),
        country=(getattr(obj, "country", "") or "").upper(),
        region=getattr(obj, "region", ""),
    )
    return Party(name, address, vat_id=vat_id, email=email)


def document_for(invoice: Invoice) -> Document:
    """Build the document from the stored invoice; its totals are recomputed and must equal the stored ones."""
    seller_org = invoice.organisation
    seller = _party(seller_org.legal_name, seller_org, seller_org.vat_id)
    if invoice.customer is not None:
        c = invoice.customer
        buyer = _party(c.name, c, c.vat_id, (c.billing_emails or [""])[0])
    else:
        o = invoice.buyer_organisation
        assert o is not None
        buyer = _party(o.legal_name, o, o.vat_id)
    fx = None
    if invoice.exchange_rate is not None and invoice.exchange_rate_date is not None:
        fx = ExchangeRate(invoice.source_currency, Decimal(invoice.exchange_rate), invoice.exchange_rate_date,
                          invoice.exchange_rate_provider)  # fmt: skip
    preceding = None
    if invoice.kind == InvoiceKind.CREDIT_NOTE:
        original = invoice.credited_invoice
        assert original is not None and original.issue_date is not None
        preceding = PrecedingInvoice(original.number, original.issue_date)
    bank = None
    if seller_org.bank_iban:
        bank = BankAccount(seller_org.bank_iban, seller_org.bank_bic, seller_org.bank_account_name or seller.name)
    number = invoice.number or f"DRAFT-{invoice.pk}"
    issue = invoice.issue_date or invoice.period
    terms = ""
    if invoice.due_date and invoice.issue_date:
        terms = TERMS.get(invoice.language, TERMS["en"]).format(days=(invoice.due_date - invoice.issue_date).days)
    doc = Document(
        kind=DocumentKind.INVOICE if invoice.kind == InvoiceKind.INVOICE else DocumentKind.CREDIT_NOTE,
        number=number,
        issue_date=issue,
        currency=invoice.currency,
        language=invoice.language,
        seller=seller,
        buyer=buyer,
        lines=_lines(invoice),
        due_date=invoice.due_date,
        payment_terms=terms,
        bank=bank,
        portal_url=f"{getattr(settings, 'CSPDESK_PORTAL_URL', 'http://127.0.0.1:8000')}/portal/invoices/{invoice.pk}",
        policy_url=_policy_url(invoice),
        exchange_rate=fx,
        preceding_invoice=preceding,
        note=invoice.reason,
    )
    if doc.totals.payable != invoice.total or doc.totals.tax_total != invoice.tax:
        raise AssertionError(f"invoice {number}: stored totals differ from its lines")
    return doc


def _policy_url(invoice: Invoice) -> str:
    """Where the customer reads the collections policy an unpaid invoice falls under; none for a credit note,
    for a reseller's invoice from its provider, or where the seller has no policy."""
    if invoice.kind != InvoiceKind.INVOICE or invoice.customer is None:
        return ""
    # Collections is built on billing; the published policy's address is the one thing an invoice needs from it.
    from cspdesk.collections import notices
    from cspdesk.collections import selectors as collections

    if collections.policy_for_customer(invoice.customer) is None:
        return ""
    return notices.policy_url(invoice.customer, normalize_language(invoice.language))


_LINES: Final = "_cspdesk_document_lines"


def _lines(invoice: Invoice) -> tuple[Line, ...]:
    """The document lines, kept on a finalized invoice object (its lines can no longer change), so that
    rendering its PDF and then its UBL reads them once; a draft's are read every time."""
    from ..services import doc_lines

    finalized = invoice.status == InvoiceStatus.FINALIZED and invoice.pk is not None
    if finalized and _LINES in invoice.__dict__:
        kept: tuple[Line, ...] = invoice.__dict__[_LINES]
        return kept
    lines = tuple(doc_lines(list(invoice.lines.order_by("position")), invoice.currency))
    if finalized:
        invoice.__dict__[_LINES] = lines
    return lines


def render_pdf(invoice: Invoice) -> bytes:
    return pdf.render(document_for(invoice))


def render_ubl(invoice: Invoice) -> bytes:
    return ubl.render(document_for(invoice))
