"""Support plans' terms: baseline scope (out-of-scope requests flagged with the options), SLA targets from
the plan, and billable time reaching the customer's plan as a support charge."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cspdesk.catalog import services as catalog
from cspdesk.catalog.models import SupportCharge
from cspdesk.core import clock
from cspdesk.core.errors import Conflict, ValidationFailed
from cspdesk.support import services
from cspdesk.support.models import Scope, Status, Ticket, TicketMessage
from tests.fixtures import DemoWorld
from tests.support.fixtures import office_policies

pytestmark = pytest.mark.django_db
ROME = ZoneInfo("Europe/Rome")


@pytest.fixture
def plan(demo: DemoWorld):
    admin = demo.actor("nuvola.admin")
    hours = office_policies(demo.org("nuvola"))
    plan = catalog.create_support_plan(admin, organisation_id=demo.org("nuvola").pk, name="Essenziale",
                                       price_model="per_hour", currency="EUR", amount=Decimal("85.00"))  # fmt: skip
    catalog.assign_support_plan(admin, customer_id=demo.customer("bellavista").pk, plan_id=plan.pk,
                                effective_from=dt.date(2026, 1, 1))  # fmt: skip
    services.set_plan_terms(admin, plan.pk, in_scope=[["billing", "*"], ["subscription_management", "*"],
                                                      ["technical", "microsoft365"]],
                            service_hours_id=hours.pk, targets={"normal": [120, 16 * 60]},
                            contact_methods=[{"kind": "portal"}, {"kind": "phone", "value": "+39 02 1234 5678",
                                                                   "hours": "lun–ven 9–18"}])  # fmt: skip
    return plan


def _open(demo: DemoWorld, category: str, service: str, severity: str = "normal") -> Ticket:
    return services.open_ticket(demo.actor("bellavista.admin"), customer_id=demo.customer("bellavista").pk,
                                subject="Richiesta", body="Dettagli", category=category, service=service,
                                severity=severity)  # fmt: skip


def test_in_scope_and_out_of_scope_requests(demo: DemoWorld, plan) -> None:
    assert _open(demo, "technical", "microsoft365").scope == Scope.IN_SCOPE
    out = _open(demo, "technical", "dynamics365")
    assert out.scope == Scope.OUT_OF_SCOPE
    assert "Outside the baseline of plan Essenziale" in out.scope_note
    assert "quote a price, escalate, or decline" in out.scope_note
    liffey = services.open_ticket(demo.actor("liffey.admin"), customer_id=demo.customer("liffey").pk, subject="x",
                                  body="y", category="technical", service="azure")  # fmt: skip
    assert liffey.scope == Scope.UNKNOWN  # no plan, no verdict


def test_an_out_of_scope_request_is_quoted_or_declined(demo: DemoWorld, plan) -> None:
    agent = demo.actor("nuvola.helpdesk")
    quoted = _open(demo, "technical", "azure")
    services.decide_scope(agent, quoted.pk, "quote", "Questo intervento costa 340 € (4 ore a 85 €).")
    quoted.refresh_from_db()
    assert (quoted.scope, quoted.status) == (Scope.QUOTED, Status.OPEN)
    declined = _open(demo, "technical", "dynamics365")
    services.decide_scope(agent, declined.pk, "decline", "Non gestiamo Dynamics 365: rivolgetevi al fornitore.")
    declined.refresh_from_db()
    assert (declined.scope, declined.status) == (Scope.DECLINED, Status.RESOLVED)
    assert TicketMessage.objects.filter(ticket=declined, kind="public").count() == 2
    with pytest.raises(Conflict):
        services.decide_scope(agent, declined.pk, "quote", "again")
    in_scope = _open(demo, "billing", "azure")
    with pytest.raises(Conflict):
        services.decide_scope(agent, in_scope.pk, "decline", "no")


def test_the_plan_targets_override_the_organisation_policy(demo: DemoWorld, plan) -> None:
    with clock.frozen(dt.datetime(2026, 11, 23, 9, tzinfo=ROME)):
        ticket = _open(demo, "billing", "azure")
    assert ticket.first_response_due == dt.datetime(2026, 11, 23, 11, tzinfo=ROME)  # the plan: 2 h, not 8 h
    with clock.frozen(dt.datetime(2026, 11, 23, 9, tzinfo=ROME)):
        high = _open(demo, "billing", "azure", severity="high")  # the plan names no 'high' target
    assert high.first_response_due == dt.datetime(2026, 11, 23, 13, tzinfo=ROME)  # the organisation's 4 h


def test_billable_time_becomes_a_support_charge_once_per_entry(demo: DemoWorld, plan) -> None:
    agent = demo.actor("nuvola.helpdesk")
    ticket = _open(demo, "technical", "microsoft365")
    entry = services.log_time(agent, ticket.pk, 90, "Ripristino cassette postali", worked_on=dt.date(2026, 11, 20))
    services.log_time(agent, ticket.pk, 15, "Nota interna", billable=False, worked_on=dt.date(2026, 11, 20))
    charge = SupportCharge.objects.get()
    assert (charge.kind, charge.quantity, charge.plan, charge.occurred_on) == (
        "hours", Decimal("1.5"), plan, dt.date(2026, 11, 20))  # fmt: skip
    assert charge.reference == f"{ticket.reference}/time/{entry.pk}"
    assert charge.description == f"{ticket.reference}: Ripristino cassette postali"


def test_time_without_an_hourly_plan_is_refused_clearly(demo: DemoWorld) -> None:
    ticket = services.open_ticket(demo.actor("liffey.admin"), customer_id=demo.customer("liffey").pk, subject="x",
                                  body="y", category="technical", service="azure")  # fmt: skip
    with pytest.raises(ValidationFailed, match="no per_hour support plan"):
        services.log_time(demo.actor("nuvola.helpdesk"), ticket.pk, 30, "work")
    assert SupportCharge.objects.count() == 0


def test_bad_plan_terms_are_named(demo: DemoWorld, plan) -> None:
    admin = demo.actor("nuvola.admin")
    with pytest.raises(ValidationFailed) as caught:
        services.set_plan_terms(admin, plan.pk, in_scope=[["gossip", "*"]], targets={}, contact_methods=[],
                                service_hours_id=plan.terms.service_hours_id)  # fmt: skip
    assert caught.value.field == "in_scope[0]"
