"""Stripe: real signatures (the stripe library's scheme), forged and missing ones, replays, refunds, and a
Checkout session against a local stand-in for Stripe's API on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import stripe
from django.test import Client

from cspdesk.core import clock
from cspdesk.payments import selectors
from cspdesk.payments.models import CheckoutSession, Payment, Refund, StripeEvent
from tests.payments.fixtures import make_invoice

D = Decimal
SECRET = "whsec_test_cspdesk"
NOW = dt.datetime(2026, 6, 15, 9, 0, tzinfo=dt.UTC)
URL = "/api/v1/payments/stripe/webhook"


@pytest.fixture
def stripe_on(settings):  # type: ignore[no-untyped-def]
    settings.CSPDESK_STRIPE = {"SECRET_KEY": "sk_test_cspdesk", "WEBHOOK_SECRET": SECRET}
    return settings


@pytest.fixture
def inv(demo, stripe_on):  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        demo.inv = make_invoice(demo.customer("bellavista"), "134.20", due=dt.date(2026, 6, 30))
    return demo


def signed(payload: str, secret: str = SECRET) -> str:
    t = int(time.time())
    return f"t={t},v1={stripe.WebhookSignature._compute_signature(f'{t}.{payload}', secret)}"


def event(eid: str, kind: str, obj: dict[str, Any]) -> str:
    return json.dumps({"id": eid, "object": "event", "type": kind, "data": {"object": obj}})


def post(payload: str, signature: str | None) -> Any:
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return Client().post(URL, payload, content_type="application/json", **headers)


def intent(inv, amount: int = 13420) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"id": "pi_123", "object": "payment_intent", "amount": amount, "amount_received": amount,
            "currency": "eur", "metadata": {"cspdesk_invoice_id": str(inv.pk)}}  # fmt: skip


def test_valid_signature_applies_once_and_replay_changes_nothing(inv) -> None:  # type: ignore[no-untyped-def]
    payload = event("evt_1", "payment_intent.succeeded", intent(inv.inv))
    with clock.frozen(NOW):
        first = post(payload, signed(payload))
        replay = post(payload, signed(payload))
        session_done = event("evt_2", "checkout.session.completed", {
            "id": "cs_1", "object": "checkout.session", "payment_intent": "pi_123", "payment_status": "paid",
            "amount_total": 13420, "currency": "eur", "metadata": {"cspdesk_invoice_id": str(inv.inv.pk)}})  # fmt: skip
        same_payment = post(session_done, signed(session_done))
    assert first.status_code == 200, first.content
    assert first.json()["created"] is True
    assert replay.json() == {"event": "evt_1", "duplicate": True}
    assert same_payment.json()["created"] is False
    p = Payment.objects.get()
    assert (p.amount, p.method, p.source, p.customer) == (D("134.20"), "card", "stripe", inv.customer("bellavista"))
    assert selectors.open_balance(inv.inv) == D("0.00")
    assert StripeEvent.objects.count() == 2


@pytest.mark.parametrize(
    "signature",
    [pytest.param(None, id="missing"), pytest.param("t=1,v1=deadbeef", id="garbage"),
     pytest.param("forged", id="wrong-secret")],
)  # fmt: skip
def test_bad_signature_is_400_and_changes_nothing(inv, signature: str | None) -> None:  # type: ignore[no-untyped-def]
    payload = event("evt_9", "payment_intent.succeeded", intent(inv.inv))
    if signature == "forged":
        signature = signed(payload, "whsec_someone_else")
    response = post(payload, signature)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_signature"
    assert (Payment.objects.count(), StripeEvent.objects.count()) == (0, 0)


def test_tampered_payload_is_refused(inv) -> None:  # type: ignore[no-untyped-def]
    payload = event("evt_3", "payment_intent.succeeded", intent(inv.inv))
    response = post(payload.replace("13420", "99999"), signed(payload))
    assert response.status_code == 400
    assert Payment.objects.count() == 0


def test_charge_refunded_reopens_the_invoice_once(inv) -> None:  # type: ignore[no-untyped-def]
    paid = event("evt_p", "payment_intent.succeeded", intent(inv.inv))
    refund = event("evt_r", "charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": "pi_123",
                                                 "amount_refunded": 4000, "currency": "eur"})  # fmt: skip
    more = event("evt_r2", "charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": "pi_123",
                                                "amount_refunded": 5000, "currency": "eur"})  # fmt: skip
    with clock.frozen(NOW):
        post(paid, signed(paid))
        assert post(refund, signed(refund)).status_code == 200
        post(refund, signed(refund))
        post(more, signed(more))
    assert [r.amount for r in Refund.objects.order_by("pk")] == [D("40.00"), D("10.00")]
    assert selectors.open_balance(inv.inv) == D("50.00")


class _FakeStripe(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _FakeStripe.requests.append({"path": self.path, "form": parse_qs(body),
                                     "auth": self.headers.get("Authorization")})  # fmt: skip
        data = json.dumps({"id": "cs_test_42", "object": "checkout.session",
                           "url": "https://checkout.stripe.test/c/pay/cs_test_42"}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_stripe(stripe_on) -> Iterator[str]:  # type: ignore[no-untyped-def]
    server = HTTPServer(("127.0.0.1", 0), _FakeStripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    stripe_on.CSPDESK_STRIPE = {**stripe_on.CSPDESK_STRIPE, "API_BASE": base}
    _FakeStripe.requests = []
    yield base
    server.shutdown()
    server.server_close()


def test_checkout_session_for_the_open_balance(inv, fake_stripe: str) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        response = inv.api("bellavista.contabilita").post(f"/api/v1/invoices/{inv.inv.pk}/checkout")
        other = inv.api("liffey.admin").post(f"/api/v1/invoices/{inv.inv.pk}/checkout")
    assert response.status_code == 200, response.content
    assert response.json() == {"session_id": "cs_test_42", "url": "https://checkout.stripe.test/c/pay/cs_test_42",
                               "amount": "134.20", "currency": "EUR"}  # fmt: skip
    assert other.status_code == 404
    [req] = _FakeStripe.requests
    assert req["path"] == "/v1/checkout/sessions"
    assert req["auth"] == "Bearer sk_test_cspdesk"
    assert req["form"]["line_items[0][price_data][unit_amount]"] == ["13420"]
    assert req["form"]["metadata[cspdesk_invoice_id]"] == [str(inv.inv.pk)]
    assert CheckoutSession.objects.get().session_id == "cs_test_42"
