"""The API's contract: authentication, tokens stored hashed, JSON errors with a stable code."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from cspdesk.tenancy.models import ApiToken, Customer
from tests.fixtures import DemoWorld

pytestmark = pytest.mark.django_db


def test_openapi_document_is_served() -> None:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    assert {
        "/api/v1/customers",
        "/api/v1/customers/{customer_id}",
        "/api/v1/organisations",
        "/api/v1/users",
        "/api/v1/tokens",
    } <= set(spec["paths"])


def test_anonymous_requests_get_a_json_401() -> None:
    response = Client().get("/api/v1/customers")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_tokens_are_stored_hashed_and_can_be_revoked(demo: DemoWorld) -> None:
    client = demo.api("nuvola.admin")
    created = client.post("/api/v1/tokens", data={"name": "erp"}, content_type="application/json")
    assert created.status_code == 201
    secret = created.json()["token"]
    row = ApiToken.objects.get(pk=created.json()["id"])
    assert secret not in (row.digest, row.prefix) and len(row.digest) == 64
    assert not ApiToken.objects.filter(digest=secret).exists()
    fresh = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert fresh.get("/api/v1/me").json()["username"] == "nuvola.admin"
    assert client.delete(f"/api/v1/tokens/{row.pk}").status_code == 200
    assert fresh.get("/api/v1/me").status_code == 401


def test_a_user_cannot_revoke_someone_elses_token(demo: DemoWorld) -> None:
    theirs = ApiToken.objects.filter(user__username="nuvola.billing", revoked_at__isnull=True).get()
    assert demo.api("nuvola.admin").delete(f"/api/v1/tokens/{theirs.pk}").status_code == 404
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None


def test_deactivating_a_user_revokes_their_tokens(demo: DemoWorld) -> None:
    target = demo.actor("nuvola.sales").user_id
    assert (
        demo.api("nuvola.users")
        .patch(f"/api/v1/users/{target}", data={"is_active": False}, content_type="application/json")
        .status_code
        == 200
    )
    assert demo.api("nuvola.sales").get("/api/v1/me").status_code == 401


def test_session_writes_need_csrf(demo: DemoWorld) -> None:
    client = Client(enforce_csrf_checks=True)
    client.login(username="nuvola.admin", password=demo.logins["nuvola.admin"].password)
    customer = demo.customer("liffey")
    response = client.patch(f"/api/v1/customers/{customer.pk}", data={"name": "X"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert client.get(f"/api/v1/customers/{customer.pk}").status_code == 200


@pytest.mark.parametrize(
    ("patch", "field", "code"),
    [
        ({"country": "XX"}, "country", "validation_error"),
        ({"currency": "EURO"}, "currency", "validation_error"),
        ({"locale": "de"}, "locale", "validation_error"),
        ({"vat_id": "IT01234567890"}, "vat_id", "validation_error"),
        ({"billing_emails": ["not-an-address"]}, "billing_emails[0]", "validation_error"),
        ({"payment_terms_days": -3}, "payment_terms_days", "validation_error"),
        ({"status": "deleted"}, "status", "validation_error"),
    ],
)
def test_bad_fields_are_named_in_the_error(demo: DemoWorld, patch: dict, field: str, code: str) -> None:
    customer = demo.customer("liffey")
    response = demo.api("nuvola.admin").patch(
        f"/api/v1/customers/{customer.pk}", data=json.dumps(patch), content_type="application/json"
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == code
    assert body["field"] == field
    assert body["message"]
    assert Customer.objects.get(pk=customer.pk).name == "Liffey Analytics Ltd"


def test_create_customer_and_duplicate_tenant_is_a_conflict(demo: DemoWorld) -> None:
    payload = {
        "organisation_id": demo.org("atlantico").pk,
        "tenant_id": "0c9a7a4e-7d31-4f0e-9d1c-3f0a2b6c8e11",
        "default_domain": "lusoframe.onmicrosoft.com",
        "name": "Lusoframe, Lda.",
        "address_line1": "Rua Augusta 1",
        "city": "Lisboa",
        "country": "pt",
        "vat_id": "PT 501 964 843",
        "billing_emails": ["ap@lusoframe.example"],
    }
    client = demo.api("atlantico.sales")
    created = client.post("/api/v1/customers", data=json.dumps(payload), content_type="application/json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["country"], body["currency"], body["locale"], body["vat_id"]) == ("PT", "EUR", "pt-pt", "PT501964843")
    again = client.post("/api/v1/customers", data=json.dumps(payload), content_type="application/json")
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate"


def test_a_provider_cannot_create_customers_for_its_reseller(demo: DemoWorld) -> None:
    payload = {
        "organisation_id": demo.org("fjall").pk,
        "tenant_id": "1c9a7a4e-7d31-4f0e-9d1c-3f0a2b6c8e11",
        "default_domain": "x.onmicrosoft.com",
        "name": "X AB",
        "address_line1": "Gatan 1",
        "city": "Umeå",
        "country": "SE",
    }
    response = demo.api("nordmoln.admin").post(
        "/api/v1/customers", data=json.dumps(payload), content_type="application/json"
    )
    assert response.status_code == 404
    assert not Customer.objects.filter(name="X AB").exists()


def test_provider_creates_a_reseller_but_not_a_top_level_partner(demo: DemoWorld) -> None:
    base = {
        "legal_name": "Suomen Pilvi Oy",
        "address_line1": "Mannerheimintie 1",
        "city": "Helsinki",
        "country": "FI",
        "billing_currency": "EUR",
        "invoice_series": "SPO",
    }
    client = demo.api("nordmoln.admin")
    top = client.post(
        "/api/v1/organisations",
        data=json.dumps({**base, "kind": "direct_bill_partner"}),
        content_type="application/json",
    )
    assert top.status_code == 403
    reseller = client.post(
        "/api/v1/organisations",
        data=json.dumps({**base, "kind": "indirect_reseller", "parent_id": demo.org("nordmoln").pk}),
        content_type="application/json",
    )
    assert reseller.status_code == 201, reseller.json()
    assert reseller.json()["support_vehicles"] == ["commercial"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("offset=99999999999999999999", "offset"), ("offset=-1", "offset"), ("limit=0", "limit"), ("limit=501", "limit")],
)
def test_out_of_range_paging_is_a_named_422_not_a_server_error(demo: DemoWorld, query: str, field: str) -> None:
    response = demo.api("nuvola.admin").get(f"/api/v1/organisations?{query}")
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_paging_walks_every_item_once(demo: DemoWorld) -> None:
    api = demo.api("nuvola.admin")
    everything = api.get("/api/v1/customers?limit=500").json()
    seen = []
    for offset in range(0, everything["count"], 2):
        seen += [c["id"] for c in api.get(f"/api/v1/customers?limit=2&offset={offset}").json()["items"]]
    assert seen == [c["id"] for c in everything["items"]]
    assert len(seen) == everything["count"] > 2


@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v1/mail/inbound", "/api/v1/customers"])
def test_an_anonymous_write_is_a_401_not_a_csrf_failure(path: str) -> None:
    response = Client(enforce_csrf_checks=True).post(path, data=b"{}", content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(
    ("patch", "field"),
    [({"bank_iban": "IT60X0542811101000000123457"}, "bank_iban"), ({"bank_bic": "NOTABIC"}, "bank_bic")],
)
def test_bank_details_are_checked_before_they_reach_an_invoice(demo: DemoWorld, patch: dict, field: str) -> None:
    org = demo.org("nuvola")
    api = demo.api("nuvola.admin")
    response = api.patch(f"/api/v1/organisations/{org.pk}", data=json.dumps(patch), content_type="application/json")
    assert response.status_code == 422
    assert response.json()["field"] == field
    good = {"bank_iban": "IT60 X054 2811 1010 0000 0123 456", "bank_bic": "BPMOIT22XXX"}
    response = api.patch(f"/api/v1/organisations/{org.pk}", data=json.dumps(good), content_type="application/json")
    assert response.status_code == 200, response.content
    assert (response.json()["bank_iban"], response.json()["bank_bic"]) == ("IT60X0542811101000000123456", "BPMOIT22XXX")
