"""The demo's support desk: service hours, SLA targets and a handful of tickets in several languages,
some answered, one pending the customer, one resolved, and escalations to the provider and to Microsoft
through the emulator. Idempotent: tickets are created once, keyed by their demo subject."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.support import services
from cspdesk.support.models import ServiceHours, SlaPolicy, Ticket
from cspdesk.tenancy import selectors as tenancy
from cspdesk.tenancy.models import Customer, Organisation

from . import world


def _org(key: str) -> Organisation:
    spec = next(s for s in world.ORGANISATIONS if s.key == key)
    return Organisation.objects.get(invoice_series=spec.invoice_series)


def _actor(username: str) -> Actor:
    return tenancy.actor_for_user(get_user_model().objects.get(username=username))


def _agent(customer: Customer) -> str:
    key = next(s.key for s in world.ORGANISATIONS if s.invoice_series == customer.organisation.invoice_series)
    return f"{key}.helpdesk"


def load_desks() -> None:
    for spec in world.DESKS:
        org = _org(spec.org)
        hours, _ = ServiceHours.objects.update_or_create(
            organisation=org, name="Office hours",
            defaults={"timezone": spec.timezone, "weekly": spec.weekly, "holiday_country": spec.holiday_country},
        )  # fmt: skip
        for severity, (first, resolve) in spec.targets.items():
            SlaPolicy.objects.update_or_create(
                organisation=org, severity=severity,
                defaults={"service_hours": hours, "first_response_minutes": first, "resolution_minutes": resolve,
                          "pause_while_vendor": spec.pause_while_vendor},
            )  # fmt: skip


def load_tickets() -> list[dict[str, Any]]:
    out = []
    for spec in world.TICKETS:
        customer = Customer.objects.get(tenant_id=world.customer_tenant_id(spec.customer))
        existing = Ticket.objects.filter(customer=customer, subject=spec.subject).first()
        if existing is None:
            existing = services.open_ticket(
                _actor(spec.opener), customer_id=customer.pk, subject=spec.subject, body=spec.body,
                category=spec.category, service=spec.service, severity=spec.severity,
            )  # fmt: skip
            _then(spec, existing, _actor(_agent(customer)))
            existing.refresh_from_db()
        out.append({"reference": existing.reference, "customer": customer.name, "status": existing.status})
    return out


def _then(spec: world.TicketSpec, ticket: Ticket, agent: Actor) -> None:
    if spec.answer:
        services.reply(agent, ticket.pk, spec.answer)
    if spec.then == "pending":
        services.change_status(agent, ticket.pk, "pending_customer")
    elif spec.then == "resolve":
        services.change_status(agent, ticket.pk, "resolved")
    elif spec.then in ("escalate", "escalate2"):
        try:
            services.escalate(agent, ticket.pk)
            if spec.then == "escalate2":
                services.escalate(_actor(f"{_org_key_of_parent(ticket)}.helpdesk"), ticket.pk)
        except DomainError as exc:  # the emulator unreachable: the ticket stays for an agent to escalate
            services.reply(agent, ticket.pk, f"Escalation pending: {exc.message}", internal=True)


def _org_key_of_parent(ticket: Ticket) -> str:
    parent = ticket.organisation.parent
    assert parent is not None
    return next(s.key for s in world.ORGANISATIONS if s.invoice_series == parent.invoice_series)
