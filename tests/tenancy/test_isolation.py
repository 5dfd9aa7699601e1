"""Tenant isolation through the API and the pages: every "no" of the scope table in docs/roles.md."""

from __future__ import annotations

import json

import pytest

from cspdesk.audit.models import AuditEvent
from cspdesk.tenancy.models import Customer
from tests.fixtures import DemoWorld

pytestmark = pytest.mark.django_db


def _ids(response) -> set[str]:
    return {item["name"] for item in response.json()["items"]}


def test_reseller_staff_list_only_their_own_customers(demo: DemoWorld) -> None:
    response = demo.api("fjall.helpdesk").get("/api/v1/customers")
    assert response.status_code == 200
    assert _ids(response) == {"Ångström Bygg AB", "Győri Gépgyár Kft."}


def test_reseller_cannot_read_another_resellers_customer_by_id_through_the_api(demo: DemoWorld) -> None:
    other = demo.customer("padaria")  # billed by Atlântico, not Fjällsystem
    for username in ("fjall.admin", "fjall.users", "fjall.helpdesk", "fjall.billing", "fjall.sales"):
        response = demo.api(username).get(f"/api/v1/customers/{other.pk}")
        assert response.status_code == 404, username
        assert response.json()["code"] == "not_found"


def test_reseller_cannot_read_another_resellers_customer_through_a_page(demo: DemoWorld) -> None:
    other = demo.customer("padaria")
    own = demo.customer("angstrom")
    browser = demo.browser("fjall.admin")
    assert browser.get(f"/console/customers/{other.pk}/").status_code == 404
    page = browser.get(f"/console/customers/{own.pk}/")
    assert page.status_code == 200
    assert "Ångström Bygg AB" in page.content.decode()


def test_reseller_cannot_change_another_resellers_customer(demo: DemoWorld) -> None:
    other = demo.customer("padaria")
    response = demo.api("fjall.admin").patch(
        f"/api/v1/customers/{other.pk}", data={"name": "Hijacked"}, content_type="application/json"
    )
    assert response.status_code == 404
    assert Customer.objects.get(pk=other.pk).name == "Padaria São João, Lda."


def test_direct_partner_cannot_see_the_indirect_world(demo: DemoWorld) -> None:
    response = demo.api("nuvola.admin").get("/api/v1/customers")
    assert _ids(response) == {"Trattoria Bellavista S.r.l.", "Liffey Analytics Ltd", "Prairie Robotics Inc."}
    angstrom = demo.customer("angstrom")
    assert demo.api("nuvola.admin").get(f"/api/v1/customers/{angstrom.pk}").status_code == 404
    orgs = demo.api("nuvola.admin").get("/api/v1/organisations").json()["items"]
    assert [o["legal_name"] for o in orgs] == ["Nuvola Informatica S.r.l."]


def test_indirect_provider_reads_resellers_customers_but_cannot_change_them(demo: DemoWorld) -> None:
    client = demo.api("nordmoln.admin")
    listed = _ids(client.get("/api/v1/customers"))
    assert listed == {"Ångström Bygg AB", "Győri Gépgyár Kft.", "Padaria São João, Lda.", "Vinhos do Douro S.A."}
    gyor = demo.customer("gyor")
    assert client.get(f"/api/v1/customers/{gyor.pk}").status_code == 200
    before = AuditEvent.objects.count()
    response = client.patch(f"/api/v1/customers/{gyor.pk}", data={"name": "X"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "read_only"
    assert Customer.objects.get(pk=gyor.pk).name == "Győri Gépgyár Kft."
    assert AuditEvent.objects.count() == before


def test_indirect_provider_sees_its_resellers(demo: DemoWorld) -> None:
    orgs = demo.api("nordmoln.billing").get("/api/v1/organisations").json()["items"]
    assert sorted(o["legal_name"] for o in orgs) == [
        "Atlântico Cloud, Lda.",
        "Fjällsystem AB",
        "Nordmoln Distribution AB",
    ]


def test_reseller_does_not_see_its_provider_or_sibling(demo: DemoWorld) -> None:
    client = demo.api("atlantico.admin")
    orgs = client.get("/api/v1/organisations").json()["items"]
    assert [o["legal_name"] for o in orgs] == ["Atlântico Cloud, Lda."]
    assert client.get(f"/api/v1/organisations/{demo.org('fjall').pk}").status_code == 404
    assert client.get(f"/api/v1/organisations/{demo.org('nordmoln').pk}").status_code == 404


@pytest.mark.parametrize("username", ["bellavista.admin", "bellavista.contabilita"])
def test_customer_user_reads_only_its_own_customer(demo: DemoWorld, username: str) -> None:
    client = demo.api(username)
    assert _ids(client.get("/api/v1/customers")) == {"Trattoria Bellavista S.r.l."}
    for other in ("liffey", "prairie", "angstrom", "padaria"):
        response = client.get(f"/api/v1/customers/{demo.customer(other).pk}")
        assert response.status_code == 404, other
    browser = demo.browser(username)
    assert browser.get(f"/console/customers/{demo.customer('liffey').pk}/").status_code == 404
    assert browser.get(f"/console/customers/{demo.customer('bellavista').pk}/").status_code == 200


def test_customer_user_sees_no_organisations_and_no_staff(demo: DemoWorld) -> None:
    client = demo.api("angstrom.user")
    assert client.get("/api/v1/organisations").status_code == 403
    assert client.get("/api/v1/users").status_code == 403
    assert client.get(f"/api/v1/organisations/{demo.org('fjall').pk}").status_code == 404


def test_customer_admin_sees_only_its_customers_users(demo: DemoWorld) -> None:
    users = demo.api("angstrom.admin").get("/api/v1/users").json()["items"]
    assert sorted(u["username"] for u in users) == ["angstrom.admin", "angstrom.user"]


def test_customer_admin_cannot_create_a_user_for_another_customer(demo: DemoWorld) -> None:
    response = demo.api("angstrom.admin").post(
        "/api/v1/users",
        data=json.dumps(
            {
                "username": "intruder",
                "password": "Very-long-passw0rd!",
                "roles": ["customer_user"],
                "customer_id": demo.customer("gyor").pk,
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 404
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="intruder").exists()


def test_reseller_admin_cannot_create_staff_in_another_organisation(demo: DemoWorld) -> None:
    response = demo.api("fjall.users").post(
        "/api/v1/users",
        data=json.dumps(
            {
                "username": "mole",
                "password": "Very-long-passw0rd!",
                "roles": ["helpdesk_agent"],
                "organisation_id": demo.org("atlantico").pk,
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 404
