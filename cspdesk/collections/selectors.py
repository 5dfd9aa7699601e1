"""Collections reads, scoped by an :class:`Actor`.

Staff with ``collections.read`` see the cases, holds, plans and policies of their own organisation's customers
(an indirect provider does not run its resellers' collections: each reseller has its own policy and cases);
the system sees everything. Disputes are read with ``collections.read`` or ``disputes.change``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import F, Q, QuerySet

from cspdesk.audit.models import AuditEvent
from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.payments import selectors as payment_selectors
from cspdesk.tenancy import permissions
from cspdesk.tenancy.models import Customer
from cspdesk.tenancy.permissions import Perm

from . import evaluation
from .models import Case, Dispute, DisputeStatus, Exemption, Hold, PaymentPlan, Policy

TIMELINE_ACTIONS = (
    "billing.invoice_finalized",
    "billing.credit_note_issued",
    "payments.payment_recorded",
    "payments.allocation_reversed",
    "payments.refunded",
    "subscription.suspended",
    "subscription.reactivated",
    "subscription.suspend_failed",
    "subscription.reactivate_failed",
)


def customers_in_scope(actor: Actor, perm: Perm = Perm.COLLECTIONS_READ) -> QuerySet[Customer]:
    """Customers whose collections the actor may see (or, with a change permission, act on)."""
    qs = Customer.objects.select_related("organisation")
    if not permissions.has(actor, perm) or actor.kind is ActorKind.CUSTOMER:
        return qs.none()
    if actor.is_system:
        return qs
    return qs.filter(organisation_id=actor.organisation_id or 0)


def cases_for(actor: Actor, perm: Perm = Perm.COLLECTIONS_READ) -> QuerySet[Case]:
    return Case.objects.select_related("customer", "organisation").filter(customer__in=customers_in_scope(actor, perm))


def holds_for(actor: Actor, perm: Perm = Perm.COLLECTIONS_READ) -> QuerySet[Hold]:
    return Hold.objects.select_related("customer").filter(customer__in=customers_in_scope(actor, perm))


def plans_for(actor: Actor, perm: Perm = Perm.COLLECTIONS_READ) -> QuerySet[PaymentPlan]:
    return PaymentPlan.objects.select_related("customer").filter(customer__in=customers_in_scope(actor, perm))


def exemptions_for(actor: Actor) -> QuerySet[Exemption]:
    return Exemption.objects.select_related("customer").filter(customer__in=customers_in_scope(actor))


def disputes_for(actor: Actor) -> QuerySet[Dispute]:
    perm = Perm.COLLECTIONS_READ if permissions.has(actor, Perm.COLLECTIONS_READ) else Perm.DISPUTES_CHANGE
    return Dispute.objects.select_related("invoice", "customer").filter(customer__in=customers_in_scope(actor, perm))


def policies_for(actor: Actor) -> QuerySet[Policy]:
    qs = Policy.objects.select_related("organisation", "customer")
    if not permissions.has(actor, Perm.COLLECTIONS_READ) or actor.kind is ActorKind.CUSTOMER:
        return qs.none()
    if actor.is_system:
        return qs
    return qs.filter(organisation_id=actor.organisation_id or 0)


def policy_for_customer(customer: Customer) -> Policy | None:
    """The customer's own policy if it has one, else its organisation's."""
    found = Policy.objects.filter(
        Q(customer=customer) | Q(organisation_id=customer.organisation_id, customer__isnull=True)
    ).order_by(F("customer_id").asc(nulls_last=True), "pk")
    return found.first()


def customers_with_policy(customers: list[Customer]) -> set[int]:
    """Which of ``customers`` a policy applies to (:func:`policy_for_customer` is not None), in one query."""
    if not customers:
        return set()
    found = Policy.objects.filter(
        Q(customer__in=[c.pk for c in customers])
        | Q(organisation_id__in={c.organisation_id for c in customers}, customer__isnull=True)
    ).values_list("customer_id", "organisation_id")
    own = {customer_id for customer_id, _ in found if customer_id is not None}
    by_organisation = {organisation_id for customer_id, organisation_id in found if customer_id is None}
    return {c.pk for c in customers if c.pk in own or c.organisation_id in by_organisation}


def organisation_policy(organisation_id: int) -> Policy | None:
    return Policy.objects.filter(organisation_id=organisation_id, customer__isnull=True).first()


def rules_of(policy: Policy) -> evaluation.Rules:
    return evaluation.parse_rules(
        {
            "stages": policy.stages,
            "grace_days": policy.grace_days,
            "minimum_amounts": policy.minimum_amounts,
            "categories": policy.categories,
            "suspend_prepaid_licences": policy.suspend_prepaid_licences,
        }
    )


def open_invoices(customer_id: int) -> list[evaluation.OpenInvoice]:
    """The customer's finalized invoices with something left to pay, marked when an open dispute names them."""
    qs = payment_selectors.with_open_amount(
        Invoice.objects.filter(
            customer_id=customer_id, kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED, due_date__isnull=False
        )
    ).order_by("due_date", "pk")
    disputed = set(
        Dispute.objects.filter(customer_id=customer_id, status=DisputeStatus.OPEN).values_list("invoice_id", flat=True)
    )
    out = []
    for inv in qs:
        amount = payment_selectors.open_of(inv)
        if amount > Decimal(0):
            assert inv.due_date is not None
            out.append(evaluation.OpenInvoice(inv.pk, inv.number, inv.due_date, amount, inv.currency,
                                              inv.pk in disputed))  # fmt: skip
    return out


def timeline(actor: Actor, customer_id: int) -> list[dict[str, Any]]:
    """The customer's collections story from the audit log: invoices, payments, each collections action and each
    Partner Center suspension or reactivation, oldest first."""
    from cspdesk.tenancy.selectors import get_or_404

    customer = get_or_404(customers_in_scope(actor), customer_id, "customer")
    events = AuditEvent.objects.filter(customer_id=customer.pk).filter(
        Q(action__startswith="collections.") | Q(action__in=TIMELINE_ACTIONS)
    )
    return [
        {"at": e.created_at, "action": e.action, "by": e.actor_username, "object": f"{e.object_type}#{e.object_id}",
         "details": e.after or {}}
        for e in events.order_by("created_at", "id")
    ]  # fmt: skip
