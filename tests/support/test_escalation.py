"""Escalation: the vehicle rules, a Partner Center service request created and synced against the emulator
(with a 429 on the way), and two-tier escalation from a reseller to its indirect provider."""

from __future__ import annotations

import pytest

from cspdesk.core.errors import DomainError
from cspdesk.partnercenter import auth
from cspdesk.partnercenter.client import PartnerCenterClient, RetryPolicy
from cspdesk.partnercenter.emulator import parse_spec
from cspdesk.support import services
from cspdesk.support.models import Escalation, Status, Ticket, TicketMessage, Vehicle
from cspdesk.tenancy.models import Organisation
from tests.fixtures import DemoWorld
from tests.partnercenter.pc_fixtures import SleepRecorder, emulator  # noqa: F401

pytestmark = pytest.mark.django_db


def _ticket(demo: DemoWorld, customer: str, username: str, category: str, service: str) -> Ticket:
    return services.open_ticket(
        demo.actor(username),
        customer_id=demo.customer(customer).pk,
        subject="Help",
        body="Something is wrong.",
        category=category,
        service=service,
        severity="high",
    )


@pytest.fixture
def pc(emulator):  # noqa: F811
    sleeps = SleepRecorder()

    def factory(org: Organisation) -> PartnerCenterClient:
        creds = auth.Credentials(
            tenant_id=str(org.pc_tenant_id), client_id="desk", client_secret="", refresh_token="rt-from-consent"
        )
        return PartnerCenterClient(
            emulator.url,
            auth.token_provider(emulator.url, creds),
            sleep=sleeps,
            retry=RetryPolicy(max_retries=3, backoff_base=0.01),
        )

    factory.emulator = emulator  # type: ignore[attr-defined]
    factory.sleeps = sleeps  # type: ignore[attr-defined]
    return factory


@pytest.mark.parametrize(
    ("entitlements", "category", "service", "vehicle"),
    [
        ({}, "billing", "azure", Vehicle.COMMERCIAL),
        ({}, "subscription_management", "microsoft365", Vehicle.COMMERCIAL),
        ({"has_unified_support": True, "has_advanced_support": True}, "technical", "other", Vehicle.UNIFIED),
        ({"has_advanced_support": True}, "technical", "azure", Vehicle.ADVANCED),
        ({"has_signature_support": True}, "technical", "dynamics365", Vehicle.SIGNATURE),
    ],
)
def test_vehicle_rules(demo: DemoWorld, entitlements: dict, category: str, service: str, vehicle: str) -> None:
    org = demo.org("nuvola")
    for flag in ("has_unified_support", "has_advanced_support", "has_signature_support"):
        setattr(org, flag, entitlements.get(flag, False))
    ticket = _ticket(demo, "liffey", "nuvola.helpdesk", category, service)
    assert services.propose_vehicle(ticket, org)[0] == vehicle


def test_no_technical_entitlement_is_a_clear_message(demo: DemoWorld) -> None:
    org = demo.org("nuvola")
    org.has_advanced_support = False
    ticket = _ticket(demo, "liffey", "nuvola.helpdesk", "technical", "azure")
    with pytest.raises(DomainError) as caught:
        services.propose_vehicle(ticket, org)
    assert caught.value.code == "no_technical_entitlement"
    assert "no Microsoft technical support entitlement" in caught.value.message


def test_a_reseller_escalates_to_its_provider_first(demo: DemoWorld) -> None:
    ticket = _ticket(demo, "angstrom", "fjall.helpdesk", "technical", "azure")
    assert services.propose_vehicle(ticket, demo.org("fjall"))[0] == Vehicle.PROVIDER
    esc = services.escalate(demo.actor("fjall.helpdesk"), ticket.pk)
    assert (esc.vehicle, esc.escalated_to) == (Vehicle.PROVIDER, demo.org("nordmoln"))
    provider_queue = demo.api("nordmoln.helpdesk").get("/api/v1/tickets").json()["items"]
    assert [t["reference"] for t in provider_queue] == [ticket.reference]
    assert demo.api("atlantico.helpdesk").get(f"/api/v1/tickets/{ticket.pk}").status_code == 404


def test_service_request_created_through_a_429_and_synced_back(demo: DemoWorld, pc) -> None:
    ticket = _ticket(demo, "liffey", "nuvola.helpdesk", "billing", "azure")
    pc.emulator.server.faults.add(parse_spec("servicerequest_create:429:count=1,retry_after=2"))
    esc = services.escalate(demo.actor("nuvola.helpdesk"), ticket.pk, client_factory=pc)
    assert esc.vehicle == Vehicle.COMMERCIAL
    assert esc.ms_request_id.isdigit()
    assert esc.ms_support_topic == "Billing"
    assert 2 in pc.sleeps.waits  # Retry-After honoured
    creates = pc.emulator.server.calls_to("servicerequest_create", "POST")
    assert len(creates) == 2 and creates[0].request_id == creates[1].request_id  # one request, retried
    ticket.refresh_from_db()
    assert (ticket.status, ticket.turn) == (Status.ESCALATED, "microsoft")
    detail = demo.api("nuvola.helpdesk").get(f"/api/v1/tickets/{ticket.pk}").json()
    assert detail["escalations"][0]["ms_request_id"] == esc.ms_request_id
    # Microsoft answers and closes the request; the sync brings both back.
    with pc(demo.org("nuvola")) as client:
        client.update_service_request(esc.ms_request_id, note="Credit applied to next invoice.")
        client.update_service_request(esc.ms_request_id, status="closed")
    assert services.sync_escalations(demo.actor("nuvola.admin"), client_factory=pc) == {
        "checked": 1, "notes": 1, "closed": 1, "failed": 0}  # fmt: skip
    ticket.refresh_from_db()
    assert (ticket.status, ticket.turn) == (Status.OPEN, "partner")
    assert TicketMessage.objects.filter(ticket=ticket, body__contains="Credit applied to next invoice.").count() == 1
    assert services.sync_escalations(demo.actor("nuvola.admin"), client_factory=pc)["checked"] == 0


def test_provider_escalates_a_resellers_ticket_on_to_microsoft(demo: DemoWorld, pc) -> None:
    ticket = _ticket(demo, "gyor", "fjall.helpdesk", "technical", "azure")
    services.escalate(demo.actor("fjall.helpdesk"), ticket.pk)
    esc = services.escalate(demo.actor("nordmoln.helpdesk"), ticket.pk, client_factory=pc)
    assert esc.vehicle == Vehicle.UNIFIED  # Nordmoln holds Premier/Unified in the demo world
    assert esc.ms_support_topic == "Azure technical"
    assert Escalation.objects.filter(ticket=ticket).count() == 2
    other = _ticket(demo, "padaria", "atlantico.helpdesk", "technical", "azure")
    with pytest.raises(DomainError):
        services.escalate(demo.actor("nordmoln.helpdesk"), other.pk, client_factory=pc)
