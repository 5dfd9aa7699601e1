"""Payments and receivables reads, scoped by an :class:`Actor`.

- staff with ``payments.read``: the payments their organisation received (and the suspense queue);
- a customer user with ``payments.read``: its own customer's payments;
- the system: everything.

Receivables are the finalized invoices the actor may read (``billing.selectors.invoices_for``) that a
customer owes; an invoice's open balance is the billing balance (total less credit notes) less the
payments allocated to it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from cspdesk.billing import selectors as billing_selectors
from cspdesk.billing import services as billing_services
from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.core import clock
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.money import quantize
from cspdesk.partnercenter.recon import selectors as recon_selectors
from cspdesk.partnercenter.recon.models import MicrosoftInvoice
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm

from . import allocation
from .models import Allocation, Payment, WriteOff

ZERO = Decimal(0)
DSO_DAYS = 90
_DEC: DecimalField[Decimal, Decimal] = DecimalField(max_digits=20, decimal_places=6)


def payments_for(actor: Actor, perm: Perm = Perm.PAYMENTS_READ) -> QuerySet[Payment]:
    qs = Payment.objects.select_related("organisation", "customer")
    if not permissions.has(actor, perm):
        return qs.none()
    if actor.is_system:
        return qs
    if actor.kind is ActorKind.CUSTOMER:
        if perm is not Perm.PAYMENTS_READ:
            return qs.none()
        return qs.filter(customer_id=actor.customer_pk)
    if actor.organisation_id is None:
        return qs.none()
    return qs.filter(organisation_id=actor.organisation_id)


def suspense_for(actor: Actor) -> QuerySet[Payment]:
    """Payments whose customer could not be told, waiting to be matched by hand."""
    if actor.kind is ActorKind.CUSTOMER:
        return Payment.objects.none()
    return payments_for(actor).filter(customer__isnull=True)


def allocations_for(actor: Actor, perm: Perm = Perm.PAYMENTS_READ) -> QuerySet[Allocation]:
    return Allocation.objects.filter(payment__in=payments_for(actor, perm)).select_related("payment", "invoice")


# ---------------------------------------------------------------- balances


def allocated(invoice: Invoice) -> Decimal:
    agg = invoice.allocations.filter(reversed_at__isnull=True).aggregate(s=Sum("amount"))["s"]
    return agg or ZERO


def open_balance(invoice: Invoice) -> Decimal:
    """What the customer still owes on the invoice: billing's balance less active allocations and write-offs."""
    if invoice.kind != InvoiceKind.INVOICE or invoice.status != InvoiceStatus.FINALIZED:
        return ZERO
    return quantize(billing_services.balance(invoice) - allocated(invoice) - written_off(invoice), invoice.currency)


def written_off(invoice: Invoice) -> Decimal:
    agg = invoice.write_offs.filter(reversed_at__isnull=True).aggregate(s=Sum("amount"))["s"]
    return agg or ZERO


def write_offs_for(actor: Actor, perm: Perm = Perm.PAYMENTS_READ) -> QuerySet[WriteOff]:
    """Write-offs on the invoices of the customers the actor's payments scope covers."""
    if not permissions.has(actor, perm) or (actor.kind is ActorKind.CUSTOMER and perm is not Perm.PAYMENTS_READ):
        return WriteOff.objects.none()
    invoices = billing_selectors.invoices_for(actor, Perm.INVOICES_READ)
    if actor.kind is ActorKind.STAFF:
        invoices = invoices.filter(organisation_id=actor.organisation_pk)
    return WriteOff.objects.filter(invoice__in=invoices).select_related("invoice", "invoice__customer")


def with_open_amount(qs: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """Annotate ``credited`` (credit notes), ``paid`` (allocations) and ``written_off`` in one query;
    :func:`open_of` gives what is still owed."""
    credited = (
        Invoice.objects.filter(credited_invoice=OuterRef("pk"), status=InvoiceStatus.FINALIZED)
        .values("credited_invoice")
        .annotate(s=Sum("total"))
        .values("s")
    )
    paid = (
        Allocation.objects.filter(invoice=OuterRef("pk"), reversed_at__isnull=True)
        .values("invoice")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    written_off = (
        WriteOff.objects.filter(invoice=OuterRef("pk"), reversed_at__isnull=True)
        .values("invoice")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    zero = Value(ZERO, output_field=_DEC)
    return qs.annotate(
        credited=Coalesce(Subquery(credited, output_field=_DEC), zero),
        paid=Coalesce(Subquery(paid, output_field=_DEC), zero),
        written_off=Coalesce(Subquery(written_off, output_field=_DEC), zero),
    )


def open_of(inv: Invoice) -> Decimal:
    """What is still owed on an invoice annotated by :func:`with_open_amount`, rounded to its currency."""
    settled = inv.credited + inv.paid + inv.written_off  # type: ignore[attr-defined]
    return quantize(Decimal(inv.total) - settled, inv.currency)


def receivables_for(actor: Actor) -> QuerySet[Invoice]:
    """Finalized customer invoices the actor may read, annotated with their open amount."""
    qs = billing_selectors.invoices_for(actor).filter(
        kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED, customer__isnull=False
    )
    return with_open_amount(qs).order_by("due_date", "number", "pk")


def open_items(customer_id: int, currency: str) -> list[allocation.OpenItem]:
    """The customer's invoices in ``currency`` with something still to pay (for the allocation plan)."""
    qs = with_open_amount(
        Invoice.objects.filter(
            customer_id=customer_id, currency=currency, kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED
        )
    )
    items = []
    for inv in qs:
        amount = open_of(inv)
        if amount > ZERO:
            items.append(allocation.OpenItem(inv.pk, inv.number, inv.due_date or inv.issue_date, amount))  # type: ignore[arg-type]
    return items


def unallocated(payment: Payment) -> Decimal:
    used = payment.allocations.filter(reversed_at__isnull=True).aggregate(s=Sum("amount"))["s"] or ZERO
    return Decimal(payment.amount) - Decimal(payment.refunded) - used


def payments_with_unallocated(qs: QuerySet[Payment]) -> QuerySet[Payment]:
    used = (
        Allocation.objects.filter(payment=OuterRef("pk"), reversed_at__isnull=True)
        .values("payment")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    return qs.annotate(used=Coalesce(Subquery(used, output_field=_DEC), Value(ZERO, output_field=_DEC)))


def customer_credit(customer_id: int, currency: str | None = None) -> Decimal:
    """Money the customer paid that is on no invoice (overpayments, not yet applied)."""
    qs = Payment.objects.filter(customer_id=customer_id)
    if currency:
        qs = qs.filter(currency=currency)
    return sum((_left_of(p) for p in payments_with_unallocated(qs)), ZERO)


def _left_of(payment: Payment) -> Decimal:
    """What is left of a payment annotated by :func:`payments_with_unallocated`: on no invoice, not refunded."""
    return Decimal(payment.amount) - Decimal(payment.refunded) - payment.used  # type: ignore[attr-defined]


def customers_with_credit(customer_ids: set[int]) -> set[tuple[int, str]]:
    """The (customer, currency) pairs among ``customer_ids`` with money paid that is on no invoice (one query;
    :func:`customer_credit` gives the amount for one customer)."""
    credit: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    ids = sorted(customer_ids)
    for i in range(0, len(ids), 500):
        for p in payments_with_unallocated(Payment.objects.filter(customer_id__in=ids[i : i + 500])):
            credit[(p.customer_id, p.currency)] += _left_of(p)  # type: ignore[index]
    return {key for key, amount in credit.items() if amount > 0}


def payment_dict(p: Payment) -> dict[str, Any]:
    return {
        "id": p.pk, "organisation_id": p.organisation_id, "customer_id": p.customer_id,
        "customer": p.customer.name if p.customer else None, "amount": quantize(Decimal(p.amount), p.currency),
        "currency": p.currency, "received_on": p.received_on, "method": p.method, "source": p.source,
        "reference": p.reference, "payer_name": p.payer_name, "payer_account": p.payer_account,
        "match_rule": p.match_rule, "refunded": quantize(Decimal(p.refunded), p.currency),
        "unallocated": quantize(unallocated(p), p.currency), "in_suspense": p.customer_id is None,
        "allocations": [
            {"id": a.pk, "invoice_id": a.invoice_id, "invoice": a.invoice.number,
             "amount": quantize(a.amount, p.currency), "rule": a.rule, "reversed_at": a.reversed_at}
            for a in p.allocations.select_related("invoice").order_by("pk")
        ],
    }  # fmt: skip


def customer_balances(actor: Actor, today: dt.date | None = None) -> list[dict[str, Any]]:
    """Per customer and currency: open invoices, overdue part, unapplied credit and the net balance."""
    today = today or clock.today()
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for inv in receivables_for(actor).select_related("customer"):
        amount = open_of(inv)
        if amount == ZERO:
            continue
        c = inv.customer
        assert c is not None
        row = rows.setdefault((c.pk, inv.currency), {"customer_id": c.pk, "customer": c.name,
                              "organisation_id": inv.organisation_id, "currency": inv.currency, "open": ZERO,
                              "overdue": ZERO, "open_invoices": 0})  # fmt: skip
        row["open"] += amount
        row["open_invoices"] += 1
        if inv.due_date and inv.due_date < today:
            row["overdue"] += amount
    for p in payments_with_unallocated(payments_for(actor).filter(customer__isnull=False)).select_related("customer"):
        left = Decimal(p.amount) - Decimal(p.refunded) - p.used  # type: ignore[attr-defined]
        if left <= ZERO:
            continue
        c = p.customer
        assert c is not None
        row = rows.setdefault((c.pk, p.currency), {"customer_id": c.pk, "customer": c.name,
                              "organisation_id": p.organisation_id, "currency": p.currency, "open": ZERO,
                              "overdue": ZERO, "open_invoices": 0})  # fmt: skip
        row["credit"] = row.get("credit", ZERO) + left
    out = []
    for row in rows.values():
        row.setdefault("credit", ZERO)
        cur = row["currency"]
        row["balance"] = quantize(row["open"] - row["credit"], cur)
        for k in ("open", "overdue", "credit"):
            row[k] = quantize(row[k], cur)
        out.append(row)
    return sorted(out, key=lambda r: (r["customer"], r["currency"]))


def aging_report(actor: Actor, today: dt.date | None = None) -> dict[str, Any]:
    """Open receivables by age (current, 1–30, 31–60, 61–90, over 90 days past due) per organisation
    (a reseller is an organisation) and currency, with DSO over the last 90 days; rolled up per provider."""
    today = today or clock.today()
    items: dict[tuple[int, str], list[tuple[dt.date, Decimal]]] = defaultdict(list)
    names: dict[int, Any] = {}
    sales: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    since = today - dt.timedelta(days=DSO_DAYS)
    for inv in receivables_for(actor).select_related("organisation"):
        key = (inv.organisation_id, inv.currency)
        names[inv.organisation_id] = inv.organisation
        amount = open_of(inv)
        if amount != ZERO:
            items[key].append((inv.due_date or inv.issue_date, amount))  # type: ignore[arg-type]
        if inv.issue_date and since < inv.issue_date <= today:
            sales[key] += Decimal(inv.total) - inv.credited  # type: ignore[attr-defined]
    rows = []
    for key in sorted(set(items) | set(sales), key=lambda k: (names[k[0]].legal_name, k[1])):
        org = names[key[0]]
        buckets = {k: quantize(v, key[1]) for k, v in allocation.aging(items.get(key, []), today).items()}
        rows.append({"organisation_id": org.pk, "organisation": org.legal_name, "kind": org.kind,
                     "parent_id": org.parent_id, "currency": key[1], "buckets": buckets,
                     "dso_days": allocation.dso(buckets["total"], sales[key], DSO_DAYS)})  # fmt: skip
    providers: dict[tuple[int, str], dict[str, Decimal]] = {}
    for row in rows:
        if row["parent_id"] is None:
            continue
        agg = providers.setdefault((row["parent_id"], row["currency"]), dict.fromkeys(row["buckets"], ZERO))
        for k, v in row["buckets"].items():
            agg[k] += v
    return {
        "as_of": today,
        "buckets": list(allocation.BUCKETS),
        "organisations": rows,
        "resellers_by_provider": [{"provider_id": p, "currency": c, "buckets": b} for (p, c), b in providers.items()],
    }


def cash_forecast(actor: Actor, today: dt.date | None = None, weeks: int = 8) -> list[dict[str, Any]]:
    """Per currency and week: receivables expected (open invoices by due date) against Microsoft invoices
    due and not yet paid. Anything past due counts in the first week."""
    today = today or clock.today()
    incoming: dict[str, list[tuple[dt.date, Decimal]]] = defaultdict(list)
    for inv in receivables_for(actor):
        amount = open_of(inv)
        if amount > ZERO:
            incoming[inv.currency].append((inv.due_date or today, amount))
    outgoing: dict[str, list[tuple[dt.date, Decimal]]] = defaultdict(list)
    if permissions.has(actor, Perm.PAYMENTS_READ) and actor.kind is not ActorKind.CUSTOMER:
        for mi in microsoft_unpaid(actor):
            outgoing[mi.currency].append((mi.due_date, Decimal(mi.total)))
    out = []
    for currency in sorted(set(incoming) | set(outgoing)):
        ins = allocation.weekly(incoming[currency], today, weeks)
        outs = allocation.weekly(outgoing[currency], today, weeks)
        for i, o in zip(ins, outs, strict=True):
            rec, pay = quantize(i["amount"], currency), quantize(o["amount"], currency)  # type: ignore[arg-type]
            out.append({"currency": currency, "week_start": i["week_start"], "receivables_expected": rec,
                        "microsoft_payables_due": pay, "net": rec - pay})  # fmt: skip
    return out


def microsoft_unpaid(actor: Actor) -> QuerySet[MicrosoftInvoice]:
    return recon_selectors.microsoft_invoices_for(actor).filter(Q(payment__isnull=True))


def microsoft_invoices_all(actor: Actor) -> QuerySet[MicrosoftInvoice]:
    return recon_selectors.microsoft_invoices_for(actor).order_by("due_date", "number")
