"""What the audit log's codes mean to a reader: one translatable label per action code and per recorded field,
and an event's before/after as readable field/value pairs. Used by the console's audit page and a customer's
timeline. An unknown code is shown as itself (``tests/console/test_audit_labels.py`` keeps every recorded code
labelled).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cspdesk.core import l10n

ACTION_LABELS: dict[str, Promise] = {
    "api_token.issued": _("API token issued"),
    "api_token.revoked": _("API token revoked"),
    "billing.credit_note_issued": _("Credit note issued"),
    "billing.documents_issued": _("Invoice documents stored as issued"),
    "billing.draft_line_updated": _("Draft invoice line changed"),
    "billing.exchange_rate_set": _("Exchange rate set"),
    "billing.invoice_finalized": _("Invoice finalized"),
    "billing.invoice_sent": _("Invoice sent"),
    "billing.run_drafted": _("Billing run drafted"),
    "billing.run_finalized": _("Billing run finalized"),
    "catalog.price_rule_created": _("Price rule created"),
    "catalog.price_rule_ended": _("Price rule ended"),
    "catalog.support_charge_recorded": _("Support charge recorded"),
    "catalog.support_plan_assigned": _("Support plan assigned"),
    "catalog.support_plan_created": _("Support plan created"),
    "collections.case_closed": _("Collections case closed"),
    "collections.case_opened": _("Collections case opened"),
    "collections.customer_exempted": _("Customer exempted from collections"),
    "collections.dispute_closed": _("Dispute closed"),
    "collections.dispute_opened": _("Dispute opened"),
    "collections.exemption_ended": _("Exemption from collections ended"),
    "collections.hold_placed": _("Collections put on hold"),
    "collections.hold_released": _("Collections hold released"),
    "collections.payment_plan_agreed": _("Payment plan agreed"),
    "collections.payment_plan_completed": _("Payment plan completed"),
    "collections.payment_plan_broken": _("Payment plan broken"),
    "collections.payment_plan_cancelled": _("Payment plan cancelled"),
    "collections.policy_set": _("Collections policy set"),
    "collections.policy_removed": _("Collections policy removed"),
    "collections.reminder": _("Payment reminder sent"),
    "collections.final_notice": _("Final notice sent"),
    "collections.suspend": _("Suspension started"),
    "collections.cancel_at_renewal": _("Set to cancel at renewal"),
    "collections.hand_over": _("Handed over to a person"),
    "collections.reactivation_failed": _("Reactivation failed"),
    "collections.reactivation_notice_sent": _("Reactivation notice sent"),
    "collections.renewal_turned_off": _("Auto-renewal turned off"),
    "collections.run": _("Collections run"),
    "collections.subscription_reactivated": _("Subscription reactivated after payment"),
    "collections.subscription_suspended": _("Subscription suspended for non-payment"),
    "collections.suspension_approved": _("Suspension approved"),
    "collections.suspension_failed": _("Suspension failed"),
    "collections.suspension_notice_sent": _("Suspension notice sent"),
    "collections.suspension_rejected": _("Suspension rejected"),
    "customer.created": _("Customer created"),
    "customer.updated": _("Customer changed"),
    "demo.loaded": _("Demo data loaded"),
    "mail.failed": _("E-mail could not be sent"),
    "mail.held": _("Incoming e-mail held"),
    "mail.requeued": _("E-mail queued again"),
    "mail.sent": _("E-mail sent"),
    "organisation.created": _("Organisation created"),
    "organisation.updated": _("Organisation changed"),
    "partnercenter.reconciliation_exported": _("Reconciliation data exported from Partner Center"),
    "partnercenter.synced": _("Synchronised with Partner Center"),
    "payments.allocated": _("Payment allocated to an invoice"),
    "payments.allocation_reversed": _("Payment allocation reversed"),
    "payments.checkout_created": _("Card payment started"),
    "payments.customer_assigned": _("Payment matched to a customer"),
    "payments.invoice_written_off": _("Invoice written off"),
    "payments.microsoft_invoice_paid": _("Microsoft invoice paid"),
    "payments.payable_reminder_sent": _("Reminder of a Microsoft invoice sent"),
    "payments.payment_recorded": _("Payment recorded"),
    "payments.refunded": _("Payment refunded"),
    "payments.returned_to_suspense": _("Payment returned to suspense"),
    "payments.statement_imported": _("Bank statement imported"),
    "payments.stripe_event": _("Card payment event received"),
    "payments.write_off_reversed": _("Write-off reversed"),
    "recon.customers_linked": _("Charge lines linked to customers"),
    "recon.imported": _("Microsoft billing file imported"),
    "subscription.mirrored": _("Subscription copied from Partner Center"),
    "subscription.reactivate_failed": _("Reactivation in Partner Center failed"),
    "subscription.reactivated": _("Subscription reactivated"),
    "subscription.suspend_failed": _("Suspension in Partner Center failed"),
    "subscription.suspended": _("Subscription suspended"),
    "subscription.updated_from_partner_center": _("Subscription updated from Partner Center"),
    "support.plan_terms_set": _("Support plan terms set"),
    "ticket.assigned": _("Ticket assigned"),
    "ticket.credit_note_issued": _("Credit note issued for a ticket"),
    "ticket.escalated": _("Ticket escalated"),
    "ticket.escalation_synced": _("Escalated ticket brought up to date"),
    "ticket.internal_note": _("Internal note added"),
    "ticket.opened": _("Ticket opened"),
    "ticket.provider_event": _("Update from the support provider"),
    "ticket.replied": _("Reply sent"),
    "ticket.routed": _("Ticket routed to a support provider"),
    "ticket.routing_failed": _("Routing to a support provider failed"),
    "ticket.scope_decided": _("Ticket scope decided"),
    "ticket.sla_first_response_breached": _("First response target missed"),
    "ticket.sla_first_response_warning": _("First response target close"),
    "ticket.sla_resolution_breached": _("Resolution target missed"),
    "ticket.sla_resolution_warning": _("Resolution target close"),
    "ticket.status_changed": _("Ticket status changed"),
    "ticket.time_logged": _("Time logged on a ticket"),
    "user.created": _("User created"),
    "user.password_set": _("Password set"),
    "user.updated": _("User changed"),
}

# The fields events record, by name (the same name means the same thing across objects).
FIELD_LABELS: dict[str, Promise] = {
    "amount": _("Amount"),
    "assignee": _("Assignee"),
    "attempt": _("Attempt"),
    "attempts": _("Attempts"),
    "billable": _("Billable"),
    "category": _("Category"),
    "change": _("Change request"),
    "currency": _("Currency"),
    "customer": _("Customer"),
    "customers": _("Customers"),
    "decision": _("Decision"),
    "due": _("Due"),
    "effective_from": _("In force from"),
    "effective_to": _("Last day in force"),
    "email": _("E-mail"),
    "error": _("Error"),
    "invoice": _("Invoice"),
    "invoices": _("Invoices"),
    "is_active": _("Active"),
    "last_error": _("Last error"),
    "method": _("Method"),
    "minutes": _("Minutes"),
    "name": _("Name"),
    "note": _("Note"),
    "number": _("Number"),
    "pdf": _("PDF (SHA-256)"),
    "percent": _("Percent"),
    "period": _("Period"),
    "quantity": _("Quantity"),
    "queue": _("Queue"),
    "reason": _("Reason"),
    "roles": _("Roles"),
    "severity": _("Severity"),
    "status": _("Status"),
    "subject": _("Subject"),
    "subscriptions": _("Subscriptions"),
    "to": _("To"),
    "total": _("Total"),
    "ubl": _("UBL XML (SHA-256)"),
    "until": _("Until"),
    "username": _("Username"),
}

ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
NUMBER = re.compile(r"^-?\d+\.\d+$")


def action_label(code: str) -> str:
    """The action's label in the active language; an unknown code as itself."""
    label = ACTION_LABELS.get(code)
    return str(label) if label is not None else code


@dataclass(frozen=True)
class Change:
    field: str
    before: str | None  # None: the event has no "before" for the field
    after: str | None


def _choices(object_type: str, name: str) -> dict[str, str]:
    try:
        model = apps.get_model(object_type)
        field = model._meta.get_field(name)
    except (LookupError, ValueError, FieldDoesNotExist):
        return {}
    return {str(k): str(v) for k, v in getattr(field, "flatchoices", None) or []}


def value_text(value: Any, choices: dict[str, str], language: str) -> str:
    """A recorded value as the reader's language writes it: choice labels, yes/no, dates and numbers."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, list):
        return ", ".join(value_text(v, choices, language) for v in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {value_text(v, {}, language)}" for k, v in value.items())
    text = str(value)
    if text in choices:
        return choices[text]
    if ISO_DAY.match(text):
        return l10n.day(dt.date.fromisoformat(text), language)
    if ISO_MOMENT.match(text):
        from babel.dates import format_datetime

        moment = dt.datetime.fromisoformat(text)
        return format_datetime(moment, format="medium", tzinfo=dt.UTC, locale=l10n.babel_locale(language))
    if NUMBER.match(text):
        try:
            return l10n.number(Decimal(text), language)
        except InvalidOperation:  # pragma: no cover - the pattern is a number
            return text
    return text


def changes(event: Any, language: str) -> list[Change]:
    """The event's labelled fields, before and after, in the reader's language. Fields without a label are left
    to the raw record."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    out = []
    for name in [*after, *(k for k in before if k not in after)]:
        label = FIELD_LABELS.get(name)
        if label is None:
            continue
        choices = _choices(event.object_type, name)
        out.append(Change(
            str(label),
            value_text(before[name], choices, language) if name in before else None,
            value_text(after[name], choices, language) if name in after else None,
        ))  # fmt: skip
    return out
