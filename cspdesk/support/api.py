"""Tickets over /api/v1/tickets, and raw inbound e-mail at /api/v1/mail/inbound. Thin."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router
from ninja.pagination import paginate

from cspdesk.api import actor
from cspdesk.core.actor import Actor
from cspdesk.core.pagination import Pagination
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm
from cspdesk.tenancy.schemas import ErrorOut

from . import billing_questions, outsourcing, selectors, services
from .models import Channel, Ticket
from .schemas import (
    CreditIn,
    CreditOut,
    EscalateIn,
    MailOut,
    ProviderEventOut,
    ReplyIn,
    StatusIn,
    TicketDetailOut,
    TicketIn,
    TicketOut,
    TimeIn,
)

router = Router(tags=["support"])
ERRORS: dict[int | str, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut,
                               422: ErrorOut}  # fmt: skip


def _detail(request: HttpRequest, ticket: Ticket) -> dict[str, Any]:
    a = actor(request)
    data = TicketOut.from_orm(ticket).dict()
    data["messages"] = [
        {"id": m.id, "kind": m.kind, "author": m.author.get_username() if m.author else m.author_email,
         "from_customer": m.from_customer, "body": m.body, "created_at": m.created_at,
         "attachments": [f.filename for f in m.attachments.all()]}
        for m in selectors.messages_for(a, ticket)
    ]  # fmt: skip
    data["escalations"] = [
        {"vehicle": e.vehicle, "ms_request_id": e.ms_request_id or None, "ms_status": e.ms_status or None,
         "escalated_to": e.escalated_to.legal_name if e.escalated_to else None}
        for e in ticket.escalations.select_related("escalated_to")
    ]  # fmt: skip
    data["explanation"] = billing_questions.explanation(a, ticket)
    return data


@router.get("/tickets", response=list[TicketOut])
@paginate(Pagination)
def list_tickets(request: HttpRequest, status: str | None = None) -> Any:
    a = actor(request)
    permissions.require(a, Perm.TICKETS_READ)
    qs = selectors.tickets_for(a)
    return qs.filter(status=status) if status else qs


@router.post("/tickets", response={201: TicketOut, **ERRORS})
def open_ticket(request: HttpRequest, payload: TicketIn) -> Any:
    return 201, services.open_ticket(actor(request), channel=Channel.API, **payload.dict())


@router.get("/tickets/{ticket_id}", response={200: TicketDetailOut, **ERRORS})
def get_ticket(request: HttpRequest, ticket_id: int) -> Any:
    return _detail(request, services.require_ticket(actor(request), ticket_id))


@router.post("/tickets/{ticket_id}/replies", response={201: TicketDetailOut, **ERRORS})
def reply(request: HttpRequest, ticket_id: int, payload: ReplyIn) -> Any:
    a = actor(request)
    services.reply(a, ticket_id, payload.body, internal=payload.internal)
    return 201, _detail(request, services.require_ticket(a, ticket_id))


@router.post("/tickets/{ticket_id}/status", response={200: TicketDetailOut, **ERRORS})
def change_status(request: HttpRequest, ticket_id: int, payload: StatusIn) -> Any:
    a = actor(request)
    services.change_status(a, ticket_id, payload.status, note=payload.note)
    return _detail(request, services.require_ticket(a, ticket_id))


@router.post("/tickets/{ticket_id}/escalations", response={201: TicketDetailOut, **ERRORS})
def escalate(request: HttpRequest, ticket_id: int, payload: EscalateIn) -> Any:
    a = actor(request)
    services.escalate(a, ticket_id, vehicle=payload.vehicle, note=payload.note)
    return 201, _detail(request, services.require_ticket(a, ticket_id))


@router.post("/tickets/{ticket_id}/time", response={201: TicketDetailOut, **ERRORS})
def log_time(request: HttpRequest, ticket_id: int, payload: TimeIn) -> Any:
    a = actor(request)
    services.log_time(a, ticket_id, payload.minutes, payload.note, billable=payload.billable)
    return 201, _detail(request, services.require_ticket(a, ticket_id))


@router.post("/tickets/{ticket_id}/credit-note", response={201: CreditOut, **ERRORS})
def credit_note(request: HttpRequest, ticket_id: int, payload: CreditIn) -> Any:
    """Issue the credit note a billing question calls for (billing admins)."""
    note = billing_questions.credit_from_ticket(actor(request), ticket_id, reason=payload.reason,
                                                positions=payload.positions)  # fmt: skip
    assert note.credited_invoice is not None
    return 201, {"id": note.pk, "number": note.number, "credited_invoice": note.credited_invoice.number,
                 "total": note.total, "currency": note.currency}  # fmt: skip


@router.post("/support/providers/{rule_id}/events", auth=None, response={200: ProviderEventOut, **ERRORS})
def provider_event(request: HttpRequest, rule_id: int) -> Any:
    """A reply or status change from an outside support provider, signed with X-Cspdesk-Signature."""
    signature = request.headers.get(outsourcing.SIGNATURE_HEADER, "")
    system = Actor.system(f"provider:{rule_id}", request_id=getattr(request, "request_id", None))
    return outsourcing.provider_event(system, rule_id, request.body, signature)


@router.post("/mail/inbound", response={200: MailOut, **ERRORS})
def inbound_mail(request: HttpRequest) -> Any:
    """A raw RFC 822 message as the request body (Content-Type: message/rfc822)."""
    return services.take_in_email(actor(request), request.body).as_dict()
