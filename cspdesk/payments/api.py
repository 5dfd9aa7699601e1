"""Payments and receivables over /api/v1/. Thin: parse, resolve the actor, call one selector or service."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema
from ninja.pagination import paginate

from cspdesk.api import actor
from cspdesk.core.output import to_jsonable
from cspdesk.core.pagination import Pagination
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.permissions import Perm
from cspdesk.tenancy.schemas import ErrorOut

from . import selectors, services, statements, stripe_gateway

router = Router(tags=["payments"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}
OBJ = {200: dict[str, Any], **ERRORS}
LIST = {200: list[dict[str, Any]], **ERRORS}


class PaymentIn(Schema):
    amount: Decimal
    currency: str
    received_on: dt.date
    customer_id: int | None = None
    organisation_id: int | None = None
    method: str = "bank_transfer"
    reference: str = ""
    payer_name: str = ""
    payer_account: str = ""
    invoice_id: int | None = None


class AssignIn(Schema):
    customer_id: int
    invoice_id: int | None = None


class AllocateIn(Schema):
    invoice_id: int
    amount: Decimal | None = None


class ReasonIn(Schema):
    reason: str


class RefundIn(Schema):
    amount: Decimal
    reason: str
    refunded_on: dt.date | None = None


class WriteOffIn(Schema):
    reason: str
    amount: Decimal | None = None  # the whole open amount when left out
    written_off_on: dt.date | None = None


class WriteOffOut(Schema):
    id: int
    invoice_id: int
    invoice: str
    customer_id: int | None
    amount: Decimal
    currency: str
    written_off_on: dt.date
    reason: str
    created_by: str
    reversed_at: dt.datetime | None
    reversal_reason: str

    @staticmethod
    def resolve_invoice(obj: Any) -> str:
        return str(obj.invoice.number)

    @staticmethod
    def resolve_customer_id(obj: Any) -> int | None:
        return obj.invoice.customer_id

    @staticmethod
    def resolve_currency(obj: Any) -> str:
        return str(obj.invoice.currency)


def _payment(pk: int) -> Any:
    from .models import Payment

    return to_jsonable(selectors.payment_dict(Payment.objects.select_related("customer").get(pk=pk)))


@router.get("/payments", response=LIST)
def list_payments(request: HttpRequest, customer_id: int | None = None) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PAYMENTS_READ)
    qs = selectors.payments_for(a)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return [to_jsonable(selectors.payment_dict(p)) for p in qs.order_by("-received_on", "-pk")[:500]]


@router.post("/payments", response=OBJ)
def record_payment(request: HttpRequest, payload: PaymentIn) -> Any:
    r = services.record_payment(actor(request), **payload.dict())
    return _payment(r.payment.pk)


@router.get("/payments/suspense", response=LIST)
def suspense(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PAYMENTS_READ)
    return [to_jsonable(selectors.payment_dict(p)) for p in selectors.suspense_for(a)]


@router.get("/payments/{payment_id}", response=OBJ)
def get_payment(request: HttpRequest, payment_id: int) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PAYMENTS_READ)
    return to_jsonable(selectors.payment_dict(tenancy_selectors.get_or_404(selectors.payments_for(a), payment_id,
                                                                           "payment")))  # fmt: skip


@router.post("/payments/{payment_id}/assign", response=OBJ)
def assign(request: HttpRequest, payment_id: int, payload: AssignIn) -> Any:
    services.assign_customer(actor(request), payment_id, payload.customer_id, payload.invoice_id)
    return _payment(payment_id)


@router.post("/payments/{payment_id}/allocate", response=OBJ)
def allocate(request: HttpRequest, payment_id: int, payload: AllocateIn) -> Any:
    services.allocate(actor(request), payment_id, payload.invoice_id, payload.amount)
    return _payment(payment_id)


@router.post("/payments/{payment_id}/refund", response=OBJ)
def refund(request: HttpRequest, payment_id: int, payload: RefundIn) -> Any:
    services.refund(actor(request), payment_id, payload.amount, reason=payload.reason,
                    refunded_on=payload.refunded_on)  # fmt: skip
    return _payment(payment_id)


@router.post("/payments/{payment_id}/suspense", response=OBJ)
def to_suspense(request: HttpRequest, payment_id: int, payload: ReasonIn) -> Any:
    services.return_to_suspense(actor(request), payment_id, reason=payload.reason)
    return _payment(payment_id)


@router.get("/allocations", response=LIST)
def list_allocations(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PAYMENTS_READ)
    return [
        to_jsonable({"id": x.pk, "payment_id": x.payment_id, "invoice_id": x.invoice_id, "invoice": x.invoice.number,
                     "amount": x.amount, "rule": x.rule, "customer_id": x.payment.customer_id,
                     "organisation_id": x.payment.organisation_id, "reversed_at": x.reversed_at})
        for x in selectors.allocations_for(a).order_by("-pk")[:1000]
    ]  # fmt: skip


@router.post("/allocations/{allocation_id}/reverse", response=OBJ)
def reverse(request: HttpRequest, allocation_id: int, payload: ReasonIn) -> Any:
    a = services.reverse_allocation(actor(request), allocation_id, reason=payload.reason)
    return _payment(a.payment_id)


@router.post("/invoices/{invoice_id}/write-off", response={201: WriteOffOut, **ERRORS})
def write_off(request: HttpRequest, invoice_id: int, payload: WriteOffIn) -> Any:
    """Write off (part of) an invoice's open amount as uncollectable; collections re-checks the customer."""
    wo = services.write_off(actor(request), invoice_id, reason=payload.reason, amount=payload.amount,
                            on=payload.written_off_on)  # fmt: skip
    return 201, wo


@router.get("/write-offs", response=list[WriteOffOut])
@paginate(Pagination)
def list_write_offs(request: HttpRequest, customer_id: int | None = None) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PAYMENTS_READ)
    qs = selectors.write_offs_for(a).order_by("-pk")
    if customer_id is not None:
        qs = qs.filter(invoice__customer_id=customer_id)
    return qs


@router.post("/write-offs/{write_off_id}/reverse", response={200: WriteOffOut, **ERRORS})
def reverse_write_off(request: HttpRequest, write_off_id: int, payload: ReasonIn) -> Any:
    return services.reverse_write_off(actor(request), write_off_id, reason=payload.reason)


@router.get("/receivables/aging", response=OBJ)
def aging(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PAYMENTS_READ)
    return to_jsonable(selectors.aging_report(a))


@router.get("/receivables/balances", response=LIST)
def balances(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PAYMENTS_READ)
    return to_jsonable(selectors.customer_balances(a))


@router.get("/receivables/cash-forecast", response=LIST)
def cash_forecast(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PAYMENTS_READ)
    return to_jsonable(selectors.cash_forecast(a))


@router.get("/customers/{customer_id}/statement.pdf", response={200: None, **ERRORS})
def statement_pdf(request: HttpRequest, customer_id: int) -> Any:
    data, name = statements.statement_pdf(actor(request), customer_id)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@router.post("/invoices/{invoice_id}/checkout", response=OBJ)
def checkout(request: HttpRequest, invoice_id: int) -> Any:
    row = stripe_gateway.create_checkout(actor(request), invoice_id)
    return {"session_id": row.session_id, "url": row.url, "amount": str(row.amount), "currency": row.currency}


@router.post("/payments/stripe/webhook", auth=None, response=OBJ)
def stripe_webhook(request: HttpRequest) -> Any:
    """Stripe's events; the ``Stripe-Signature`` header is checked with the signing secret (400 otherwise)."""
    event = stripe_gateway.verify(request.body, request.headers.get("Stripe-Signature"))
    return to_jsonable(stripe_gateway.apply_event(event))
