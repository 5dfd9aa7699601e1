"""Tickets scoped by actor.

- staff of the organisation that handles a ticket see it; an indirect provider's staff also see the
  tickets its resellers escalated to it;
- a customer's users see their customer's tickets, without internal notes.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from cspdesk.core.actor import Actor, ActorKind
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm

from .models import MessageKind, Ticket, TicketMessage


def tickets_for(actor: Actor, perm: Perm = Perm.TICKETS_READ) -> QuerySet[Ticket]:
    if not permissions.has(actor, perm):
        return Ticket.objects.none()
    qs = Ticket.objects.select_related("customer", "organisation", "assignee")
    if actor.is_system:
        return qs
    if actor.kind is ActorKind.CUSTOMER:
        return qs.filter(customer_id=actor.customer_pk)
    return qs.filter(
        Q(organisation_id=actor.organisation_pk) | Q(escalations__escalated_to_id=actor.organisation_pk)
    ).distinct()


def messages_for(actor: Actor, ticket: Ticket) -> QuerySet[TicketMessage]:
    qs = ticket.messages.select_related("author").prefetch_related("attachments")
    if actor.kind is ActorKind.CUSTOMER:
        qs = qs.exclude(kind=MessageKind.INTERNAL)
    return qs
