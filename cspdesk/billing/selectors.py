"""Billing reads, scoped by an :class:`Actor`.

- staff with ``invoices.read``: the invoices their organisation issued and those it received (a reseller
  receives its provider's invoices); a provider does not read its resellers' invoices to their customers
  (their prices are the reseller's business);
- a customer user with ``invoices.read``: its own customer's finalized invoices and credit notes;
- the system: everything.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from cspdesk.core.actor import Actor, ActorKind
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm

from .models import BillingRun, ExchangeRate, Invoice, InvoiceLineCharge, InvoiceStatus


def invoices_for(actor: Actor, perm: Perm = Perm.INVOICES_READ) -> QuerySet[Invoice]:
    qs = Invoice.objects.select_related("organisation", "customer", "buyer_organisation", "credited_invoice")
    if not permissions.has(actor, perm):
        return qs.none()
    if actor.is_system:
        return qs
    if actor.kind is ActorKind.CUSTOMER:
        if perm is not Perm.INVOICES_READ:
            return qs.none()
        return qs.filter(customer_id=actor.customer_pk, status=InvoiceStatus.FINALIZED)
    if actor.organisation_id is None:
        return qs.none()
    if perm is Perm.INVOICES_READ:
        return qs.filter(Q(organisation_id=actor.organisation_pk) | Q(buyer_organisation_id=actor.organisation_pk,
                                                                     status=InvoiceStatus.FINALIZED))  # fmt: skip
    return qs.filter(organisation_id=actor.organisation_pk)


def runs_for(actor: Actor) -> QuerySet[BillingRun]:
    qs = BillingRun.objects.all()
    if not permissions.has(actor, Perm.INVOICES_READ) or actor.kind is ActorKind.CUSTOMER:
        return qs.none()
    if actor.is_system:
        return qs
    return qs.filter(organisation_id=actor.organisation_id or 0)


def charges_of_line(actor: Actor, invoice_id: int, line_id: int) -> QuerySet[InvoiceLineCharge]:
    """Explain this charge: the Microsoft charge lines behind one invoice line (staff only: it shows cost)."""
    from cspdesk.tenancy.selectors import get_or_404

    if actor.kind is ActorKind.CUSTOMER:
        return InvoiceLineCharge.objects.none()
    qs = invoices_for(actor)
    if not actor.is_system:
        qs = qs.filter(organisation_id=actor.organisation_id or 0)
    invoice = get_or_404(qs, invoice_id, "invoice")
    return (
        InvoiceLineCharge.objects.filter(line__invoice=invoice, line_id=line_id)
        .select_related("charge_line", "charge_line__source")
        .order_by("charge_line_id")
    )


def exchange_rates_for(actor: Actor) -> QuerySet[ExchangeRate]:
    """An organisation's own rate table (staff reading invoices); customers see the rate on their invoices."""
    if not permissions.has(actor, Perm.INVOICES_READ) or actor.kind is ActorKind.CUSTOMER:
        return ExchangeRate.objects.none()
    if actor.is_system:
        return ExchangeRate.objects.all()
    return ExchangeRate.objects.filter(organisation_id=actor.organisation_pk)
