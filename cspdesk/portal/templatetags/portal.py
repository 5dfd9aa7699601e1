"""Local formats in portal templates: money, numbers, dates and times in the page's language.

``{{ amount|money:invoice.currency }}``, ``{{ quantity|num }}``, ``{{ price|unit_price:currency }}``,
``{{ invoice.issue_date|day }}``, ``{{ ticket.resolution_due|when:zone }}``, a subscription's
``{{ s|term_and_cycle }}`` in words.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from django import template
from django.utils import translation
from django.utils.translation import gettext, ngettext

from cspdesk.core import l10n

register = template.Library()


def language() -> str:
    """The page's language as :mod:`cspdesk.core.l10n` names it (English when it is not one of the five)."""
    try:
        return l10n.normalize_language(translation.get_language() or "en")
    except ValueError:
        return "en"


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@register.filter
def money(value: Any, currency: str) -> str:
    amount = _decimal(value)
    return "" if amount is None else l10n.money(amount, currency, language())


@register.filter
def num(value: Any) -> str:
    amount = _decimal(value)
    return "" if amount is None else l10n.number(amount, language())


@register.filter
def unit_price(value: Any, currency: str) -> str:
    amount = _decimal(value)
    return "" if amount is None else l10n.unit_price(amount, currency, language())


@register.filter
def percent(value: Any) -> str:
    amount = _decimal(value)
    return "" if amount is None else l10n.percent(amount, language())


@register.filter
def day(value: dt.date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    return l10n.day(value, language())


@register.filter
def when(value: dt.datetime | None, zone: str = "UTC") -> str:
    """An instant in ``zone``, medium format, with the zone's short name."""
    if value is None:
        return ""
    tz = ZoneInfo(zone or "UTC")
    local = value.astimezone(tz)
    return f"{format_datetime(local, format='medium', locale=l10n.babel_locale(language()))} {local.tzname()}"


_ISO_TERM = re.compile(r"^P(?P<n>\d+)(?P<unit>[DWMY])$")


def _term(duration: str) -> str:
    """Partner Center's ISO 8601 term (``P1M``, ``P1Y``, ``P3Y``) in words; anything else as it is."""
    m = _ISO_TERM.match(duration or "")
    if m is None:
        return duration or ""
    n, unit = int(m["n"]), m["unit"]
    if unit == "Y":
        return ngettext("%(n)d year", "%(n)d years", n) % {"n": n}
    if unit == "M":
        return ngettext("%(n)d month", "%(n)d months", n) % {"n": n}
    if unit == "W":
        return ngettext("%(n)d week", "%(n)d weeks", n) % {"n": n}
    return ngettext("%(n)d day", "%(n)d days", n) % {"n": n}


def _cycle(billing_cycle: str) -> str:
    """Partner Center's billing cycle (``monthly``, ``annual``, ``triennial``, ``none``, ``oneTime``) in words."""
    words = {
        "monthly": gettext("billed monthly"),
        "annual": gettext("billed yearly"),
        "triennial": gettext("billed every three years"),
        "onetime": gettext("billed once"),
    }
    return words.get((billing_cycle or "").replace("_", "").lower(), "")


@register.filter
def term_and_cycle(subscription: Any) -> str:
    """``1 year, billed monthly`` in the page's language (the column says it is the term)."""
    parts = [_term(getattr(subscription, "term_duration", "")), _cycle(getattr(subscription, "billing_cycle", ""))]
    return ", ".join(p for p in parts if p)
