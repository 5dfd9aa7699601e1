"""Collections over /api/v1/collections/. Thin: parse, resolve the actor, call one selector or service.

A billing admin (``collections.change``) sets the policy, runs the engine, approves suspensions, lifts cases,
places holds, agrees payment plans and exempts customers; ``collections.read`` lists; ``disputes.change``
opens and closes disputes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field, StrictBool, StrictInt

from cspdesk.api import actor
from cspdesk.core.errors import NotFound, ValidationFailed
from cspdesk.core.output import to_jsonable
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.permissions import Perm
from cspdesk.tenancy.schemas import ErrorOut

from . import selectors, services
from .models import Case, Dispute, Hold, PaymentPlan, Policy

router = Router(tags=["collections"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}
OBJ = {200: dict[str, Any], **ERRORS}
LIST = {200: list[dict[str, Any]], **ERRORS}


class StageIn(Schema):
    days: StrictInt = Field(ge=0, le=3650)
    action: str


class PolicyIn(Schema):
    organisation_id: int | None = None
    customer_id: int | None = None
    stages: list[StageIn]
    grace_days: StrictInt = Field(default=0, ge=0, le=3650)
    minimum_amounts: dict[str, Decimal] = {}
    categories: list[str] = ["azure", "microsoft365"]
    suspend_prepaid_licences: StrictBool = False


class RunIn(Schema):
    dry_run: StrictBool
    today: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")
    cap: StrictInt | None = Field(default=None, ge=0, le=10_000)


class LiftIn(Schema):
    reason: str
    hold_until: dt.date | None = None


class DisputeIn(Schema):
    invoice_id: int
    reason: str
    ticket_id: int | None = None


class ResolutionIn(Schema):
    resolution: str


class HoldIn(Schema):
    customer_id: int
    reason: str
    until: dt.date


class InstalmentIn(Schema):
    due_date: dt.date
    amount: Decimal


class PlanIn(Schema):
    customer_id: int
    invoice_ids: list[int]
    instalments: list[InstalmentIn]
    note: str = ""


class ReasonIn(Schema):
    reason: str


class ExemptionIn(Schema):
    customer_id: int
    reason: str


def _policy(p: Policy) -> dict[str, Any]:
    return to_jsonable({"id": p.pk, "organisation_id": p.organisation_id, "customer_id": p.customer_id,
                        **selectors.rules_of(p).as_dict(), "updated_by": p.updated_by,
                        "updated_at": p.updated_at})  # fmt: skip


def _case(c: Case, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.pk, "customer_id": c.customer_id, "customer": c.customer.name, "organisation_id": c.organisation_id,
        "status": c.status, "opened_on": c.opened_on, "oldest_due_date": c.oldest_due_date,
        "overdue": c.overdue_amounts, "last_stage": c.last_stage_key, "last_stage_on": c.last_stage_on,
        "handed_over": c.handed_over, "closed_on": c.closed_on, "close_reason": c.close_reason,
    }  # fmt: skip
    if detail:
        out["actions"] = [{"stage": a.stage_key, "action": a.action, "status": a.status, "run_on": a.run_on,
                           "approved_by": a.approved_by, "details": a.details} for a in c.actions.all()]  # fmt: skip
        out["suspensions"] = [{"subscription_id": s.subscription_id, "state": s.state, "attempts": s.attempts,
                               "last_error": s.last_error, "suspended_at": s.suspended_at,
                               "reactivated_at": s.reactivated_at} for s in c.suspensions.all()]  # fmt: skip
    return to_jsonable(out)


def _dispute(d: Dispute) -> dict[str, Any]:
    return to_jsonable({"id": d.pk, "invoice_id": d.invoice_id, "invoice": d.invoice.number,
                        "customer_id": d.customer_id, "status": d.status, "reason": d.reason, "source": d.source,
                        "ticket_id": d.ticket_id, "opened_by": d.opened_by, "opened_at": d.opened_at,
                        "resolution": d.resolution, "closed_at": d.closed_at})  # fmt: skip


def _hold(h: Hold) -> dict[str, Any]:
    return to_jsonable({"id": h.pk, "customer_id": h.customer_id, "reason": h.reason, "until": h.until,
                        "created_by": h.created_by, "released_at": h.released_at})  # fmt: skip


def _plan(p: PaymentPlan) -> dict[str, Any]:
    return to_jsonable({"id": p.pk, "customer_id": p.customer_id, "currency": p.currency, "status": p.status,
                        "open_at_start": p.open_at_start, "note": p.note,
                        "instalments": [{"due_date": i.due_date, "amount": i.amount}
                                        for i in p.instalments.all()]})  # fmt: skip


@router.get("/collections/policy", response=OBJ)
def get_policy(request: HttpRequest, organisation_id: int | None = None, customer_id: int | None = None) -> Any:
    """The policy of an organisation (default: yours), or the one that applies to a customer."""
    a = actor(request)
    permissions.require(a, Perm.COLLECTIONS_READ)
    if customer_id is not None:
        customer = tenancy_selectors.get_or_404(selectors.customers_in_scope(a), customer_id, "customer")
        found = selectors.policy_for_customer(customer)
    else:
        org = organisation_id or a.organisation_id or 0
        found = selectors.policies_for(a).filter(organisation_id=org, customer__isnull=True).first()
    if found is None:
        raise NotFound("no collections policy is configured there")
    return _policy(found)


@router.put("/collections/policy", response=OBJ)
def set_policy(request: HttpRequest, payload: PolicyIn) -> Any:
    data = payload.dict(exclude={"organisation_id", "customer_id"})
    return _policy(services.set_policy(actor(request), data, organisation_id=payload.organisation_id,
                                       customer_id=payload.customer_id))  # fmt: skip


@router.delete("/customers/{customer_id}/collections/policy", response=OBJ)
def remove_customer_policy(request: HttpRequest, customer_id: int) -> Any:
    services.remove_customer_policy(actor(request), customer_id)
    return {"customer_id": customer_id, "own_policy": False}


@router.post("/collections/run", response=OBJ)
def run(request: HttpRequest, payload: RunIn) -> Any:
    """Run the engine over your organisation's customers now (``dry_run``: only report)."""
    try:
        today = dt.date.fromisoformat(payload.today) if payload.today else None
    except ValueError:
        raise ValidationFailed(f"today: {payload.today!r} is not a date (YYYY-MM-DD)", field="today") from None
    report = services.run(actor(request), today=today, dry_run=payload.dry_run, cap=payload.cap)
    return to_jsonable(report.as_dict())


@router.get("/collections/cases", response=LIST)
def list_cases(request: HttpRequest, status: str | None = "open") -> Any:
    a = actor(request)
    permissions.require(a, Perm.COLLECTIONS_READ)
    qs = selectors.cases_for(a)
    if status:
        qs = qs.filter(status=status)
    return [_case(c) for c in qs.order_by("-opened_on", "-pk")[:500]]


@router.get("/collections/cases/{case_id}", response=OBJ)
def get_case(request: HttpRequest, case_id: int) -> Any:
    a = actor(request)
    permissions.require(a, Perm.COLLECTIONS_READ)
    return _case(tenancy_selectors.get_or_404(selectors.cases_for(a), case_id, "case"), detail=True)


@router.post("/collections/cases/{case_id}/approve", response=OBJ)
def approve(request: HttpRequest, case_id: int) -> Any:
    a = actor(request)
    services.approve_suspension(a, case_id)
    return _case(Case.objects.get(pk=case_id), detail=True)


@router.post("/collections/cases/{case_id}/lift", response=OBJ)
def lift(request: HttpRequest, case_id: int, payload: LiftIn) -> Any:
    return _case(services.lift_case(actor(request), case_id, reason=payload.reason, hold_until=payload.hold_until),
                 detail=True)  # fmt: skip


@router.get("/customers/{customer_id}/collections/timeline", response=LIST)
def timeline(request: HttpRequest, customer_id: int) -> Any:
    a = actor(request)
    permissions.require(a, Perm.COLLECTIONS_READ)
    return to_jsonable(selectors.timeline(a, customer_id))


@router.get("/collections/disputes", response=LIST)
def list_disputes(request: HttpRequest, status: str | None = None) -> Any:
    a = actor(request)
    if not (permissions.has(a, Perm.COLLECTIONS_READ) or permissions.has(a, Perm.DISPUTES_CHANGE)):
        permissions.require(a, Perm.COLLECTIONS_READ)
    qs = selectors.disputes_for(a)
    if status:
        qs = qs.filter(status=status)
    return [_dispute(d) for d in qs[:500]]


@router.post("/collections/disputes", response=OBJ)
def open_dispute(request: HttpRequest, payload: DisputeIn) -> Any:
    source = "ticket" if payload.ticket_id else "manual"
    return _dispute(services.open_dispute(actor(request), payload.invoice_id, reason=payload.reason, source=source,
                                          ticket_id=payload.ticket_id))  # fmt: skip


@router.post("/collections/disputes/{dispute_id}/close", response=OBJ)
def close_dispute(request: HttpRequest, dispute_id: int, payload: ResolutionIn) -> Any:
    return _dispute(services.close_dispute(actor(request), dispute_id, resolution=payload.resolution))


@router.get("/collections/holds", response=LIST)
def list_holds(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.COLLECTIONS_READ)
    return [_hold(h) for h in selectors.holds_for(a)[:500]]


@router.post("/collections/holds", response=OBJ)
def place_hold(request: HttpRequest, payload: HoldIn) -> Any:
    return _hold(services.place_hold(actor(request), payload.customer_id, reason=payload.reason, until=payload.until))


@router.post("/collections/holds/{hold_id}/release", response=OBJ)
def release_hold(request: HttpRequest, hold_id: int) -> Any:
    return _hold(services.release_hold(actor(request), hold_id))


@router.get("/collections/payment-plans", response=LIST)
def list_plans(request: HttpRequest, status: str | None = None) -> Any:
    a = actor(request)
    permissions.require(a, Perm.COLLECTIONS_READ)
    qs = selectors.plans_for(a)
    if status:
        qs = qs.filter(status=status)
    return [_plan(p) for p in qs[:500]]


@router.post("/collections/payment-plans", response=OBJ)
def create_plan(request: HttpRequest, payload: PlanIn) -> Any:
    plan = services.create_payment_plan(actor(request), payload.customer_id, invoice_ids=payload.invoice_ids,
                                        instalments=[(i.due_date, i.amount) for i in payload.instalments],
                                        note=payload.note)  # fmt: skip
    return _plan(plan)


@router.post("/collections/payment-plans/{plan_id}/cancel", response=OBJ)
def cancel_plan(request: HttpRequest, plan_id: int, payload: ReasonIn) -> Any:
    return _plan(services.cancel_payment_plan(actor(request), plan_id, reason=payload.reason))


@router.post("/collections/exemptions", response=OBJ)
def exempt(request: HttpRequest, payload: ExemptionIn) -> Any:
    e = services.exempt_customer(actor(request), payload.customer_id, reason=payload.reason)
    return {"customer_id": e.customer_id, "reason": e.reason, "exempt": True}


@router.delete("/customers/{customer_id}/collections/exemption", response=OBJ)
def end_exemption(request: HttpRequest, customer_id: int) -> Any:
    services.end_exemption(actor(request), customer_id)
    return {"customer_id": customer_id, "exempt": False}
