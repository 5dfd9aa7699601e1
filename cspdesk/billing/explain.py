"""Explain this charge: what is behind one invoice line, from the stored invoice and its charge lines.

An invoice line holds one or more Microsoft charge lines (``InvoiceLineCharge``); each charge line names the
recon import and the file rows it came from. :func:`explain_line` gathers, for one line: the Microsoft
subscription (as Partner Center last reported it), product, SKU, meter, charge type, charge period and its
days, quantities, unit price, the price rule that turned Microsoft's cost into the price, the exchange rate,
and every source row range. The portal shows it to the customer; the support desk reuses it for billing
questions.

Microsoft's cost is the partner's own business: it is part of the explanation only when ``include_cost`` is
set (staff). A customer sees the rule in words, the price of each source and the rows it came from.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from cspdesk.catalog.models import PriceRule
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import NotFound
from cspdesk.partnercenter.models import Subscription
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm
from cspdesk.tenancy.selectors import get_or_404

from . import selectors
from .models import Invoice, InvoiceLine, InvoiceLineCharge, LineKind

ZERO = Decimal(0)


@dataclass(frozen=True)
class SubscriptionFacts:
    """The Microsoft subscription behind a charge, as Partner Center last reported it."""

    pc_subscription_id: str
    name: str
    offer: str
    status: str
    status_label: str
    quantity: int
    billing_cycle: str
    term: str
    renewal: dt.date | None


@dataclass(frozen=True)
class RuleFacts:
    """The price rule applied: method, its figure, and how far its scope reaches."""

    id: int
    method: str
    method_label: str
    percent: Decimal | None
    unit_price: Decimal | None
    currency: str
    scope: tuple[str, ...]  # e.g. ("customer", "sku"): which party and product level the rule was written for
    effective_from: dt.date
    effective_to: dt.date | None


@dataclass(frozen=True)
class SourceRow:
    """One Microsoft charge line behind the invoice line and the file rows it was built from."""

    charge_line_id: int
    import_id: int
    import_kind: str
    file_name: str
    first_line: int
    last_line: int
    row_count: int
    subscription_id: str
    product_id: str
    sku_id: str
    product_name: str
    sku_name: str
    meter_name: str
    meter_category: str
    charge_type: str
    start: dt.date
    end: dt.date
    days: int
    quantity: Decimal
    price: Decimal  # what this charge contributes to the line, invoice currency, exact
    cost: Decimal | None  # Microsoft's cost, invoice currency (only with include_cost)
    microsoft_cost: Decimal | None  # Microsoft's cost in the file's currency (only with include_cost)
    microsoft_currency: str


@dataclass(frozen=True)
class Explanation:
    invoice_id: int
    invoice_number: str
    position: int
    kind: str
    description: str
    currency: str
    quantity: Decimal
    unit_price: Decimal
    net_amount: Decimal
    period_start: dt.date
    period_end: dt.date
    days: int
    method: str
    rule: RuleFacts | None
    subscriptions: tuple[SubscriptionFacts, ...]
    product_name: str
    product_id: str
    sku_id: str
    sku_name: str
    meter_category: str
    meters: tuple[str, ...]
    charge_types: tuple[str, ...]
    source_currency: str
    exchange_rate: Decimal | None
    exchange_rate_date: dt.date | None
    exchange_rate_provider: str
    sources: tuple[SourceRow, ...] = field(default=())
    cost: Decimal | None = None  # only with include_cost
    include_cost: bool = False

    @property
    def source_quantity(self) -> Decimal:
        return sum((s.quantity for s in self.sources), ZERO)

    @property
    def file_rows(self) -> int:
        return sum(s.row_count for s in self.sources)


def days_between(start: dt.date, end: dt.date) -> int:
    """Calendar days a charge covers, both ends included."""
    return (end - start).days + 1


def rule_scope(rule: PriceRule) -> tuple[str, ...]:
    party = "customer" if rule.customer_id else "reseller" if rule.reseller_id else "organisation"
    if rule.meter_category:
        product = "meter_category"
    elif rule.sku_id:
        product = "sku"
    elif rule.product_id:
        product = "product"
    elif rule.category:
        product = "category"
    else:
        product = "any"
    return (party, product)


def _rule_facts(rule: PriceRule | None) -> RuleFacts | None:
    if rule is None:
        return None
    return RuleFacts(
        id=rule.pk, method=rule.method, method_label=str(rule.get_method_display()), percent=rule.percent,
        unit_price=rule.unit_price, currency=rule.currency, scope=rule_scope(rule),
        effective_from=rule.effective_from, effective_to=rule.effective_to,
    )  # fmt: skip


def _subscriptions(customer_id: int | None, ids: list[str]) -> tuple[SubscriptionFacts, ...]:
    uuids = []
    for raw in ids:
        try:
            uuids.append(uuid.UUID(raw))
        except ValueError:
            continue
    if customer_id is None or not uuids:
        return ()
    subs = Subscription.objects.filter(customer_id=customer_id, pc_subscription_id__in=uuids).order_by("offer_name")
    return tuple(
        SubscriptionFacts(
            pc_subscription_id=str(s.pc_subscription_id),
            name=s.friendly_name or s.offer_name,
            offer=s.offer_name,
            status=s.status,
            status_label=str(s.get_status_display()),
            quantity=s.quantity,
            billing_cycle=s.billing_cycle,
            term=s.term_duration,
            renewal=s.commitment_end_date,
        )
        for s in subs
    )


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def explain_line(line: InvoiceLine, *, include_cost: bool = False) -> Explanation:
    """Everything behind ``line`` (read from the database; no change)."""
    invoice: Invoice = line.invoice
    links = list(
        InvoiceLineCharge.objects.filter(line=line)
        .select_related("charge_line", "charge_line__source")
        .order_by("charge_line__charge_start", "charge_line_id")
    )
    sources = []
    for link in links:
        c = link.charge_line
        sources.append(
            SourceRow(
                charge_line_id=c.pk,
                import_id=c.source_id,
                import_kind=c.source.kind,
                file_name=c.source.file_name,
                first_line=c.first_line,
                last_line=c.last_line,
                row_count=c.row_count,
                subscription_id=c.subscription_id,
                product_id=c.product_id,
                sku_id=c.sku_id,
                product_name=c.product_name,
                sku_name=c.sku_name,
                meter_name=c.meter_name,
                meter_category=c.meter_category,
                charge_type=c.charge_type,
                start=c.charge_start,
                end=c.charge_end,
                days=days_between(c.charge_start, c.charge_end),
                quantity=Decimal(c.quantity),
                price=Decimal(link.price),
                cost=Decimal(link.cost) if include_cost else None,
                microsoft_cost=Decimal(c.cost) if include_cost else None,
                microsoft_currency=c.currency,
            )
        )
    first = sources[0] if sources else None
    rule = PriceRule.objects.filter(pk=line.price_rule_id).first() if line.price_rule_id else None
    return Explanation(
        invoice_id=invoice.pk, invoice_number=invoice.number, position=line.position, kind=line.kind,
        description=line.description, currency=invoice.currency, quantity=Decimal(line.quantity),
        unit_price=Decimal(line.unit_price), net_amount=Decimal(line.net_amount),
        period_start=line.period_start, period_end=line.period_end,
        days=days_between(line.period_start, line.period_end), method=line.method, rule=_rule_facts(rule),
        subscriptions=_subscriptions(invoice.customer_id, list(_unique([s.subscription_id for s in sources]))),
        product_name=first.product_name if first else line.group, product_id=first.product_id if first else "",
        sku_id=first.sku_id if first else "", sku_name=first.sku_name if first else "",
        meter_category=first.meter_category if first else "",
        meters=_unique([s.meter_name for s in sources]), charge_types=_unique([s.charge_type for s in sources]),
        source_currency=invoice.source_currency,
        exchange_rate=Decimal(invoice.exchange_rate) if invoice.exchange_rate is not None else None,
        exchange_rate_date=invoice.exchange_rate_date, exchange_rate_provider=invoice.exchange_rate_provider,
        sources=tuple(sources), cost=Decimal(line.cost) if include_cost and line.kind == LineKind.MICROSOFT else None,
        include_cost=include_cost,
    )  # fmt: skip


def explain(actor: Actor, invoice_id: int, position: int) -> Explanation:
    """Explain line ``position`` of an invoice the actor may read (absent or not theirs: :class:`NotFound`).

    Staff see Microsoft's cost; a customer's users do not.
    """
    permissions.require(actor, Perm.INVOICES_READ)
    invoice = get_or_404(selectors.invoices_for(actor), invoice_id, "invoice")
    line = invoice.lines.filter(position=position).first()
    if line is None:
        raise NotFound(f"invoice {invoice.number or invoice.pk} has no line {position}")
    line.invoice = invoice
    return explain_line(line, include_cost=actor.kind is not ActorKind.CUSTOMER)
