"""The dashboard's panels: which charts the actor's role may see, with their geometry and data tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from cspdesk.core.actor import Actor
from cspdesk.payments import allocation
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm

from . import charts
from . import selectors as console
from .templatetags.console_format import money, month, percent

AGING_LABELS = {
    "current": _("Not yet due"),
    "1_30": _("1–30 days late"),
    "31_60": _("31–60 days late"),
    "61_90": _("61–90 days late"),
    "over_90": _("Over 90 days late"),
}
PAYABLE_LABELS = {
    "overdue": _("Overdue"),
    "week": _("Due within 7 days"),
    "month": _("Due within 30 days"),
    "two_months": _("Due within 60 days"),
    "later": _("Due later"),
}
FUNNEL_LABELS = {
    "open": _("Owe something"),
    "overdue": _("Overdue"),
    "over_14": _("Over 14 days late"),
    "over_30": _("Over 30 days late"),
    "over_60": _("Over 60 days late"),
}


@dataclass
class Panel:
    """One chart: ``kind`` is ``columns`` or ``bars``; ``table`` is the same data for reading."""

    key: str
    title: str
    description: str
    kind: str
    chart: Any
    legend: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    link: tuple[str, str] | None = None  # (url, text): the page where the chart's subject is worked on


def _count(value: Decimal) -> str:
    return str(int(value))


def margin_panels(actor: Actor) -> list[Panel]:
    out = []
    for currency, months in console.monthly_margin(actor, months=6).items():
        fmt = charts_fmt(currency)
        names = [str(_("Revenue")), str(_("Microsoft cost")), str(_("Margin"))]
        chart = charts.column_chart(
            [month(m.period) for m in months],
            [(names[0], [m.revenue for m in months]), (names[1], [m.cost for m in months]),
             (names[2], [m.margin for m in months])],
            fmt,
        )  # fmt: skip
        out.append(Panel(
            f"margin-{currency.lower()}", str(_("Revenue, cost and margin (%(currency)s)") % {"currency": currency}),
            str(_("Invoiced revenue less credit notes, Microsoft's cost of the same lines, and the margin, per "
                  "billed month.")),
            "columns", chart, names, [str(_("Month")), *names],
            [[month(m.period), fmt(m.revenue), fmt(m.cost), fmt(m.margin)] for m in months],
        ))  # fmt: skip
    return out


def charts_fmt(currency: str) -> charts.Fmt:
    return lambda v: money(v, currency)


def aging_panels(actor: Actor) -> list[Panel]:
    out = []
    for currency, buckets in console.receivables_aging(actor).items():
        fmt = charts_fmt(currency)
        items = [(str(AGING_LABELS[b]), buckets[b]) for b in allocation.BUCKETS]
        out.append(Panel(
            f"aging-{currency.lower()}", str(_("Receivables aging (%(currency)s)") % {"currency": currency}),
            str(_("Open customer invoices by how late they are. Total: %(total)s")
                % {"total": fmt(buckets["total"])}),
            "bars", charts.bar_chart(items, fmt), [], [str(_("Age")), str(_("Open amount"))],
            [[label, fmt(value)] for label, value in items],
        ))  # fmt: skip
    return out


def payables_panels(actor: Actor) -> list[Panel]:
    out = []
    for currency, buckets in console.payables_due(actor).items():
        fmt = charts_fmt(currency)
        items = [(str(PAYABLE_LABELS[b]), buckets[b]) for b in console.PAYABLE_BUCKETS]
        out.append(Panel(
            f"payables-{currency.lower()}", str(_("Microsoft payables due (%(currency)s)") % {"currency": currency}),
            str(_("Microsoft invoices not yet paid, by when they fall due.")),
            "bars", charts.bar_chart(items, fmt), [], [str(_("Due")), str(_("Amount"))],
            [[label, fmt(value)] for label, value in items],
        ))  # fmt: skip
    return out


def sla_panel(actor: Actor) -> Panel:
    months = console.sla_compliance(actor, months=6)
    names = [str(_("Resolved in time")), str(_("Missed the target")), str(_("Running, in time"))]
    chart = charts.column_chart(
        [month(m.period) for m in months],
        [(names[0], [Decimal(m.met) for m in months]), (names[1], [Decimal(m.breached) for m in months]),
         (names[2], [Decimal(m.running) for m in months])],
        _count,
    )  # fmt: skip
    return Panel(
        "sla", str(_("SLA compliance")),
        str(_("Tickets by the month they were opened: resolved within the resolution target, missed, or still "
              "running inside it.")),
        "columns", chart, names, [str(_("Month")), *names, str(_("Compliance"))],
        [[month(m.period), str(m.met), str(m.breached), str(m.running),
          percent(m.percent)] for m in months],
    )  # fmt: skip


def funnel_panel(actor: Actor) -> Panel:
    counts = console.dunning_funnel(actor)
    items = [(str(FUNNEL_LABELS[s]), Decimal(counts[s])) for s in console.FUNNEL_STAGES]
    return Panel(
        "dunning", str(_("Dunning funnel")),
        str(_("Customers with an open balance, and how many of them are late, by their oldest unpaid invoice.")),
        "bars", charts.bar_chart(items, _count, centered=True), [], [str(_("Stage")), str(_("Customers"))],
        [[label, _count(value)] for label, value in items],
        (reverse("console:collections"), str(_("Collections: today's run, approvals and cases"))),
    )  # fmt: skip


def panels(actor: Actor) -> list[Panel]:
    """The dashboard for this actor: each chart only when its role may read the data behind it."""
    out: list[Panel] = []
    if permissions.has(actor, Perm.INVOICES_READ):
        out += margin_panels(actor)
    if permissions.has(actor, Perm.PAYMENTS_READ):
        out += aging_panels(actor)
    if permissions.has(actor, Perm.INVOICES_READ):
        out += payables_panels(actor)
    if permissions.has(actor, Perm.TICKETS_READ):
        out.append(sla_panel(actor))
    if permissions.has(actor, Perm.COLLECTIONS_READ):
        out.append(funnel_panel(actor))
    return out
