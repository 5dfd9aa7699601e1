"""The real Partner Center client against the emulator on 127.0.0.1: retries, paging, errors, headers."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from cspdesk.partnercenter import auth
from cspdesk.partnercenter.client import PartnerCenterClient, RetryPolicy, parse_retry_after
from cspdesk.partnercenter.emulator import EmulatorConfig, parse_spec, start_in_thread
from cspdesk.partnercenter.errors import (
    AuthError,
    BadRequest,
    ConflictError,
    NotFound,
    PartnerCenterError,
    ServerError,
    Throttled,
    TransportError,
)
from cspdesk.tenancy.models import Cloud, Organisation
from tests.partnercenter.pc_fixtures import (  # noqa: F401
    BELLAVISTA,
    NORDMOLN,
    NUVOLA,
    emulator,
    make_client,
    sleeps,
)


def test_customers_are_paged_with_the_continuation_token(emulator, make_client):  # noqa: F811
    client = make_client(NORDMOLN)

    names = [c["companyProfile"]["companyName"] for c in client.list_customers(size=2)]

    assert names == [
        "Ångström Bygg AB",
        "Győri Gépgyár Kft.",
        "Padaria São João, Lda.",
        "Vinhos do Douro S.A.",
        "Hallstatt Handel GmbH",
    ]
    calls = emulator.server.calls_to("customers")
    assert [c.status for c in calls] == [200, 200, 200]
    assert ["seekOperation=Next" in c.path for c in calls] == [False, True, True]
    assert len({c.request_id for c in calls}) == 3  # three logical calls, three request ids


def test_line_items_are_paged_until_done(emulator, make_client):  # noqa: F811
    client = make_client(NUVOLA)
    invoice = next(iter(client.list_invoices()))
    expected = emulator.state.line_items[(NUVOLA, invoice["id"], "usagelineitems")]

    items = list(
        client.list_invoice_line_items(invoice["id"], line_item_type="usagelineitems", currency="EUR", size=10)
    )

    assert len(expected) == 27  # 3 Azure plans x 3 days x 3 meters
    assert [i["meterName"] for i in items] == [e["meterName"] for e in expected]
    assert len(emulator.server.calls_to("invoice_lineitems")) == 3  # 10 + 10 + 7
    assert all(i["attributes"]["objectType"] == "DailyRatedUsageLineItem" for i in items)


def test_money_arrives_as_decimal(make_client):  # noqa: F811
    client = make_client(NUVOLA)
    invoice = next(iter(client.list_invoices()))
    lines = list(client.list_invoice_line_items(invoice["id"]))

    assert isinstance(invoice["totalCharges"], Decimal)
    assert {type(li["pcToBCExchangeRate"]) for li in lines} == {Decimal}
    assert [(li["skuName"], li["quantity"], li["subtotal"]) for li in lines[:2]] == [
        ("Microsoft 365 Business Premium", 12, Decimal("243.24")),  # ROUNDDOWN(22.00 * 0.9215, 2) * 12
        ("Microsoft 365 E3", 40, Decimal("1326.80")),
    ]


def test_429_is_retried_after_retry_after_with_the_same_request_id(emulator, make_client, sleeps):  # noqa: F811
    emulator.server.faults.add(parse_spec("customer:429:count=2,retry_after=7"))
    client = make_client(NUVOLA)

    customer = client.get_customer(BELLAVISTA)

    assert customer["companyProfile"]["companyName"] == "Trattoria Bellavista S.r.l."
    calls = emulator.server.calls_to("customer")
    assert [c.status for c in calls] == [429, 429, 200]
    assert len({c.request_id for c in calls}) == 1
    assert {c.correlation_id for c in calls} == {client.correlation_id}
    assert len(sleeps.waits) == 2 and all(w >= 7 for w in sleeps.waits)


def test_429_retry_after_is_really_waited(emulator, make_client):  # noqa: F811
    emulator.server.faults.add(parse_spec("customer:429:count=1,retry_after=1"))
    client = make_client(NUVOLA, sleep=time.sleep)

    started = time.monotonic()
    client.get_customer(BELLAVISTA)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 5.0
    assert [c.status for c in emulator.server.calls_to("customer")] == [429, 200]


def test_retry_after_longer_than_allowed_fails_at_once(emulator, make_client, sleeps):  # noqa: F811
    emulator.server.faults.add(parse_spec("customer:429:count=1,retry_after=300"))
    client = make_client(NUVOLA)

    with pytest.raises(Throttled) as caught:
        client.get_customer(BELLAVISTA)

    assert caught.value.retry_after == 300
    assert caught.value.ms_code == "429"
    assert "Rate limit is exceeded" in caught.value.ms_description
    assert sleeps.waits == []


def test_503_then_success(emulator, make_client, sleeps):  # noqa: F811
    emulator.server.faults.add(parse_spec("subscriptions:503:count=1,retry_after=2"))
    client = make_client(NUVOLA)

    subs = list(client.list_subscriptions(BELLAVISTA))

    assert [s["offerName"] for s in subs] == ["Microsoft 365 Business Premium", "Azure plan"]
    assert [c.status for c in emulator.server.calls_to("subscriptions")] == [503, 200]
    assert len(sleeps.waits) == 1 and sleeps.waits[0] >= 2


def test_persistent_500_raises_server_error_with_support_ids(emulator, make_client, sleeps):  # noqa: F811
    emulator.server.faults.add(parse_spec("customer:500:p=1"))
    client = make_client(NUVOLA, retry=RetryPolicy(max_retries=2, backoff_base=0.01))

    with pytest.raises(ServerError) as caught:
        client.get_customer(BELLAVISTA)

    calls = emulator.server.calls_to("customer")
    error = caught.value
    assert len(calls) == 3
    assert error.attempts == 3
    assert error.http_status == 500
    assert error.ms_code == "InternalServerError"
    assert error.request_id == calls[0].request_id
    assert error.correlation_id == client.correlation_id
    assert error.support_details()["ms_request_id"] == calls[0].request_id
    assert len(sleeps.waits) == 2


def test_dropped_connection_is_retried(emulator, make_client, sleeps):  # noqa: F811
    emulator.server.faults.add(parse_spec("customer:drop:count=1"))
    client = make_client(NUVOLA)

    customer = client.get_customer(BELLAVISTA)

    assert customer["id"] == BELLAVISTA
    calls = emulator.server.calls_to("customer")
    assert [c.fault for c in calls] == ["drop", ""]
    assert len({c.request_id for c in calls}) == 1
    assert len(sleeps.waits) == 1


def test_connection_dropped_every_time_raises_transport_error(emulator, make_client):  # noqa: F811
    emulator.server.faults.add(parse_spec("customer:drop:p=1"))
    client = make_client(NUVOLA)

    with pytest.raises(TransportError) as caught:
        client.get_customer(BELLAVISTA)

    assert caught.value.attempts == 4
    assert caught.value.request_id == emulator.server.calls_to("customer")[0].request_id
    assert len(emulator.server.calls_to("customer")) == 4


def test_slow_answer_hits_the_read_timeout_and_is_retried(emulator, make_client):  # noqa: F811
    emulator.server.faults.add(parse_spec("customer:slow:count=1,delay=1.5"))
    client = make_client(NUVOLA, read_timeout=0.3)

    customer = client.get_customer(BELLAVISTA)

    assert customer["id"] == BELLAVISTA
    assert [c.fault for c in emulator.server.calls_to("customer")] == ["slow", ""]


def test_unreachable_partner_center_raises_transport_error(sleeps):  # noqa: F811
    emu = start_in_thread()
    url = emu.url
    tokens = auth.token_provider(url, auth.Credentials(NUVOLA, "id", "secret"))
    tokens.access_token()
    emu.stop()  # nothing listens on the port any more
    client = PartnerCenterClient(url, tokens, sleep=sleeps, retry=RetryPolicy(max_retries=1, backoff_base=0.01))

    with pytest.raises(TransportError) as caught:
        client.get_customer(BELLAVISTA)

    assert caught.value.attempts == 2
    client.close()


def test_not_found_is_not_retried(emulator, make_client, sleeps):  # noqa: F811
    client = make_client(NORDMOLN)

    with pytest.raises(NotFound) as caught:
        client.get_customer(BELLAVISTA)  # Nuvola's customer: not visible to Nordmoln

    assert caught.value.ms_code == "600026"
    assert caught.value.http_status == 404
    assert len(emulator.server.calls_to("customer")) == 1
    assert sleeps.waits == []


def test_stale_etag_is_a_conflict(emulator, make_client):  # noqa: F811
    client = make_client(NUVOLA)
    sub = next(iter(client.list_subscriptions(BELLAVISTA)))
    client.suspend_subscription(BELLAVISTA, sub["id"])

    with pytest.raises(ConflictError) as caught:
        client.update_subscription(BELLAVISTA, {**sub, "status": "active"})  # the etag read before the change

    assert caught.value.http_status == 412
    assert caught.value.ms_code == "PreconditionFailed"
    assert client.get_subscription(BELLAVISTA, sub["id"])["status"] == "suspended"


def test_refused_client_secret_is_an_auth_error():
    emu = start_in_thread(config=EmulatorConfig(client_secret="the-right-one"))
    try:
        tokens = auth.token_provider(emu.url, auth.Credentials(NUVOLA, "id", "a-wrong-one"))
        client = PartnerCenterClient(emu.url, tokens)
        with pytest.raises(AuthError) as caught:
            client.get_customer(BELLAVISTA)
        assert caught.value.ms_code == "invalid_client"
        assert emu.server.calls_to("customer") == []
        client.close()
    finally:
        emu.stop()


def test_expired_token_is_renewed_once(emulator, make_client):  # noqa: F811
    client = make_client(NUVOLA)
    client.get_customer(BELLAVISTA)
    emulator.server.tokens.clear()  # every issued token is now unknown: 401

    client.get_customer(BELLAVISTA)

    assert [c.status for c in emulator.server.calls_to("customer")] == [200, 401, 200]
    assert len(emulator.server.calls_to("token")) == 2


def test_bad_request_is_not_retried(emulator, make_client, sleeps):  # noqa: F811
    client = make_client(NUVOLA)

    with pytest.raises(BadRequest) as caught:
        list(client.list_unbilled_line_items(currency="", line_item_type="usagelineitems"))

    assert caught.value.ms_code == "InvalidInput"
    assert sleeps.waits == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
    ids=["seconds", "fraction", "negative", "empty", "absent", "junk", "past-http-date"],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header) == expected


def test_backoff_is_full_jitter_within_the_cap():
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=4.0)
    rng = random.Random(1)

    waits = [policy.backoff(attempt, rng) for attempt in range(8) for _ in range(50)]

    assert all(0.0 <= w <= 4.0 for w in waits)
    assert max(policy.backoff(0, rng) for _ in range(200)) <= 0.5


@pytest.mark.parametrize(
    ("authority", "provider"),
    [
        ("https://login.microsoftonline.com", auth.MsalTokenProvider),
        ("https://login.microsoftonline.us", auth.MsalTokenProvider),
        ("http://127.0.0.1:8765", auth.LoopbackTokenProvider),
        ("http://localhost:8765", auth.LoopbackTokenProvider),
    ],
    ids=["commercial", "usgov", "loopback-ip", "localhost"],
)
def test_token_provider_follows_the_authority(authority, provider):
    assert isinstance(auth.token_provider(authority, auth.Credentials(NUVOLA, "id", "s")), provider)


def test_plain_http_authority_elsewhere_is_refused():
    with pytest.raises(PartnerCenterError) as caught:
        auth.token_provider("http://login.example.net", auth.Credentials(NUVOLA, "id", "s"))
    assert caught.value.code == "pc_misconfigured"


@pytest.mark.parametrize(
    ("cloud", "authority"),
    [(Cloud.COMMERCIAL, "https://login.microsoftonline.com"), (Cloud.USGOV, "https://login.microsoftonline.us")],
    ids=["commercial", "usgov"],
)
def test_organisation_cloud_picks_the_authority(settings, cloud, authority):
    settings.PARTNER_CENTER = {
        "BASE_URL": "https://api.partnercenter.microsoft.com",
        "CLIENT_ID": "app",
        "CLIENT_SECRET": "secret",
        "REFRESH_TOKEN": "",
        "AUTHORITY": "https://login.microsoftonline.com",
        "AUTHORITY_USGOV": "https://login.microsoftonline.us",
    }
    org = Organisation(legal_name="X", pc_tenant_id=NUVOLA, pc_cloud=cloud)

    client = PartnerCenterClient.for_organisation(org)

    assert isinstance(client.tokens, auth.MsalTokenProvider)
    assert client.tokens.authority == f"{authority}/{NUVOLA}"
    assert client.base_url == "https://api.partnercenter.microsoft.com"
    client.close()


def test_app_user_credentials_use_the_delegated_scope(settings):
    settings.PARTNER_CENTER = {
        "BASE_URL": "https://api.partnercenter.microsoft.com",
        "CLIENT_ID": "app",
        "CLIENT_SECRET": "",
        "REFRESH_TOKEN": "rt",
        "AUTHORITY": "https://login.microsoftonline.com",
    }
    org = Organisation(legal_name="X", pc_tenant_id=NUVOLA, pc_cloud=Cloud.COMMERCIAL)

    client = PartnerCenterClient.for_organisation(org)

    assert isinstance(client.tokens, auth.MsalTokenProvider)
    assert client.tokens.credentials.scope == "https://api.partnercenter.microsoft.com/user_impersonation"
    client.close()


def test_missing_credentials_are_refused(settings):
    settings.PARTNER_CENTER = {
        "BASE_URL": "https://api.partnercenter.microsoft.com",
        "CLIENT_ID": "",
        "CLIENT_SECRET": "",
        "REFRESH_TOKEN": "",
        "AUTHORITY": "https://login.microsoftonline.com",
    }
    org = Organisation(legal_name="X", pc_tenant_id=NUVOLA, pc_cloud=Cloud.COMMERCIAL)

    with pytest.raises(PartnerCenterError) as caught:
        PartnerCenterClient.for_organisation(org)

    assert caught.value.code == "pc_misconfigured"
