"""Outsourced and resold support: route chosen tickets to an outside provider by e-mail or a signed
webhook, keep its reference, and bring its replies back.

Webhook signatures (both directions): header ``X-Cspdesk-Signature: t=<unix time>,v1=<hex>`` where the hex is
HMAC-SHA256 over ``"<t>.<raw body>"`` with the rule's secret; deliveries older than five minutes are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from django.core.mail import EmailMessage
from django.db import transaction

from cspdesk.audit import services as audit
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, NotFound, Unauthenticated, ValidationFailed

from . import billing_questions
from .models import MessageKind, Outsourcing, ProviderEvent, RouteMethod, RoutingRule, Status, Ticket, TicketMessage

SIGNATURE_HEADER = "X-Cspdesk-Signature"
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    stamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: int | None = None) -> None:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise Unauthenticated(f"missing or malformed {SIGNATURE_HEADER} header") from None
    if abs((int(time.time()) if now is None else now) - stamp) > TOLERANCE_SECONDS:
        raise Unauthenticated("the signature is too old (replayed delivery?)")
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise Unauthenticated("the signature does not match")


def rule_for(ticket: Ticket) -> RoutingRule | None:
    """The most specific active rule of the handling organisation (category and service beat either one)."""
    rules = RoutingRule.objects.filter(organisation_id=ticket.organisation_id, active=True)
    best: tuple[int, RoutingRule] | None = None
    for rule in rules:
        if rule.category and rule.category != ticket.category:
            continue
        if rule.service and rule.service != ticket.service:
            continue
        score = (2 if rule.category else 0) + (1 if rule.service else 0)
        if best is None or score > best[0]:
            best = (score, rule)
    return best[1] if best else None


def _payload(ticket: Ticket) -> dict[str, Any]:
    first = ticket.messages.filter(kind=MessageKind.PUBLIC).first()
    return {
        "event": "ticket.routed",
        "ticket": {
            "reference": ticket.reference, "subject": ticket.subject, "body": first.body if first else "",
            "customer": ticket.customer.name, "customer_tenant_id": str(ticket.customer.tenant_id),
            "category": ticket.category, "service": ticket.service, "severity": ticket.severity,
            "language": ticket.customer.locale,
        },
    }  # fmt: skip


def route(actor: Actor, ticket_id: int, *, transport: httpx.BaseTransport | None = None) -> Outsourcing | None:
    """Hand a ticket to its provider once (a second call finds it sent and does nothing)."""
    ticket = Ticket.objects.select_related("customer").get(pk=ticket_id)
    rule = rule_for(ticket)
    if rule is None:
        return None
    out, _ = Outsourcing.objects.get_or_create(ticket=ticket, rule=rule)
    if out.sent_at is not None:
        return out
    payload = _payload(ticket)
    try:
        if rule.method == RouteMethod.EMAIL:
            EmailMessage(
                subject=f"[{ticket.reference}] {ticket.subject}",
                body=json.dumps(payload["ticket"], ensure_ascii=False, indent=2),
                to=[rule.address],
                headers={"X-Cspdesk-Ticket": ticket.reference},
            ).send()
        else:
            body = json.dumps(payload, ensure_ascii=False).encode()
            with httpx.Client(timeout=10, transport=transport) as http:
                response = http.post(rule.address, content=body, headers={
                    "Content-Type": "application/json", SIGNATURE_HEADER: sign(rule.secret, body)})  # fmt: skip
            response.raise_for_status()
            reference = response.json().get("reference", "") if response.content else ""
            out.external_reference = str(reference)[:200]
    except (httpx.HTTPError, OSError, ValueError) as exc:
        out.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        out.save(update_fields=["last_error"])
        audit.record(actor, "ticket.routing_failed", obj=ticket, after={"provider": rule.provider_name,
                                                                          "error": out.last_error})  # fmt: skip
        return out
    out.sent_at = clock.now()
    out.last_error = ""
    out.save()
    TicketMessage.objects.create(
        ticket=ticket,
        kind=MessageKind.SYSTEM,
        body=f"Routed to {rule.provider_name}"
        + (f" (their reference {out.external_reference})" if out.external_reference else ""),
    )
    audit.record(
        actor,
        "ticket.routed",
        obj=ticket,
        organisation_id=ticket.organisation_id,
        customer_id=ticket.customer_id,
        after={"provider": rule.provider_name, "method": rule.method, "reference": out.external_reference},
    )
    return out


@transaction.atomic
def provider_event(actor: Actor, rule_id: int, body: bytes, signature: str) -> dict[str, Any]:
    """A provider's reply or status change, signed with the rule's secret; each event id has one effect."""
    rule = RoutingRule.objects.filter(pk=rule_id, method=RouteMethod.WEBHOOK, active=True).first()
    if rule is None:
        raise NotFound(f"no webhook provider {rule_id}")
    verify(rule.secret, body, signature)
    try:
        data = json.loads(body)
        event_id = str(data["id"])
        reference = str(data["ticket_reference"])
    except (ValueError, KeyError, TypeError):
        raise ValidationFailed("expected JSON with id, ticket_reference and body or status", field="body") from None
    _, created = ProviderEvent.objects.get_or_create(rule=rule, event_id=event_id, defaults={"payload": data})
    if not created:
        return {"event": event_id, "applied": False}
    out = Outsourcing.objects.select_related("ticket").filter(rule=rule, ticket__reference=reference).first()
    if out is None:
        raise NotFound(f"{reference} was not routed to {rule.provider_name}", field="ticket_reference")
    ticket = Ticket.objects.select_for_update().get(pk=out.ticket_id)
    if ticket.status == Status.CLOSED:
        raise Conflict(f"{reference} is closed", code="ticket_closed")
    if data.get("external_reference"):
        out.external_reference = str(data["external_reference"])[:200]
        out.save(update_fields=["external_reference"])
    text = str(data.get("body", "")).strip()
    if text:
        kind = MessageKind.INTERNAL if data.get("internal") else MessageKind.PUBLIC
        TicketMessage.objects.create(ticket=ticket, kind=kind, author_email=rule.address[:254] if "@" in rule.address
                                     else "", body=f"{text}\n\n— {rule.provider_name}")  # fmt: skip
        if kind == MessageKind.PUBLIC and ticket.first_responded_at is None:
            ticket.first_responded_at = clock.now()
        if ticket.status == Status.NEW:
            ticket.status = Status.OPEN
    if data.get("status") == "resolved":
        ticket.status = Status.RESOLVED
        ticket.resolved_at = clock.now()
    ticket.updated_at = clock.now()
    ticket.save()
    billing_questions.sync_dispute(actor, ticket)
    audit.record(
        actor,
        "ticket.provider_event",
        obj=ticket,
        organisation_id=ticket.organisation_id,
        customer_id=ticket.customer_id,
        after={"provider": rule.provider_name, "event": event_id},
    )
    return {"event": event_id, "applied": True, "ticket": ticket.reference, "status": ticket.status}
