"""Price rules, support plans and the exchange-rate table over the API: who may set them, conflicts, scope,
and that what is set there is what billing uses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from cspdesk.audit.models import AuditEvent
from cspdesk.billing import services
from cspdesk.billing.models import ExchangeRate
from cspdesk.catalog.models import PriceRule
from cspdesk.core.actor import Actor
from tests.billing.test_billing_run import OCT, invoice_of, make_import, make_line

SYSTEM = Actor.system("test")
JSON = "application/json"


def post(client: Any, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, body, content_type=JSON)


def test_a_billing_admin_sets_prices_over_the_api_and_billing_uses_them(demo) -> None:  # type: ignore[no-untyped-def]
    api = demo.api("nuvola.billing")
    org = demo.org("nuvola")
    bellavista = demo.customer("bellavista")
    general = post(api, "/api/v1/price-rules", {"method": "markup", "percent": "10", "effective_from": "2026-10-01"})
    assert general.status_code == 201, general.content
    assert general.json()["organisation_id"] == org.pk
    own = {"method": "markup", "percent": "4", "customer_id": bellavista.pk, "effective_from": "2026-10-01",
           "note": "framework contract"}  # fmt: skip
    special = post(api, "/api/v1/price-rules", own)
    assert special.status_code == 201

    # the same scope twice over the same days is refused, naming the rule in the way
    clash = post(api, "/api/v1/price-rules", {"method": "pass_through", "effective_from": "2026-10-15"})
    assert clash.status_code == 409 and clash.json()["code"] == "rule_conflict"
    assert str(general.json()["id"]) in clash.json()["message"]
    ended = post(api, f"/api/v1/price-rules/{general.json()['id']}/end", {"effective_to": "2026-12-31"})
    assert ended.status_code == 200 and ended.json()["effective_to"] == "2026-12-31"
    after = {"method": "pass_through", "effective_from": "2027-01-01"}
    assert post(api, "/api/v1/price-rules", after).status_code == 201

    listed = api.get("/api/v1/price-rules?in_force_on=2026-11-15").json()
    assert {r["id"] for r in listed["items"]} == {general.json()["id"], special.json()["id"]}
    assert AuditEvent.objects.filter(action="catalog.price_rule_created", organisation_id=org.pk).count() == 3

    # billing prices with them: the customer's own rule beats the organisation's default
    imp = make_import(org)
    make_line(imp, bellavista, "100.00")
    make_line(imp, demo.customer("liffey"), "100.00")
    run = services.bill(SYSTEM, OCT)
    assert invoice_of(run, bellavista).net == Decimal("104.00")
    assert invoice_of(run, demo.customer("liffey")).net == Decimal("110.00")


def test_price_rule_errors_name_the_field(demo) -> None:  # type: ignore[no-untyped-def]
    api = demo.api("nuvola.billing")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"method": "markup", "effective_from": "2026-10-01"}, "percent"),
        ({"method": "haggle", "percent": "5", "effective_from": "2026-10-01"}, "method"),
        ({"method": "markup", "percent": "5", "category": "minecraft", "effective_from": "2026-10-01"}, "category"),
        ({"method": "markup", "percent": "5", "effective_from": "2026-10-01", "effective_to": "2026-09-30"},
         "effective_to"),
        ({"method": "markup", "percent": "5", "effective_from": "2026-10-01",
          "customer_id": demo.customer("gyor").pk}, "customer_id"),  # another partner's customer
    ]  # fmt: skip
    for body, field in cases:
        r = post(api, "/api/v1/price-rules", body)
        assert r.status_code == 422, (body, r.content)
        assert r.json()["field"] == field, (body, r.json())
    assert PriceRule.objects.count() == 0


def test_who_may_set_prices(demo) -> None:  # type: ignore[no-untyped-def]
    body = {"method": "markup", "percent": "10", "effective_from": "2026-10-01"}
    for username in ("nuvola.sales", "nuvola.helpdesk", "bellavista.contabilita"):
        assert post(demo.api(username), "/api/v1/price-rules", body).status_code == 403, username
        assert post(demo.api(username), "/api/v1/exchange-rates", {"source_currency": "EUR", "target_currency": "USD",
                                                                   "rate": "1.1", "rate_date": "2026-10-31"}
                    ).status_code == 403, username  # fmt: skip
    assert demo.api("bellavista.contabilita").get("/api/v1/price-rules").status_code == 403
    post(demo.api("nuvola.billing"), "/api/v1/price-rules", body)
    # another partner does not see Nuvola's prices
    assert demo.api("fjall.billing").get("/api/v1/price-rules").json()["count"] == 0
    assert PriceRule.objects.count() == 1


def test_support_plans_are_created_and_assigned(demo) -> None:  # type: ignore[no-untyped-def]
    api = demo.api("nuvola.billing")
    premium = {"name": "Premium desk", "price_model": "percent_of_spend", "currency": "EUR", "percent": "5",
               "minimum": "50", "maximum": "500"}  # fmt: skip
    plan = post(api, "/api/v1/support-plans", premium)
    assert plan.status_code == 201, plan.content
    again = post(api, "/api/v1/support-plans", {"name": "Premium desk", "price_model": "flat_monthly",
                                                "currency": "EUR", "amount": "10"})  # fmt: skip
    assert again.status_code == 409
    bad = post(api, "/api/v1/support-plans", {"name": "x", "price_model": "flat_monthly", "currency": "EURO",
                                              "amount": "10"})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["field"] == "currency"
    customer = demo.customer("bellavista")
    assigned = post(api, f"/api/v1/customers/{customer.pk}/support-plan",
                    {"plan_id": plan.json()["id"], "effective_from": "2026-10-01"})  # fmt: skip
    assert assigned.status_code == 201 and assigned.json()["customer_id"] == customer.pk
    assert [p["name"] for p in api.get("/api/v1/support-plans").json()["items"]] == ["Premium desk"]


def test_the_exchange_rate_table(demo) -> None:  # type: ignore[no-untyped-def]
    api = demo.api("nuvola.billing")
    body = {"source_currency": "eur", "target_currency": "USD", "rate": "1.0850", "rate_date": "2026-10-30",
            "provider": "ECB"}  # fmt: skip
    made = post(api, "/api/v1/exchange-rates", body)
    assert made.status_code == 201, made.content
    assert (made.json()["source_currency"], Decimal(made.json()["rate"])) == ("EUR", Decimal("1.0850"))
    # the same day again corrects the rate rather than adding a second one
    assert post(api, "/api/v1/exchange-rates", {**body, "rate": "1.0861"}).status_code == 201
    rates = ExchangeRate.objects.filter(organisation=demo.org("nuvola"), rate_date=dt.date(2026, 10, 30))
    assert [r.rate for r in rates] == [Decimal("1.0861")]
    for bad, field in (({"source_currency": "XYZ"}, "source_currency"), ({"target_currency": "EUR"}, "target_currency"),
                       ({"rate": "0"}, "rate")):  # fmt: skip
        r = post(api, "/api/v1/exchange-rates", {**body, **bad})
        assert r.status_code == 422 and r.json()["field"] == field, (bad, r.json())
    listed = api.get("/api/v1/exchange-rates?target_currency=usd").json()
    assert [(x["rate_date"], Decimal(x["rate"])) for x in listed["items"]] == [("2026-10-30", Decimal("1.0861"))]
    assert demo.api("fjall.billing").get("/api/v1/exchange-rates").json()["count"] == 0
    assert AuditEvent.objects.filter(action="billing.exchange_rate_set").count() == 2
