"""The published collections policy, generated from the configured one: the same sentences make the web page
(:func:`render_policy`, which the portal includes) and the PDF (:mod:`.pdf`), in the reader's language. What
the text says is what the engine does: the stages and their days, the grace period, the minimum amount, which
subscriptions a suspension affects and how access is restored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.template.loader import render_to_string
from django.utils import translation
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext

from cspdesk.core import l10n

from . import evaluation, notices, selectors
from .models import Policy


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PolicyDocument:
    language: str
    title: str
    organisation: str
    intro: str
    sections: list[Section]
    updated_at: dt.datetime


def _stage_text(stage: evaluation.Stage, rules: evaluation.Rules, language: str) -> str:
    categories = notices.category_names(rules.categories, language)
    what = {
        "reminder": gettext("we send a payment reminder by e-mail, listing the overdue invoices and how to pay."),
        "final_notice": gettext("we send a final notice by e-mail, saying what happens next and from which date."),
        "suspend": gettext("we suspend your %(categories)s subscriptions in Microsoft Partner Center until the "
                           "overdue amount is paid.") % {"categories": categories},
        "cancel_at_renewal": gettext("we turn off automatic renewal of your %(categories)s subscriptions: they end "
                                     "at the end of their current term.") % {"categories": categories},
        "hand_over": gettext("a member of our team takes over your account and contacts you."),
    }[stage.action]  # fmt: skip
    when = ngettext("%(days)d day after the due date", "%(days)d days after the due date", stage.days) % {
        "days": stage.days}  # fmt: skip
    return f"{when}: {what}"


def document(policy: Policy, language: str) -> PolicyDocument:
    """The policy as text in ``language`` (en, it, sv, pt-pt, hu)."""
    language = l10n.normalize_language(language)
    rules = selectors.rules_of(policy)
    org = policy.organisation
    with translation.override(language):
        title = gettext("Collections policy of %(organisation)s") % {"organisation": org.legal_name}
        if policy.customer is not None:
            title = gettext("Collections policy of %(organisation)s for %(customer)s") % {
                "organisation": org.legal_name, "customer": policy.customer.name}  # fmt: skip
        intro = gettext(
            "This policy says what happens when an invoice is not paid on time. It is generated from the settings "
            "our billing system applies, so it always describes what actually happens."
        )
        when: list[str] = []
        if rules.grace_days:
            when.append(ngettext(
                "We allow a grace period of %(days)d day after the due date: until then nothing happens.",
                "We allow a grace period of %(days)d days after the due date: until then nothing happens.",
                rules.grace_days) % {"days": rules.grace_days})  # fmt: skip
        minimums = [l10n.money(a, c, language) for c, a in sorted(rules.minimum_amounts.items()) if a > 0]
        if minimums:
            when.append(gettext("We take no step while the overdue amount is below %(amounts)s.") % {
                "amounts": ", ".join(minimums)})  # fmt: skip
        when.append(gettext("The days are counted from the due date of the oldest unpaid invoice. If a step is "
                            "reached late, the steps still follow each other with the same number of days between "
                            "them."))  # fmt: skip
        steps = Section(gettext("Steps"), when, [_stage_text(s, rules, language) for s in rules.stages])
        suspends = any(s.action == "suspend" for s in rules.stages)
        affected: list[str] = []
        if suspends:
            affected.append(gettext("A suspension affects your %(categories)s subscriptions. Other products are not "
                                    "suspended for non-payment.") % {
                "categories": notices.category_names(rules.categories, language)})  # fmt: skip
            if rules.suspend_prepaid_licences:
                affected.append(gettext("Licences paid in advance for their whole term are suspended too."))
            else:
                affected.append(
                    gettext(
                        "Licences billed in advance for their whole term (annual billing) stay "
                        "active; usage-billed services such as Azure are the usual target."
                    )
                )
        else:
            affected.append(gettext("We do not suspend subscriptions for non-payment."))
        restore = [
            gettext("As soon as the overdue amount is paid or credited, we reactivate every subscription we "
                    "suspended, usually within minutes, and tell you by e-mail. Subscriptions suspended for other "
                    "reasons are not affected."),
            gettext("A partial payment keeps your account at the step it has reached; the next step comes only when "
                    "its day has come and an overdue amount remains."),
        ]  # fmt: skip
        fair = [
            gettext("If you question an invoice, tell us: a disputed invoice is left out of collections until we "
                    "have answered."),
            gettext("We can agree a payment plan: while its instalments are paid on time, collections wait."),
        ]  # fmt: skip
        pay = []
        if org.bank_iban:
            pay.append(gettext("Bank transfer to %(holder)s, IBAN %(iban)s%(bic)s, quoting the invoice number.") % {
                "holder": org.bank_account_name or org.legal_name, "iban": org.bank_iban,
                "bic": f", BIC {org.bank_bic}" if org.bank_bic else ""})  # fmt: skip
        pay.append(gettext("By card in the customer portal, from the invoice page."))
        sections = [
            steps,
            Section(gettext("Which subscriptions are affected"), affected),
            Section(gettext("How to restore access"), restore),
            Section(gettext("Disputes and payment plans"), fair),
            Section(gettext("How to pay"), pay),
        ]
        return PolicyDocument(language, str(title), org.legal_name, str(intro), sections, policy.updated_at)


def render_policy(policy: Policy, locale: str) -> SafeString:
    """The policy as an HTML fragment (no page around it), for the public page and the customer portal."""
    doc = document(policy, locale)
    with translation.override(doc.language):
        return SafeString(render_to_string("collections/_policy.html", {"doc": doc}))
