"""An overdue customer is suspended, pays by card, and sees its subscriptions active again, in a real browser.

The module runs its own deployment, as production runs it, so nothing here is short-circuited:

* a Partner Center emulator process (``cspdesk pc-emulator``) that the server, the worker and the daily
  collections run all talk to;
* the web server (``cspdesk runserver``) and a background worker (``cspdesk db_worker``) on one SQLite file:
  reactivation after a payment is a task on the queue, done by the worker, never inside the request;
* a stand-in for Stripe on 127.0.0.1 (a thread of this test process): Checkout sessions on its API, a checkout
  page the customer pays on, and a signed ``checkout.session.completed`` webhook to cspdesk, as Stripe sends.

The world (``python -m tests.e2e.test_suspension``, below) is the demo's organisations and customers with one
month billed 70 days ago and Nuvola's published collections policy. Every customer paid except Liffey Analytics,
which paid 40 %: its case had the reminder and the final notice on their days, and today's run suspends.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from tests.e2e.conftest import ROOT, _free_port

CUSTOMER, USERNAME = "liffey", "liffey.admin"
WEBHOOK_SECRET = "whsec_e2e_suspension"
STRIPE_KEY = "sk_test_e2e_suspension"
POLICY: dict[str, Any] = {
    "stages": [
        {"days": 7, "action": "reminder"},
        {"days": 14, "action": "final_notice"},
        {"days": 30, "action": "suspend"},
        {"days": 60, "action": "hand_over"},
    ],
    "grace_days": 3,
    "categories": ["azure", "microsoft365"],
}
ISSUED_DAYS_AGO = 70  # with 30-day terms: 40 days overdue today, past the suspension day (30)
RESTORE_WITHIN = 90.0  # seconds from the payment to the page showing every subscription active again


# ---------------------------------------------------------------- the world (run in its own process)


def load() -> dict[str, Any]:
    """Migrate and load the world; runs in a child process with the site's environment."""
    import django

    django.setup()
    from django.core.management import call_command

    from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
    from cspdesk.collections import services as collections
    from cspdesk.collections.models import Case
    from cspdesk.core import clock
    from cspdesk.core.actor import Actor
    from cspdesk.demo import world
    from cspdesk.partnercenter import sync as pc_sync
    from cspdesk.partnercenter.models import Subscription, SubscriptionStatus
    from cspdesk.payments import selectors as payment_selectors
    from cspdesk.payments import services as payments
    from cspdesk.payments.models import PaymentSource
    from tests.fixtures import load_demo_world
    from tests.portal.world import bill_months

    def at(day: dt.date) -> Any:
        return clock.frozen(dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC))

    call_command("migrate", interactive=False, verbosity=0)
    demo = load_demo_world()
    system = Actor.system("e2e-loader")
    pc_sync.sync(system)  # the emulator process the server talks to
    today = clock.today()
    issued = today - dt.timedelta(days=ISSUED_DAYS_AGO)
    period = (issued.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    with at(issued):
        bill_months((period,))  # Liffey pays 40 %, Bellavista all of it
    liffey = demo.customer(CUSTOMER)
    invoices = Invoice.objects.filter(kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED,
                                      customer__organisation=liffey.organisation)  # fmt: skip
    for inv in invoices.exclude(customer=liffey):  # the others have paid by now
        left = payment_selectors.open_balance(inv)
        if left > 0:
            with at(issued + dt.timedelta(days=10)):
                payments.record_payment(system, amount=left, currency=inv.currency, received_on=clock.today(),
                                        customer_id=inv.customer_id, source=PaymentSource.DEMO,
                                        reference=inv.number, invoice_id=inv.pk)  # fmt: skip
    invoice = invoices.get(customer=liffey)
    assert invoice.due_date is not None
    collections.set_policy(system, POLICY, organisation_id=liffey.organisation_id)
    for late in (8, 15):  # the reminder and the final notice, each on its day
        day = invoice.due_date + dt.timedelta(days=late)
        with at(day):
            collections.run(system, today=day, organisation_id=liffey.organisation_id)
    case = Case.objects.get(customer=liffey)
    assert case.last_stage_key == "14:final_notice", case.last_stage_key
    subs = Subscription.objects.filter(customer=liffey, status=SubscriptionStatus.ACTIVE).order_by("offer_name")
    partner = next(s.key for s in world.ORGANISATIONS if s.invoice_series == liffey.organisation.invoice_series)
    return {
        "logins": {u: x.password for u, x in demo.logins.items()},
        "invoice": {"id": invoice.pk, "number": invoice.number, "currency": invoice.currency,
                    "open": str(payment_selectors.open_balance(invoice))},
        "tenant_id": str(liffey.tenant_id),
        "partner_tenant_id": str(world.partner_tenant_id(partner)),
        "subscriptions": [{"pk": s.pk, "id": str(s.pc_subscription_id), "offer": s.offer_name} for s in subs],
    }  # fmt: skip


# ---------------------------------------------------------------- a stand-in for Stripe


class StripeStandIn:
    """Stripe as cspdesk and the customer meet it: ``POST /v1/checkout/sessions`` (the API), ``/pay/<id>`` (the
    hosted checkout page) and, once the customer pays, a signed webhook to cspdesk and the way back."""

    def __init__(self, webhook_url: str) -> None:
        self.webhook_url = webhook_url
        self.sessions: dict[str, dict[str, Any]] = {}
        self.webhooks: list[int] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: str, content_type: str, **headers: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                if self.path == "/v1/checkout/sessions":
                    if self.headers.get("Authorization") != f"Bearer {STRIPE_KEY}":
                        self._send(401, json.dumps({"error": {"message": "bad key"}}), "application/json")
                        return
                    sid = f"cs_test_{uuid.uuid4().hex[:16]}"
                    session = {
                        "id": sid, "object": "checkout.session", "url": f"{stand_in.url}/pay/{sid}",
                        "amount_total": int(form["line_items[0][price_data][unit_amount]"][0]),
                        "currency": form["line_items[0][price_data][currency]"][0],
                        "metadata": {k[9:-1]: v[0] for k, v in form.items() if k.startswith("metadata[")},
                        "success_url": form["success_url"][0], "payment_status": "unpaid", "payment_intent": None,
                    }  # fmt: skip
                    stand_in.sessions[sid] = session
                    self._send(200, json.dumps(session), "application/json")
                elif self.path.startswith("/pay/") and self.path[5:] in stand_in.sessions:
                    session = stand_in.sessions[self.path[5:]]
                    session.update(payment_status="paid", payment_intent=f"pi_{uuid.uuid4().hex[:16]}")
                    stand_in.webhooks.append(stand_in.send_completed(session))
                    self._send(303, "", "text/plain", Location=session["success_url"])
                else:
                    self._send(404, "{}", "application/json")

            def do_GET(self) -> None:
                session = stand_in.sessions.get(self.path[5:]) if self.path.startswith("/pay/") else None
                if session is None:
                    self._send(404, "not found", "text/plain")
                    return
                amount = Decimal(session["amount_total"]).scaleb(-2)
                self._send(200, f"<!doctype html><title>Checkout</title><h1>Pay {amount} "
                                f"{session['currency'].upper()}</h1><form method=post><label>Card "
                                f"<input name=card value='4242 4242 4242 4242'></label>"
                                f"<button type=submit>Pay</button></form>", "text/html")  # fmt: skip

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def send_completed(self, session: dict[str, Any]) -> int:
        import stripe

        event = json.dumps({"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event",
                            "type": "checkout.session.completed", "data": {"object": session}})  # fmt: skip
        t = int(time.time())
        signature = stripe.WebhookSignature._compute_signature(f"{t}.{event}", WEBHOOK_SECRET)
        response = httpx.post(
            self.webhook_url,
            content=event,
            timeout=30,
            headers={"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={signature}"},
        )
        return response.status_code


# ---------------------------------------------------------------- the deployment


@dataclass
class Deployment:
    url: str
    emulator: str
    stripe: StripeStandIn
    env: dict[str, str]
    world: dict[str, Any]

    def cspdesk(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cspdesk", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    def partner_center_status(self) -> dict[str, str]:
        """Each of the customer's subscriptions' status as Partner Center (the emulator) has it."""
        from cspdesk.partnercenter.client import PartnerCenterClient

        partner = SimpleNamespace(pc_tenant_id=self.world["partner_tenant_id"], pc_cloud="commercial")
        with PartnerCenterClient.for_organisation(partner, base_url=self.emulator, authority=self.emulator) as pc:
            return {s["id"]: pc.get_subscription(self.world["tenant_id"], s["id"])["status"]
                    for s in self.world["subscriptions"]}  # fmt: skip


def _wait_until(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            err = process.stderr.read().decode()[-3000:] if process.stderr else ""
            raise RuntimeError(f"{what} did not start: {err}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    tmp = Path(tempfile.mkdtemp(prefix="cspdesk-e2e-suspension-"))
    emulator_url, url = f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
    stripe = StripeStandIn(f"{url}/api/v1/payments/stripe/webhook")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CSPDESK_TASKS_BACKEND")}
    env.update({
        "CSPDESK_VAR_DIR": str(tmp), "CSPDESK_ENV": "development", "CSPDESK_DEBUG": "1", "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "cspdesk.settings",
        "PARTNER_CENTER_BASE_URL": emulator_url, "PARTNER_CENTER_AUTHORITY": emulator_url,
        "PARTNER_CENTER_AUTHORITY_USGOV": emulator_url, "PARTNER_CENTER_REFRESH_TOKEN": "e2e-consent",
        "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_BASE": stripe.url,
        "CSPDESK_PUBLIC_URL": url,
    })  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "cspdesk", *args], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        processes.append(process)
        return process

    try:
        emulator = start("pc-emulator", "--port", emulator_url.rsplit(":", 1)[1])
        _wait_until(
            "the Partner Center emulator",
            lambda: httpx.get(f"{emulator_url}/_emulator/health", timeout=2).status_code == 200,
            emulator,
        )
        loaded = subprocess.run([sys.executable, "-m", "tests.e2e.test_suspension"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=900)  # fmt: skip
        if loaded.returncode != 0:
            raise RuntimeError(f"loading the suspension world failed:\n{loaded.stderr[-4000:]}")
        world = json.loads(loaded.stdout.strip().splitlines()[-1])
        server = start("runserver", url.removeprefix("http://"), "--noreload")
        _wait_until("the server", lambda: httpx.get(f"{url}/accounts/login/", timeout=2).status_code == 200, server)
        start("db_worker", "--queue-name", "*", "--interval", "0.5", "--no-startup-delay", "--no-reload")
        yield Deployment(url, emulator_url, stripe, env, world)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        stripe.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def customer_page(browser: Any, deployment: Deployment) -> Iterator[Any]:
    context = browser.new_context(base_url=deployment.url, viewport={"width": 1280, "height": 900}, locale="en-IE")
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", deployment.world["logins"][USERNAME])
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/portal/")
    yield page
    context.close()


# ---------------------------------------------------------------- the test


def _rows(page: Any) -> dict[str, str]:
    """Each subscription row of the portal's page: its offer name → the status badge it shows."""
    out = {}
    for row in page.locator("table tbody tr:not(.why)").all():
        cells = row.locator("td")
        if cells.count() >= 3:
            out[cells.nth(0).locator(".note").inner_text().strip()] = cells.nth(2).inner_text().strip()
    return out


def test_overdue_customer_is_suspended_pays_by_card_and_is_active_again(
    customer_page: Any, deployment: Deployment, screenshot: Any
) -> None:
    page, world = customer_page, deployment.world
    offers = [s["offer"] for s in world["subscriptions"]]
    assert len(offers) >= 2
    assert set(deployment.partner_center_status().values()) == {"active"}
    page.goto("/portal/subscriptions/")
    assert set(_rows(page).values()) == {"Active"}

    # today's collections run (the daily job) suspends the overdue customer's subscriptions in Partner Center
    ran = deployment.cspdesk("collections", "run", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    [suspend] = [a for a in report["actions"] if a["action"] == "suspend"]
    assert suspend["customer"] == "Liffey Analytics Ltd"
    assert {c["change"] for c in report["partner_center"]} == {"suspend"}
    assert all(c["ok"] for c in report["partner_center"])
    covered = {c["subscription"] for c in report["partner_center"]}  # the policy covers usage-billed ones
    suspended = {s["id"]: "suspended" if s["pk"] in covered else "active" for s in world["subscriptions"]}
    assert "suspended" in suspended.values()
    assert deployment.partner_center_status() == suspended

    # the portal says so, why, and how to restore it
    page.reload()
    assert _rows(page) == {s["offer"]: suspended[s["id"]].capitalize() for s in world["subscriptions"]}
    why = page.locator("tr.why").first.inner_text()
    assert "Why it is suspended:" in why and "an overdue balance was not paid" in why
    assert "pay the overdue balance" in why and "reactivated once the payment is received" in why
    assert page.locator("tr.why a", has_text="Balance").first.get_attribute("href") == "/portal/balance/"
    screenshot(page, "portal-suspended")
    page.goto("/portal/")
    n = len(covered)
    assert page.locator(f"text={n} subscription{' is' if n == 1 else 's are'} suspended.").is_visible()

    # the customer pays what is open by card: Checkout, then back to the portal
    invoice = world["invoice"]
    page.goto("/portal/balance/")
    page.click(f"button:has-text('Pay {invoice['number']} by card')")
    page.wait_for_url(f"{deployment.stripe.url}/pay/*")
    open_amount = Decimal(invoice["open"])
    assert page.locator("h1").inner_text() == f"Pay {open_amount} {invoice['currency']}"
    paid_at = time.monotonic()
    page.click("button:has-text('Pay')")
    page.wait_for_url(re.compile(re.escape(deployment.url) + r"/portal/"))
    assert deployment.stripe.webhooks == [200]

    # the worker reactivates: the page shows every subscription active within a bounded time
    page.goto("/portal/subscriptions/")
    while set(_rows(page).values()) != {"Active"}:
        assert time.monotonic() - paid_at < RESTORE_WITHIN, f"still {_rows(page)} after {RESTORE_WITHIN:.0f} s"
        time.sleep(1)
        page.reload()
    assert page.locator("tr.why").count() == 0
    assert set(deployment.partner_center_status().values()) == {"active"}
    page.goto("/portal/")
    assert page.locator("text=All your subscriptions are in service.").is_visible()
    assert page.locator("text=Nothing to pay").is_visible()
    screenshot(page, "portal-restored")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cspdesk.settings")
    print(json.dumps(load()))
