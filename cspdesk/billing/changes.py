"""What changed: one invoice against the same customer's invoice of the month before, in numbers and words.

:func:`compare` is pure: it takes two :class:`Snapshot` s (the lines reduced to licences per product, usage
per Azure service and support fees) and lists the differences: licences added or removed per product, a
product new or no longer billed, usage per service up or down, a different price per licence, a different
exchange rate, a different support fee. :func:`snapshot` and :func:`previous_invoice` read the database;
:func:`sentences` says each change in the reader's language with local number and money formats.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from django.utils import translation
from django.utils.translation import gettext, ngettext

from cspdesk.catalog.resolution import category_of
from cspdesk.core import l10n
from cspdesk.core.actor import Actor
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm
from cspdesk.tenancy.selectors import get_or_404

from . import selectors
from .models import Invoice, InvoiceKind, InvoiceLineCharge, InvoiceStatus, LineKind

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class LineClass(StrEnum):
    LICENCE = "licence"
    USAGE = "usage"
    SUPPORT = "support"


@dataclass(frozen=True)
class LineFact:
    """One invoice line as the comparison needs it."""

    cls: LineClass
    key: str  # product:SKU for a licence, the Azure service (meter category) for usage, the plan for support
    label: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    days: int = 0


@dataclass(frozen=True)
class Snapshot:
    invoice_id: int
    number: str
    period: dt.date
    currency: str
    net: Decimal
    source_currency: str = ""
    exchange_rate: Decimal | None = None
    lines: tuple[LineFact, ...] = ()


class ChangeKind(StrEnum):
    LICENCES_ADDED = "licences_added"
    LICENCES_REMOVED = "licences_removed"
    PRODUCT_NEW = "product_new"
    PRODUCT_GONE = "product_gone"
    PRICE = "price"
    USAGE = "usage"
    EXCHANGE_RATE = "exchange_rate"
    SUPPORT = "support"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    key: str
    label: str
    before: Decimal | None  # licences, price per licence, usage or fee amount, or rate: last month
    after: Decimal | None  # the same, this month
    amount_before: Decimal = ZERO  # what the product or service cost on each invoice (for the licences kinds)
    amount_after: Decimal = ZERO

    @property
    def delta(self) -> Decimal:
        return (self.after or ZERO) - (self.before or ZERO)


@dataclass(frozen=True)
class Changes:
    current: Snapshot
    previous: Snapshot | None
    changes: tuple[Change, ...]

    @property
    def net_delta(self) -> Decimal | None:
        return None if self.previous is None else self.current.net - self.previous.net

    @property
    def net_percent(self) -> Decimal | None:
        if self.previous is None or self.previous.net == 0:
            return None
        return (self.current.net - self.previous.net) / self.previous.net * HUNDRED

    def of(self, kind: ChangeKind) -> list[Change]:
        return [c for c in self.changes if c.kind is kind]


# ---------------------------------------------------------------- the comparison (pure)


@dataclass
class _Group:
    label: str
    quantity: Decimal = ZERO
    amount: Decimal = ZERO
    main: LineFact | None = None  # the line that states the price per licence: the longest, then the largest


def _groups(lines: tuple[LineFact, ...], cls: LineClass) -> dict[str, _Group]:
    out: dict[str, _Group] = {}
    for ln in lines:
        if ln.cls is not cls:
            continue
        g = out.setdefault(ln.key, _Group(ln.label))
        g.quantity += ln.quantity
        g.amount += ln.amount
        if ln.quantity > 0 and (g.main is None or (ln.days, ln.quantity) > (g.main.days, g.main.quantity)):
            g.main = ln
    return out


def compare(current: Snapshot, previous: Snapshot | None) -> Changes:
    """The differences of ``current`` against ``previous`` (none when there is no previous invoice)."""
    if previous is None:
        return Changes(current, None, ())
    changes: list[Change] = []
    now, then = _groups(current.lines, LineClass.LICENCE), _groups(previous.lines, LineClass.LICENCE)
    for key in sorted(now.keys() | then.keys(), key=lambda k: (now.get(k) or then[k]).label):
        a, b = then.get(key), now.get(key)
        label = (b or a).label  # type: ignore[union-attr]
        if a is None and b is not None:
            changes.append(Change(ChangeKind.PRODUCT_NEW, key, label, None, b.quantity, ZERO, b.amount))
            continue
        if b is None and a is not None:
            changes.append(Change(ChangeKind.PRODUCT_GONE, key, label, a.quantity, None, a.amount, ZERO))
            continue
        assert a is not None and b is not None
        if b.quantity > a.quantity:
            changes.append(Change(ChangeKind.LICENCES_ADDED, key, label, a.quantity, b.quantity, a.amount, b.amount))
        elif b.quantity < a.quantity:
            changes.append(Change(ChangeKind.LICENCES_REMOVED, key, label, a.quantity, b.quantity, a.amount, b.amount))
        if a.main is not None and b.main is not None and a.main.unit_price != b.main.unit_price:
            changes.append(Change(ChangeKind.PRICE, key, label, a.main.unit_price, b.main.unit_price))
    for cls, kind in ((LineClass.USAGE, ChangeKind.USAGE), (LineClass.SUPPORT, ChangeKind.SUPPORT)):
        now, then = _groups(current.lines, cls), _groups(previous.lines, cls)
        found = []
        for key in now.keys() | then.keys():
            before = then[key].amount if key in then else None
            after = now[key].amount if key in now else None
            if before != after:
                found.append(Change(kind, key, (now.get(key) or then[key]).label, before, after))
        changes += sorted(found, key=lambda c: (-abs(c.delta), c.label))
    if (
        current.exchange_rate is not None
        and previous.exchange_rate is not None
        and current.source_currency == previous.source_currency
        and current.exchange_rate != previous.exchange_rate
    ):
        pair = f"{current.source_currency}/{current.currency}"
        changes.append(Change(ChangeKind.EXCHANGE_RATE, pair, pair, previous.exchange_rate, current.exchange_rate))
    return Changes(current, previous, tuple(changes))


# ---------------------------------------------------------------- reading invoices


def snapshot(invoice: Invoice) -> Snapshot:
    """The invoice's lines classified: licences per product × SKU, usage per Azure service, support fees."""
    first_charge: dict[int, InvoiceLineCharge] = {}
    links = (
        InvoiceLineCharge.objects.filter(line__invoice=invoice)
        .select_related("charge_line")
        .order_by("line_id", "charge_line_id")
    )
    for link in links:
        first_charge.setdefault(link.line_id, link)
    facts = []
    for ln in invoice.lines.order_by("position"):
        days = (ln.period_end - ln.period_start).days + 1
        amount, quantity, unit = Decimal(ln.net_amount), Decimal(ln.quantity), Decimal(ln.unit_price)
        if ln.kind == LineKind.SUPPORT:
            facts.append(LineFact(LineClass.SUPPORT, ln.group, ln.group, quantity, unit, amount, days))
            continue
        source = first_charge.get(ln.pk)
        c = source.charge_line if source else None
        if c is not None and category_of(c.product_id, c.product_name, c.meter_category, c.meter_id) == "azure":
            service = c.meter_category or c.product_name or c.product_id
            facts.append(LineFact(LineClass.USAGE, service, service, quantity, unit, amount, days))
            continue
        key = f"{c.product_id}:{c.sku_id}" if c is not None else ln.item_id or ln.description
        label = (c.sku_name or c.product_name) if c is not None else ln.description
        facts.append(LineFact(LineClass.LICENCE, key, label or key, quantity, unit, amount, days))
    return Snapshot(
        invoice_id=invoice.pk, number=invoice.number, period=invoice.period, currency=invoice.currency,
        net=Decimal(invoice.net), source_currency=invoice.source_currency,
        exchange_rate=Decimal(invoice.exchange_rate) if invoice.exchange_rate is not None else None,
        lines=tuple(facts),
    )  # fmt: skip


def previous_invoice(invoice: Invoice) -> Invoice | None:
    """The same seller's finalized invoice to the same buyer, in the same currency, for the month before."""
    if invoice.kind != InvoiceKind.INVOICE:
        return None
    previous_period = (invoice.period - dt.timedelta(days=1)).replace(day=1)
    qs = Invoice.objects.filter(
        organisation_id=invoice.organisation_id, kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED,
        period=previous_period, currency=invoice.currency,
    )  # fmt: skip
    if invoice.customer_id is not None:
        qs = qs.filter(customer_id=invoice.customer_id)
    else:
        qs = qs.filter(buyer_organisation_id=invoice.buyer_organisation_id)
    return qs.order_by("-pk").first()


def changes_of(invoice: Invoice) -> Changes:
    before = previous_invoice(invoice)
    return compare(snapshot(invoice), snapshot(before) if before is not None else None)


def what_changed(actor: Actor, invoice_id: int) -> Changes:
    """What changed on an invoice the actor may read (absent or not theirs: ``NotFound``)."""
    permissions.require(actor, Perm.INVOICES_READ)
    invoice = get_or_404(selectors.invoices_for(actor), invoice_id, "invoice")
    return changes_of(invoice)


# ---------------------------------------------------------------- in words


def _count(value: Decimal) -> int:
    return int(abs(value).to_integral_value())


def sentence(change: Change, currency: str, language: str) -> str:
    """One change in words, in ``language`` with its local number and money formats."""

    def num(value: Decimal | None) -> str:
        return l10n.number(abs(value or ZERO), language)

    def cash(value: Decimal | None) -> str:
        return l10n.money(value or ZERO, currency, language)

    with translation.override(language):
        k = change.kind
        if k is ChangeKind.LICENCES_ADDED or k is ChangeKind.LICENCES_REMOVED:
            n = _count(change.delta)
            values = {"product": change.label, "count": num(change.delta), "before": num(change.before),
                      "after": num(change.after)}  # fmt: skip
            if k is ChangeKind.LICENCES_ADDED:
                text = ngettext(
                    "%(product)s: %(count)s licence added (%(before)s → %(after)s).",
                    "%(product)s: %(count)s licences added (%(before)s → %(after)s).",
                    n,
                )
            else:
                text = ngettext(
                    "%(product)s: %(count)s licence removed (%(before)s → %(after)s).",
                    "%(product)s: %(count)s licences removed (%(before)s → %(after)s).",
                    n,
                )
            return text % values
        if k is ChangeKind.PRODUCT_NEW:
            return ngettext(
                "%(product)s is new this month: %(count)s licence, %(amount)s.",
                "%(product)s is new this month: %(count)s licences, %(amount)s.",
                _count(change.after or ZERO),
            ) % {"product": change.label, "count": num(change.after), "amount": cash(change.amount_after)}
        if k is ChangeKind.PRODUCT_GONE:
            return ngettext(
                "%(product)s is no longer billed (%(count)s licence last month).",
                "%(product)s is no longer billed (%(count)s licences last month).",
                _count(change.before or ZERO),
            ) % {"product": change.label, "count": num(change.before)}
        if k is ChangeKind.PRICE:
            return gettext("%(product)s: the price per licence went from %(before)s to %(after)s.") % {
                "product": change.label,
                "before": l10n.unit_price(change.before or ZERO, currency, language),
                "after": l10n.unit_price(change.after or ZERO, currency, language),
            }
        if k is ChangeKind.USAGE or k is ChangeKind.SUPPORT:
            values = {"name": change.label, "before": cash(change.before), "after": cash(change.after),
                      "delta": ("+" if change.delta > 0 else "−") + cash(abs(change.delta))}  # fmt: skip
            if change.before is None:
                return (
                    gettext("Azure usage for %(name)s is new: %(after)s.")
                    if k is ChangeKind.USAGE
                    else gettext("%(name)s is new: %(after)s.")
                ) % values
            if change.after is None:
                return (
                    gettext("No Azure usage for %(name)s this month (%(before)s last month).")
                    if k is ChangeKind.USAGE
                    else gettext("%(name)s is no longer billed (%(before)s last month).")
                ) % values
            if k is ChangeKind.USAGE:
                return gettext("Azure usage for %(name)s: %(before)s → %(after)s (%(delta)s).") % values
            return gettext("%(name)s: %(before)s → %(after)s (%(delta)s).") % values
        before, after = change.before or ZERO, change.after or ZERO
        return gettext("Exchange rate %(pair)s: %(before)s → %(after)s (%(percent)s).") % {
            "pair": change.label,
            "before": l10n.number(before, language),
            "after": l10n.number(after, language),
            "percent": _signed_percent((after - before) / before * HUNDRED if before else ZERO, language),
        }


def _signed_percent(value: Decimal, language: str) -> str:
    text = l10n.percent(abs(value).quantize(Decimal("0.1")), language)
    return ("+" if value > 0 else "−" if value < 0 else "") + text


def summary(changes: Changes, language: str) -> str:
    """The total before tax against last month, in words ('' without a previous invoice)."""
    if changes.previous is None or changes.net_delta is None:
        return ""
    cur = changes.current.currency
    with translation.override(language):
        values = {
            "before": l10n.money(changes.previous.net, cur, language),
            "after": l10n.money(changes.current.net, cur, language),
            "delta": ("+" if changes.net_delta > 0 else "−" if changes.net_delta < 0 else "")
            + l10n.money(abs(changes.net_delta), cur, language),
        }
        if changes.net_percent is None:
            return gettext("Total before tax: %(before)s last month, %(after)s this month (%(delta)s).") % values
        values["percent"] = _signed_percent(changes.net_percent, language)
        return (
            gettext("Total before tax: %(before)s last month, %(after)s this month (%(delta)s, %(percent)s).") % values
        )


def sentences(changes: Changes, language: str) -> list[str]:
    return [sentence(c, changes.current.currency, language) for c in changes.changes]
