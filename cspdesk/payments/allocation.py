"""Pure payment arithmetic: which invoices a payment pays, how much each, aging buckets, DSO, weeks.

No database here: the services hand in plain values and write what comes back.

Matching rules, in order:

1. ``reference``: invoice numbers or RF creditor references (ISO 11649) found in the remittance text;
   those invoices are paid first, in the order of their due dates;
2. ``exact_amount``: an open invoice whose open amount equals the payment exactly (the oldest such);
3. ``oldest_first``: the customer's open invoices by due date, then number.

Whatever a rule leaves over goes oldest-first to the customer's other open invoices, and what is left
after that stays on the payment as the customer's credit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from stdnum import iso11649
from stdnum.iso7064 import mod_97_10

ZERO: Final = Decimal(0)
BUCKETS: Final = ("current", "1_30", "31_60", "61_90", "over_90")


@dataclass(frozen=True)
class OpenItem:
    """An invoice with something still to pay."""

    invoice_id: int
    number: str
    due_date: dt.date
    open_amount: Decimal


@dataclass(frozen=True)
class Planned:
    invoice_id: int
    amount: Decimal
    rule: str


def _compact(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def rf_reference(number: str) -> str:
    """The RF creditor reference (ISO 11649) for an invoice number: ``RF`` + 2 check digits + the number's
    letters and digits (at most 21)."""
    body = _compact(number)[-21:]
    if not body:
        raise ValueError("an RF reference needs letters or digits")
    return f"RF{mod_97_10.calc_check_digits(body + 'RF')}{body}"


_RF: Final = re.compile(r"RF\s?\d{2}(?:\s?[A-Z0-9]){1,21}", re.IGNORECASE)


def references_in(text: str, items: Sequence[OpenItem]) -> list[OpenItem]:
    """The open items the text names, by invoice number (spacing and punctuation ignored) or valid RF
    reference; each at most once, in due-date order."""
    if not text:
        return []
    compact = _compact(text)
    found: dict[int, OpenItem] = {}
    rf_bodies = set()
    for m in _RF.finditer(text):
        candidate = iso11649.compact(m.group(0))
        # The greedy match may run into the next word: try the longest valid prefix.
        for end in range(len(candidate), 4, -1):
            if iso11649.is_valid(candidate[:end]):
                rf_bodies.add(candidate[4:end])
                break
    for item in items:
        number = _compact(item.number)
        if not number:
            continue
        if (number in compact and _bounded(compact, number)) or number[-21:] in rf_bodies:
            found[item.invoice_id] = item
    return sorted(found.values(), key=_order)


def _bounded(compact: str, number: str) -> bool:
    """The number occurs and is not the prefix of a longer number (NUV2026000012 vs NUV20260000123)."""
    start = compact.find(number)
    while start != -1:
        end = start + len(number)
        if end == len(compact) or not (compact[end].isdigit() and number[-1].isdigit()):
            return True
        start = compact.find(number, start + 1)
    return False


def _order(item: OpenItem) -> tuple[dt.date, str, int]:
    return (item.due_date, item.number, item.invoice_id)


def _fill(
    amount: Decimal, items: Iterable[OpenItem], rule: str, taken: dict[int, Decimal]
) -> tuple[list[Planned], Decimal]:
    plans = []
    for item in items:
        if amount <= ZERO:
            break
        room = item.open_amount - taken.get(item.invoice_id, ZERO)
        if room <= ZERO:
            continue
        part = min(room, amount)
        plans.append(Planned(item.invoice_id, part, rule))
        taken[item.invoice_id] = taken.get(item.invoice_id, ZERO) + part
        amount -= part
    return plans, amount


def plan(amount: Decimal, text: str, items: Sequence[OpenItem]) -> list[Planned]:
    """How to apply ``amount`` to the open ``items`` (one customer, one currency). Never more than an
    item's open amount, never more than ``amount`` in all; the rest is credit."""
    if amount <= ZERO:
        return []
    items = [i for i in items if i.open_amount > ZERO]
    taken: dict[int, Decimal] = {}
    plans: list[Planned] = []
    named = references_in(text, items)
    if named:
        got, amount = _fill(amount, named, "reference", taken)
        plans += got
    else:
        exact = sorted((i for i in items if i.open_amount == amount), key=_order)
        if exact:
            got, amount = _fill(amount, exact[:1], "exact_amount", taken)
            plans += got
    got, _ = _fill(amount, sorted(items, key=_order), "oldest_first", taken)
    return plans + got


# ---------------------------------------------------------------- receivables


def bucket(due_date: dt.date, today: dt.date) -> str:
    """``current`` (not yet due, or due today), ``1_30``, ``31_60``, ``61_90`` or ``over_90`` days past due."""
    late = (today - due_date).days
    if late <= 0:
        return "current"
    if late <= 30:
        return "1_30"
    if late <= 60:
        return "31_60"
    if late <= 90:
        return "61_90"
    return "over_90"


def aging(items: Iterable[tuple[dt.date, Decimal]], today: dt.date) -> dict[str, Decimal]:
    """Open amounts by bucket, plus ``total``."""
    out = dict.fromkeys(BUCKETS, ZERO)
    for due, amount in items:
        out[bucket(due, today)] += amount
    out["total"] = sum((out[b] for b in BUCKETS), ZERO)
    return out


def dso(receivables: Decimal, credit_sales: Decimal, days: int) -> Decimal | None:
    """Days sales outstanding: receivables ÷ credit sales of the last ``days`` days × ``days`` (one decimal);
    ``None`` without sales."""
    if credit_sales <= ZERO:
        return None
    return (receivables / credit_sales * days).quantize(Decimal("0.1"))


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def weekly(items: Iterable[tuple[dt.date, Decimal]], today: dt.date, weeks: int = 8) -> list[dict[str, object]]:
    """Amounts per ISO week (Monday starts) for ``weeks`` weeks from this one; what is already past due
    counts in this week."""
    first = week_start(today)
    sums = [ZERO] * weeks
    for day, amount in items:
        index = max(0, (week_start(day) - first).days // 7)
        if index < weeks:
            sums[index] += amount
    return [{"week_start": first + dt.timedelta(weeks=i), "amount": sums[i]} for i in range(weeks)]
