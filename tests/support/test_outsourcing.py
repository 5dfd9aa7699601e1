"""Outsourced support: routing by rule (webhook and e-mail), signed provider replies applied once."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from django.core import mail

from cspdesk.support import outsourcing, services
from cspdesk.support.models import Outsourcing, RoutingRule, Status, Ticket, TicketMessage
from tests.fixtures import DemoWorld

pytestmark = pytest.mark.django_db
SECRET = "whsec-test-0123456789"


def _open(demo: DemoWorld, category: str = "technical", service: str = "dynamics365") -> Ticket:
    return services.open_ticket(demo.actor("prairie.admin"), customer_id=demo.customer("prairie").pk,
                                subject="Sales app error", body="The opportunity form crashes.", category=category,
                                service=service, severity="high")  # fmt: skip


@pytest.fixture
def provider_inbox() -> list[httpx.Request]:
    return []


@pytest.fixture
def transport(provider_inbox: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        provider_inbox.append(request)
        return httpx.Response(201, json={"reference": "DYN-4711"})

    return httpx.MockTransport(handler)


def test_a_matching_ticket_goes_to_the_provider_by_signed_webhook(demo, provider_inbox, transport) -> None:
    rule = RoutingRule.objects.create(organisation=demo.org("nuvola"), category="technical", service="dynamics365",
                                      provider_name="Dyn Experts", method="webhook",
                                      address="https://dyn.example/hooks/cspdesk", secret=SECRET)  # fmt: skip
    RoutingRule.objects.create(organisation=demo.org("nuvola"), provider_name="Generic desk", method="email",
                               address="desk@generic.example")  # fmt: skip
    ticket = _open(demo)
    assert outsourcing.rule_for(ticket) == rule  # the most specific rule wins
    out = outsourcing.route(demo.actor("nuvola.helpdesk"), ticket.pk, transport=transport)
    [request] = provider_inbox
    outsourcing.verify(SECRET, request.content, request.headers[outsourcing.SIGNATURE_HEADER])
    assert json.loads(request.content)["ticket"]["reference"] == ticket.reference
    assert out is not None and out.external_reference == "DYN-4711" and out.sent_at is not None
    outsourcing.route(demo.actor("nuvola.helpdesk"), ticket.pk, transport=transport)
    assert len(provider_inbox) == 1  # routed once


def test_other_tickets_go_by_e_mail_to_the_catch_all_rule(demo: DemoWorld, django_capture_on_commit_callbacks) -> None:
    RoutingRule.objects.create(organisation=demo.org("nuvola"), provider_name="Generic desk", method="email",
                               address="desk@generic.example")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        ticket = _open(demo, "billing", "azure")
    [sent] = mail.outbox
    assert sent.to == ["desk@generic.example"]
    assert sent.subject == f"[{ticket.reference}] Sales app error"
    assert Outsourcing.objects.get(ticket=ticket).sent_at is not None


def test_a_failed_delivery_is_recorded_and_retried_later(demo: DemoWorld) -> None:
    RoutingRule.objects.create(organisation=demo.org("nuvola"), provider_name="Down", method="webhook",
                               address="https://down.example/hook", secret=SECRET)  # fmt: skip
    ticket = _open(demo)
    broken = httpx.MockTransport(lambda r: httpx.Response(503))
    out = outsourcing.route(demo.actor("nuvola.helpdesk"), ticket.pk, transport=broken)
    assert out is not None and out.sent_at is None and "503" in out.last_error
    ok = httpx.MockTransport(lambda r: httpx.Response(200, json={}))
    assert outsourcing.route(demo.actor("nuvola.helpdesk"), ticket.pk, transport=ok).sent_at is not None


def _deliver(client, rule: RoutingRule, payload: dict, secret: str = SECRET, at: int | None = None):
    body = json.dumps(payload).encode()
    return client.post(f"/api/v1/support/providers/{rule.pk}/events", data=body, content_type="application/json",
                       headers={outsourcing.SIGNATURE_HEADER: outsourcing.sign(secret, body, at)})  # fmt: skip


def test_provider_replies_come_back_once_and_forgeries_change_nothing(demo, transport, client) -> None:
    rule = RoutingRule.objects.create(organisation=demo.org("nuvola"), provider_name="Dyn Experts", method="webhook",
                                      address="https://dyn.example/hooks", secret=SECRET)  # fmt: skip
    ticket = _open(demo)
    outsourcing.route(demo.actor("nuvola.helpdesk"), ticket.pk, transport=transport)
    event = {"id": "evt-1", "ticket_reference": ticket.reference, "body": "Fixed by clearing the form cache.",
             "status": "resolved"}  # fmt: skip
    forged = _deliver(client, rule, event, secret="not-the-secret")
    stale = _deliver(client, rule, event, at=int(time.time()) - 3600)
    assert (forged.status_code, stale.status_code) == (401, 401)
    assert TicketMessage.objects.filter(ticket=ticket, body__contains="form cache").count() == 0
    first = _deliver(client, rule, event)
    again = _deliver(client, rule, event)
    assert first.json() == {"event": "evt-1", "applied": True, "ticket": ticket.reference, "status": "resolved"}
    assert again.json()["applied"] is False
    assert TicketMessage.objects.filter(ticket=ticket, body__contains="form cache").count() == 1
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED and ticket.first_responded_at is not None
