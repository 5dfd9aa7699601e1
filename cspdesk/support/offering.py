"""The published support offering of an organisation: what its plans cover, when the desk is open, how to
reach it, how fast it answers, and what it costs — read from the same data the desk runs on."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from babel.dates import format_time, get_day_names, get_timezone_location
from django.utils.translation import gettext as _

from cspdesk.core import l10n
from cspdesk.core.actor import Actor
from cspdesk.tenancy.models import Organisation

from .models import SEVERITY_DEFINITIONS, Category, PlanTerms, Service, ServiceHours, Severity, SlaPolicy


@dataclass(frozen=True)
class PlanView:
    name: str
    price: str
    covers: list[str]
    hours: list[str]
    holidays: str
    contacts: list[dict[str, str]]
    targets: list[dict[str, str]]


def _duration(minutes: int) -> str:
    if minutes % 60 == 0:
        hours = minutes // 60
        return _("%(n)d business hour") % {"n": hours} if hours == 1 else _("%(n)d business hours") % {"n": hours}
    return _("%(n)d business minutes") % {"n": minutes}


def _hours(hours: ServiceHours, language: str) -> list[str]:
    locale = l10n.babel_locale(language)
    names = get_day_names("wide", locale=locale)
    out = []
    for day in range(1, 8):
        windows = hours.weekly.get(str(day), [])
        if not windows:
            continue
        spans = []
        for start, end in windows:
            if start == "00:00" and end == "24:00":
                spans.append(_("all day"))
                continue
            a = format_time(dt.time.fromisoformat(start), "short", locale=locale)
            b = "24:00" if end == "24:00" else format_time(dt.time.fromisoformat(end), "short", locale=locale)
            spans.append(f"{a}–{b}")
        out.append(f"{names[day - 1].capitalize()}: {', '.join(spans)}")
    zone = get_timezone_location(hours.timezone, locale=locale)  # "Italy Time", "Ora Italia", "Italientid"
    out.append(_("Time zone: %(zone)s") % {"zone": zone})
    return out


def _price(plan: Any, language: str) -> str:
    money = (lambda amount: l10n.money(amount, plan.currency, language)) if plan.currency else str
    if plan.price_model == "flat_monthly":
        return _("%(amount)s per month") % {"amount": money(plan.amount)}
    if plan.price_model == "per_incident":
        return _("%(amount)s per incident") % {"amount": money(plan.amount)}
    if plan.price_model == "per_hour":
        return _("%(amount)s per hour") % {"amount": money(plan.amount)}
    text = _("%(percent)s of your monthly Microsoft spend") % {"percent": l10n.percent(plan.percent, language)}
    if plan.minimum is not None:
        text += ", " + _("at least %(amount)s") % {"amount": money(plan.minimum)}
    if plan.maximum is not None:
        text += ", " + _("at most %(amount)s") % {"amount": money(plan.maximum)}
    return text


def _covers(terms: PlanTerms) -> list[str]:
    out = []
    for category, service in terms.in_scope:
        c = str(Category(category).label) if category != "*" else _("All types of request")
        s = str(Service(service).label) if service != "*" else _("all services")
        out.append(f"{c} — {s}")
    return out


def _contacts(terms: PlanTerms) -> list[dict[str, str]]:
    labels = {"portal": _("Customer portal"), "email": _("E-mail"), "phone": _("Phone")}
    return [{"kind": str(labels[c["kind"]]), "value": c.get("value", ""), "hours": c.get("hours", "")}
            for c in terms.contact_methods]  # fmt: skip


def _targets(pairs: dict[str, tuple[int, int]]) -> list[dict[str, str]]:
    return [
        {"severity": str(Severity(sev).label), "definition": str(SEVERITY_DEFINITIONS[Severity(sev)]),
         "first_response": _duration(first), "resolution": _duration(resolve)}
        for sev, (first, resolve) in sorted(pairs.items(), key=lambda kv: list(Severity.values).index(kv[0]))
    ]  # fmt: skip


def offering(organisation: Organisation, language: str) -> dict[str, Any]:
    """Everything the offering page shows, with the texts in the active translation."""
    from cspdesk.catalog import selectors as catalog

    plans = []
    for plan in catalog.support_plans_for(Actor.system("offering")).filter(organisation=organisation):
        terms = PlanTerms.objects.filter(plan=plan).select_related("service_hours").first()
        if terms is None:
            continue  # a plan without published terms is not offered yet
        plans.append(PlanView(
            name=plan.name, price=_price(plan, language), covers=_covers(terms),
            hours=_hours(terms.service_hours, language), holidays=terms.service_hours.holiday_country,
            contacts=_contacts(terms),
            targets=_targets({k: (int(v[0]), int(v[1])) for k, v in terms.targets.items()}),
        ))  # fmt: skip
    policies = SlaPolicy.objects.filter(organisation=organisation).select_related("service_hours")
    default_targets = _targets({p.severity: (p.first_response_minutes, p.resolution_minutes) for p in policies})
    default_hours = _hours(policies[0].service_hours, language) if policies else []
    return {"organisation": organisation, "plans": plans, "default_targets": default_targets,
            "default_hours": default_hours}  # fmt: skip
