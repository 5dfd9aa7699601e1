"""Collections arithmetic, with no database: the policy's rules, a customer's overdue position, which stage
is due today, which subscriptions a suspension covers, and whether a payment plan is on time.

A stage is due when the oldest collectible invoice is at least ``stage.days`` past its due date, every earlier
stage of the policy has run on this case, and (for a later stage) at least the gap the policy puts between
the two stages has passed since the previous one ran: a case that starts late (say after a reversed
payment) still walks the stages one by one with the published spacing, never all on one day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cspdesk.catalog.resolution import category_of
from cspdesk.core.money import is_currency

ACTIONS = ("reminder", "final_notice", "suspend", "cancel_at_renewal", "hand_over")
CATEGORIES = ("azure", "microsoft365", "dynamics365", "other")
PREPAID_CYCLES = frozenset({"annual", "triennial", "one_time", "onetime"})
ZERO = Decimal(0)
MAX_DAYS = 3650


class PolicyError(ValueError):
    """A policy that does not validate; ``field`` names the place (``stages[1].days``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Stage:
    days: int
    action: str

    @property
    def key(self) -> str:
        return f"{self.days}:{self.action}"

    def as_dict(self) -> dict[str, Any]:
        return {"days": self.days, "action": self.action}


@dataclass(frozen=True)
class Rules:
    stages: tuple[Stage, ...]
    grace_days: int = 0
    minimum_amounts: Mapping[str, Decimal] = field(default_factory=dict)
    categories: tuple[str, ...] = ("azure", "microsoft365")
    suspend_prepaid_licences: bool = False

    def minimum(self, currency: str) -> Decimal:
        return self.minimum_amounts.get(currency, ZERO)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stages": [s.as_dict() for s in self.stages],
            "grace_days": self.grace_days,
            "minimum_amounts": {c: str(a) for c, a in sorted(self.minimum_amounts.items())},
            "categories": list(self.categories),
            "suspend_prepaid_licences": self.suspend_prepaid_licences,
        }


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PolicyError(where, f"expected a whole number of days, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise PolicyError(where, f"expected a whole number of days, got {value!r}") from None
    if not low <= number <= high:
        raise PolicyError(where, f"expected {low} to {high} days, got {number}")
    return number


def parse_stages(data: Any) -> tuple[Stage, ...]:
    if not isinstance(data, list) or not data:
        raise PolicyError("stages", "expected a non-empty list of {days, action}")
    stages: list[Stage] = []
    for i, item in enumerate(data):
        where = f"stages[{i}]"
        if not isinstance(item, Mapping):
            raise PolicyError(where, f"expected an object with days and action, got {item!r}")
        unknown = set(item) - {"days", "action"}
        if unknown:
            raise PolicyError(f"{where}.{sorted(unknown)[0]}", "unknown key; a stage has days and action")
        days = _int(item.get("days"), f"{where}.days", 0, MAX_DAYS)
        action = item.get("action")
        if action not in ACTIONS:
            raise PolicyError(f"{where}.action", f"expected one of {', '.join(ACTIONS)}, got {action!r}")
        if stages and days <= stages[-1].days:
            raise PolicyError(f"{where}.days", f"stages are ordered: {days} must be after {stages[-1].days}")
        stages.append(Stage(days, str(action)))
    for once in ("suspend", "cancel_at_renewal", "hand_over", "final_notice"):
        if sum(s.action == once for s in stages) > 1:
            raise PolicyError("stages", f"{once} may appear once")
    return tuple(stages)


def parse_rules(data: Mapping[str, Any]) -> Rules:
    """Validate a policy given as data (the API body, a JSON file, the CLI's options)."""
    if not isinstance(data, Mapping):
        raise PolicyError("policy", "expected an object")
    known = {"stages", "grace_days", "minimum_amounts", "categories", "suspend_prepaid_licences"}
    unknown = set(data) - known
    if unknown:
        raise PolicyError(sorted(unknown)[0], f"unknown key; expected {', '.join(sorted(known))}")
    stages = parse_stages(data.get("stages"))
    grace = _int(data.get("grace_days", 0), "grace_days", 0, MAX_DAYS)
    if stages[0].days <= grace and grace:
        raise PolicyError("stages[0].days", f"the first stage must come after the {grace}-day grace period")
    minimums: dict[str, Decimal] = {}
    raw_min = data.get("minimum_amounts") or {}
    if not isinstance(raw_min, Mapping):
        raise PolicyError("minimum_amounts", 'expected an object of currency → amount, e.g. {"EUR": "50"}')
    for currency, amount in raw_min.items():
        code = str(currency).upper()
        if not is_currency(code):
            raise PolicyError(f"minimum_amounts.{currency}", "expected an ISO 4217 currency code")
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            raise PolicyError(f"minimum_amounts.{currency}", f"expected an amount, got {amount!r}") from None
        if not value.is_finite() or value < 0:
            raise PolicyError(f"minimum_amounts.{currency}", "expected an amount of zero or more")
        minimums[code] = value
    categories = data.get("categories", ["azure", "microsoft365"])
    if not isinstance(categories, list) or any(c not in CATEGORIES for c in categories):
        raise PolicyError("categories", f"expected a list of {', '.join(CATEGORIES)}, got {categories!r}")
    prepaid = data.get("suspend_prepaid_licences", False)
    if not isinstance(prepaid, bool):
        raise PolicyError("suspend_prepaid_licences", f"expected true or false, got {prepaid!r}")
    ordered = tuple(c for c in CATEGORIES if c in categories)
    return Rules(stages, grace, minimums, ordered, prepaid)


# ---------------------------------------------------------------- a customer's position


@dataclass(frozen=True)
class OpenInvoice:
    id: int
    number: str
    due_date: dt.date
    amount: Decimal
    currency: str
    disputed: bool = False


@dataclass
class Position:
    """The customer's collectible overdue invoices on ``today`` (past due plus grace, not disputed)."""

    today: dt.date
    invoices: list[OpenInvoice]
    disputed: list[OpenInvoice]
    amounts: dict[str, Decimal]
    oldest_due: dt.date | None

    @property
    def days_past_due(self) -> int:
        return 0 if self.oldest_due is None else (self.today - self.oldest_due).days

    @property
    def cleared(self) -> bool:
        return not self.invoices

    def meets_minimum(self, rules: Rules) -> bool:
        return any(amount > ZERO and amount >= rules.minimum(cur) for cur, amount in self.amounts.items())


def position(invoices: Iterable[OpenInvoice], today: dt.date, grace_days: int) -> Position:
    counted: list[OpenInvoice] = []
    disputed: list[OpenInvoice] = []
    amounts: dict[str, Decimal] = {}
    for inv in sorted(invoices, key=lambda i: (i.due_date, i.id)):
        if inv.amount <= ZERO or (today - inv.due_date).days <= grace_days:
            continue
        if inv.disputed:
            disputed.append(inv)
            continue
        counted.append(inv)
        amounts[inv.currency] = amounts.get(inv.currency, ZERO) + inv.amount
    oldest = counted[0].due_date if counted else None
    return Position(today, counted, disputed, amounts, oldest)


def next_stage(
    stages: Iterable[Stage], done: set[str], days_past_due: int, last_run_on: dt.date | None, today: dt.date
) -> Stage | None:
    """The one stage due today, or ``None``: the first stage not yet run, once its day has come and the gap
    after the previous stage has passed."""
    previous: Stage | None = None
    for stage in stages:
        if stage.key in done:
            previous = stage
            continue
        if days_past_due < stage.days:
            return None
        if previous is not None and last_run_on is not None:
            gap = max(1, stage.days - previous.days)
            if (today - last_run_on).days < gap:
                return None
        return stage
    return None


# ---------------------------------------------------------------- what a suspension covers


@dataclass(frozen=True)
class SubscriptionFacts:
    status: str
    product_id: str
    offer_name: str
    billing_type: str
    billing_cycle: str


def category(sub: SubscriptionFacts) -> str:
    return category_of(sub.product_id, sub.offer_name, "")


def is_prepaid_licence(sub: SubscriptionFacts) -> bool:
    """A licence billed for its whole term in advance (annual or longer billing cycle)."""
    return sub.billing_type == "license" and sub.billing_cycle.replace("-", "_") in PREPAID_CYCLES


def coverage(sub: SubscriptionFacts, rules: Rules) -> str:
    """``"covered"``, or why the suspension leaves the subscription alone."""
    if sub.status != "active":
        return "not_active"
    if category(sub) not in rules.categories:
        return "category_not_covered"
    if is_prepaid_licence(sub) and not rules.suspend_prepaid_licences:
        return "prepaid_licence"
    return "covered"


# ---------------------------------------------------------------- payment plans


def plan_due(instalments: Iterable[tuple[dt.date, Decimal]], today: dt.date) -> Decimal:
    """What the plan asks to have been paid by the end of ``today``'s eve (an instalment due today is not late)."""
    return sum((amount for due, amount in instalments if due < today), ZERO)


def plan_state(instalments: list[tuple[dt.date, Decimal]], paid: Decimal, today: dt.date) -> str:
    """``completed`` when everything is paid, ``on_time`` while payments keep up, else ``late``."""
    total = sum((a for _, a in instalments), ZERO)
    if paid >= total:
        return "completed"
    return "on_time" if paid >= plan_due(instalments, today) else "late"
