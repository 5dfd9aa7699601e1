"""The emulator's state, service requests, fault administration and command, through the real client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from cspdesk.partnercenter.emulator import FaultSpecError, parse_spec
from cspdesk.partnercenter.errors import AuthError, BadRequest
from tests.partnercenter.pc_fixtures import (  # noqa: F401
    BELLAVISTA,
    NORDMOLN,
    NUVOLA,
    emulator,
    make_client,
    sleeps,
)


def test_suspend_and_reactivate_read_back_with_new_etags(make_client):  # noqa: F811
    client = make_client(NUVOLA)
    sub = next(s for s in client.list_subscriptions(BELLAVISTA) if s["billingType"] == "license")
    etag0 = sub["attributes"]["etag"]

    suspended = client.suspend_subscription(BELLAVISTA, sub["id"])
    read_back = client.get_subscription(BELLAVISTA, sub["id"])

    assert suspended["status"] == read_back["status"] == "suspended"
    assert read_back["suspensionReasons"] == ["PartnerInitiated"]
    etag1 = read_back["attributes"]["etag"]
    assert etag1 != etag0

    reactivated = client.reactivate_subscription(BELLAVISTA, sub["id"])

    assert reactivated["status"] == client.get_subscription(BELLAVISTA, sub["id"])["status"] == "active"
    assert "suspensionReasons" not in reactivated
    assert reactivated["attributes"]["etag"] not in (etag0, etag1)
    assert reactivated["quantity"] == 12


def test_suspending_twice_changes_nothing_the_second_time(emulator, make_client):  # noqa: F811
    client = make_client(NUVOLA)
    sub = next(iter(client.list_subscriptions(BELLAVISTA)))
    first = client.suspend_subscription(BELLAVISTA, sub["id"])

    second = client.suspend_subscription(BELLAVISTA, sub["id"])

    assert second["attributes"]["etag"] == first["attributes"]["etag"]
    assert len(emulator.server.calls_to("subscription", "PATCH")) == 1


def test_patch_sends_if_match_and_the_full_resource(emulator, make_client):  # noqa: F811
    client = make_client(NUVOLA)
    sub = next(iter(client.list_subscriptions(BELLAVISTA)))

    updated = client.update_subscription(BELLAVISTA, {**sub, "friendlyName": "Kitchen licences"})

    assert updated["friendlyName"] == "Kitchen licences"
    assert updated["offerId"] == sub["offerId"]
    assert emulator.state.subscription(NUVOLA, BELLAVISTA, sub["id"])["friendlyName"] == "Kitchen licences"


def test_service_request_create_get_update_list(emulator, make_client):  # noqa: F811
    client = make_client(NUVOLA, app_user=True)
    topics = client.list_support_topics()
    billing = next(t for t in topics if t["name"] == "Billing")

    created = client.create_service_request(
        title="Invoice G0003450801 charges a cancelled seat",
        description="One seat was removed on 3 Sept.",
        severity="moderate",
        support_topic_id=str(billing["id"]),
        note="Recon rows 14-15 attached.",
    )

    assert created["id"].isdigit()
    assert (created["status"], created["severity"], created["supportTopicName"]) == ("open", "moderate", "Billing")
    assert [n["text"] for n in created["notes"]] == ["Recon rows 14-15 attached."]
    assert client.get_service_request(created["id"]) == created

    noted = client.update_service_request(created["id"], note="Customer confirms the date.")
    closed = client.update_service_request(created["id"], status="closed")

    assert [n["text"] for n in noted["notes"]] == ["Recon rows 14-15 attached.", "Customer confirms the date."]
    assert closed["status"] == "closed" and closed["lastClosedDate"]
    assert client.get_service_request(created["id"])["status"] == "closed"
    assert [sr["id"] for sr in client.list_service_requests()] == ["616122292874576", created["id"]]
    assert [sr["title"] for sr in client.list_customer_service_requests(BELLAVISTA)] == [
        "Teams calling licences not assigned"
    ]
    assert [t["id"] for t in topics] == [32444671, 32444672, 32444673, 32444674, 32444675, 32444676, 32444677]


def test_service_requests_need_app_user(make_client):  # noqa: F811
    client = make_client(NUVOLA)  # app-only

    with pytest.raises(AuthError) as caught:
        client.list_service_requests()

    assert caught.value.http_status == 403


def test_lost_create_response_is_retried_without_a_duplicate(emulator, make_client):  # noqa: F811
    emulator.server.faults.add(parse_spec("servicerequest_create:drop_after:count=1"))
    client = make_client(NUVOLA, app_user=True)

    created = client.create_service_request(
        title="Portal error", description="Cannot open the invoice PDF", severity="minimal", support_topic_id="32444672"
    )

    calls = emulator.server.calls_to("servicerequest_create")
    assert [c.fault for c in calls] == ["drop_after", ""]
    assert calls[0].request_id == calls[1].request_id
    assert [sr["id"] for sr in client.list_service_requests()] == ["616122292874576", created["id"]]


def test_invalid_service_request_is_a_bad_request(make_client):  # noqa: F811
    client = make_client(NUVOLA, app_user=True)

    with pytest.raises(BadRequest) as caught:
        client.create_service_request(title="x", description="y", severity="urgent", support_topic_id="32444671")

    assert "Severity" in caught.value.ms_description


def test_forged_continuation_token_is_refused(emulator, make_client):  # noqa: F811
    client = make_client(NORDMOLN)

    with pytest.raises(BadRequest) as caught:
        client.request("GET", "/customers?size=2&seekOperation=Next", headers={"MS-ContinuationToken": "forged"})

    assert caught.value.ms_code == "InvalidContinuationToken"


def test_unbilled_reconciliation_and_usage(make_client):  # noqa: F811
    client = make_client(NUVOLA)

    billing = list(client.list_unbilled_line_items(currency="EUR", size=2))
    usage = list(client.list_unbilled_line_items(currency="EUR", line_item_type="usagelineitems"))
    previous = list(client.list_unbilled_line_items(currency="EUR", period="previous"))

    assert len(billing) == 5  # the licence subscriptions of Nuvola's 4 customers (Prairie has 2)
    assert {b["invoiceNumber"] for b in billing} == {""}
    assert {b["attributes"]["objectType"] for b in billing} == {"OneTimeInvoiceLineItem"}
    assert len(usage) == 27
    assert previous == []


def test_openid_configuration_has_what_msal_reads(emulator):  # noqa: F811
    config = httpx.get(f"{emulator.url}/{NUVOLA}/v2.0/.well-known/openid-configuration").json()

    assert config["token_endpoint"] == f"{emulator.url}/{NUVOLA}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{emulator.url}/{NUVOLA}/oauth2/v2.0/authorize"
    assert config["issuer"] == f"{emulator.url}/{NUVOLA}/v2.0"


def test_faults_are_administered_at_run_time(emulator, make_client, sleeps):  # noqa: F811
    admin = f"{emulator.url}/_emulator/faults"
    added = httpx.post(admin, json={"endpoint": "customer", "kind": "503", "count": 2, "retry_after": 3})
    spec = httpx.post(admin, json={"spec": "invoices:429:p=0.5;*:slow:count=1,delay=0.1,method=PATCH"})

    assert added.status_code == spec.status_code == 201
    assert [(f["endpoint"], f["kind"]) for f in httpx.get(admin).json()["faults"]] == [
        ("customer", "503"),
        ("invoices", "429"),
        ("*", "slow"),
    ]

    make_client(NUVOLA).get_customer(BELLAVISTA)

    assert [c.status for c in emulator.server.calls_to("customer")] == [503, 503, 200]
    assert sleeps.waits[0] >= 3 and sleeps.waits[1] >= 3
    assert [f["endpoint"] for f in httpx.get(admin).json()["faults"]] == ["invoices", "*"]
    assert httpx.delete(admin).json() == {"faults": []}
    calls = httpx.get(f"{emulator.url}/_emulator/calls", params={"route": "customer"}).json()["calls"]
    assert [c["status"] for c in calls] == [503, 503, 200]


def test_bad_fault_is_refused_by_the_admin_endpoint(emulator):  # noqa: F811
    response = httpx.post(f"{emulator.url}/_emulator/faults", json={"endpoint": "customer", "kind": "418"})

    assert response.status_code == 400
    assert "unknown fault kind '418'" in response.json()["description"]


def test_reset_restores_the_seed(emulator, make_client):  # noqa: F811
    client = make_client(NUVOLA)
    sub = next(iter(client.list_subscriptions(BELLAVISTA)))
    client.suspend_subscription(BELLAVISTA, sub["id"])

    assert httpx.post(f"{emulator.url}/_emulator/reset").json() == {"status": "reset"}

    assert emulator.state.subscription(NUVOLA, BELLAVISTA, sub["id"])["status"] == "active"
    assert emulator.server.calls == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("customers:429", [("customers", "429", 1, None, 1.0, None)]),
        (
            "customers:429:count=2,retry_after=5;*:500:p=0.25,method=patch",
            [("customers", "429", 2, None, 5.0, None), ("*", "500", None, 0.25, 1.0, "PATCH")],
        ),
        (" subscription:drop_after:count=3 ; ", [("subscription", "drop_after", 3, None, 1.0, None)]),
    ],
    ids=["default-count", "two-faults", "whitespace"],
)
def test_parse_spec(spec, expected):
    faults = parse_spec(spec)
    assert [(f.endpoint, f.kind, f.count, f.probability, f.retry_after, f.method) for f in faults] == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("customers", "expected ENDPOINT:KIND"),
        ("customers:teapot", "unknown fault kind"),
        ("customers:500:count=0", "count must be at least 1"),
        ("customers:500:p=2", "p must be between"),
        ("customers:500:count=many", "bad fault"),
    ],
    ids=["no-kind", "bad-kind", "zero-count", "bad-probability", "non-numeric"],
)
def test_parse_spec_refuses(spec, message):
    with pytest.raises(FaultSpecError, match=message):
        parse_spec(spec)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "stop_with, start_with_sigint_ignored",
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "ctrl-c-in-a-background-job", "sigterm"],
)
def test_pc_emulator_command_serves_with_faults_and_stops_on_a_signal(tmp_path, stop_with, start_with_sigint_ignored):
    # A shell starts background jobs with SIGINT ignored; the emulator must still stop on Ctrl-C then.
    env = {**os.environ, "CSPDESK_VAR_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cspdesk", "pc-emulator", "--port", "0", "--faults", "customers:503:count=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_ignore_sigint if start_with_sigint_ignored else None,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split()[-1]
        assert first.startswith("Partner Center emulator listening on http://127.0.0.1:")
        faults = httpx.get(f"{url}/_emulator/faults", timeout=5).json()["faults"]
        assert [(f["endpoint"], f["kind"], f["count"]) for f in faults] == [("customers", "503", 1)]
    finally:
        proc.send_signal(stop_with)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert proc.returncode == 0, err
    assert err.strip().endswith("stopped")
