from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ninja import Schema
from pydantic import Field


class TicketIn(Schema):
    customer_id: int
    subject: str = Field(min_length=1, max_length=250)
    body: str = Field(min_length=1)
    category: str
    service: str
    severity: str = "normal"
    invoice_number: str = ""
    invoice_line: str = ""


class MessageOut(Schema):
    id: int
    kind: str
    author: str
    from_customer: bool
    body: str
    created_at: dt.datetime
    attachments: list[str]


class TicketOut(Schema):
    id: int
    reference: str
    organisation_id: int
    customer_id: int
    subject: str
    channel: str
    category: str
    service: str
    severity: str
    status: str
    turn: str
    queue: str
    invoice_number: str
    created_at: dt.datetime
    first_response_due: dt.datetime | None
    resolution_due: dt.datetime | None
    first_response_breached: bool
    resolution_breached: bool


class TicketDetailOut(TicketOut):
    messages: list[MessageOut]
    escalations: list[dict[str, str | None]]
    # A billing question about one invoice line: what is behind that line (see cspdesk.billing.explain).
    explanation: dict[str, Any] | None = None


class CreditIn(Schema):
    reason: str = Field(min_length=1)
    positions: list[int] | None = Field(None, description="lines to credit; default the line in question; [] all")


class CreditOut(Schema):
    id: int
    number: str
    credited_invoice: str
    total: Decimal
    currency: str


class ReplyIn(Schema):
    body: str = Field(min_length=1)
    internal: bool = False


class StatusIn(Schema):
    status: str
    note: str = ""


class EscalateIn(Schema):
    vehicle: str | None = None
    note: str = ""


class MailOut(Schema):
    action: str
    ticket_id: int | None
    reference: str | None
    held_id: int | None
    reason: str


class TimeIn(Schema):
    minutes: int = Field(gt=0, le=24 * 60)
    note: str = Field(min_length=1, max_length=200)
    billable: bool = True


class ProviderEventOut(Schema):
    event: str
    applied: bool
    ticket: str | None = None
    status: str | None = None
