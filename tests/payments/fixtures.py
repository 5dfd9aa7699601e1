"""Factories for payments tests: finalized invoices and credit notes made directly (no billing run)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.tenancy.models import Customer

_seq = itertools.count(1)


def make_invoice(customer: Customer, total: str, *, due: dt.date, issued: dt.date | None = None,
                 number: str | None = None) -> Invoice:  # fmt: skip
    n = next(_seq)
    org = customer.organisation
    issued = issued or due - dt.timedelta(days=30)
    return Invoice.objects.create(
        kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED, organisation=org, customer=customer,
        period=issued.replace(day=1), currency=customer.currency, source_currency=customer.currency,
        language=customer.locale, series=org.invoice_series, year=issued.year, sequence=n,
        number=number or f"{org.invoice_series}-{issued.year}-{n:06d}", issue_date=issued, due_date=due,
        net=Decimal(total), tax=Decimal(0), total=Decimal(total), finalized_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )  # fmt: skip


def make_credit_note(invoice: Invoice, total: str, *, issued: dt.date) -> Invoice:
    n = next(_seq)
    org = invoice.organisation
    return Invoice.objects.create(
        kind=InvoiceKind.CREDIT_NOTE, status=InvoiceStatus.FINALIZED, organisation=org, customer=invoice.customer,
        period=invoice.period, currency=invoice.currency, source_currency=invoice.currency,
        language=invoice.language, series=f"{org.invoice_series}-CN", year=issued.year, sequence=n,
        number=f"{org.invoice_series}-CN-{issued.year}-{n:06d}", issue_date=issued, credited_invoice=invoice,
        net=Decimal(total), tax=Decimal(0), total=Decimal(total), reason="test",
    )  # fmt: skip
