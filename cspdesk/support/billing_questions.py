"""Billing questions: a ticket about an invoice (and one of its lines).

The desk answers "why was I charged this?" from the invoice itself: the agent sees the line's explanation
(the charge lines and Microsoft rows behind it, with Microsoft's cost), collections leaves the invoice alone
while the question is open (a dispute), and when the customer is right the agent issues the credit note from
the ticket. Support depends on billing and collections here; neither of them knows about tickets.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import transaction

from cspdesk.billing import explain as billing_explain
from cspdesk.billing import services as billing
from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.collections import services as collections
from cspdesk.collections.models import Dispute, DisputeStatus
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, NotFound, ValidationFailed
from cspdesk.core.output import to_jsonable
from cspdesk.tenancy import permissions
from cspdesk.tenancy.models import Customer
from cspdesk.tenancy.permissions import Perm

from .models import Category, MessageKind, Status, Ticket, TicketMessage


def invoice_in_question(customer: Customer, invoice_number: str, invoice_line: str) -> Invoice | None:
    """The finalized invoice a billing question names, checked against the customer (None: names none).

    A number the customer was never issued, or a line the invoice does not have, is refused by name, so a
    question never points at nothing.
    """
    number = (invoice_number or "").strip()
    line = (invoice_line or "").strip()
    if not number:
        if line:
            raise ValidationFailed("an invoice line needs the invoice number too", field="invoice_number")
        return None
    invoice = Invoice.objects.filter(
        customer=customer, number=number, kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED
    ).first()
    if invoice is None:
        raise ValidationFailed(f"{customer.name} has no invoice numbered {number!r}", field="invoice_number")
    if line and (not line.isdigit() or not invoice.lines.filter(position=int(line)).exists()):
        raise ValidationFailed(
            f"invoice {number} has no line {line!r} (lines are numbered 1 to {invoice.lines.count()})",
            field="invoice_line",
        )
    return invoice


def _invoice_of(ticket: Ticket) -> Invoice:
    if ticket.category != Category.BILLING or not ticket.invoice_number:
        raise Conflict(f"{ticket.reference} is not a question about an invoice", code="not_a_billing_question")
    invoice = Invoice.objects.filter(customer_id=ticket.customer_id, number=ticket.invoice_number,
                                     kind=InvoiceKind.INVOICE).first()  # fmt: skip
    if invoice is None:
        raise NotFound(f"invoice {ticket.invoice_number} of {ticket.reference} no longer exists")
    return invoice


def sync_dispute(actor: Actor, ticket: Ticket) -> Dispute | None:
    """Keep the invoice disputed exactly while its billing question is unanswered: opened with the question,
    closed when the ticket is resolved or closed, opened again when the customer reopens it.

    The dispute is the ticket's doing, so it is recorded under the ticket (a customer may open a question
    without any right over collections); the request id ties it to the person who acted.
    """
    if ticket.category != Category.BILLING or not ticket.invoice_number:
        return None
    invoice = Invoice.objects.filter(customer_id=ticket.customer_id, number=ticket.invoice_number,
                                     kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED).first()  # fmt: skip
    if invoice is None:
        return None
    system = Actor.system(f"ticket:{ticket.reference}", request_id=actor.request_id)
    current = Dispute.objects.filter(invoice=invoice, ticket_id=ticket.pk, status=DisputeStatus.OPEN).first()
    answered = ticket.status in (Status.RESOLVED, Status.CLOSED)
    if answered and current is not None:
        return collections.close_dispute(system, current.pk, resolution=f"{ticket.reference} {ticket.status}")
    if not answered and current is None:
        line = f" line {ticket.invoice_line}" if ticket.invoice_line else ""
        return collections.open_dispute(system, invoice.pk, reason=f"{ticket.reference}{line}: {ticket.subject}",
                                        source="ticket", ticket_id=ticket.pk)  # fmt: skip
    return current


def explanation(actor: Actor, ticket: Ticket) -> dict[str, Any] | None:
    """The explanation of the line in question, for whoever may read the invoice (staff see Microsoft's cost);
    None when the ticket names no line or the reader may not see invoices."""
    if not (ticket.category == Category.BILLING and ticket.invoice_number and ticket.invoice_line.isdigit()):
        return None
    if not permissions.has(actor, Perm.INVOICES_READ):
        return None
    invoice = _invoice_of(ticket)
    result: dict[str, Any] = to_jsonable(
        dataclasses.asdict(billing_explain.explain(actor, invoice.pk, int(ticket.invoice_line)))
    )
    return result


@transaction.atomic
def credit_from_ticket(actor: Actor, ticket_id: int, *, reason: str, positions: list[int] | None = None) -> Invoice:
    """Issue the credit note a billing question calls for: the questioned line unless ``positions`` says
    otherwise (an empty list credits the whole invoice). The ticket gets an internal note naming it."""
    from . import services  # the ticket services use this module at intake; the call back is made at run time

    ticket = services._ticket_for_change(actor, ticket_id)
    permissions.require(actor, Perm.INVOICES_CHANGE)
    invoice = _invoice_of(ticket)
    if positions is None:
        positions = [int(ticket.invoice_line)] if ticket.invoice_line.isdigit() else []
    if not reason.strip():
        raise ValidationFailed("say why the invoice is credited", field="reason")
    note = billing.issue_credit_note(actor, invoice.pk, reason=f"{ticket.reference}: {reason.strip()}",
                                     positions=positions or None)  # fmt: skip
    TicketMessage.objects.create(
        ticket=ticket, kind=MessageKind.INTERNAL, author_id=actor.user_id,
        body=f"Credit note {note.number} issued for {invoice.number} ({note.total} {note.currency}): {reason.strip()}",
    )  # fmt: skip
    services._event(actor, ticket, "ticket.credit_note_issued",
                    {"invoice": invoice.number, "credit_note": note.number, "total": note.total,
                     "positions": positions})  # fmt: skip
    return note
