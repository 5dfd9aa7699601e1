"""Billing state changes: bill a period (drafts), finalize, credit, send. Each records one audit event.

Which Microsoft data is billed. A period's billable charge lines come from the *active* imports of that
period of two kinds: the invoice recon file (licenses, and everything else Microsoft invoiced) and the
billed daily rated usage file. The invoice file already summarises the same Azure usage per meter, so
Azure is rated from the daily usage file (its lines carry the meter category that price rules use) and
the invoice file's Azure lines are skipped whenever an active billed usage import with the same Microsoft
invoice number exists; without one the invoice file's Azure lines are billed. Unbilled usage is never billed.
Charge lines already on a finalized invoice are never billed again.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet, Sum

from cspdesk.audit import services as audit
from cspdesk.catalog import selectors as catalog
from cspdesk.catalog.models import SupportAssignment
from cspdesk.catalog.resolution import category_of
from cspdesk.core import bulk, clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, NotFound, ValidationFailed
from cspdesk.core.money import is_currency, quantize
from cspdesk.core.output import to_jsonable
from cspdesk.partnercenter.recon.models import ChargeLine, Import, ImportKind, ImportStatus
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.models import Customer, Organisation, OrganisationKind
from cspdesk.tenancy.permissions import Perm

from . import archive, selectors
from .documents.model import Line as DocLine
from .documents.model import compute_totals
from .models import (
    BillingRun,
    ExchangeRate,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceLineCharge,
    InvoiceStatus,
    LineKind,
    NumberSeries,
    RunStatus,
)
from .rating import engine
from .tax import UnsupportedTaxCase, VatCategory, VatTreatment, determine_vat

ZERO = Decimal(0)
ONE = Decimal(1)
BLOCKING = frozenset({"price_rule_conflict", "no_exchange_rate", "unsupported_tax_case"})
MICROSOFT, SUPPORT = LineKind.MICROSOFT.value, LineKind.SUPPORT.value
STORE_LINES = 5000  # a run stores its drafts whenever this many invoice lines are waiting


def parse_period(text: str) -> dt.date:
    try:
        period = dt.datetime.strptime(text.strip(), "%Y-%m").date()  # noqa: DTZ007 - a calendar month, no instant
    except ValueError:
        raise ValidationFailed(f"period must be YYYY-MM, got {text!r}", field="period") from None
    if not 2000 <= period.year <= 2100:
        raise ValidationFailed(f"period {text!r} is outside 2000–2100", field="period")
    return period


def month_end(period: dt.date) -> dt.date:
    nxt = dt.date(period.year + period.month // 12, period.month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def previous_period(period: dt.date) -> dt.date:
    return (period - dt.timedelta(days=1)).replace(day=1)


def move_threshold() -> Decimal:
    return Decimal(str(getattr(settings, "CSPDESK_BILLING_MOVE_PERCENT", "25")))


# ---------------------------------------------------------------- which charge lines are billed


def billable_charge_lines(period: dt.date) -> QuerySet[ChargeLine]:
    """Every charge line to bill for ``period`` (see the module docstring), customers' and unassigned."""
    imports = Import.objects.filter(
        period=period, status=ImportStatus.ACTIVE, kind__in=[ImportKind.INVOICE, ImportKind.USAGE_BILLED]
    )
    usage_invoices = set(
        imports.filter(kind=ImportKind.USAGE_BILLED)
        .exclude(invoice_number="")
        .values_list("organisation_id", "invoice_number")
    )
    skip_azure_of = [
        imp.pk
        for imp in imports.filter(kind=ImportKind.INVOICE)
        if (imp.organisation_id, imp.invoice_number) in usage_invoices
    ]
    azure = Q(product_id__in=["DZH318Z0BPS6"]) | Q(product_name__istartswith="azure")
    qs = ChargeLine.objects.filter(source__in=imports).exclude(Q(source_id__in=skip_azure_of) & azure)
    billed = InvoiceLineCharge.objects.filter(
        line__invoice__status=InvoiceStatus.FINALIZED, line__invoice__kind=InvoiceKind.INVOICE
    )
    return qs.exclude(pk__in=billed.values("charge_line_id"))


@dataclass(slots=True)
class BillableLine:
    """A charge line as a run reads it: the columns rating, bucketing and exchange rates use, and the line's
    customer (with its organisation), organisation and import, shared between lines."""

    pk: int
    source_id: int
    organisation_id: int
    customer_id: int | None
    subscription_id: str
    product_id: str
    sku_id: str
    product_name: str
    sku_name: str
    meter_id: str
    meter_category: str
    charge_type: str
    charge_start: dt.date
    charge_end: dt.date
    quantity: Decimal
    cost: Decimal
    currency: str
    pricing_cost: Decimal
    pricing_currency: str
    exchange_rate: Decimal | None
    credit: Decimal
    credit_type: str
    customer: Customer | None = None
    organisation: Organisation = field(init=False)
    source: Import = field(init=False)
    charge: engine.Charge | None = None  # as last rated: a reseller's customer's line is rated up to three times


BILLABLE_COLUMNS = ("pk", "source_id", "organisation_id", "customer_id", "subscription_id", "product_id", "sku_id",
                    "product_name", "sku_name", "meter_id", "meter_category", "charge_type", "charge_start",
                    "charge_end", "quantity", "cost", "currency", "pricing_cost", "pricing_currency",
                    "exchange_rate", "credit", "credit_type")  # fmt: skip


def load_charge_lines(qs: QuerySet[ChargeLine]) -> list[BillableLine]:
    """The lines of ``qs`` (in its order) with their customer (and its organisation), organisation and import.

    A month holds hundreds of thousands of charge lines but only thousands of customers: each related row is
    read once and shared. A line is read as a tuple of the columns a run uses, not as a model instance (which
    costs more to build than the rating costs); the values are converted by the same field converters.
    """
    lines = [BillableLine(*row) for row in qs.values_list(*BILLABLE_COLUMNS)]
    customers = Customer.objects.select_related("organisation").in_bulk({ln.customer_id for ln in lines} - {None})
    organisations = Organisation.objects.in_bulk({ln.organisation_id for ln in lines})
    imports = Import.objects.in_bulk({ln.source_id for ln in lines})
    for line in lines:
        line.customer = customers[line.customer_id] if line.customer_id is not None else None
        line.organisation = organisations[line.organisation_id]
        line.source = imports[line.source_id]
    return lines


# a month's charge lines name a few hundred distinct products and meters
_category_of = functools.lru_cache(maxsize=1 << 16)(category_of)


def _to_charge(line: BillableLine, reseller_id: int | None) -> engine.Charge:
    if line.charge is not None and line.charge.reseller_id == reseller_id:
        return line.charge
    list_cost = None
    if line.credit_type == "Partner earned credit" and line.credit:
        list_cost = line.cost + line.credit  # the file's list price: effective price + the credit earned
    full_cost = None
    if line.pricing_cost and line.exchange_rate and not line.meter_id:
        full_cost = line.pricing_cost * line.exchange_rate  # effective unit price × quantity, unprorated
    line.charge = engine.Charge(
        id=line.pk, customer_id=line.customer_id, reseller_id=reseller_id, subscription_id=line.subscription_id,
        product_id=line.product_id, sku_id=line.sku_id, product_name=line.product_name, sku_name=line.sku_name,
        meter_category=line.meter_category,
        category=_category_of(line.product_id, line.product_name, line.meter_category, line.meter_id),
        charge_type=line.charge_type, start=line.charge_start, end=line.charge_end, quantity=line.quantity,
        cost=line.cost, currency=line.currency, list_cost=list_cost, full_cost=full_cost,
    )  # fmt: skip
    return line.charge


# ---------------------------------------------------------------- exchange rates


@dataclass(frozen=True)
class Fx:
    rate: Decimal  # 1 source = rate target
    rate_date: dt.date
    provider: str


def find_rate(organisation_id: int, source: str, target: str, on: dt.date, lines: Sequence[BillableLine],
              table: Callable[[int, str, str, dt.date], ExchangeRate | None] | None = None) -> Fx | None:  # fmt: skip
    """The partner's configured rate in force on ``on``, else the Microsoft file's rate, else ``None``."""
    if source == target:
        return Fx(ONE, on, "")
    row = (table or _table_rate)(organisation_id, source, target, on)
    if row is not None:
        return Fx(row.rate, row.rate_date, row.provider or "partner rate table")
    for line in lines:  # PCToBCExchangeRate: 1 pricing currency = r billing currency
        if line.pricing_currency == target and line.exchange_rate:
            return Fx(
                (ONE / line.exchange_rate).quantize(Decimal("0.0000000001")),
                line.source.period,
                "Microsoft reconciliation file",
            )
    return None


def _table_rate(organisation_id: int, source: str, target: str, on: dt.date) -> ExchangeRate | None:
    return (
        ExchangeRate.objects.filter(
            organisation_id=organisation_id, source_currency=source, target_currency=target, rate_date__lte=on
        )
        .order_by("-rate_date")
        .first()
    )


# ---------------------------------------------------------------- billing a period


@dataclass
class Bucket:
    """The draft invoice of one seller to one buyer in one source currency."""

    seller: Organisation
    customer: Customer | None
    reseller: Organisation | None
    source_currency: str
    lines: list[BillableLine] = field(default_factory=list)

    @property
    def currency(self) -> str:
        return self.customer.currency if self.customer is not None else self.source_currency

    @property
    def buyer_key(self) -> str:
        return f"customer:{self.customer.pk}" if self.customer else f"organisation:{self.reseller.pk}"  # type: ignore[union-attr]


def _sellers(actor: Actor) -> list[Organisation]:
    qs = Organisation.objects.all().order_by("pk")
    return list(qs if actor.is_system else qs.filter(pk=actor.organisation_pk))


def _buckets(sellers: list[Organisation], lines: list[BillableLine]) -> tuple[list[Bucket], dict[int, Decimal]]:
    ids = {s.pk for s in sellers}
    buckets: dict[tuple[int, str, str], Bucket] = {}
    unassigned: dict[int, Decimal] = defaultdict(Decimal)
    # where a line goes depends only on its customer, its organisation and its currency: decided once for each
    targets: dict[tuple[int, int, str], list[Bucket]] = {}
    for line in lines:
        cust = line.customer
        if cust is None:
            if line.organisation_id in ids:
                unassigned[line.organisation_id] += line.cost
            continue
        target = targets.get((cust.pk, line.organisation_id, line.currency))
        if target is None:
            target = targets[cust.pk, line.organisation_id, line.currency] = []
            home = cust.organisation
            # who sells what: the direct-bill partner or the reseller to the customer, the provider to the reseller
            pairs: list[tuple[Organisation, Customer | None, Organisation | None]] = []
            if home.kind == OrganisationKind.INDIRECT_RESELLER:
                if home.parent_id in ids:
                    pairs.append((line.organisation, None, home))
                if home.pk in ids:
                    pairs.append((home, cust, None))
            elif home.pk in ids and home.kind == OrganisationKind.DIRECT_BILL_PARTNER:
                pairs.append((home, cust, None))
            for seller, customer, reseller in pairs:
                key = (seller.pk, f"c{customer.pk}" if customer else f"r{reseller.pk}", line.currency)  # type: ignore[union-attr]
                if key not in buckets:
                    buckets[key] = Bucket(seller, customer, reseller, line.currency)
                target.append(buckets[key])
        for bucket in target:
            bucket.lines.append(line)
    return list(buckets.values()), dict(unassigned)


def _vat(seller: Organisation, bucket: Bucket, on: dt.date) -> VatTreatment:
    buyer: Any = bucket.customer or bucket.reseller
    language = bucket.customer.locale if bucket.customer else bucket.reseller.default_locale  # type: ignore[union-attr]
    return determine_vat(seller_country=seller.country, buyer_country=buyer.country, buyer_vat_id=buyer.vat_id,
                         language=language, on=on)  # fmt: skip


def _convert_for(seller_id: int, charge_currency: str, invoice_currency: str, fx: Fx, on: dt.date,
                 cache: RunCache) -> engine.Convert:  # fmt: skip
    def convert(amount: Decimal, currency: str) -> Decimal:
        if currency == charge_currency:
            return amount
        if currency == invoice_currency:
            return amount / fx.rate
        found = find_rate(seller_id, currency, charge_currency, on, [], cache.table_rate)
        if found is None:
            raise LookupError(f"no exchange rate {currency}→{charge_currency} on {on}")
        return amount * found.rate

    return convert


class RunCache:
    """What every draft of one run looks up, read once for the run instead of once per invoice: each seller's
    price rules and the rule each kind of charge gets (rules do not change during a run), the support plans of
    each seller's customers, last period's invoiced amounts, the partner's exchange rates.

    A part of a split run names its buyers (``customers``, ``resellers``) and reads only their rows: a part
    reading the whole run's would make a run of N buyers read N²/part-size rows.
    """

    def __init__(
        self, period: dt.date, *, customers: Collection[int] | None = None, resellers: Collection[int] = ()
    ) -> None:
        self.period, self.end = period, month_end(period)
        self.customers, self.resellers = customers, resellers
        self._support: dict[int, dict[int, list[SupportAssignment]]] = {}
        self._previous: dict[tuple[int, str, str], Decimal] | None = None
        self._rates: dict[tuple[int, str, str, dt.date], ExchangeRate | None] = {}
        self._rules: dict[int, engine.RuleLookup] = {}

    def rules_of(self, seller_id: int) -> engine.RuleLookup:
        """The seller's price rules in force at some point of the period, and the rule each charge gets."""
        if seller_id not in self._rules:
            self._rules[seller_id] = engine.RuleLookup(catalog.rule_specs(seller_id, self.period, self.end))
        return self._rules[seller_id]

    def support_of(self, seller_id: int, customer_id: int) -> list[SupportAssignment]:
        if seller_id not in self._support:
            by_customer: dict[int, list[SupportAssignment]] = defaultdict(list)
            for a in catalog.support_assignments(seller_id, self.period, self.end, customer_ids=self.customers):
                by_customer[a.customer_id].append(a)
            self._support[seller_id] = by_customer
        return self._support[seller_id].get(customer_id, [])

    def previous_net(self, review: dict[str, Any]) -> Decimal | None:
        """The buyer's net invoiced by the seller in the currency last period (``None``: no invoice then)."""
        if self._previous is None:
            self._previous = {}
            invoices = Invoice.objects.filter(period=previous_period(self.period), status=InvoiceStatus.FINALIZED,
                                              kind=InvoiceKind.INVOICE)  # fmt: skip
            if self.customers is not None:
                invoices = invoices.filter(
                    Q(customer_id__in=self.customers) | Q(buyer_organisation_id__in=self.resellers)
                )
            rows = (
                invoices.values_list("organisation_id", "currency", "customer_id", "buyer_organisation_id")
                .annotate(s=Sum("net"))
                .order_by()
            )  # fmt: skip
            for org, currency, customer, buyer, net in rows:
                key = (org, currency, f"c{customer}" if customer is not None else f"r{buyer}")
                self._previous[key] = self._previous.get(key, ZERO) + net
        buyer = f"c{review['customer_id']}" if review["customer_id"] else f"r{review['reseller_id']}"
        return self._previous.get((review["seller_id"], review["currency"], buyer))

    def table_rate(self, organisation_id: int, source: str, target: str, on: dt.date) -> ExchangeRate | None:
        key = (organisation_id, source, target, on)
        if key not in self._rates:
            self._rates[key] = _table_rate(organisation_id, source, target, on)
        return self._rates[key]


@dataclass(slots=True)
class LineRow:
    """An invoice line of a draft before it is stored: :class:`InvoiceLine`'s columns without a model instance
    (a run makes tens of thousands). ``charges``: the (charge line id, cost, price) its explain links hold."""

    position: int
    kind: str
    description: str
    group: str
    item_id: str
    quantity: Decimal
    unit_price: Decimal
    net_amount: Decimal
    cost: Decimal
    vat_category: str
    vat_rate: Decimal
    vat_exemption_code: str
    vat_exemption_reason: str
    period_start: dt.date
    period_end: dt.date
    price_rule_id: int | None
    method: str
    charges: tuple[tuple[int, Decimal, Decimal], ...] = ()
    pk: int | None = None


LINE_COLUMNS = ("invoice_id", "position", "kind", "description", "group", "item_id", "quantity", "unit_price",
                "net_amount", "cost", "vat_category", "vat_rate", "vat_exemption_code", "vat_exemption_reason",
                "period_start", "period_end", "price_rule_id", "method")  # fmt: skip
LINK_COLUMNS = ("line_id", "charge_line_id", "cost", "price")
LINK_EXP = Decimal("0.000001")  # an explain link's cost and price: the column's precision


@dataclass
class Drafted:
    invoice: Invoice | None
    review: dict[str, Any]
    lines: list[LineRow] = field(default_factory=list)  # to store with the invoice


def _provider_prices(lines: list[BillableLine], cache: RunCache) -> dict[int, Decimal]:
    """What each reseller customer's charge costs the reseller: the provider's price for it."""
    out: dict[int, Decimal] = {}
    by_provider: dict[int, list[BillableLine]] = defaultdict(list)
    for line in lines:
        if line.customer is not None and line.customer.organisation.kind == OrganisationKind.INDIRECT_RESELLER:
            by_provider[line.organisation_id].append(line)
    for provider_id, group in by_provider.items():
        rules = cache.rules_of(provider_id)  # the same lookup drafts the provider's invoices to the resellers
        for line in group:
            charge = _to_charge(line, line.customer.organisation_id)  # type: ignore[union-attr]
            try:
                rule = rules(charge)
                out[line.pk] = engine.price_charge(charge, rule, lambda a, _c: a)
            except Exception:
                out[line.pk] = line.cost
    return out


def _draft(run: BillingRun, bucket: Bucket, period: dt.date, reseller_cost: dict[int, Decimal],
           cache: RunCache) -> Drafted:  # fmt: skip
    seller = bucket.seller
    rules = cache.rules_of(seller.pk)
    end = month_end(period)
    anomalies: list[dict[str, Any]] = []
    review: dict[str, Any] = {
        "seller_id": seller.pk, "seller": seller.legal_name, "buyer": bucket.buyer_key,
        "buyer_name": (bucket.customer.name if bucket.customer else bucket.reseller.legal_name),  # type: ignore[union-attr]
        "customer_id": bucket.customer.pk if bucket.customer else None,
        "reseller_id": bucket.reseller.pk if bucket.reseller else None,
        "currency": bucket.currency, "anomalies": anomalies,
    }  # fmt: skip
    fx = find_rate(seller.pk, bucket.source_currency, bucket.currency, end, bucket.lines, cache.table_rate)
    if fx is None:
        anomalies.append({"code": "no_exchange_rate", "message": f"no exchange rate {bucket.source_currency}→"
                          f"{bucket.currency} on or before {end}; add one to the rate table",
                          "source_currency": bucket.source_currency, "target_currency": bucket.currency,
                          "date": end})  # fmt: skip
        return Drafted(None, review)
    try:
        vat = _vat(seller, bucket, end)
    except UnsupportedTaxCase as exc:
        anomalies.append({"code": "unsupported_tax_case", "message": str(exc)})
        return Drafted(None, review)
    reseller_id = (
        bucket.customer.organisation_id if bucket.customer and bucket.customer.organisation.parent_id else None
    )
    if bucket.reseller is not None:
        reseller_id = bucket.reseller.pk
    charges = [_to_charge(line, reseller_id) for line in bucket.lines]
    convert = _convert_for(seller.pk, bucket.source_currency, bucket.currency, fx, end, cache)
    try:
        rated = engine.rate(charges, rules, convert)
    except LookupError as exc:
        anomalies.append({"code": "no_exchange_rate", "message": str(exc)})
        return Drafted(None, review)
    for charge, conflict in rated.conflicts:
        anomalies.append({"code": "price_rule_conflict", "message": str(conflict), "charge_line_id": charge.id,
                          "rule_ids": [r.id for r in conflict.rules]})  # fmt: skip
    if rated.unruled:
        cost = sum((p.charge.cost for p in rated.unruled), ZERO)
        anomalies.append({"code": "no_price_rule", "message": f"{len(rated.unruled)} charge lines have no price "
                          f"rule and were billed at cost", "cost": quantize(cost * fx.rate, bucket.currency),
                          "count": len(rated.unruled), "currency": bucket.currency,
                          "charge_line_ids": [p.charge.id for p in rated.unruled][:50]})  # fmt: skip
    drafts = engine.build_lines(rated.priced, bucket.currency, fx.rate)
    invoice = Invoice(
        run=run, organisation=seller, customer=bucket.customer, buyer_organisation=bucket.reseller, period=period,
        currency=bucket.currency, source_currency=bucket.source_currency,
        exchange_rate=fx.rate if bucket.source_currency != bucket.currency else None,
        exchange_rate_date=fx.rate_date if bucket.source_currency != bucket.currency else None,
        exchange_rate_provider=fx.provider if bucket.source_currency != bucket.currency else "",
        language=bucket.customer.locale if bucket.customer else bucket.reseller.default_locale,  # type: ignore[union-attr]
    )  # fmt: skip
    vat_category = vat.category.value
    at_reseller_cost = bool(  # the reseller's customer: the line's cost is what the provider charges the reseller
        bucket.reseller is None and reseller_cost and bucket.customer and bucket.customer.organisation.parent_id
    )
    line_rows: list[LineRow] = []
    for i, d in enumerate(drafts, start=1):
        cost = d.cost
        if at_reseller_cost:
            cost = engine.to_minor_unit(sum((reseller_cost.get(cid, c) * fx.rate for cid, c, _p in d.charges), ZERO),
                                        bucket.currency)  # fmt: skip
        line_rows.append(LineRow(
            position=i, kind=MICROSOFT, description=d.description[:400], group=d.group[:400], item_id=d.item_id,
            quantity=d.quantity, unit_price=d.unit_price, net_amount=d.net_amount, cost=cost,
            vat_category=vat_category, vat_rate=vat.rate, vat_exemption_code=vat.exemption_code,
            vat_exemption_reason=vat.exemption_reason, period_start=d.period_start, period_end=d.period_end,
            price_rule_id=d.rule_id, method=d.method,
            charges=tuple((cid, c.quantize(LINK_EXP), p.quantize(LINK_EXP)) for cid, c, p in d.charges),
        ))  # fmt: skip
    if bucket.customer is not None:
        spend = sum((d.net_amount for d in drafts), ZERO)
        line_rows += _support_lines(invoice, bucket.customer, period, spend, vat, len(line_rows), anomalies,
                                    cache.support_of(seller.pk, bucket.customer.pk))  # fmt: skip
    if not line_rows:
        return Drafted(None, review)
    _set_totals(invoice, line_rows, save=False)
    return Drafted(invoice, review, line_rows)


def store_drafts(drafted: list[Drafted]) -> None:
    """Insert the invoices of ``drafted`` (in their order), then their lines, then the lines' explain links: a
    few statements for many invoices instead of three per invoice. Call inside a transaction."""
    todo = [d for d in drafted if d.invoice is not None]
    if not todo:
        return
    Invoice.objects.bulk_create([d.invoice for d in todo])  # type: ignore[misc]
    rows = [ln for d in todo for ln in d.lines]
    values = [
        (d.invoice.pk, ln.position, ln.kind, ln.description, ln.group, ln.item_id, ln.quantity, ln.unit_price,  # type: ignore[union-attr]
         ln.net_amount, ln.cost, ln.vat_category, ln.vat_rate, ln.vat_exemption_code, ln.vat_exemption_reason,
         ln.period_start, ln.period_end, ln.price_rule_id, ln.method)
        for d in todo for ln in d.lines
    ]  # fmt: skip
    bulk.insert_rows(InvoiceLine, LINE_COLUMNS, values)
    # the new lines' ids, by their unique (invoice, position)
    of_invoice = {(d.invoice.pk, ln.position): ln for d in todo for ln in d.lines}  # type: ignore[union-attr]
    invoice_ids = [d.invoice.pk for d in todo]  # type: ignore[union-attr]
    for i in range(0, len(invoice_ids), 500):
        stored = InvoiceLine.objects.filter(invoice_id__in=invoice_ids[i : i + 500])
        for pk, invoice_id, position in stored.values_list("pk", "invoice_id", "position").order_by():
            of_invoice[invoice_id, position].pk = pk
    links = [(ln.pk, cid, cost, price) for ln in rows for cid, cost, price in ln.charges]
    bulk.insert_rows(InvoiceLineCharge, LINK_COLUMNS, links)
    for d in todo:
        d.lines = []  # stored: the rows are not needed any more


def _support_lines(invoice: Invoice, customer: Customer, period: dt.date, spend: Decimal, vat: VatTreatment,
                   offset: int, anomalies: list[dict[str, Any]],
                   assignments: list[SupportAssignment]) -> list[LineRow]:  # fmt: skip
    """The support-plan lines of ``customer``'s invoice (``assignments``: its plans in force in the period)."""
    end = month_end(period)
    out: list[LineRow] = []
    for a in assignments:
        plan = a.plan
        if plan.currency != invoice.currency:
            anomalies.append({"code": "support_plan_currency", "message": f"support plan {plan.name!r} is in "
                              f"{plan.currency}, the invoice in {invoice.currency}: not billed", "plan": plan.name,
                              "plan_currency": plan.currency, "currency": invoice.currency})  # fmt: skip
            continue
        items: list[tuple[str, Decimal, Decimal, str]] = []  # description, quantity, amount, unit code
        if plan.price_model in ("flat_monthly", "percent_of_spend"):
            fee = engine.support_fee(plan.price_model, amount=plan.amount, percent=plan.percent,
                                     minimum=plan.minimum, maximum=plan.maximum, spend=spend)  # fmt: skip
            items.append((f"{plan.name}", ONE, fee, "MON"))
        else:
            for ch in catalog.support_charges(customer.pk, plan.pk, period, end):
                fee = engine.support_fee(plan.price_model, amount=plan.amount, percent=None, minimum=None,
                                         maximum=None, quantity=ch.quantity)  # fmt: skip
                items.append((f"{plan.name}: {ch.description} ({ch.reference})", ch.quantity, fee, "C62"))
        for desc, qty, fee, _unit in items:
            q, unit, net = engine.line_amounts(fee, qty, invoice.currency)
            out.append(LineRow(
                position=offset + len(out) + 1, kind=SUPPORT, description=desc[:400],
                group=plan.name, item_id=f"support:{plan.pk}", quantity=q, unit_price=unit, net_amount=net,
                cost=ZERO, vat_category=vat.category.value, vat_rate=vat.rate, vat_exemption_code=vat.exemption_code,
                vat_exemption_reason=vat.exemption_reason, period_start=period, period_end=end, price_rule_id=None,
                method="support",
            ))  # fmt: skip
    return out


def doc_lines(lines: Sequence[InvoiceLine | LineRow], currency: str) -> list[DocLine]:
    out = []
    treatments: dict[tuple[str, Decimal, str, str], VatTreatment] = {}  # an invoice's lines share one or two
    for ln in lines:
        vat = (ln.vat_category, ln.vat_rate, ln.vat_exemption_code, ln.vat_exemption_reason)
        treatment = treatments.get(vat)
        if treatment is None:
            treatment = treatments[vat] = VatTreatment(VatCategory(ln.vat_category),
                                                       Decimal(ln.vat_rate).normalize() + 0,
                                                       ln.vat_exemption_code, ln.vat_exemption_reason)  # fmt: skip
        out.append(DocLine(
            id=str(ln.position), description=ln.description, group=ln.group, quantity=Decimal(ln.quantity).normalize(),
            unit_price=Decimal(ln.unit_price), net_amount=engine.to_minor_unit(Decimal(ln.net_amount), currency),
            vat=treatment,
            unit_code="MON" if ln.kind == LineKind.SUPPORT and ln.quantity == 1 else "C62",
            period_start=ln.period_start, period_end=ln.period_end, item_id=ln.item_id,
            reference=f"invoice line {ln.pk}" if ln.pk else "",
        ))  # fmt: skip
    return out


def _set_totals(invoice: Invoice, lines: Sequence[InvoiceLine | LineRow], *, save: bool = True) -> None:
    totals = compute_totals(doc_lines(lines, invoice.currency), invoice.currency)
    invoice.net = totals.line_extension
    invoice.tax = totals.tax_total
    invoice.total = totals.payable
    invoice.cost = sum((Decimal(ln.cost) for ln in lines), ZERO)
    if save:
        invoice.save(update_fields=["net", "tax", "total", "cost"])


@transaction.atomic
def bill(actor: Actor, period: dt.date, *, threshold: Decimal | None = None) -> BillingRun:
    """Rate every charge line of ``period`` into draft invoices, replacing the period's drafts in scope.
    :func:`cspdesk.billing.runs.start_run` does the same split per buyer over the workers."""
    threshold = move_threshold() if threshold is None else threshold
    run, sellers, replaced = begin_run(actor, period)
    lines = load_charge_lines(billable_charge_lines(period))
    buckets, unassigned = _buckets(sellers, lines)
    invoices, customers = draft_buckets(run, sorted(buckets, key=bucket_order), lines, threshold, RunCache(period))
    finish_review(actor, run, period, charge_lines=len(lines), invoices=invoices, customers=customers,
                  unassigned=unassigned, replaced=replaced, threshold=threshold)  # fmt: skip
    return run


def draft_buckets(run: BillingRun, buckets: list[Bucket], lines: list[BillableLine], threshold: Decimal,
                  cache: RunCache) -> tuple[list[Invoice], list[dict[str, Any]]]:  # fmt: skip
    """Draft ``buckets`` in their order (``lines``: their charge lines): the invoices and the review entries. The
    drafts are stored in the same order, many at a time (:func:`store_drafts`)."""
    period = run.period
    reseller_cost = _provider_prices(lines, cache)
    done: list[Drafted] = []
    waiting: list[Drafted] = []  # drafted, not stored yet: stored together every STORE_LINES lines
    pending = 0  # their lines
    for bucket in buckets:
        drafted = _draft(run, bucket, period, reseller_cost, cache)
        done.append(drafted)
        if drafted.invoice is not None:
            waiting.append(drafted)
            pending += len(drafted.lines)
            if pending >= STORE_LINES:
                store_drafts(waiting)
                waiting, pending = [], 0
    store_drafts(waiting)
    invoices = [d.invoice for d in done if d.invoice is not None]
    return invoices, [review_of(d, period, threshold, cache) for d in done]


def begin_run(actor: Actor, period: dt.date) -> tuple[BillingRun, list[Organisation], int]:
    """A new run for ``period``: the period's drafts in the actor's scope are deleted and their runs replaced.
    Returns the run, the sellers in scope and how many drafts were replaced. Call inside a transaction."""
    permissions.require(actor, Perm.INVOICES_CHANGE)
    sellers = _sellers(actor)
    seller_ids = [s.pk for s in sellers]
    if BillingRun.objects.filter(period=period, status=RunStatus.FINALIZING,
                                 invoices__organisation_id__in=seller_ids).exists():  # fmt: skip
        raise Conflict("a finalization of this period is in progress; finish it first", code="finalizing")
    drafts = Invoice.objects.filter(period=period, status=InvoiceStatus.DRAFT, organisation_id__in=seller_ids)
    replaced_runs = set(drafts.values_list("run_id", flat=True))
    replaced = drafts.count()
    InvoiceLineCharge.objects.filter(line__invoice__in=drafts).delete()
    InvoiceLine.objects.filter(invoice__in=drafts).delete()
    drafts.delete()
    BillingRun.objects.filter(pk__in=replaced_runs, status=RunStatus.DRAFT).exclude(
        invoices__status=InvoiceStatus.FINALIZED).update(status=RunStatus.REPLACED)  # fmt: skip
    run = BillingRun.objects.create(period=period, organisation_id=actor.organisation_id, created_by=actor.username)
    return run, sellers, replaced


def bucket_order(bucket: Bucket) -> tuple[int, str, str]:
    """The order a run drafts and reviews its buckets in."""
    return (bucket.seller.pk, bucket.buyer_key, bucket.source_currency)


def review_of(drafted: Drafted, period: dt.date, threshold: Decimal, cache: RunCache) -> dict[str, Any]:
    """One buyer's review entry: cost, price, margin, the move against last period, the anomalies."""
    r = drafted.review
    inv = drafted.invoice
    if inv is not None:
        r.update(invoice_id=inv.pk, cost=inv.cost, price=inv.net, margin=inv.net - inv.cost, tax=inv.tax,
                 total=inv.total)  # fmt: skip
        if inv.net - inv.cost < 0:
            r["anomalies"].append({"code": "negative_margin", "message": f"price {inv.net} is below cost "
                                   f"{inv.cost} {inv.currency}", "price": inv.net, "cost": inv.cost,
                                   "currency": inv.currency})  # fmt: skip
        prev = cache.previous_net(r)
        r["previous_price"] = prev
        if prev:
            change = ((inv.net - prev) / abs(prev) * 100).quantize(Decimal("0.1"))
            r["change_percent"] = change
            if abs(change) > threshold:
                r["anomalies"].append({"code": "bill_moved", "message": f"the bill moved {change}% from the "
                                       f"previous period (threshold {threshold}%)", "change_percent": change,
                                       "threshold_percent": threshold})  # fmt: skip
        else:
            r["change_percent"] = None
    else:
        r.update(invoice_id=None, cost=None, price=None, margin=None)
    return r


def finish_review(actor: Actor, run: BillingRun, period: dt.date, *, charge_lines: int, invoices: list[Invoice],
                  customers: list[dict[str, Any]], unassigned: dict[int, Decimal], replaced: int,
                  threshold: Decimal) -> None:  # fmt: skip
    """Write the run's review (totals, every buyer's entry, the organisation anomalies) and its audit event."""
    org_anomalies = [
        {"code": "unassigned_cost", "organisation_id": org_id, "cost": cost,
         "message": f"{cost} of Microsoft cost belongs to tenants cspdesk does not know (see the recon import)"}
        for org_id, cost in sorted(unassigned.items()) if cost
    ]  # fmt: skip
    totals: dict[str, dict[str, Decimal]] = {}
    for inv in invoices:
        t = totals.setdefault(inv.currency, {"cost": ZERO, "net": ZERO, "tax": ZERO, "total": ZERO, "margin": ZERO})
        t["cost"] += inv.cost
        t["net"] += inv.net
        t["tax"] += inv.tax
        t["total"] += inv.total
        t["margin"] += inv.net - inv.cost
    anomaly_count = sum(len(c["anomalies"]) for c in customers) + len(org_anomalies)
    run.review = to_jsonable({
        "period": f"{period:%Y-%m}", "charge_lines": charge_lines, "invoices": len(invoices),
        "replaced_drafts": replaced, "totals": totals, "customers": customers, "anomalies": org_anomalies,
        "anomaly_count": anomaly_count, "move_threshold_percent": threshold,
    })  # fmt: skip
    run.save(update_fields=["review"])
    bulk.analyze_after_commit(Invoice, InvoiceLine, InvoiceLineCharge)  # finalizing reads what was drafted
    audit.record(actor, "billing.run_drafted", obj=run, after={"period": f"{period:%Y-%m}", "invoices": len(invoices),
                 "replaced_drafts": replaced, "anomalies": anomaly_count})  # fmt: skip


# ---------------------------------------------------------------- numbering and finalization


def lock_number_series(organisation_id: int, series: str, year: int) -> NumberSeries:
    """The series row, locked until the transaction ends (created first if missing, race-free)."""
    NumberSeries.objects.bulk_create(
        [NumberSeries(organisation_id=organisation_id, series=series, year=year)], ignore_conflicts=True
    )
    return NumberSeries.objects.select_for_update().get(organisation_id=organisation_id, series=series, year=year)


def _series_of(invoice: Invoice) -> str:
    base = invoice.organisation.invoice_series
    return base if invoice.kind == InvoiceKind.INVOICE else f"{base}-CN"


def _number(invoice: Invoice, row: NumberSeries, today: dt.date, now: dt.datetime) -> None:
    """The next number of ``row``'s series (locked by the caller, saved by the caller), the dates, finalized."""
    row.last += 1
    invoice.series, invoice.year, invoice.sequence = row.series, row.year, row.last
    invoice.number = f"{row.series}-{row.year}-{row.last:06d}"
    invoice.issue_date = today
    terms = (
        invoice.customer.effective_payment_terms_days() if invoice.customer else invoice.organisation.payment_terms_days
    )
    invoice.due_date = today + dt.timedelta(days=terms)
    invoice.status = InvoiceStatus.FINALIZED
    invoice.finalized_at = now


def _assign_number(invoice: Invoice, today: dt.date) -> None:
    row = lock_number_series(invoice.organisation_id, _series_of(invoice), today.year)
    _number(invoice, row, today, clock.now())
    row.save(update_fields=["last"])


FINALIZE_CHUNK = 500  # invoices numbered and frozen per transaction by finalize_run


def _finalize(actor: Actor, invoices: list[Invoice]) -> None:
    """Number and freeze ``invoices`` (drafts, locked by the caller, in the order they are numbered): one lock
    of each number series, one UPDATE and one audit INSERT for all of them. Call inside a transaction."""
    if not invoices:
        return
    with_lines = set(
        InvoiceLine.objects.filter(invoice_id__in=[i.pk for i in invoices]).values_list("invoice_id", flat=True)
    )
    for invoice in invoices:
        if invoice.pk not in with_lines:
            raise ValidationFailed(f"invoice {invoice.pk} has no lines", code="empty_invoice")
    today, now = clock.today(), clock.now()
    series_rows: dict[tuple[int, str], NumberSeries] = {}
    for invoice in invoices:
        series = _series_of(invoice)
        key = (invoice.organisation_id, series)
        if key not in series_rows:
            series_rows[key] = lock_number_series(invoice.organisation_id, series, today.year)
        _number(invoice, series_rows[key], today, now)
    for row in series_rows.values():
        row.save(update_fields=["last"])
    # what differs per invoice, one prepared UPDATE per invoice, then what all of them share in one plain UPDATE
    # (in this order: a finalized invoice must have its number)
    bulk.update_rows(Invoice, ["series", "sequence", "number", "due_date"],
                     [(i.pk, i.series, i.sequence, i.number, i.due_date) for i in invoices])  # fmt: skip
    Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(
        status=InvoiceStatus.FINALIZED, issue_date=today, year=today.year, finalized_at=now
    )
    for invoice in invoices:
        invoice._stored_status = invoice.status  # frozen from here on (Invoice.save)
    audit.record_many(actor, "billing.invoice_finalized", [
        {"obj": i, "organisation_id": i.organisation_id, "customer_id": i.customer_id,
         "after": {"number": i.number, "total": i.total, "currency": i.currency, "due_date": i.due_date}}
        for i in invoices
    ])  # fmt: skip


def finalize_invoice(actor: Actor, invoice_id: int) -> Invoice:
    """Number and freeze one draft invoice (idempotent: a finalized one is returned as it is)."""
    permissions.require(actor, Perm.INVOICES_CHANGE)
    with transaction.atomic():
        qs = selectors.invoices_for(actor, Perm.INVOICES_CHANGE).select_for_update(of=("self",))
        invoice = tenancy_selectors.get_or_404(qs, invoice_id, "invoice")
        if invoice.status == InvoiceStatus.FINALIZED:
            return invoice
        _finalize(actor, [invoice])
    _pay_from_customer_credit(actor, invoice)
    return invoice


def _pay_from_customer_credit(actor: Actor, invoice: Invoice, *, has_credit: bool | None = None) -> None:
    """A new invoice is first paid from the customer's credit (earlier overpayments), so the customer is never
    asked for money the partner already holds. The allocations are the payments app's, each audited there.
    ``has_credit``: whether the customer holds credit in the invoice's currency, when the caller knows."""
    if invoice.kind != InvoiceKind.INVOICE or invoice.customer_id is None:
        return
    # Payments is built on billing's invoices; this is the one place billing hands over to it, so the import
    # is made here rather than at module level, where it would be circular.
    from cspdesk.payments import selectors as payment_selectors
    from cspdesk.payments import services as payments

    if has_credit is None:
        has_credit = payment_selectors.customer_credit(invoice.customer_id, invoice.currency) > 0
    if not has_credit:
        return  # the usual case, answered with one query
    payer = actor
    if not permissions.has(actor, Perm.PAYMENTS_CHANGE):
        payer = Actor.system(f"finalize:{actor.username}", request_id=actor.request_id)
    payments.apply_customer_credit(payer, invoice.customer_id)


def finalize_run(actor: Actor, run_id: int) -> BillingRun:
    """draft → finalizing → finalized; refuses while blocking anomalies (conflicts, missing rates) remain."""
    permissions.require(actor, Perm.INVOICES_CHANGE)
    with transaction.atomic():
        run = tenancy_selectors.get_or_404(selectors.runs_for(actor).select_for_update(), run_id, "billing run")
        if run.status == RunStatus.FINALIZED:
            return run
        if run.status == RunStatus.REPLACED:
            raise Conflict(f"run {run.pk} was replaced by a later run", code="replaced")
        if run.review.get("drafting"):
            raise Conflict(f"run {run.pk} is still being drafted by the workers", code="drafting")
        blocking = [a for c in run.review.get("customers", []) for a in c["anomalies"] if a["code"] in BLOCKING]
        if blocking:
            raise Conflict(f"{len(blocking)} blocking anomalies: {blocking[0]['message']}", code="blocking_anomalies")
        run.status = RunStatus.FINALIZING
        run.save(update_fields=["status"])
    # The run's drafts in chunks, each chunk numbered and committed in one transaction: an interrupted
    # finalization leaves whole chunks done and is finished by running it again.
    from cspdesk.payments import selectors as payment_selectors

    pending = list(run.invoices.filter(status=InvoiceStatus.DRAFT).order_by("pk").values_list("pk", flat=True))
    scoped = selectors.invoices_for(actor, Perm.INVOICES_CHANGE)
    for i in range(0, len(pending), FINALIZE_CHUNK):
        with transaction.atomic():
            chunk = list(
                scoped.select_related("customer__organisation")
                .select_for_update(of=("self",))
                .filter(pk__in=pending[i : i + FINALIZE_CHUNK], status=InvoiceStatus.DRAFT)
                .order_by("pk")
            )
            _finalize(actor, chunk)
        credit = payment_selectors.customers_with_credit({i.customer_id for i in chunk if i.customer_id is not None})
        for invoice in chunk:
            if (invoice.customer_id, invoice.currency) in credit:
                _pay_from_customer_credit(actor, invoice, has_credit=True)
    with transaction.atomic():
        run.status = RunStatus.FINALIZED
        run.finalized_at = clock.now()
        run.save(update_fields=["status", "finalized_at"])
        audit.record(actor, "billing.run_finalized", obj=run, after={"invoices": run.invoices.count()})
        # the PDF and UBL of every invoice, stored as issued by the workers (after this commits)
        archive.start(list(run.invoices.values_list("pk", flat=True)), f"run:{run.pk}")
    return run


# ---------------------------------------------------------------- credit notes


@transaction.atomic
def issue_credit_note(actor: Actor, invoice_id: int, *, reason: str, positions: list[int] | None = None) -> Invoice:
    """A finalized credit note for the whole invoice or some of its lines (each line at most once)."""
    permissions.require(actor, Perm.INVOICES_CHANGE)
    qs = selectors.invoices_for(actor, Perm.INVOICES_CHANGE).select_for_update(of=("self",))
    original = tenancy_selectors.get_or_404(qs, invoice_id, "invoice")
    if original.kind != InvoiceKind.INVOICE or original.status != InvoiceStatus.FINALIZED:
        raise Conflict("only a finalized invoice can be credited", code="not_creditable")
    if not reason.strip():
        raise ValidationFailed("say why the invoice is credited", field="reason")
    lines = list(original.lines.order_by("position"))
    if positions:
        unknown = set(positions) - {ln.position for ln in lines}
        if unknown:
            raise ValidationFailed(f"invoice {original.number} has no line {sorted(unknown)[0]}", field="positions")
        lines = [ln for ln in lines if ln.position in positions]
    credited = set(
        InvoiceLine.objects.filter(invoice__credited_invoice=original).values_list("item_id", "group", "description",
                                                                                   "period_start", "net_amount")
    )  # fmt: skip
    again = [ln for ln in lines if (ln.item_id, ln.group, ln.description, ln.period_start, ln.net_amount) in credited]
    if again:
        raise Conflict(f"line {again[0].position} of {original.number} is already credited", code="already_credited")
    note = Invoice(
        kind=InvoiceKind.CREDIT_NOTE, organisation=original.organisation, customer=original.customer,
        buyer_organisation=original.buyer_organisation, period=original.period, currency=original.currency,
        source_currency=original.source_currency, exchange_rate=original.exchange_rate,
        exchange_rate_date=original.exchange_rate_date, exchange_rate_provider=original.exchange_rate_provider,
        language=original.language, credited_invoice=original, reason=reason.strip()[:300],
    )  # fmt: skip
    _assign_number(note, clock.today())
    note.status = InvoiceStatus.DRAFT  # lines first, then frozen
    note.save()
    copies = []
    for i, ln in enumerate(lines, start=1):
        copies.append(InvoiceLine(
            invoice=note, position=i, kind=ln.kind, description=ln.description, group=ln.group, item_id=ln.item_id,
            quantity=ln.quantity, unit_price=ln.unit_price, net_amount=ln.net_amount, cost=ln.cost,
            vat_category=ln.vat_category, vat_rate=ln.vat_rate, vat_exemption_code=ln.vat_exemption_code,
            vat_exemption_reason=ln.vat_exemption_reason, period_start=ln.period_start, period_end=ln.period_end,
            price_rule_id=ln.price_rule_id, method=ln.method,
        ))  # fmt: skip
    InvoiceLine.objects.bulk_create(copies)
    totals = compute_totals(doc_lines(copies, note.currency), note.currency)
    note.net, note.tax, note.total = totals.line_extension, totals.tax_total, totals.payable
    note.cost = sum((Decimal(c.cost) for c in copies), ZERO)
    note.status = InvoiceStatus.FINALIZED
    note.save()
    audit.record(actor, "billing.credit_note_issued", obj=note, organisation_id=note.organisation_id,
                 customer_id=note.customer_id, after={"number": note.number, "credits": original.number,
                 "total": note.total, "lines": [ln.position for ln in lines], "reason": note.reason})  # fmt: skip
    archive.start([note.pk], f"credit-note:{note.pk}")
    if note.customer_id is not None:
        _balance_changed(note.customer_id)
    return note


def _balance_changed(customer_id: int) -> None:
    """A credit note lowers what the customer owes: the payments app refreshes the overdue position and
    collections re-checks the case at once (a cleared balance reactivates what it suspended). Imported here
    for the same reason as in :func:`_pay_from_customer_credit`."""
    from cspdesk.payments import services as payments

    payments.on_balance_changed(customer_id)


def balance(invoice: Invoice) -> Decimal:
    """What is still owed: the total less finalized credit notes (payments arrive with the payments app)."""
    if invoice.kind != InvoiceKind.INVOICE:
        return ZERO
    credited = invoice.credit_notes.filter(status=InvoiceStatus.FINALIZED).aggregate(s=Sum("total"))["s"] or ZERO
    return invoice.total - credited


def update_draft_line(actor: Actor, invoice_id: int, position: int, *, description: str) -> InvoiceLine:
    """Reword a draft invoice line; a finalized invoice refuses (409 ``finalized``)."""
    permissions.require(actor, Perm.INVOICES_CHANGE)
    with transaction.atomic():
        qs = selectors.invoices_for(actor, Perm.INVOICES_CHANGE).select_for_update(of=("self",))
        invoice = tenancy_selectors.get_or_404(qs, invoice_id, "invoice")
        if invoice.status == InvoiceStatus.FINALIZED:
            raise Conflict(f"{invoice.number} is finalized; issue a credit note", code="finalized")
        line = invoice.lines.filter(position=position).first()
        if line is None:
            raise NotFound(f"invoice {invoice.pk} has no line {position}")
        before = {"description": line.description}
        line.description = description[:400]
        line.save(update_fields=["description"])
        audit.record(actor, "billing.draft_line_updated", obj=line, organisation_id=invoice.organisation_id,
                     before=before, after={"description": line.description})  # fmt: skip
    return line


def add_exchange_rate(actor: Actor, *, source: str, target: str, rate: Decimal, rate_date: dt.date,
                      provider: str = "", organisation_id: int | None = None) -> ExchangeRate:  # fmt: skip
    permissions.require(actor, Perm.INVOICES_CHANGE)
    org_id = organisation_id if actor.is_system and organisation_id else actor.organisation_pk
    if org_id is None:
        raise ValidationFailed("say which organisation the rate belongs to", field="organisation_id")
    for name, code in (("source_currency", source), ("target_currency", target)):
        if not is_currency(code.upper()):
            raise ValidationFailed(f"{code!r} is not an ISO 4217 currency code", field=name)
    if source.upper() == target.upper():
        raise ValidationFailed("a rate converts between two different currencies", field="target_currency")
    if rate <= 0:
        raise ValidationFailed("a rate is positive", field="rate")
    with transaction.atomic():
        try:
            row, _ = ExchangeRate.objects.update_or_create(
                organisation_id=org_id, source_currency=source.upper(), target_currency=target.upper(),
                rate_date=rate_date, defaults={"rate": rate, "provider": provider},
            )  # fmt: skip
        except IntegrityError as exc:
            raise Conflict(str(exc), code="fx_rate") from exc
        audit.record(actor, "billing.exchange_rate_set", obj=row, organisation_id=org_id, after=audit.snapshot(row))
    return row


def latest_draft_run(period: dt.date) -> BillingRun | None:
    """The period's newest run still to finalize (draft, or interrupted while finalizing)."""
    return (
        BillingRun.objects.filter(period=period, status__in=[RunStatus.DRAFT, RunStatus.FINALIZING])
        .order_by("-created_at", "-pk")
        .first()
    )
