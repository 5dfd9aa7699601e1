"""Catalog state changes: price rules and support plans. Each records one audit event."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction

from cspdesk.audit import services as audit
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from cspdesk.core.money import is_currency
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.models import Customer, Organisation, OrganisationKind
from cspdesk.tenancy.permissions import Perm

from .models import (
    PriceMethod,
    PriceRule,
    ProductCategory,
    SupportAssignment,
    SupportCharge,
    SupportChargeKind,
    SupportPlan,
    SupportPriceModel,
)
from .selectors import spec_of


def _own_organisation(actor: Actor, organisation_id: int) -> Organisation:
    """An organisation whose prices the actor sets: its own (the system actor: any)."""
    org = tenancy_selectors.get_or_404(Organisation.objects.all(), organisation_id, "organisation")
    if not actor.is_system and actor.organisation_id != org.pk:
        visible = tenancy_selectors.readable_organisation_ids(actor) or set()
        if org.pk in visible:
            raise Forbidden("only the organisation itself sets its prices", code="read_only")
        raise NotFound(f"no organisation with id {organisation_id}")
    return org


def _check_method(method: str, percent: Decimal | None, unit_price: Decimal | None, currency: str) -> None:
    if method not in PriceMethod.values:
        raise ValidationFailed(f"unknown method {method!r}; one of {', '.join(PriceMethod.values)}", field="method")
    if method in (PriceMethod.MARKUP, PriceMethod.LIST_ADJUST):
        if percent is None:
            raise ValidationFailed(f"method {method} needs a percent", field="percent")
        if percent <= Decimal(-100):
            raise ValidationFailed("a percent of −100 or less would price below zero", field="percent")
    if method == PriceMethod.FIXED_UNIT:
        if unit_price is None or unit_price < 0:
            raise ValidationFailed("a fixed unit price needs a unit price of 0 or more", field="unit_price")
        if not is_currency(currency):
            raise ValidationFailed(f"{currency!r} is not an ISO 4217 currency", field="currency")


@transaction.atomic
def create_price_rule(
    actor: Actor,
    *,
    organisation_id: int,
    method: str,
    effective_from: dt.date,
    effective_to: dt.date | None = None,
    reseller_id: int | None = None,
    customer_id: int | None = None,
    category: str = "",
    product_id: str = "",
    sku_id: str = "",
    meter_category: str = "",
    percent: Decimal | None = None,
    unit_price: Decimal | None = None,
    currency: str = "",
    note: str = "",
) -> PriceRule:
    """Add a price rule; refuses one whose exact scope overlaps another rule's dates (409 ``rule_conflict``)."""
    permissions.require(actor, Perm.PRICE_RULES_CHANGE)
    org = _own_organisation(actor, organisation_id)
    _check_method(method, percent, unit_price, currency)
    if category and category not in ProductCategory.values:
        raise ValidationFailed(f"unknown category {category!r}", field="category")
    if reseller_id is not None and customer_id is not None:
        raise ValidationFailed("a rule is for a reseller or for a customer, not both", field="customer_id")
    if (
        reseller_id is not None
        and not Organisation.objects.filter(
            pk=reseller_id, parent=org, kind=OrganisationKind.INDIRECT_RESELLER
        ).exists()
    ):
        raise ValidationFailed("the reseller must be one of this organisation's resellers", field="reseller_id")
    if customer_id is not None:
        ok = (
            Customer.objects.filter(pk=customer_id, organisation=org).exists()
            or Customer.objects.filter(pk=customer_id, organisation__parent=org).exists()
        )
        if not ok:
            raise ValidationFailed("the customer is not billed by this organisation", field="customer_id")
    if effective_to is not None and effective_to < effective_from:
        raise ValidationFailed("the rule ends before it starts", field="effective_to")
    rule = PriceRule(
        organisation=org, reseller_id=reseller_id, customer_id=customer_id, category=category,
        product_id=product_id.strip(), sku_id=sku_id.strip(), meter_category=meter_category.strip(), method=method,
        percent=percent, unit_price=unit_price, currency=currency.upper(), effective_from=effective_from,
        effective_to=effective_to, note=note,
    )  # fmt: skip
    new = spec_of(rule)
    clashing = [
        r.pk
        for r in PriceRule.objects.select_for_update().filter(organisation=org).order_by("pk")
        if spec_of(r).same_scope(new) and spec_of(r).overlaps(new)
    ]
    if clashing:
        raise Conflict(
            f"price rule {clashing[0]} has the same scope and overlapping dates; end it first",
            field="effective_from",
            code="rule_conflict",
        )
    rule.save()
    audit.record(actor, "catalog.price_rule_created", obj=rule, organisation_id=org.pk, after=audit.snapshot(rule))
    return rule


@transaction.atomic
def end_price_rule(actor: Actor, rule_id: int, effective_to: dt.date) -> PriceRule:
    permissions.require(actor, Perm.PRICE_RULES_CHANGE)
    rule = tenancy_selectors.get_or_404(PriceRule.objects.select_for_update(), rule_id, "price rule")
    _own_organisation(actor, rule.organisation_id)
    if effective_to < rule.effective_from:
        raise ValidationFailed("the rule would end before it starts", field="effective_to")
    before = audit.snapshot(rule, ["effective_to"])
    rule.effective_to = effective_to
    rule.save(update_fields=["effective_to"])
    audit.record(actor, "catalog.price_rule_ended", obj=rule, organisation_id=rule.organisation_id, before=before,
                 after=audit.snapshot(rule, ["effective_to"]))  # fmt: skip
    return rule


@transaction.atomic
def create_support_plan(
    actor: Actor,
    *,
    organisation_id: int,
    name: str,
    price_model: str,
    currency: str,
    amount: Decimal | None = None,
    percent: Decimal | None = None,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
) -> SupportPlan:
    permissions.require(actor, Perm.PRICE_RULES_CHANGE)
    org = _own_organisation(actor, organisation_id)
    if price_model not in SupportPriceModel.values:
        raise ValidationFailed(f"unknown price model {price_model!r}", field="price_model")
    if not is_currency(currency):
        raise ValidationFailed(f"{currency!r} is not an ISO 4217 currency", field="currency")
    if price_model == SupportPriceModel.PERCENT_OF_SPEND:
        if percent is None or percent < 0:
            raise ValidationFailed("a % of spend plan needs a percent of 0 or more", field="percent")
        if minimum is not None and maximum is not None and maximum < minimum:
            raise ValidationFailed("the maximum is below the minimum", field="maximum")
    elif amount is None or amount < 0:
        raise ValidationFailed(f"a {price_model} plan needs an amount of 0 or more", field="amount")
    if SupportPlan.objects.filter(organisation=org, name=name).exists():
        raise Conflict(f"a support plan named {name!r} exists", field="name", code="duplicate")
    plan = SupportPlan.objects.create(
        organisation=org, name=name, price_model=price_model, currency=currency.upper(), amount=amount,
        percent=percent, minimum=minimum, maximum=maximum,
    )  # fmt: skip
    audit.record(actor, "catalog.support_plan_created", obj=plan, organisation_id=org.pk, after=audit.snapshot(plan))
    return plan


@transaction.atomic
def assign_support_plan(
    actor: Actor, *, customer_id: int, plan_id: int, effective_from: dt.date, effective_to: dt.date | None = None
) -> SupportAssignment:
    permissions.require(actor, Perm.PRICE_RULES_CHANGE)
    plan = tenancy_selectors.get_or_404(SupportPlan.objects.all(), plan_id, "support plan")
    _own_organisation(actor, plan.organisation_id)
    customer = tenancy_selectors.get_or_404(
        Customer.objects.filter(organisation_id=plan.organisation_id), customer_id, "customer"
    )
    overlapping = SupportAssignment.objects.filter(customer=customer, effective_from__lte=effective_to or dt.date.max)
    for other in overlapping:
        if other.effective_to is None or other.effective_to >= effective_from:
            raise Conflict(
                f"the customer already has support plan {other.plan_id} from {other.effective_from}",
                field="effective_from",
                code="plan_overlap",
            )
    assignment = SupportAssignment.objects.create(
        customer=customer, plan=plan, effective_from=effective_from, effective_to=effective_to
    )
    audit.record(actor, "catalog.support_plan_assigned", obj=assignment, organisation_id=plan.organisation_id,
                 customer_id=customer.pk, after=audit.snapshot(assignment))  # fmt: skip
    return assignment


@transaction.atomic
def record_support_charge(
    actor: Actor, *, customer_id: int, kind: str, quantity: Decimal, description: str, occurred_on: dt.date,
    reference: str,
) -> SupportCharge:  # fmt: skip
    """An incident or a time entry handed over by the support desk; the customer's plan in force prices it."""
    permissions.require(actor, Perm.TICKETS_CHANGE)
    customer = tenancy_selectors.get_or_404(
        tenancy_selectors.customers_for(actor, Perm.TICKETS_CHANGE), customer_id, "customer"
    )
    if kind not in SupportChargeKind.values:
        raise ValidationFailed(f"unknown kind {kind!r}", field="kind")
    if quantity <= 0:
        raise ValidationFailed("the quantity must be above zero", field="quantity")
    assignment = (
        SupportAssignment.objects.filter(customer=customer, effective_from__lte=occurred_on)
        .exclude(effective_to__lt=occurred_on)
        .select_related("plan")
        .first()
    )
    wanted = SupportPriceModel.PER_INCIDENT if kind == SupportChargeKind.INCIDENT else SupportPriceModel.PER_HOUR
    if assignment is None or assignment.plan.price_model != wanted:
        raise ValidationFailed(f"the customer has no {wanted} support plan on {occurred_on}", field="kind")
    existing = SupportCharge.objects.filter(customer=customer, kind=kind, reference=reference).first()
    if existing is not None:
        return existing
    charge = SupportCharge.objects.create(
        customer=customer, plan=assignment.plan, kind=kind, quantity=quantity, description=description,
        occurred_on=occurred_on, reference=reference,
    )  # fmt: skip
    after: dict[str, Any] = audit.snapshot(charge)
    audit.record(actor, "catalog.support_charge_recorded", obj=charge, organisation_id=customer.organisation_id,
                 customer_id=customer.pk, after=after)  # fmt: skip
    return charge
