"""The :class:`Document` of a stored invoice or credit note, and its PDF and UBL renderings."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings

from cspdesk.core.l10n import normalize_language

from ..models import Invoice, InvoiceKind, InvoiceLine
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
    return documents_for([invoice])[0]


def documents_for(invoices: Sequence[Invoice]) -> list[Document]:
    """:func:`document_for` of each invoice, their lines and whether a collections policy applies read for all
    of them at once (the issued documents of a run are stored a hundred invoices at a time)."""
    lines = _lines(invoices)
    policy = _policy_urls(invoices)
    return [_document(invoice, lines.get(invoice.pk, ()), policy.get(invoice.pk, "")) for invoice in invoices]


def _document(invoice: Invoice, lines: tuple[Line, ...], policy_url: str) -> Document:
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
        lines=lines,
        due_date=invoice.due_date,
        payment_terms=terms,
        bank=bank,
        portal_url=f"{getattr(settings, 'CSPDESK_PORTAL_URL', 'http://127.0.0.1:8000')}/portal/invoices/{invoice.pk}",
        policy_url=policy_url,
        exchange_rate=fx,
        preceding_invoice=preceding,
        note=invoice.reason,
    )
    if doc.totals.payable != invoice.total or doc.totals.tax_total != invoice.tax:
        raise AssertionError(f"invoice {number}: stored totals differ from its lines")
    return doc


def _policy_urls(invoices: Sequence[Invoice]) -> dict[int, str]:
    """Where each invoice's customer reads the collections policy an unpaid invoice falls under; none for a
    credit note, for a reseller's invoice from its provider, or where no policy applies."""
    # Collections is built on billing; the published policy's address is the one thing an invoice needs from it.
    from cspdesk.collections import notices
    from cspdesk.collections import selectors as collections

    billed = [(i, i.customer) for i in invoices if i.kind == InvoiceKind.INVOICE and i.customer is not None]
    covered = collections.customers_with_policy([customer for _, customer in billed])
    return {
        i.pk: notices.policy_url(customer, normalize_language(i.language))
        for i, customer in billed
        if customer.pk in covered
    }


def _lines(invoices: Sequence[Invoice]) -> dict[int, tuple[Line, ...]]:
    """Each invoice's document lines, in order, from one query."""
    from ..services import doc_lines

    by_invoice: dict[int, list[InvoiceLine]] = {}
    for line in InvoiceLine.objects.filter(invoice__in=[i.pk for i in invoices]).order_by("invoice_id", "position"):
        by_invoice.setdefault(line.invoice_id, []).append(line)
    currency = {i.pk: i.currency for i in invoices}
    return {pk: tuple(doc_lines(found, currency[pk])) for pk, found in by_invoice.items()}


def render_pdf(invoice: Invoice) -> bytes:
    return pdf.render(document_for(invoice))


def render_ubl(invoice: Invoice) -> bytes:
    return ubl.render(document_for(invoice))
