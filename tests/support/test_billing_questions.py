"""A billing question on an invoice line: checked against the customer's invoices, explained to the agent
(with Microsoft's cost) and to the customer (without), and answered with a credit note from the ticket."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cspdesk.audit.models import AuditEvent
from cspdesk.billing import services as billing
from cspdesk.billing.models import Invoice, InvoiceKind
from cspdesk.catalog import services as catalog
from cspdesk.core.actor import Actor
from cspdesk.support.models import MessageKind, TicketMessage
from tests.billing.test_billing_run import OCT, invoice_of, make_import, make_line
from tests.fixtures import DemoWorld

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
D = Decimal


@pytest.fixture
def issued(demo: DemoWorld) -> Invoice:
    """Bellavista's October invoice: two Microsoft 365 lines (two subscriptions), finalized."""
    org = demo.org("nuvola")
    catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(10), effective_from=OCT)
    imp = make_import(org)
    bellavista = demo.customer("bellavista")
    make_line(imp, bellavista, "100.00", first_line=2, last_line=2)
    make_line(imp, bellavista, "50.00", subscription_id="sub-2", sku_id="0002", sku_name="Microsoft 365 E5",
              product_name="Microsoft 365 E5", first_line=3, last_line=3)  # fmt: skip
    make_line(imp, demo.customer("liffey"), "70.00")
    run = billing.finalize_run(SYSTEM, billing.bill(SYSTEM, OCT).pk)
    return invoice_of(run, bellavista)


def _ask(demo: DemoWorld, invoice: Invoice, line: str, user: str = "bellavista.admin") -> object:
    payload = {"customer_id": invoice.customer_id, "subject": "Why this charge?", "body": "Line looks wrong.",
               "category": "billing", "service": "microsoft365", "invoice_number": invoice.number,
               "invoice_line": line}  # fmt: skip
    return demo.api(user).post("/api/v1/tickets", data=json.dumps(payload), content_type="application/json")


def test_the_question_must_name_an_invoice_and_line_the_customer_has(demo: DemoWorld, issued: Invoice) -> None:
    response = _ask(demo, issued, "9")
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert response.json()["field"] == "invoice_line"  # type: ignore[attr-defined]
    other = Invoice.objects.get(customer=demo.customer("liffey"), kind=InvoiceKind.INVOICE)
    payload = {"customer_id": issued.customer_id, "subject": "?", "body": "?", "category": "billing",
               "service": "microsoft365", "invoice_number": other.number, "invoice_line": "1"}  # fmt: skip
    response = demo.api("bellavista.admin").post(
        "/api/v1/tickets", data=json.dumps(payload), content_type="application/json"
    )
    assert response.status_code == 422  # another customer's invoice is not Bellavista's to question
    assert response.json()["field"] == "invoice_number"


def test_agent_sees_the_line_explained_with_cost_and_the_customer_without(demo: DemoWorld, issued: Invoice) -> None:
    position = "2"
    created = _ask(demo, issued, position)
    assert created.status_code == 201, created.content  # type: ignore[attr-defined]
    ticket_id = created.json()["id"]  # type: ignore[attr-defined]
    staff = demo.api("nuvola.helpdesk").get(f"/api/v1/tickets/{ticket_id}").json()
    explained = staff["explanation"]
    assert explained["invoice_number"] == issued.number and explained["position"] == int(position)
    assert len(explained["sources"]) == 1
    source = explained["sources"][0]
    assert source["first_line"] == source["last_line"] in (2, 3)  # the Microsoft row behind the line
    assert source["subscription_id"] in ("sub-1", "sub-2")
    assert source["microsoft_cost"] is not None  # staff see what Microsoft charged
    customer = demo.api("bellavista.admin").get(f"/api/v1/tickets/{ticket_id}").json()
    assert customer["explanation"]["sources"][0]["microsoft_cost"] is None
    assert customer["explanation"]["sources"][0]["cost"] is None


def test_a_credit_note_is_issued_from_the_ticket_for_the_line_in_question(demo: DemoWorld, issued: Invoice) -> None:
    ticket_id = _ask(demo, issued, "1").json()["id"]  # type: ignore[attr-defined]
    body = json.dumps({"reason": "price rule applied twice"})
    refused = demo.api("nuvola.helpdesk").post(f"/api/v1/tickets/{ticket_id}/credit-note", data=body,
                                               content_type="application/json")  # fmt: skip
    assert refused.status_code == 403  # helpdesk agents answer; billing admins credit
    response = demo.api("nuvola.billing").post(f"/api/v1/tickets/{ticket_id}/credit-note", data=body,
                                               content_type="application/json")  # fmt: skip
    assert response.status_code == 201, response.content
    note = Invoice.objects.get(pk=response.json()["id"])
    assert note.kind == InvoiceKind.CREDIT_NOTE and note.credited_invoice_id == issued.pk
    first = issued.lines.get(position=1)
    assert note.total == first.net_amount + (note.tax or 0)  # only the questioned line, with its VAT
    assert note.total < issued.total
    assert "price rule applied twice" in note.reason
    internal = TicketMessage.objects.get(ticket_id=ticket_id, kind=MessageKind.INTERNAL)
    assert note.number in internal.body
    assert AuditEvent.objects.filter(action="ticket.credit_note_issued", object_id=str(ticket_id)).exists()
    again = demo.api("nuvola.billing").post(f"/api/v1/tickets/{ticket_id}/credit-note", data=body,
                                            content_type="application/json")  # fmt: skip
    assert again.status_code == 409  # that line is credited already


def test_a_question_that_is_not_about_an_invoice_has_nothing_to_credit(demo: DemoWorld, issued: Invoice) -> None:
    payload = {"customer_id": issued.customer_id, "subject": "Licences", "body": "Add five.",
               "category": "subscription_management", "service": "microsoft365"}  # fmt: skip
    ticket_id = demo.api("bellavista.admin").post("/api/v1/tickets", data=json.dumps(payload),
                                                  content_type="application/json").json()["id"]  # fmt: skip
    response = demo.api("nuvola.billing").post(
        f"/api/v1/tickets/{ticket_id}/credit-note", data=json.dumps({"reason": "x"}), content_type="application/json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "not_a_billing_question"


def test_the_invoice_is_disputed_while_the_question_is_open(demo: DemoWorld, issued: Invoice) -> None:
    from cspdesk.collections.models import Dispute, DisputeStatus
    from cspdesk.support import services as support

    ticket_id = _ask(demo, issued, "1").json()["id"]  # type: ignore[attr-defined]
    dispute = Dispute.objects.get(invoice=issued, ticket_id=ticket_id)
    assert dispute.status == DisputeStatus.OPEN and dispute.source == "ticket"
    support.change_status(demo.actor("nuvola.helpdesk"), ticket_id, "resolved", note="explained")
    dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.CLOSED  # answered: collections counts the invoice again
    support.reply(demo.actor("bellavista.admin"), ticket_id, "Still wrong, sorry.")  # the customer reopens it
    reopened = Dispute.objects.get(invoice=issued, ticket_id=ticket_id, status=DisputeStatus.OPEN)
    assert reopened.pk != dispute.pk
    assert AuditEvent.objects.filter(action="collections.dispute_opened").count() == 2
    support.change_status(demo.actor("nuvola.helpdesk"), ticket_id, "closed")
    assert not Dispute.objects.filter(invoice=issued, status=DisputeStatus.OPEN).exists()
