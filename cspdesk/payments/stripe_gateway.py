"""Stripe: verified webhook events applied once, and "pay this invoice" Checkout sessions.

Configuration (``settings.CSPDESK_STRIPE`` or the environment): ``SECRET_KEY`` (STRIPE_SECRET_KEY),
``WEBHOOK_SECRET`` (STRIPE_WEBHOOK_SECRET), optional ``API_BASE`` (STRIPE_API_BASE, e.g. a local stand-in)
and ``PUBLIC_URL`` (CSPDESK_PUBLIC_URL) for the pages Checkout returns to.

Events handled: ``payment_intent.succeeded`` and ``checkout.session.completed`` record a card payment keyed
by the PaymentIntent id (so both events of one payment make one payment); ``charge.refunded`` records the
newly refunded part. The invoice comes from the metadata cspdesk puts on its Checkout sessions
(``cspdesk_invoice_id``). Every event id is stored once: a replayed event changes nothing.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum

from cspdesk.audit import services as audit
from cspdesk.billing import selectors as billing_selectors
from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, DomainError, ValidationFailed
from cspdesk.core.money import minor_units, quantize
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.permissions import Perm

from . import selectors, services
from .models import CheckoutSession, Payment, PaymentMethod, PaymentSource, Refund, StripeEvent

HANDLED = frozenset({"payment_intent.succeeded", "checkout.session.completed", "charge.refunded"})
WEBHOOK_ACTOR = Actor.system("stripe-webhook")


class BadSignature(DomainError):
    status = 400
    code = "bad_signature"


class NotConfigured(DomainError):
    status = 409
    code = "stripe_not_configured"


def config() -> dict[str, str]:
    own = getattr(settings, "CSPDESK_STRIPE", None) or {}
    return {
        "SECRET_KEY": own.get("SECRET_KEY") or os.environ.get("STRIPE_SECRET_KEY", ""),
        "WEBHOOK_SECRET": own.get("WEBHOOK_SECRET") or os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        "API_BASE": own.get("API_BASE") or os.environ.get("STRIPE_API_BASE", ""),
        "PUBLIC_URL": own.get("PUBLIC_URL") or os.environ.get("CSPDESK_PUBLIC_URL", "http://127.0.0.1:8000"),
    }


def is_configured() -> bool:
    return bool(config()["SECRET_KEY"])


def _from_minor(amount: int, currency: str) -> Decimal:
    return Decimal(int(amount)).scaleb(-minor_units(currency))


def _to_minor(amount: Decimal, currency: str) -> int:
    return int(quantize(amount, currency).scaleb(minor_units(currency)))


def verify(payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event, once its ``Stripe-Signature`` is checked against the signing secret (400 otherwise)."""
    secret = config()["WEBHOOK_SECRET"]
    if not secret:
        raise BadSignature("no Stripe webhook signing secret is configured", field="Stripe-Signature")
    if not signature:
        raise BadSignature("missing Stripe-Signature header", field="Stripe-Signature")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, tolerance=300)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise BadSignature(f"Stripe signature check failed: {exc}", field="Stripe-Signature") from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise BadSignature("the payload is not JSON", field="body") from None
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise ValidationFailed("a Stripe event needs an id and a type", field="body")
    return event


def _invoice_of(metadata: dict[str, Any]) -> Invoice | None:
    ref = (metadata or {}).get("cspdesk_invoice_id")
    if not ref or not str(ref).isdigit():
        return None
    return Invoice.objects.filter(pk=int(ref), kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED,
                                  customer__isnull=False).first()  # fmt: skip


def _paid(intent_id: str, amount: int, currency: str, metadata: dict[str, Any]) -> dict[str, Any]:
    currency = currency.upper()
    invoice = _invoice_of(metadata)
    if invoice is None:
        return {"ignored": "no cspdesk invoice in the metadata"}
    r = services.record_payment(
        WEBHOOK_ACTOR, amount=_from_minor(amount, currency), currency=currency, received_on=clock.today(),
        customer_id=invoice.customer_id, method=PaymentMethod.CARD, source=PaymentSource.STRIPE,
        reference=f"Stripe {intent_id} {invoice.number}", external_key=f"stripe:{intent_id}",
        invoice_id=invoice.pk if invoice.currency == currency else None,
    )  # fmt: skip
    return {"payment_id": r.payment.pk, "created": r.created}


def _refunded(charge: dict[str, Any]) -> dict[str, Any]:
    intent = charge.get("payment_intent")
    payment = Payment.objects.filter(source=PaymentSource.STRIPE, external_key=f"stripe:{intent}").first()
    if payment is None:
        return {"ignored": f"no payment for {intent}"}
    total = _from_minor(int(charge.get("amount_refunded") or 0), payment.currency)
    done = Refund.objects.filter(payment=payment, external_key__startswith="stripe:").aggregate(s=Sum("amount"))["s"]
    delta = total - (done or Decimal(0))
    if delta <= 0:
        return {"ignored": "nothing new refunded"}
    r = services.refund(WEBHOOK_ACTOR, payment.pk, delta, reason=f"Stripe refund of {charge.get('id')}",
                        external_key=f"stripe:{charge.get('id')}:{charge.get('amount_refunded')}")  # fmt: skip
    return {"refund_id": r.pk, "amount": str(r.amount)}


def apply_event(event: dict[str, Any]) -> dict[str, Any]:
    """Apply a verified event exactly once (its id is a unique key); returns what it did."""
    kind = str(event["type"])
    obj = (event.get("data") or {}).get("object") or {}
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = StripeEvent.objects.create(event_id=str(event["id"])[:100], type=kind[:100])
        except IntegrityError:
            return {"event": event["id"], "duplicate": True}
        if kind == "payment_intent.succeeded":
            result = _paid(obj["id"], int(obj.get("amount_received") or obj.get("amount") or 0), obj["currency"],
                           obj.get("metadata") or {})  # fmt: skip
        elif kind == "checkout.session.completed":
            if obj.get("payment_status") != "paid" or not obj.get("payment_intent"):
                result = {"ignored": "session not paid"}
            else:
                result = _paid(obj["payment_intent"], int(obj.get("amount_total") or 0), obj["currency"],
                               obj.get("metadata") or {})  # fmt: skip
        elif kind == "charge.refunded":
            result = _refunded(obj)
        else:
            result = {"ignored": f"event type {kind} is not handled"}
        row.result = result
        row.save(update_fields=["result"])
        audit.record(WEBHOOK_ACTOR, "payments.stripe_event", obj=row, after={"type": kind, **result})
    return {"event": event["id"], "duplicate": False, **result}


def client() -> stripe.StripeClient:
    conf = config()
    if not conf["SECRET_KEY"]:
        raise NotConfigured("Stripe is not configured (STRIPE_SECRET_KEY)")
    kwargs: dict[str, Any] = {"max_network_retries": 0}
    if conf["API_BASE"]:
        kwargs["base_addresses"] = {"api": conf["API_BASE"]}
    return stripe.StripeClient(conf["SECRET_KEY"], **kwargs)


def create_checkout(actor: Actor, invoice_id: int) -> CheckoutSession:
    """A Stripe Checkout session for what is still open on the invoice (its customer's users or staff)."""
    permissions.require(actor, Perm.INVOICES_READ)
    invoice = tenancy_selectors.get_or_404(
        billing_selectors.invoices_for(actor).filter(
            kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED, customer__isnull=False
        ),
        invoice_id,
        "invoice",
    )
    amount = selectors.open_balance(invoice)
    if amount <= 0:
        raise Conflict(f"invoice {invoice.number} has nothing left to pay", code="nothing_to_pay")
    base = config()["PUBLIC_URL"].rstrip("/")
    metadata = {"cspdesk_invoice_id": str(invoice.pk), "cspdesk_invoice_number": invoice.number}
    try:
        session = client().v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": invoice.currency.lower(), "unit_amount": _to_minor(amount, invoice.currency),
                    "product_data": {"name": f"Invoice {invoice.number}"}}}],
                "metadata": metadata,
                "payment_intent_data": {"metadata": metadata},
                "client_reference_id": str(invoice.pk),
                "success_url": f"{base}/?paid={invoice.pk}",
                "cancel_url": f"{base}/?unpaid={invoice.pk}",
            }
        )  # fmt: skip
    except stripe.StripeError as exc:
        raise Conflict(f"Stripe refused the Checkout session: {exc.user_message or exc}", code="stripe_error") from None
    with transaction.atomic():
        row = CheckoutSession.objects.create(invoice=invoice, session_id=session.id, url=session.url or "",
                                             amount=amount, currency=invoice.currency,
                                             created_by=actor.username)  # fmt: skip
        audit.record(actor, "payments.checkout_created", obj=row, organisation_id=invoice.organisation_id,
                     customer_id=invoice.customer_id, after={"invoice": invoice.number, "amount": amount,
                     "session_id": session.id})  # fmt: skip
    return row
