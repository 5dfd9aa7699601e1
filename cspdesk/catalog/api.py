"""Prices over /api/v1/: price rules (with their scope and dates), support plans and their assignment. Thin:
parse, resolve the actor, call one selector or service; the services check scope, conflicts and audit."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.pagination import paginate

from cspdesk.api import actor
from cspdesk.core.errors import ValidationFailed
from cspdesk.core.pagination import Pagination
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm
from cspdesk.tenancy.schemas import ErrorOut

from . import selectors, services

router = Router(tags=["prices"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


class PriceRuleIn(Schema):
    method: str  # markup, list_adjust, fixed_unit, pass_through
    effective_from: dt.date
    effective_to: dt.date | None = None
    reseller_id: int | None = None
    customer_id: int | None = None
    category: str = ""  # azure, microsoft365, dynamics365, other
    product_id: str = ""
    sku_id: str = ""
    meter_category: str = ""
    percent: Decimal | None = None
    unit_price: Decimal | None = None
    currency: str = ""
    note: str = ""
    organisation_id: int | None = None  # defaults to the caller's organisation


class PriceRuleOut(Schema):
    id: int
    organisation_id: int
    reseller_id: int | None
    customer_id: int | None
    category: str
    product_id: str
    sku_id: str
    meter_category: str
    method: str
    percent: Decimal | None
    unit_price: Decimal | None
    currency: str
    effective_from: dt.date
    effective_to: dt.date | None
    note: str


class EndIn(Schema):
    effective_to: dt.date


class SupportPlanIn(Schema):
    name: str
    price_model: str  # flat_monthly, percent_of_spend, per_incident, per_hour
    currency: str
    amount: Decimal | None = None
    percent: Decimal | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    organisation_id: int | None = None


class SupportPlanOut(Schema):
    id: int
    organisation_id: int
    name: str
    price_model: str
    currency: str
    amount: Decimal | None
    percent: Decimal | None
    minimum: Decimal | None
    maximum: Decimal | None


class AssignIn(Schema):
    plan_id: int
    effective_from: dt.date
    effective_to: dt.date | None = None


class AssignmentOut(Schema):
    id: int
    customer_id: int
    plan_id: int
    effective_from: dt.date
    effective_to: dt.date | None


def _organisation(request: HttpRequest, given: int | None) -> int:
    a = actor(request)
    if given is not None:
        return given
    if a.organisation_pk is None:
        raise ValidationFailed("say which organisation the price belongs to", field="organisation_id")
    return a.organisation_pk


@router.get("/price-rules", response=list[PriceRuleOut])
@paginate(Pagination)
def list_price_rules(request: HttpRequest, customer_id: int | None = None, in_force_on: str | None = None) -> Any:
    """The rules the caller may read, most recent first; ``in_force_on`` (YYYY-MM-DD) keeps the rules in force
    that day."""
    a = actor(request)
    permissions.require(a, Perm.PRICE_RULES_READ)
    qs = selectors.price_rules_for(a).order_by("-effective_from", "-pk")
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    if in_force_on is not None:
        try:  # an ISO date only: a number is not a day (pydantic would read 0 as 1970-01-01)
            day = dt.date.fromisoformat(in_force_on)
        except ValueError:
            raise ValidationFailed(f"{in_force_on!r} is not a date (YYYY-MM-DD)", field="in_force_on") from None
        qs = qs.filter(effective_from__lte=day).exclude(effective_to__lt=day)
    return qs


@router.post("/price-rules", response={201: PriceRuleOut, **ERRORS})
def create_price_rule(request: HttpRequest, payload: PriceRuleIn) -> Any:
    """Add a rule; one with the same scope and overlapping dates is refused (409 ``rule_conflict``)."""
    data = payload.dict()
    org = _organisation(request, data.pop("organisation_id"))
    return 201, services.create_price_rule(actor(request), organisation_id=org, **data)


@router.post("/price-rules/{rule_id}/end", response={200: PriceRuleOut, **ERRORS})
def end_price_rule(request: HttpRequest, rule_id: int, payload: EndIn) -> Any:
    """End a rule on a day (its last day in force), e.g. before a new rule of the same scope starts."""
    return services.end_price_rule(actor(request), rule_id, payload.effective_to)


@router.get("/support-plans", response=list[SupportPlanOut])
@paginate(Pagination)
def list_support_plans(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.PRICE_RULES_READ)
    return selectors.support_plans_for(a).order_by("name", "pk")


@router.post("/support-plans", response={201: SupportPlanOut, **ERRORS})
def create_support_plan(request: HttpRequest, payload: SupportPlanIn) -> Any:
    data = payload.dict()
    org = _organisation(request, data.pop("organisation_id"))
    return 201, services.create_support_plan(actor(request), organisation_id=org, **data)


@router.post("/customers/{customer_id}/support-plan", response={201: AssignmentOut, **ERRORS})
def assign_support_plan(request: HttpRequest, customer_id: int, payload: AssignIn) -> Any:
    """Put a customer on a support plan from a day; its fees are billed with the month."""
    return 201, services.assign_support_plan(actor(request), customer_id=customer_id, **payload.dict())
