"""Billing over /api/v1/: billing runs and their review, invoices, documents, credit notes, payables. Thin."""

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

from . import archive, selectors, services
from .management.commands.invoice import invoice_dict
from .payables import payables

router = Router(tags=["billing"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}
OBJ = {200: dict[str, Any], **ERRORS}
LIST = {200: list[dict[str, Any]], **ERRORS}


class BillIn(Schema):
    period: str


class ExchangeRateIn(Schema):
    source_currency: str
    target_currency: str
    rate: Decimal  # 1 source = rate target
    rate_date: dt.date
    provider: str = ""


class ExchangeRateOut(Schema):
    id: int
    organisation_id: int
    source_currency: str
    target_currency: str
    rate: Decimal
    rate_date: dt.date
    provider: str


class CreditIn(Schema):
    reason: str
    positions: list[int] | None = None


def _run(run_id: int) -> dict[str, Any]:
    from .management.commands.bill import run_report

    return to_jsonable(run_report(run_id))


@router.post("/billing/runs", response=OBJ)
def bill(request: HttpRequest, payload: BillIn) -> Any:
    run = services.bill(actor(request), services.parse_period(payload.period))
    return _run(run.pk)


@router.get("/billing/runs/{run_id}", response=OBJ)
def review(request: HttpRequest, run_id: int) -> Any:
    a = actor(request)
    permissions.require(a, Perm.INVOICES_READ)
    run = tenancy_selectors.get_or_404(selectors.runs_for(a), run_id, "billing run")
    return _run(run.pk)


@router.post("/billing/runs/{run_id}/finalize", response=OBJ)
def finalize(request: HttpRequest, run_id: int) -> Any:
    run = services.finalize_run(actor(request), run_id)
    return _run(run.pk)


@router.get("/invoices", response=LIST)
def list_invoices(request: HttpRequest, status: str | None = None, period: str | None = None) -> Any:
    a = actor(request)
    permissions.require(a, Perm.INVOICES_READ)
    qs = selectors.invoices_for(a).order_by("pk")
    if status:
        qs = qs.filter(status=status)
    if period:
        qs = qs.filter(period=services.parse_period(period))
    return to_jsonable([invoice_dict(i) for i in qs])


def _invoice(request: HttpRequest, invoice_id: int) -> Any:
    a = actor(request)
    permissions.require(a, Perm.INVOICES_READ)
    return tenancy_selectors.get_or_404(selectors.invoices_for(a), invoice_id, "invoice")


@router.get("/invoices/{invoice_id}", response=OBJ)
def get_invoice(request: HttpRequest, invoice_id: int) -> Any:
    inv = _invoice(request, invoice_id)
    lines = [
        {"position": ln.position, "description": ln.description, "group": ln.group, "quantity": ln.quantity,
         "unit_price": ln.unit_price, "net_amount": ln.net_amount, "vat_category": ln.vat_category,
         "vat_rate": ln.vat_rate, "period_start": ln.period_start, "period_end": ln.period_end}
        for ln in inv.lines.order_by("position")
    ]  # fmt: skip
    return to_jsonable({**invoice_dict(inv), "lines": lines})


@router.get("/invoices/{invoice_id}/lines/{position}/charges", response=LIST)
def explain(request: HttpRequest, invoice_id: int, position: int) -> Any:
    a = actor(request)
    permissions.require(a, Perm.INVOICES_READ)
    inv = _invoice(request, invoice_id)
    line = inv.lines.filter(position=position).first()
    rows = selectors.charges_of_line(a, inv.pk, line.pk if line else -1)
    return to_jsonable([
        {"charge_line_id": r.charge_line_id, "import_id": r.charge_line.source_id,
         "file": r.charge_line.source.file_name,
         "first_line": r.charge_line.first_line, "last_line": r.charge_line.last_line, "cost": r.cost, "price": r.price}
        for r in rows
    ])  # fmt: skip


@router.get("/invoices/{invoice_id}/pdf", response=ERRORS)
def pdf(request: HttpRequest, invoice_id: int) -> HttpResponse:
    inv = _invoice(request, invoice_id)
    resp = HttpResponse(archive.pdf(inv), content_type="application/pdf")
    resp["Content-Disposition"] = f'attachment; filename="{inv.number or inv.pk}.pdf"'
    return resp


@router.get("/invoices/{invoice_id}/ubl", response=ERRORS)
def ubl(request: HttpRequest, invoice_id: int) -> HttpResponse:
    inv = _invoice(request, invoice_id)
    resp = HttpResponse(archive.ubl(inv), content_type="application/xml")
    resp["Content-Disposition"] = f'attachment; filename="{inv.number or inv.pk}.xml"'
    return resp


@router.post("/invoices/{invoice_id}/credit-notes", response=OBJ)
def credit(request: HttpRequest, invoice_id: int, payload: CreditIn) -> Any:
    note = services.issue_credit_note(actor(request), invoice_id, reason=payload.reason, positions=payload.positions)
    return to_jsonable(invoice_dict(note))


@router.get("/payables", response=LIST)
def list_payables(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.INVOICES_READ)
    return to_jsonable(payables(a))


@router.get("/exchange-rates", response=list[ExchangeRateOut])
@paginate(Pagination)
def list_exchange_rates(request: HttpRequest, source_currency: str = "", target_currency: str = "") -> Any:
    """The caller's rate table, newest first: the rates billing converts with when a customer's currency
    differs from Microsoft's (the rate on or before the invoice's period end; printed on the invoice)."""
    a = actor(request)
    permissions.require(a, Perm.INVOICES_READ)
    qs = selectors.exchange_rates_for(a).order_by("-rate_date", "source_currency", "target_currency")
    if source_currency:
        qs = qs.filter(source_currency=source_currency.upper())
    if target_currency:
        qs = qs.filter(target_currency=target_currency.upper())
    return qs


@router.post("/exchange-rates", response={201: ExchangeRateOut, **ERRORS})
def set_exchange_rate(request: HttpRequest, payload: ExchangeRateIn) -> Any:
    """Set the rate of one day (a second call for the same pair and day replaces it, audited)."""
    return 201, services.add_exchange_rate(actor(request), source=payload.source_currency,
                                           target=payload.target_currency, rate=payload.rate,
                                           rate_date=payload.rate_date, provider=payload.provider)  # fmt: skip
