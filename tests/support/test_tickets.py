"""Tickets: opening, replies, internal notes, SLA clocks with pending-customer pauses, scoping."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from cspdesk.audit.models import AuditEvent
from cspdesk.core import clock
from cspdesk.core.errors import Conflict
from cspdesk.support import services
from cspdesk.support.models import Status, Ticket, TicketMessage
from tests.fixtures import DemoWorld
from tests.support.fixtures import office_policies

pytestmark = pytest.mark.django_db
ROME = ZoneInfo("Europe/Rome")


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ROME)


def _open(demo: DemoWorld, username: str = "bellavista.admin", **kw) -> Ticket:
    fields = {"customer_id": demo.customer("bellavista").pk, "subject": "Outlook non sincronizza",
              "body": "Da stamattina la posta non arriva.", "category": "technical", "service": "microsoft365",
              "severity": "high", **kw}  # fmt: skip
    return services.open_ticket(demo.actor(username), **fields)


def test_a_customer_opens_a_ticket_with_sla_due_times(demo: DemoWorld) -> None:
    office_policies(demo.org("nuvola"))
    with clock.frozen(at(2026, 11, 20, 17)):  # Friday 17:00 in Rome
        ticket = _open(demo)
    assert ticket.reference == f"NUV-{ticket.pk}"
    assert ticket.organisation == demo.org("nuvola")
    assert ticket.status == Status.NEW
    assert ticket.first_response_due == at(2026, 11, 23, 12)  # 4 business hours: 1 on Friday, 3 on Monday
    assert ticket.resolution_due == at(2026, 11, 25, 17)  # 27 business hours
    assert AuditEvent.objects.filter(action="ticket.opened", object_id=str(ticket.pk)).count() == 1


def test_pending_customer_stops_the_clock_until_the_customer_answers(demo: DemoWorld) -> None:
    office_policies(demo.org("nuvola"))
    agent = demo.actor("nuvola.helpdesk")
    with clock.frozen(at(2026, 11, 23, 9)):  # Monday
        ticket = _open(demo)
    with clock.frozen(at(2026, 11, 23, 10)):
        services.reply(agent, ticket.pk, "Può inviarci uno screenshot dell'errore?")
        services.change_status(agent, ticket.pk, Status.PENDING_CUSTOMER)
    with clock.frozen(at(2026, 11, 24, 10)):  # the customer answers a business day (9 h) later
        services.reply(demo.actor("bellavista.admin"), ticket.pk, "Ecco lo screenshot.")
    ticket.refresh_from_db()
    assert ticket.status == Status.OPEN
    assert ticket.turn == "partner"
    assert ticket.first_responded_at == at(2026, 11, 23, 10)
    assert ticket.resolution_due == at(2026, 11, 26, 18)  # 27 h: Mon 1 h, paused to Tue 10:00, Tue 8 h, Wed 9, Thu 9
    with clock.frozen(at(2026, 11, 24, 10)):
        state = services.sla_state(ticket)
    assert state["paused"] is False
    assert state["resolution_used"] == round(1 / 27, 3)  # only Monday 9–10 counted


def test_internal_notes_are_hidden_from_the_customer(demo: DemoWorld) -> None:
    ticket = _open(demo)
    services.reply(demo.actor("nuvola.helpdesk"), ticket.pk, "Check the Exchange health dashboard", internal=True)
    services.reply(demo.actor("nuvola.helpdesk"), ticket.pk, "Stiamo verificando.")
    customer_view = demo.api("bellavista.admin").get(f"/api/v1/tickets/{ticket.pk}").json()
    staff_view = demo.api("nuvola.helpdesk").get(f"/api/v1/tickets/{ticket.pk}").json()
    assert [m["kind"] for m in customer_view["messages"]] == ["public", "public"]
    assert [m["kind"] for m in staff_view["messages"]] == ["public", "internal", "public"]


def test_customers_of_others_and_other_partners_see_nothing(demo: DemoWorld) -> None:
    ticket = _open(demo)
    for username in ("liffey.admin", "fjall.helpdesk", "nordmoln.admin", "angstrom.user"):
        assert demo.api(username).get(f"/api/v1/tickets/{ticket.pk}").status_code == 404, username
        assert demo.api(username).get("/api/v1/tickets").json()["items"] == []


def test_sales_agent_reads_but_cannot_reply(demo: DemoWorld) -> None:
    ticket = _open(demo)
    client = demo.api("nuvola.sales")
    assert client.get(f"/api/v1/tickets/{ticket.pk}").status_code == 200
    response = client.post(f"/api/v1/tickets/{ticket.pk}/replies", data={"body": "hi"},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 403
    assert TicketMessage.objects.filter(ticket=ticket).count() == 1


def test_open_through_the_api_and_list(demo: DemoWorld) -> None:
    client = demo.api("angstrom.user")
    payload = {
        "customer_id": demo.customer("angstrom").pk,
        "subject": "Faktura fråga",
        "body": "Varför ökade Azure?",
        "category": "billing",
        "service": "azure",
        "severity": "normal",
    }
    created = client.post("/api/v1/tickets", data=json.dumps(payload), content_type="application/json")
    assert created.status_code == 201, created.json()
    # Naming an invoice the customer was never issued is refused by name (tests/support/test_billing_questions.py).
    missing = client.post("/api/v1/tickets", data=json.dumps({**payload, "invoice_number": "FJS-2026-000001"}),
                          content_type="application/json")  # fmt: skip
    assert (missing.status_code, missing.json()["field"]) == (422, "invoice_number")
    body = created.json()
    assert body["reference"].startswith("FJS-")
    assert body["channel"] == "api"
    assert body["category"] == "billing"
    listed = client.get("/api/v1/tickets").json()["items"]
    assert [t["reference"] for t in listed] == [body["reference"]]


def test_bad_ticket_fields_are_named(demo: DemoWorld) -> None:
    payload = {
        "customer_id": demo.customer("angstrom").pk,
        "subject": "x",
        "body": "y",
        "category": "gossip",
        "service": "azure",
    }
    response = demo.api("angstrom.user").post("/api/v1/tickets", data=json.dumps(payload),
                                              content_type="application/json")  # fmt: skip
    assert response.status_code == 422
    assert response.json()["field"] == "category"


def test_status_transitions_are_checked(demo: DemoWorld) -> None:
    agent = demo.actor("nuvola.helpdesk")
    ticket = _open(demo)
    services.change_status(agent, ticket.pk, Status.CLOSED)
    with pytest.raises(Conflict):
        services.change_status(agent, ticket.pk, Status.OPEN)
    with pytest.raises(Conflict):
        services.reply(demo.actor("bellavista.admin"), ticket.pk, "ancora?")


def test_sla_sweep_warns_then_breaches_once(demo: DemoWorld) -> None:
    office_policies(demo.org("nuvola"))
    with clock.frozen(at(2026, 11, 23, 9)):
        ticket = _open(demo, severity="critical")  # first response within 1 business hour
    system = demo.actor("nuvola.admin")
    assert services.sla_sweep(system, at(2026, 11, 23, 9, 30)) == {"warned": 0, "breached": 0}
    assert services.sla_sweep(system, at(2026, 11, 23, 9, 50)) == {"warned": 1, "breached": 0}
    assert services.sla_sweep(system, at(2026, 11, 23, 10, 5)) == {"warned": 0, "breached": 1}
    assert services.sla_sweep(system, at(2026, 11, 23, 10, 30))["breached"] == 0
    ticket.refresh_from_db()
    assert ticket.first_response_breached and not ticket.resolution_breached
    assert AuditEvent.objects.filter(action="ticket.sla_first_response_breached").count() == 1


def test_a_paused_ticket_shows_the_due_time_as_if_resumed_now(demo: DemoWorld) -> None:
    office_policies(demo.org("nuvola"))
    agent = demo.actor("nuvola.helpdesk")
    with clock.frozen(at(2026, 11, 23, 9)):
        ticket = _open(demo)
    with clock.frozen(at(2026, 11, 23, 11)):
        services.change_status(agent, ticket.pk, Status.PENDING_CUSTOMER)
    ticket.refresh_from_db()
    assert ticket.resolution_due == at(2026, 11, 25, 18)  # 27 h from Monday 9:00, nothing paused yet
    with clock.frozen(at(2026, 11, 24, 11)):  # a business day later, still waiting
        services.recompute_sla(ticket)
    assert ticket.resolution_due == at(2026, 11, 26, 18)  # pushed back by the 9 business hours paused
