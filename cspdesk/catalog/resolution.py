"""Which price rule applies to a charge: pure, no database.

Specificity is compared party scope first (customer > reseller > organisation default), then product scope
(meter category > SKU > product > category > any): a customer's own deal beats a general SKU price. Two rules
of the same specificity that both match and are both in force on the charge date are a :class:`RuleConflict`,
never a silent pick.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

AZURE_PRODUCT_IDS = frozenset({"DZH318Z0BPS6"})  # the Azure plan (new commerce)


def category_of(product_id: str, product_name: str, meter_category: str, meter_id: str = "") -> str:
    """Product category of a charge (``azure``, ``microsoft365``, ``dynamics365``, ``other``)."""
    name = product_name.lower()
    if meter_category or meter_id or product_id.upper() in AZURE_PRODUCT_IDS or name.startswith("azure"):
        return "azure"
    if name.startswith("dynamics 365") or name.startswith("dynamics365"):
        return "dynamics365"
    if any(name.startswith(p) for p in ("microsoft 365", "office 365", "exchange online", "microsoft teams")):
        return "microsoft365"
    return "other"


@dataclass(frozen=True)
class RuleSpec:
    id: int
    method: str
    reseller_id: int | None = None
    customer_id: int | None = None
    category: str = ""
    product_id: str = ""
    sku_id: str = ""
    meter_category: str = ""
    percent: Decimal | None = None
    unit_price: Decimal | None = None
    currency: str = ""
    effective_from: dt.date = dt.date.min
    effective_to: dt.date | None = None

    @property
    def party_level(self) -> int:
        return 2 if self.customer_id is not None else 1 if self.reseller_id is not None else 0

    @property
    def product_level(self) -> int:
        if self.meter_category:
            return 4
        if self.sku_id:
            return 3
        if self.product_id:
            return 2
        return 1 if self.category else 0

    @property
    def specificity(self) -> tuple[int, int]:
        return (self.party_level, self.product_level)

    def in_force(self, on: dt.date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def overlaps(self, other: RuleSpec) -> bool:
        end_a = self.effective_to or dt.date.max
        end_b = other.effective_to or dt.date.max
        return self.effective_from <= end_b and other.effective_from <= end_a

    def same_scope(self, other: RuleSpec) -> bool:
        keys = ("reseller_id", "customer_id", "category", "product_id", "sku_id", "meter_category")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


@dataclass(frozen=True)
class ChargeKey:
    """What a rule is matched against."""

    customer_id: int | None
    reseller_id: int | None
    category: str
    product_id: str
    sku_id: str
    meter_category: str
    on: dt.date


class RuleConflict(Exception):
    def __init__(self, rules: tuple[RuleSpec, ...]) -> None:
        self.rules = rules
        ids = ", ".join(str(r.id) for r in rules)
        super().__init__(f"price rules {ids} are equally specific and both in force")


def matches(rule: RuleSpec, key: ChargeKey) -> bool:
    if rule.customer_id is not None and rule.customer_id != key.customer_id:
        return False
    if rule.reseller_id is not None and rule.reseller_id != key.reseller_id:
        return False
    if rule.category and rule.category != key.category:
        return False
    if rule.product_id and rule.product_id.upper() != key.product_id.upper():
        return False
    if rule.sku_id and rule.sku_id.upper() != key.sku_id.upper():
        return False
    if rule.meter_category and rule.meter_category.lower() != key.meter_category.lower():
        return False
    return rule.in_force(key.on)


def select_rule(rules: Iterable[RuleSpec], key: ChargeKey) -> RuleSpec | None:
    """The most specific rule matching ``key``; ``None`` when none does; :class:`RuleConflict` on a tie."""
    found = [r for r in rules if matches(r, key)]
    if not found:
        return None
    best = max(r.specificity for r in found)
    top = tuple(sorted((r for r in found if r.specificity == best), key=lambda r: r.id))
    if len(top) > 1:
        raise RuleConflict(top)
    return top[0]
