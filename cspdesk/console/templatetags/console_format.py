"""Money, numbers and dates in the reader's language (the active Django language), through ``core.l10n``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from cspdesk.core import l10n

register = template.Library()


def _language() -> str:
    try:
        return l10n.normalize_language(translation.get_language() or "en")
    except ValueError:
        return "en"


@register.filter
def money(amount: Any, currency: str) -> str:
    if amount is None or amount == "":
        return "—"
    return l10n.money(Decimal(str(amount)), currency, _language())


@register.filter
def number(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return l10n.number(Decimal(str(value)), _language())


@register.filter
def percent(value: Any) -> str:
    """A value already in percent (12.5 → ``12.5%`` in local style)."""
    if value is None or value == "":
        return "—"
    return l10n.percent(Decimal(str(value)), _language())


@register.filter
def day(value: Any) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value).date()
    return l10n.day(value, _language())


@register.filter
def month(value: Any) -> str:
    """``Oct 2026`` in the reader's language."""
    from babel.dates import format_date

    if not value:
        return "—"
    if isinstance(value, str):
        value = dt.date.fromisoformat(f"{value[:7]}-01")
    return format_date(value, format="MMM y", locale=l10n.babel_locale(_language()))


@register.filter
def moment(value: Any) -> str:
    """A date and time, UTC, in the reader's language."""
    from babel.dates import format_datetime

    if not value:
        return "—"
    return format_datetime(value, format="medium", tzinfo=dt.UTC, locale=l10n.babel_locale(_language()))


ANOMALY_LABELS = {
    "price_rule_conflict": _("Conflicting price rules"),
    "no_exchange_rate": _("No exchange rate"),
    "unsupported_tax_case": _("Tax case not supported"),
    "negative_margin": _("Negative margin"),
    "no_price_rule": _("No price rule: billed at cost"),
    "bill_moved": _("Big change from the previous month"),
    "unassigned_cost": _("Cost on tenants cspdesk does not know"),
    "support_plan_currency": _("Support plan in another currency"),
}


@register.filter
def anomaly(code: str) -> str:
    return str(ANOMALY_LABELS.get(code, code))


def _anomaly_sentence(a: dict[str, Any], lang: str) -> str | None:
    """The anomaly's details in the reader's language from the figures billing recorded with it."""
    from django.utils.translation import gettext, ngettext

    code = a.get("code")

    def amount(key: str, currency_key: str = "currency") -> str:
        return l10n.money(Decimal(str(a[key])), str(a[currency_key]), lang)

    if code == "negative_margin":
        return gettext("The price %(price)s is below the cost %(cost)s.") % {
            "price": amount("price"), "cost": amount("cost")}  # fmt: skip
    if code == "bill_moved":
        return gettext("The bill moved %(change)s from the previous month (the threshold is %(threshold)s).") % {
            "change": l10n.percent(Decimal(str(a["change_percent"])), lang),
            "threshold": l10n.percent(Decimal(str(a["threshold_percent"])), lang)}  # fmt: skip
    if code == "no_price_rule":
        count = int(a["count"])
        return ngettext("%(count)s charge line has no price rule and was billed at cost (%(cost)s).",
                        "%(count)s charge lines have no price rule and were billed at cost (%(cost)s).",
                        count) % {"count": count, "cost": amount("cost")}  # fmt: skip
    if code == "no_exchange_rate":
        return gettext("No %(source)s→%(target)s rate on or before %(day)s: add one to the rate table.") % {
            "source": a["source_currency"], "target": a["target_currency"],
            "day": l10n.day(dt.date.fromisoformat(str(a["date"])), lang)}  # fmt: skip
    if code == "support_plan_currency":
        text = gettext("The support plan %(plan)s is in %(plan_currency)s, the invoice in %(currency)s: not billed.")
        return text % {"plan": a["plan"], "plan_currency": a["plan_currency"], "currency": a["currency"]}
    if code == "price_rule_conflict" and a.get("rule_ids"):
        return gettext("Price rules %(rules)s have the same scope on this charge's date.") % {
            "rules": ", ".join(str(r) for r in a["rule_ids"])}  # fmt: skip
    if code == "unassigned_cost":
        return gettext("%(cost)s of Microsoft cost belongs to tenants cspdesk does not know (see the import).") % {
            "cost": l10n.number(Decimal(str(a["cost"])), lang)}  # fmt: skip
    return None


@register.filter
def anomaly_detail(a: dict[str, Any]) -> str:
    """What the anomaly is about, in the reader's language; a run drafted before its figures were recorded
    (or a case billing words only in its own terms, such as an unsupported tax case) shows billing's words."""
    from django.utils.html import format_html

    try:
        text = _anomaly_sentence(a, _language())
    except (KeyError, ValueError, ArithmeticError):
        text = None
    if text is not None:
        return format_html("{}", text)
    return format_html('<span lang="en" translate="no">{}</span>', a.get("message", ""))


@register.filter
def duration_text(minutes: int | None) -> str:
    """Minutes as ``2 d 3 h``, ``4 h 10 min`` or ``25 min``."""
    from django.utils.translation import gettext

    if minutes is None:
        return "—"
    days, rest = divmod(max(int(minutes), 0), 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return gettext("%(days)s d %(hours)s h") % {"days": days, "hours": hours}
    if hours:
        return gettext("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": mins}
    return gettext("%(minutes)s min") % {"minutes": mins}


@register.filter
def ticket_category(value: str) -> str:
    from cspdesk.support.models import Category

    return str(Category(value).label) if value in Category.values else value


@register.filter
def ticket_service(value: str) -> str:
    from cspdesk.support.models import Service

    return str(Service(value).label) if value in Service.values else value


@register.filter
def collections_stage(key: str) -> str:
    """A collections stage key (``30:suspend``) as ``Suspend products, day 30``."""
    from django.utils.translation import gettext

    from cspdesk.collections.models import StageAction

    if not key:
        return gettext("No step yet")
    days, _sep, action = str(key).partition(":")
    label = StageAction(action).label if action in StageAction.values else action
    return gettext("%(action)s, day %(days)s") % {"action": label, "days": days}


@register.filter
def stage_action(action: str) -> str:
    from cspdesk.collections.models import StageAction

    return str(StageAction(action).label) if action in StageAction.values else action


SKIP_REASONS = {
    "no_policy": _("No collections policy applies"),
    "exempt": _("Exempt from collections"),
    "below_minimum": _("Overdue amount below the policy's minimum"),
    "on_hold": _("Collections on hold"),
    "payment_plan": _("Paying by a payment plan on time"),
    "cleared": _("Nothing collectible overdue any more"),
}


@register.filter
def skip_reason(code: str) -> str:
    return str(SKIP_REASONS.get(code, code))


@register.filter
def amounts(values: Any) -> str:
    """Amounts per currency (``{"EUR": "500.00"}``) in the reader's style, joined with commas."""
    if not values:
        return "—"
    return ", ".join(money(value, currency) for currency, value in sorted(dict(values).items()))


@register.filter
def audit_action(code: str) -> str:
    """An audit action code (``payments.allocated``) as its label in the reader's language."""
    from cspdesk.audit.labels import action_label

    return action_label(code)


@register.filter
def audit_changes(event: Any) -> list[Any]:
    """An audit event's labelled fields, before and after, in the reader's language."""
    from cspdesk.audit.labels import changes

    return changes(event, _language())
