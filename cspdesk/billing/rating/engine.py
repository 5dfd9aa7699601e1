"""Rating: Microsoft's charges priced by the seller's rules, grouped into invoice lines. Pure, no database.

* A charge is priced by the most specific rule in force on its start date
  (:func:`cspdesk.catalog.resolution.select_rule`); a tie is a conflict the billing admin must resolve.
* Prices follow Microsoft's proration: markup and pass-through are linear in the prorated cost, a
  discount or uplift is linear in the prorated list amount, and a fixed unit price is scaled by the same
  factor Microsoft applied (prorated cost ÷ the unprorated cost of the quantity). A mid-term quantity change
  and a cancellation credit therefore reach the customer with Microsoft's proration, priced by the same rule.
* Amounts keep full precision until an invoice line is made: a line's net amount is
  ``quantity × unit price`` rounded half-up to the currency's minor unit once (EN 16931 BT-131); the unit
  price is never negative (BR-27), a credit has a negative quantity.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from cspdesk.catalog.resolution import ChargeKey, RuleConflict, RuleSpec, select_rule
from cspdesk.core.money import minor_units

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
UNIT_PRICE_EXP = Decimal("0.000001")
ONE_DAY = dt.timedelta(days=1)

Convert = Callable[[Decimal, str], Decimal]
"""``convert(amount, currency)``: an amount in ``currency`` expressed in the charge's currency."""


@dataclass(frozen=True)
class Charge:
    """One Microsoft charge line as the rating needs it (amounts in the charge currency)."""

    id: int
    customer_id: int | None
    reseller_id: int | None
    subscription_id: str
    product_id: str
    sku_id: str
    product_name: str
    sku_name: str
    meter_category: str
    category: str
    charge_type: str
    start: dt.date
    end: dt.date
    quantity: Decimal
    cost: Decimal
    currency: str
    list_cost: Decimal | None = None  # Microsoft's list price for the charge, when the file carries it
    full_cost: Decimal | None = None  # the unprorated cost of the quantity (effective unit price × quantity)

    def key(self) -> ChargeKey:
        return ChargeKey(
            customer_id=self.customer_id,
            reseller_id=self.reseller_id,
            category=self.category,
            product_id=self.product_id,
            sku_id=self.sku_id,
            meter_category=self.meter_category,
            on=self.start,
        )


@dataclass(frozen=True)
class Priced:
    charge: Charge
    rule: RuleSpec | None
    price: Decimal  # exact, charge currency


@dataclass
class Rated:
    priced: list[Priced] = field(default_factory=list)
    conflicts: list[tuple[Charge, RuleConflict]] = field(default_factory=list)

    @property
    def unruled(self) -> list[Priced]:
        return [p for p in self.priced if p.rule is None]


def proration(charge: Charge) -> Decimal:
    """The factor Microsoft applied: prorated cost ÷ unprorated cost (1 when the file gives no basis)."""
    if charge.full_cost is not None and charge.full_cost != 0:
        return charge.cost / charge.full_cost
    if charge.cost < 0:
        return -ONE
    return ONE


def price_charge(charge: Charge, rule: RuleSpec | None, convert: Convert) -> Decimal:
    """The exact price of one charge under ``rule`` (``None``: at cost), in the charge's currency."""
    if rule is None or rule.method == "pass_through":
        return charge.cost
    if rule.method == "markup":
        assert rule.percent is not None
        return charge.cost * (ONE + rule.percent / HUNDRED)
    if rule.method == "list_adjust":
        assert rule.percent is not None
        base = charge.list_cost if charge.list_cost is not None else charge.cost
        return base * (ONE + rule.percent / HUNDRED)
    if rule.method == "fixed_unit":
        assert rule.unit_price is not None
        unit = convert(rule.unit_price, rule.currency or charge.currency)
        quantity = charge.quantity if charge.quantity != 0 else ONE
        return unit * quantity * proration(charge)
    raise ValueError(f"unknown price method {rule.method!r}")


class RuleLookup:
    """:func:`select_rule` over one seller's rules, remembered per distinct question.

    A month has tens of thousands of charges but few distinct questions. Which rules match a charge depends only
    on the values its rules name (a customer, reseller, product, SKU or meter category no rule names matches
    exactly as any other one does), compared as :func:`matches` compares them, and on which rules are in force
    on its date. That changes only on a rule's first day and on the day after its last, so a date is
    remembered as the span between two such days: a rule ending mid-month still prices the charges before its
    end and not those after. A conflict is remembered too, and raised again for every charge it concerns.
    The rules must not change while the lookup is used.
    """

    def __init__(self, rules: Sequence[RuleSpec]) -> None:
        self.rules = list(rules)
        edges = {r.effective_from for r in self.rules}
        edges.update(r.effective_to + ONE_DAY for r in self.rules if r.effective_to and r.effective_to < dt.date.max)
        self._edges = sorted(edges)
        self._customers = {r.customer_id for r in self.rules if r.customer_id is not None}
        self._resellers = {r.reseller_id for r in self.rules if r.reseller_id is not None}
        self._products = {r.product_id.upper() for r in self.rules if r.product_id}
        self._skus = {r.sku_id.upper() for r in self.rules if r.sku_id}
        self._meters = {r.meter_category.lower() for r in self.rules if r.meter_category}
        self._known: dict[tuple[object, ...], RuleSpec | RuleConflict | None] = {}

    def __call__(self, charge: Charge) -> RuleSpec | None:
        """The rule pricing ``charge`` (``None``: none does); :class:`RuleConflict` on a tie."""
        product, sku, meter = charge.product_id.upper(), charge.sku_id.upper(), charge.meter_category.lower()
        question = (
            charge.customer_id if charge.customer_id in self._customers else None,
            charge.reseller_id if charge.reseller_id in self._resellers else None,
            charge.category,
            product if product in self._products else None,
            sku if sku in self._skus else None,
            meter if meter in self._meters else None,
            bisect.bisect_right(self._edges, charge.start),
        )
        try:
            answer = self._known[question]
        except KeyError:
            try:
                answer = select_rule(self.rules, charge.key())
            except RuleConflict as conflict:
                answer = conflict
            self._known[question] = answer
        if isinstance(answer, RuleConflict):
            raise RuleConflict(answer.rules)
        return answer


def rate(charges: Iterable[Charge], rules: Sequence[RuleSpec] | RuleLookup, convert: Convert) -> Rated:
    """``rules``: the seller's rules, or a :class:`RuleLookup` of them kept for a whole run."""
    lookup = rules if isinstance(rules, RuleLookup) else RuleLookup(rules)
    out = Rated()
    for charge in charges:
        try:
            rule = lookup(charge)
        except RuleConflict as conflict:
            out.conflicts.append((charge, conflict))
            continue
        out.priced.append(Priced(charge, rule, price_charge(charge, rule, convert)))
    return out


@dataclass(frozen=True)
class DraftLine:
    """One invoice line before it is stored, with the charges it came from."""

    description: str
    group: str
    item_id: str
    quantity: Decimal
    unit_price: Decimal
    net_amount: Decimal
    cost: Decimal  # Microsoft's cost in the invoice currency, rounded like the net amount
    period_start: dt.date
    period_end: dt.date
    rule_id: int | None
    method: str
    charges: tuple[tuple[int, Decimal, Decimal], ...]  # (charge id, cost, price), exact, invoice currency


@functools.cache
def _minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def to_minor_unit(amount: Decimal, currency: str) -> Decimal:
    """:func:`cspdesk.core.money.quantize` (half-up) for a run's tens of thousands of amounts: the currency's
    minor unit is looked up once, not for every amount."""
    return amount.quantize(_minor_unit(currency), rounding=ROUND_HALF_UP)


def line_amounts(amount: Decimal, quantity: Decimal, currency: str) -> tuple[Decimal, Decimal, Decimal]:
    """(quantity, unit price, net amount) for an exact ``amount``: the unit price is never negative."""
    q = abs(quantity) if quantity != 0 else ONE
    if amount < 0:
        q = -q
    unit = (abs(amount) / abs(q)).quantize(UNIT_PRICE_EXP, rounding=ROUND_HALF_UP)
    return q, unit, to_minor_unit(q * unit, currency)


def _group_key(p: Priced) -> tuple[object, ...]:
    c = p.charge
    meter = c.meter_category if c.category == "azure" else ""
    return (c.subscription_id, c.product_id, c.sku_id, meter, c.charge_type.lower(), c.start, c.end,
            p.rule.id if p.rule else None)  # fmt: skip


def build_lines(priced: Iterable[Priced], currency: str, fx_rate: Decimal = ONE) -> list[DraftLine]:
    """Invoice lines from priced charges: one per subscription × SKU (× meter category) × charge type × period.

    ``fx_rate``: 1 unit of the charges' currency in the invoice currency.
    """
    groups: dict[tuple[object, ...], list[Priced]] = {}
    for p in priced:
        groups.setdefault(_group_key(p), []).append(p)
    lines: list[DraftLine] = []
    for members in groups.values():
        first = members[0].charge
        charges = tuple((p.charge.id, p.charge.cost * fx_rate, p.price * fx_rate) for p in members)
        amount = sum((p for _id, _c, p in charges), ZERO)
        cost = sum((c for _id, c, _p in charges), ZERO)
        azure = first.category == "azure"
        quantity = ONE if azure else sum((p.charge.quantity for p in members), ZERO)
        q, unit, net = line_amounts(amount, quantity, currency)
        name = first.sku_name or first.product_name or first.product_id
        if azure and first.meter_category:
            name = f"{first.product_name or 'Azure'} – {first.meter_category}"
        label = first.charge_type
        rule = members[0].rule
        lines.append(
            DraftLine(
                description=f"{name} ({label})",
                group=f"{first.product_name or first.product_id} · {first.subscription_id}",
                item_id=f"{first.product_id}:{first.sku_id}".strip(":"),
                quantity=q,
                unit_price=unit,
                net_amount=net,
                cost=to_minor_unit(cost, currency),
                period_start=min(p.charge.start for p in members),
                period_end=max(p.charge.end for p in members),
                rule_id=rule.id if rule else None,
                method=rule.method if rule else "no_rule",
                charges=charges,
            )
        )
    lines.sort(key=lambda ln: (ln.group, ln.period_start, ln.description))
    return lines


def support_fee(
    price_model: str,
    *,
    amount: Decimal | None,
    percent: Decimal | None,
    minimum: Decimal | None,
    maximum: Decimal | None,
    spend: Decimal = ZERO,
    quantity: Decimal = ONE,
) -> Decimal:
    """A support plan's fee: flat, % of Microsoft spend clamped to [minimum, maximum], or per incident / hour."""
    if price_model == "flat_monthly":
        assert amount is not None
        return amount
    if price_model == "percent_of_spend":
        assert percent is not None
        fee = spend * percent / HUNDRED
        if minimum is not None:
            fee = max(fee, minimum)
        if maximum is not None:
            fee = min(fee, maximum)
        return fee
    if price_model in ("per_incident", "per_hour"):
        assert amount is not None
        return amount * quantity
    raise ValueError(f"unknown support price model {price_model!r}")
