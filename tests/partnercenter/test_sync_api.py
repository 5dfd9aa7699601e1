"""Mirrored subscriptions over /api/v1/subscriptions, scoped by the caller."""

from __future__ import annotations

import pytest

from cspdesk.core.actor import Actor
from cspdesk.partnercenter import sync
from cspdesk.partnercenter.models import Subscription
from tests.partnercenter.pc_fixtures import emulator  # noqa: F401


@pytest.fixture
def synced(demo, settings, emulator):  # noqa: F811
    settings.PARTNER_CENTER = {
        "BASE_URL": emulator.url,
        "AUTHORITY": emulator.url,
        "CLIENT_ID": "",
        "CLIENT_SECRET": "",
        "REFRESH_TOKEN": "",
    }
    sync.sync(Actor.system("tests"))
    return demo


def test_partner_lists_its_subscriptions(synced):
    response = synced.api("nuvola.billing").get("/api/v1/subscriptions", {"limit": 100})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 8
    assert {i["customer_id"] for i in body["items"]} == {
        synced.customer(k).pk for k in ("bellavista", "liffey", "prairie")
    } | {Subscription.objects.get(offer_name="Microsoft 365 Business Standard", quantity=9).customer_id}


def test_customer_filter_and_detail(synced):
    liffey = synced.customer("liffey")
    client = synced.api("liffey.admin")

    listed = client.get("/api/v1/subscriptions", {"customer_id": liffey.pk}).json()
    detail = client.get(f"/api/v1/subscriptions/{listed['items'][0]['id']}").json()

    assert [(i["offer_name"], i["quantity"]) for i in listed["items"]] == [("Microsoft 365 E3", 40), ("Azure plan", 1)]
    assert detail["status"] == "active" and detail["term_duration"] == "P1Y"


def test_other_tenants_subscription_is_not_found(synced):
    foreign = Subscription.objects.filter(customer=synced.customer("bellavista")).first()

    response = synced.api("fjall.admin").get(f"/api/v1/subscriptions/{foreign.pk}")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_role_without_subscription_permission_is_forbidden(synced):
    response = synced.api("nuvola.users").get("/api/v1/subscriptions")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
