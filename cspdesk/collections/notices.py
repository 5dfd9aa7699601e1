"""The e-mails collections sends, in the reader's language with local money and date formats: reminders,
final notices, suspension and renewal notices, the "services restored" message, and the hand-over to staff.

Every customer e-mail lists the overdue invoices, says how to pay and links to the published policy.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from decimal import Decimal

from babel.lists import format_list
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext, ngettext

from cspdesk.catalog.models import ProductCategory
from cspdesk.core import l10n
from cspdesk.partnercenter.models import Subscription
from cspdesk.tenancy.models import Customer, Organisation

from . import evaluation


def public_url(path: str) -> str:
    base = getattr(settings, "CSPDESK_PUBLIC_URL", "") or os.environ.get("CSPDESK_PUBLIC_URL", "http://127.0.0.1:8000")
    return base.rstrip("/") + path


def policy_url(customer: Customer, language: str) -> str:
    """Where the customer reads the policy that applies to it (its own, or its organisation's)."""
    return public_url(f"/collections/policy/customer/{customer.tenant_id}/?lang={language}")


def language_of(customer: Customer) -> str:
    try:
        return l10n.normalize_language(customer.locale)
    except ValueError:
        return "en"


def category_names(categories: list[str] | tuple[str, ...], language: str) -> str:
    names = [str(ProductCategory(c).label) for c in categories]
    return format_list(names, locale=l10n.babel_locale(language)) if names else ""


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str
    to: list[str]


def _invoice_lines(invoices: list[evaluation.OpenInvoice], language: str) -> list[str]:
    return [
        "  - "
        + gettext("%(number)s, due on %(due)s: %(amount)s open")
        % {"number": i.number, "due": l10n.day(i.due_date, language),
           "amount": l10n.money(i.amount, i.currency, language)}
        for i in invoices
    ]  # fmt: skip


def _totals(amounts: dict[str, Decimal], language: str) -> str:
    return ", ".join(l10n.money(a, c, language) for c, a in sorted(amounts.items()))


def _how_to_pay(org: Organisation) -> list[str]:
    lines = [gettext("How to pay:")]
    if org.bank_iban:
        lines.append(
            "  "
            + gettext("bank transfer to %(holder)s, IBAN %(iban)s%(bic)s, quoting the invoice numbers;")
            % {"holder": org.bank_account_name or org.legal_name, "iban": org.bank_iban,
               "bic": f", BIC {org.bank_bic}" if org.bank_bic else ""}
        )  # fmt: skip
    lines.append(
        "  " + gettext("or by card in the customer portal: %(url)s") % {"url": public_url("/portal/invoices/")}
    )
    return lines


def _closing(customer: Customer, language: str) -> list[str]:
    return [
        "",
        gettext("If you have already paid, thank you, and please ignore this message. If you question an invoice, "
                "reply to this e-mail: we leave a disputed invoice out of collections while we look into it."),
        "",
        gettext("Our collections policy: %(url)s") % {"url": policy_url(customer, language)},
        "",
        gettext("Kind regards,"),
        customer.organisation.legal_name,
    ]  # fmt: skip


def overdue_notice(
    customer: Customer,
    position: evaluation.Position,
    *,
    final: bool,
    next_step: evaluation.Stage | None,
    rules: evaluation.Rules,
) -> Mail:
    """The reminder, or (``final``) the final notice naming the next step and its date."""
    language = language_of(customer)
    with translation.override(language):
        count = len(position.invoices)
        if final:
            subject = ngettext("Final notice: %(count)d overdue invoice", "Final notice: %(count)d overdue invoices",
                               count) % {"count": count}  # fmt: skip
        else:
            subject = ngettext("Payment reminder: %(count)d overdue invoice",
                               "Payment reminder: %(count)d overdue invoices", count) % {"count": count}  # fmt: skip
        body = [
            gettext("Dear %(name)s,") % {"name": customer.name},
            "",
            ngettext(
                "our records show that this invoice is overdue:",
                "our records show that these invoices are overdue:",
                count,
            ),
            *_invoice_lines(position.invoices, language),
            gettext("Total overdue: %(total)s") % {"total": _totals(position.amounts, language)},
            "",
            *_how_to_pay(customer.organisation),
        ]
        if final:
            body += ["", _next_step_sentence(position, next_step, rules, language)]
        body += _closing(customer, language)
        return Mail(str(subject), "\n".join(str(line) for line in body), list(customer.billing_emails))


def _next_step_sentence(
    position: evaluation.Position, step: evaluation.Stage | None, rules: evaluation.Rules, language: str
) -> str:
    if step is None or position.oldest_due is None:
        return gettext("This is our final notice before we hand your account over to our collections team.")
    when = l10n.day(max(position.oldest_due + dt.timedelta(days=step.days), position.today), language)
    if step.action == "suspend":
        return gettext(
            "This is our final notice: unless the overdue amount is paid by %(date)s, we will suspend your "
            "%(categories)s subscriptions until it is paid."
        ) % {"date": when, "categories": category_names(rules.categories, language)}
    if step.action == "cancel_at_renewal":
        return gettext(
            "This is our final notice: unless the overdue amount is paid by %(date)s, your %(categories)s "
            "subscriptions will not renew at the end of their term."
        ) % {"date": when, "categories": category_names(rules.categories, language)}
    return gettext(
        "This is our final notice: unless the overdue amount is paid by %(date)s, a member of our team will "
        "take over your account."
    ) % {"date": when}


def _subscription_lines(subs: list[Subscription], language: str, renewal: bool = False) -> list[str]:
    out = []
    for s in subs:
        name = s.friendly_name or s.offer_name
        if renewal and s.commitment_end_date:
            out.append("  - " + gettext("%(name)s, ends on %(date)s") % {
                "name": name, "date": l10n.day(s.commitment_end_date, language)})  # fmt: skip
        else:
            out.append(f"  - {name}")
    return out


def suspension_notice(customer: Customer, position: evaluation.Position, subs: list[Subscription]) -> Mail:
    language = language_of(customer)
    with translation.override(language):
        count = len(subs)
        subject = ngettext("%(count)d subscription suspended for non-payment",
                           "%(count)d subscriptions suspended for non-payment", count) % {"count": count}  # fmt: skip
        body = [
            gettext("Dear %(name)s,") % {"name": customer.name},
            "",
            ngettext(
                "as our collections policy describes, we have suspended this subscription for non-payment:",
                "as our collections policy describes, we have suspended these subscriptions for non-payment:",
                count,
            ),
            *_subscription_lines(subs, language),
            "",
            gettext("We reactivate them as soon as the overdue amount is paid. Overdue invoices:"),
            *_invoice_lines(position.invoices, language),
            gettext("Total overdue: %(total)s") % {"total": _totals(position.amounts, language)},
            "",
            *_how_to_pay(customer.organisation),
            *_closing(customer, language),
        ]
        return Mail(str(subject), "\n".join(str(line) for line in body), list(customer.billing_emails))


def renewal_notice(customer: Customer, position: evaluation.Position, subs: list[Subscription]) -> Mail:
    language = language_of(customer)
    with translation.override(language):
        count = len(subs)
        subject = ngettext("%(count)d subscription will not renew", "%(count)d subscriptions will not renew",
                           count) % {"count": count}  # fmt: skip
        body = [
            gettext("Dear %(name)s,") % {"name": customer.name},
            "",
            ngettext(
                "because of the overdue amount, this subscription will not renew at the end of its term:",
                "because of the overdue amount, these subscriptions will not renew at the end of their term:",
                count,
            ),
            *_subscription_lines(subs, language, renewal=True),
            "",
            *_invoice_lines(position.invoices, language),
            gettext("Total overdue: %(total)s") % {"total": _totals(position.amounts, language)},
            "",
            *_how_to_pay(customer.organisation),
            *_closing(customer, language),
        ]
        return Mail(str(subject), "\n".join(str(line) for line in body), list(customer.billing_emails))


def restored_notice(customer: Customer, subs: list[Subscription], lifted: bool) -> Mail:
    language = language_of(customer)
    with translation.override(language):
        count = len(subs)
        subject = ngettext("Your subscription is active again", "Your subscriptions are active again", count)
        opening = (
            gettext("we have lifted the collections measures on your account.")
            if lifted
            else gettext("thank you: your overdue balance is settled.")
        )
        body = [
            gettext("Dear %(name)s,") % {"name": customer.name},
            "",
            opening,
            ngettext("This subscription is active again:", "These subscriptions are active again:", count),
            *_subscription_lines(subs, language),
            *_closing(customer, language)[3:],
        ]
        return Mail(str(subject), "\n".join(str(line) for line in body), list(customer.billing_emails))


def hand_over_notice(customer: Customer, case_id: int, position: evaluation.Position, to: list[str]) -> Mail:
    """To the organisation's billing admins, in the organisation's language."""
    org = customer.organisation
    try:
        language = l10n.normalize_language(org.default_locale)
    except ValueError:
        language = "en"
    with translation.override(language):
        subject = gettext("Collections case %(case)d of %(customer)s is handed over to you") % {
            "case": case_id, "customer": customer.name}  # fmt: skip
        since = l10n.day(position.oldest_due, language) if position.oldest_due else "-"
        body = [
            gettext("The collections policy hands this case over to a person: %(customer)s owes %(total)s, "
                    "overdue since %(date)s.") % {"customer": customer.name,
                                                  "total": _totals(position.amounts, language), "date": since},
            *_invoice_lines(position.invoices, language),
            "",
            gettext("Timeline and actions: cspdesk collections case %(case)d") % {"case": case_id},
        ]  # fmt: skip
        return Mail(str(subject), "\n".join(str(line) for line in body), to)
