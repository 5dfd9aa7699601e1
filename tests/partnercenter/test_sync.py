"""``cspdesk pc sync`` against the emulator: placement, idempotency, failures; suspension services; scoping."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cspdesk.audit.models import AuditEvent
from cspdesk.core.actor import Actor
from cspdesk.demo import world
from cspdesk.partnercenter import selectors, services, sync
from cspdesk.partnercenter.client import PartnerCenterClient, RetryPolicy
from cspdesk.partnercenter.emulator import parse_spec
from cspdesk.partnercenter.errors import ServerError
from cspdesk.partnercenter.models import StatusChangeState, Subscription, SubscriptionStatusChange
from cspdesk.tenancy.models import Customer
from tests.partnercenter.pc_fixtures import NORDMOLN, NUVOLA, emulator, sleeps  # noqa: F401

SYSTEM = Actor.system("tests")


@pytest.fixture
def pc_settings(settings, emulator):  # noqa: F811
    """Point the production configuration path at the emulator."""
    settings.PARTNER_CENTER = {
        "BASE_URL": emulator.url,
        "AUTHORITY": emulator.url,
        "AUTHORITY_USGOV": emulator.url,
        "CLIENT_ID": "",
        "CLIENT_SECRET": "",
        "REFRESH_TOKEN": "",
    }
    return settings


@pytest.fixture
def factory(pc_settings, sleeps):  # noqa: F811
    def make(org):
        return PartnerCenterClient.for_organisation(
            org, sleep=sleeps, retry=RetryPolicy(max_retries=1, backoff_base=0.01)
        )

    return make


def actions() -> Counter[str]:
    return Counter(AuditEvent.objects.values_list("action", flat=True))


def org_result(report: sync.SyncReport, key: str) -> sync.OrganisationResult:
    name = next(o.legal_name for o in world.ORGANISATIONS if o.key == key)
    return next(o for o in report.organisations if o.organisation == name)


def counts(c: sync.Counts) -> tuple[int, int, int]:
    return c.created, c.updated, c.unchanged


def test_first_sync_places_customers_and_mirrors_subscriptions(demo, factory):
    before = actions()

    report = sync.sync(SYSTEM, client_factory=factory)

    nuvola, nordmoln = org_result(report, "nuvola"), org_result(report, "nordmoln")
    assert (counts(nuvola.customers), counts(nuvola.subscriptions)) == ((1, 0, 3), (8, 0, 0))
    assert (counts(nordmoln.customers), counts(nordmoln.subscriptions)) == ((0, 0, 4), (8, 0, 0))
    assert [(u["name"], u["subscriptions"], u["reason"]) for u in nordmoln.unplaced] == [
        (
            "Hallstatt Handel GmbH",
            1,
            "reseller partner id 6999999 is not a reseller of Nordmoln Distribution AB in cspdesk",
        )
    ]
    assert nuvola.unplaced == [] and report.skipped == [] and report.ok
    assert report.recon_linked == 0

    brezza = Customer.objects.get(tenant_id=world.customer_tenant_id("brezza"))
    assert (brezza.organisation, brezza.name, brezza.city, brezza.country, brezza.locale, brezza.currency) == (
        demo.org("nuvola"),
        "Brezza Marina S.p.A.",
        "Genova",
        "IT",
        "it",
        "EUR",
    )
    assert not Customer.objects.filter(tenant_id=world.customer_tenant_id("hallstatt")).exists()

    assert Subscription.objects.count() == 16
    assert Subscription.objects.filter(customer=demo.customer("angstrom")).count() == 2
    m365 = Subscription.objects.get(customer=demo.customer("liffey"), billing_type="license")
    assert (
        m365.offer_name,
        m365.product_id,
        m365.sku_id,
        m365.quantity,
        m365.status,
        m365.billing_cycle,
        m365.term_duration,
        m365.auto_renew,
    ) == ("Microsoft 365 E3", "CFQ7TTC0LFLX", "0001", 40, "active", "annual", "P1Y", True)
    assert m365.commitment_end_date is not None and m365.etag
    gyor_m365 = Subscription.objects.get(customer=demo.customer("gyor"), billing_type="license")
    assert gyor_m365.reseller_mpn_id == "6134567"

    new = actions() - before
    assert new == Counter({"subscription.mirrored": 16, "customer.created": 1, "partnercenter.synced": 1})


def test_second_sync_is_a_no_op(demo, factory):
    sync.sync(SYSTEM, client_factory=factory)
    snapshot = list(Subscription.objects.order_by("pk").values_list("pk", "status", "quantity", "etag", "updated_at"))
    before = actions()

    report = sync.sync(SYSTEM, client_factory=factory)

    assert report.totals() == {
        "customers": {"created": 0, "updated": 0, "unchanged": 8},
        "subscriptions": {"created": 0, "updated": 0, "unchanged": 16},
    }
    assert actions() - before == Counter({"partnercenter.synced": 1})
    assert (
        list(Subscription.objects.order_by("pk").values_list("pk", "status", "quantity", "etag", "updated_at"))
        == snapshot
    )


def test_changes_in_partner_center_are_updates(demo, factory, emulator):  # noqa: F811
    sync.sync(SYSTEM, client_factory=factory)
    bellavista = str(world.customer_tenant_id("bellavista"))
    sub = next(s for s in emulator.state.subscriptions_of(NUVOLA, bellavista) if s["billingType"] == "license")
    emulator.state.patch_subscription(NUVOLA, bellavista, sub["id"], {"status": "suspended", "quantity": 10}, "")
    emulator.state.customers[bellavista]["companyProfile"]["companyName"] = "Trattoria Bellavista S.p.A."
    before = actions()

    report = sync.sync(SYSTEM, client_factory=factory)

    assert counts(org_result(report, "nuvola").subscriptions) == (0, 1, 7)
    assert counts(org_result(report, "nuvola").customers) == (0, 1, 3)
    mirrored = Subscription.objects.get(pc_subscription_id=sub["id"])
    assert (mirrored.status, mirrored.quantity, mirrored.etag) == ("suspended", 10, sub["attributes"]["etag"])
    assert demo.customer("bellavista").name == "Trattoria Bellavista S.p.A."
    assert actions() - before == Counter(
        {"subscription.updated_from_partner_center": 1, "customer.updated": 1, "partnercenter.synced": 1}
    )
    event = AuditEvent.objects.filter(action="subscription.updated_from_partner_center").get()
    assert (event.before["status"], event.after["status"]) == ("active", "suspended")
    assert (event.before["quantity"], event.after["quantity"]) == (12, 10)


def test_new_customer_of_a_provider_goes_to_the_reseller_of_its_subscriptions(demo, factory, emulator):  # noqa: F811
    tid, sid = "0b5e3c1e-5b7a-4c8e-9a51-0c5d2a7e9f11", "0b5e3c1e-5b7a-4c8e-9a51-0c5d2a7e9f12"
    emulator.state._add_customer(
        tid,
        "nordmoln",
        name="Kiruna Gruv AB",
        domain="kirunagruv.onmicrosoft.com",
        address="Gruvvägen 1",
        postal_code="981 31",
        city="Kiruna",
        country="SE",
        culture="sv-SE",
        email="ekonomi@kiruna.example",
    )
    emulator.state._add_subscription(
        tid,
        sid,
        "CFQ7TTC0LDPB:0001:CFQ7TTC0JMQS",
        "Microsoft 365 Business Standard",
        5,
        "license",
        "monthly",
        "P1M",
        "6245678",
    )  # Atlântico's MPN id

    report = sync.sync(SYSTEM, client_factory=factory)

    kiruna = Customer.objects.get(tenant_id=tid)
    assert (kiruna.organisation, kiruna.locale, kiruna.currency, kiruna.billing_emails) == (
        demo.org("atlantico"),
        "sv",
        "EUR",
        ["ekonomi@kiruna.example"],
    )
    assert counts(org_result(report, "nordmoln").customers) == (1, 0, 4)
    assert Subscription.objects.get(pc_subscription_id=sid).customer == kiruna


def test_customer_without_reseller_under_a_provider_is_unplaced(demo, factory, emulator):  # noqa: F811
    tid = "0b5e3c1e-5b7a-4c8e-9a51-0c5d2a7e9f21"
    emulator.state._add_customer(
        tid,
        "nordmoln",
        name="Direkt AB",
        domain="direkt.onmicrosoft.com",
        address="x",
        postal_code="1",
        city="Luleå",
        country="SE",
        culture="sv-SE",
        email="a@b.example",
    )

    report = sync.sync(SYSTEM, client_factory=factory)

    assert [(u["name"], u["reason"]) for u in org_result(report, "nordmoln").unplaced] == [
        (
            "Hallstatt Handel GmbH",
            "reseller partner id 6999999 is not a reseller of Nordmoln Distribution AB in cspdesk",
        ),
        ("Direkt AB", "no reseller partner id on its subscriptions"),
    ]
    assert not Customer.objects.filter(tenant_id=tid).exists()


def test_a_failing_organisation_does_not_stop_the_others(demo, factory, emulator):  # noqa: F811
    emulator.server.faults.add(parse_spec("customers:500:count=2"))  # Nuvola's call and its one retry

    report = sync.sync(SYSTEM, client_factory=factory)

    nuvola, nordmoln = org_result(report, "nuvola"), org_result(report, "nordmoln")
    assert not report.ok
    assert nuvola.error is not None
    assert (nuvola.error["code"], nuvola.error["http_status"], nuvola.error["attempts"]) == ("pc_server_error", 500, 2)
    assert nuvola.error["ms_request_id"] == emulator.server.calls_to("customers")[0].request_id
    assert counts(nuvola.subscriptions) == (0, 0, 0)
    assert nordmoln.error is None
    assert counts(nordmoln.subscriptions) == (8, 0, 0)


def test_organisations_without_credentials_are_skipped(demo, settings):
    settings.PARTNER_CENTER = {
        "BASE_URL": "https://api.partnercenter.microsoft.com",
        "AUTHORITY": "https://login.microsoftonline.com",
        "CLIENT_ID": "",
        "CLIENT_SECRET": "",
        "REFRESH_TOKEN": "",
    }
    before = actions()

    report = sync.sync(SYSTEM)

    assert report.organisations == []
    assert [s["organisation"] for s in report.skipped] == ["Nuvola Informatica S.r.l.", "Nordmoln Distribution AB"]
    assert actions() - before == Counter({"partnercenter.synced": 1})


def test_command_prints_exactly_one_json_document(demo, pc_settings):
    out = io.StringIO()

    call_command("pc", "sync", "--json", stdout=out)

    data = json.loads(out.getvalue())
    assert data["ok"] is True
    assert data["totals"]["subscriptions"] == {"created": 16, "updated": 0, "unchanged": 0}
    assert data["unplaced"] == 1
    assert [o["organisation"] for o in data["organisations"]] == [
        "Nuvola Informatica S.r.l.",
        "Nordmoln Distribution AB",
    ]


def test_command_for_one_organisation_as_text(demo, pc_settings):
    out = io.StringIO()

    call_command("pc", "sync", "--organisation", str(demo.org("nuvola").pk), stdout=out)

    assert out.getvalue().splitlines() == [
        "Nuvola Informatica S.r.l.:",
        "  customers:     1 created, 0 updated, 3 unchanged",
        "  subscriptions: 8 created, 0 updated, 0 unchanged",
        "recon charge lines linked to customers: 0",
        "total: customers 1 created, 0 updated, 3 unchanged; subscriptions 8 created, 0 updated, 0 unchanged; "
        "0 unplaced",
    ]


def test_command_refuses_a_reseller(demo, pc_settings):
    with pytest.raises(CommandError, match="no Partner Center tenant of its own"):
        call_command("pc", "sync", "--organisation", str(demo.org("fjall").pk), stdout=io.StringIO())


def test_command_fails_after_reporting_when_partner_center_throttles(demo, pc_settings, emulator):  # noqa: F811
    emulator.server.faults.add(parse_spec("customers:429:p=1,retry_after=600"))
    out = io.StringIO()

    with pytest.raises(CommandError, match="finished with errors"):
        call_command("pc", "sync", "--json", stdout=out)

    data = json.loads(out.getvalue())
    assert [o["error"]["code"] for o in data["organisations"]] == ["pc_throttled", "pc_throttled"]


def test_suspend_and_reactivate_through_the_service(demo, factory, emulator):  # noqa: F811
    sync.sync(SYSTEM, client_factory=factory)
    sub = Subscription.objects.get(customer=demo.customer("liffey"), billing_type="license")
    client = factory(demo.org("nuvola"))
    before = actions()

    change = services.suspend_subscription(
        SYSTEM, sub.pk, client, reason="invoice NUV-7 overdue", idempotency_key=f"case:1:suspend:{sub.pk}"
    )
    again = services.suspend_subscription(
        SYSTEM, sub.pk, client, reason="invoice NUV-7 overdue", idempotency_key=f"case:1:suspend:{sub.pk}"
    )

    sub.refresh_from_db()
    remote = emulator.state.subscription(NUVOLA, str(sub.customer.tenant_id), str(sub.pc_subscription_id))
    assert again.pk == change.pk and change.state == StatusChangeState.SUCCEEDED
    assert (sub.status, remote["status"], sub.etag) == ("suspended", "suspended", remote["attributes"]["etag"])
    patches = emulator.server.calls_to("subscription", "PATCH")
    assert [c.request_id for c in patches] == [str(change.ms_request_id)]

    services.reactivate_subscription(SYSTEM, sub.pk, client, reason="paid", idempotency_key=f"case:1:react:{sub.pk}")

    sub.refresh_from_db()
    assert sub.status == "active"
    assert actions() - before == Counter({"subscription.suspended": 1, "subscription.reactivated": 1})
    assert SubscriptionStatusChange.objects.count() == 2


def test_failed_suspension_is_recorded(demo, factory, emulator):  # noqa: F811
    sync.sync(SYSTEM, client_factory=factory)
    sub = Subscription.objects.get(customer=demo.customer("liffey"), billing_type="license")
    emulator.server.faults.add(parse_spec("subscription:503:p=1,method=PATCH"))

    with pytest.raises(ServerError):
        services.suspend_subscription(
            SYSTEM, sub.pk, factory(demo.org("nuvola")), reason="overdue", idempotency_key="case:2"
        )

    change = SubscriptionStatusChange.objects.get(idempotency_key="case:2")
    sub.refresh_from_db()
    assert (change.state, change.error_code, sub.status) == ("failed", "ServiceUnavailable", "active")
    assert AuditEvent.objects.filter(action="subscription.suspend_failed").count() == 1


@pytest.mark.parametrize(
    ("username", "customers"),
    [
        ("nuvola.admin", {"bellavista", "liffey", "prairie", "brezza"}),
        ("fjall.billing", {"angstrom", "gyor"}),
        ("nordmoln.sales", {"angstrom", "gyor", "padaria", "douro"}),
        ("padaria.admin", {"padaria"}),
        ("nuvola.users", set()),
    ],
    ids=["direct-partner", "reseller", "provider-reads-resellers", "customer", "no-subscription-permission"],
)
def test_subscriptions_are_scoped_by_actor(demo, factory, username, customers):
    sync.sync(SYSTEM, client_factory=factory)
    keys = {str(world.customer_tenant_id(k)): k for k in {c.key for c in world.CUSTOMERS} | {"brezza"}}

    seen = {keys[str(s.customer.tenant_id)] for s in selectors.subscriptions_for(demo.actor(username))}

    assert seen == customers
