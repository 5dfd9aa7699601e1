"""The cspdesk command and the demo: JSON output, the logins it prints, and the server it starts."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from cspdesk.demo import world
from cspdesk.tenancy.models import Customer, Organisation

CSPDESK = str(Path(sys.executable).with_name("cspdesk"))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSPDESK_", "DATABASE_URL"))}
    env["CSPDESK_VAR_DIR"] = str(tmp_path)
    return env


@pytest.mark.once
def test_cspdesk_runs_django_commands(tmp_path: Path) -> None:
    result = subprocess.run([CSPDESK, "check"], env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


# A hang guard, not a speed check: the demo loads in about a minute, several on a machine that is busy
DEMO_TIMEOUT = 900
DEMO = [CSPDESK, "demo", "--no-serve", "--json"]


@pytest.mark.once
def test_demo_json_is_one_document_on_stdout(tmp_path: Path) -> None:
    result = subprocess.run(DEMO, env=_env(tmp_path), capture_output=True, text=True, timeout=DEMO_TIMEOUT)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one JSON document
    logins = document["logins"]
    assert len(logins) == 5 * len(world.ORGANISATIONS) + sum(len(c.users) for c in world.CUSTOMERS)
    assert {"role", "organisation", "customer", "username", "password", "api_token"} <= set(logins[0])
    assert (tmp_path / "cspdesk.sqlite3").exists()
    # The month of Partner Center data came through the emulator and the real importer.
    sync = document["partner_center"]["sync"]
    assert sync["ok"] is True
    assert sync["totals"]["subscriptions"]["created"] == len(world.SUBSCRIPTIONS) + 1
    kinds = sorted(i["kind"] for i in document["imports"])
    assert kinds.count("invoice") == kinds.count("usage_billed") == kinds.count("usage_unbilled") == 5
    assert all("error" not in i and i["rejected"] == 0 for i in document["imports"])
    statuses = sorted(t["status"] for t in document["tickets"])
    assert statuses == ["escalated", "escalated", "open", "open", "pending_customer", "resolved"]
    again = subprocess.run(DEMO, env=_env(tmp_path), capture_output=True, text=True, timeout=DEMO_TIMEOUT)
    second = json.loads(again.stdout)
    assert second["partner_center"]["sync"]["totals"]["subscriptions"] == {
        "created": 0,
        "updated": 0,
        "unchanged": len(world.SUBSCRIPTIONS) + 1,
    }
    assert [i["import_id"] for i in second["imports"]] == [i["import_id"] for i in document["imports"]]
    assert all(i["duplicate"] for i in second["imports"])
    assert second["tickets"] == document["tickets"]


@pytest.mark.django_db
def test_demo_world_and_every_printed_login_works(settings, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path
    settings.PARTNER_CENTER = dict(settings.PARTNER_CENTER)  # the demo points it at its emulator
    out = io.StringIO()
    call_command("demo", no_serve=True, json=True, stdout=out, stderr=io.StringIO())
    logins = json.loads(out.getvalue())["logins"]
    assert {o.country for o in Organisation.objects.all()} == {"IT", "SE", "PT"}
    assert {(c.country, c.currency, c.locale) for c in Customer.objects.all()} == {
        ("IT", "EUR", "it"),
        ("IE", "EUR", "en"),
        ("US", "USD", "en"),
        ("SE", "SEK", "sv"),
        ("HU", "HUF", "hu"),
        ("PT", "EUR", "pt-pt"),
    }
    staff_roles = {row["role"] for row in logins if row["organisation"]}
    assert staff_roles == {"global_admin", "user_management_admin", "helpdesk_agent", "billing_admin", "sales_agent"}
    for row in logins:
        browser = Client()
        assert browser.login(username=row["username"], password=row["password"]), row["username"]
        assert browser.get("/console/").status_code == 200
        me = Client(HTTP_AUTHORIZATION=f"Bearer {row['api_token']}").get("/api/v1/me").json()
        assert me["username"] == row["username"]
        assert me["roles"] == [row["role"]]


@pytest.mark.django_db
def test_reloading_the_demo_keeps_one_world_and_new_passwords_work() -> None:
    first = {login.username: login for login in world.load()}
    second = {login.username: login for login in world.load()}
    assert Organisation.objects.count() == len(world.ORGANISATIONS)
    assert Customer.objects.count() == len(world.CUSTOMERS)
    assert get_user_model().objects.count() == len(first)
    login = second["nuvola.billing"]
    assert Client().login(username=login.username, password=login.password)
    assert not Client().login(username=login.username, password=first["nuvola.billing"].password)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {first['nuvola.billing'].api_token}").get("/api/v1/me").status_code == 401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.once
def test_demo_serves_a_login_page_and_a_printed_login_works(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [CSPDESK, "demo", "--addr", f"127.0.0.1:{port}"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Serving on" in line:
                break
        row = next(line.split() for line in lines if line.strip().startswith("nuvola.billing "))
        username, password = row[0], row[1]
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=base, follow_redirects=False) as http:
            while True:
                try:
                    page = http.get("/accounts/login/")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "".join(lines)
                    time.sleep(0.3)
            assert page.status_code == 200
            assert "Log in to cspdesk" in page.text
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert csrf is not None
            answer = http.post(
                "/accounts/login/",
                data={"username": username, "password": password, "csrfmiddlewaretoken": csrf.group(1)},
            )
            assert answer.status_code == 302
            home = http.get("/console/")
            assert home.status_code == 200
            assert "Nuvola Informatica S.r.l." in home.text
            _a_payment_reactivates_within_a_minute(http)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _a_payment_reactivates_within_a_minute(http: httpx.Client) -> None:
    """The demo's suspended customer pays what is overdue (recorded by the billing admin): its subscriptions are
    active again in Partner Center (the emulator) within a minute, through the demo's background worker."""
    headers = {"X-CSRFToken": http.cookies["csrftoken"], "Referer": str(http.base_url)}
    cases = http.get("/api/v1/collections/cases").json()
    rows = cases["items"] if isinstance(cases, dict) else cases
    suspended = []
    for case in rows:
        if case["status"] != "open":
            continue
        detail = http.get(f"/api/v1/collections/cases/{case['id']}").json()
        if any(s["state"] == "suspended" for s in detail["suspensions"]):
            suspended.append(detail)
    assert suspended, "the demo world has a customer suspended for non-payment"
    case = suspended[0]
    subs = [s["subscription_id"] for s in case["suspensions"] if s["state"] == "suspended"]
    assert {http.get(f"/api/v1/subscriptions/{pk}").json()["status"] for pk in subs} == {"suspended"}
    for currency, amount in case["overdue"].items():
        paid = http.post("/api/v1/payments", headers=headers, json={
            "amount": amount, "currency": currency, "received_on": time.strftime("%Y-%m-%d"),
            "customer_id": case["customer_id"], "reference": "demo test: the overdue balance"})  # fmt: skip
        assert paid.status_code == 200, paid.text
    deadline = time.monotonic() + 60
    while {http.get(f"/api/v1/subscriptions/{pk}").json()["status"] for pk in subs} != {"active"}:
        assert time.monotonic() < deadline, f"still suspended a minute after payment: {subs}"
        time.sleep(1)
    assert http.get(f"/api/v1/collections/cases/{case['id']}").json()["status"] == "closed"
