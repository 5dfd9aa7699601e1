"""The published support offering page: plans, prices, hours, contacts and targets from the desk's own data,
in the visitor's language with local formats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from cspdesk.catalog import services as catalog
from cspdesk.support import services
from tests.fixtures import DemoWorld
from tests.support.fixtures import office_policies

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(demo: DemoWorld):
    admin = demo.actor("nuvola.admin")
    hours = office_policies(demo.org("nuvola"))
    plan = catalog.create_support_plan(admin, organisation_id=demo.org("nuvola").pk, name="Premium",
                                       price_model="percent_of_spend", currency="EUR", percent=Decimal("10"),
                                       minimum=Decimal("1250.00"), maximum=Decimal("5000.00"))  # fmt: skip
    services.set_plan_terms(
        admin,
        plan.pk,
        in_scope=[["*", "*"]],
        service_hours_id=hours.pk,
        targets={"critical": [60, 480]},
        contact_methods=[{"kind": "phone", "value": "+39 02 1234 5678", "hours": "24/7"}],
    )
    catalog.create_support_plan(admin, organisation_id=demo.org("nuvola").pk, name="Unpublished",
                                price_model="flat_monthly", currency="EUR", amount=Decimal("99"))  # fmt: skip
    return demo.org("nuvola")


def test_the_offering_in_english(published) -> None:
    page = Client().get(f"/support/offering/{published.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Support from Nuvola Informatica S.r.l." in text
    assert "Premium" in text and "Unpublished" not in text
    assert "10% of your monthly Microsoft spend, at least €1,250.00, at most €5,000.00" in text
    assert "Monday: 09:00–18:00" in text and "Saturday" not in text
    assert "Time zone: Italy Time" in text  # the office's zone (Europe/Rome) as CLDR names it
    assert "Phone: +39 02 1234 5678 (24/7)" in text
    assert "1 business hour" in text and "8 business hours" in text


def test_an_unknown_organisation_has_no_offering(db) -> None:
    assert Client().get("/support/offering/999999/").status_code == 404


def test_the_offering_speaks_the_visitors_language(published) -> None:
    text = Client().get(f"/support/offering/{published.pk}/", HTTP_ACCEPT_LANGUAGE="it").content.decode()
    assert "Assistenza da Nuvola Informatica S.r.l." in text
    assert "Lunedì: 09:00–18:00" in text
    assert "1.250,00\xa0€" in text


def test_the_offering_in_hungarian(published) -> None:
    text = Client().get(f"/support/offering/{published.pk}/", HTTP_ACCEPT_LANGUAGE="hu").content.decode()
    assert "Nuvola Informatica S.r.l. támogatási szolgáltatásai" in text
    assert "Hétfő: 9:00–18:00" in text
    assert "legalább 1\xa0250,00\xa0EUR" in text


def test_the_offering_in_swedish(published) -> None:
    text = Client().get(f"/support/offering/{published.pk}/", HTTP_ACCEPT_LANGUAGE="sv").content.decode()
    assert "Support från Nuvola Informatica S.r.l." in text
    assert "Måndag: 09:00–18:00" in text
    assert "minst 1\xa0250,00\xa0€" in text
