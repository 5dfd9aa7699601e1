"""Catalog reads, scoped by an :class:`Actor`: staff with ``price_rules.read`` see their organisations' rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from django.db.models import Q, QuerySet

from cspdesk.core.actor import Actor, ActorKind
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.permissions import Perm

from .models import PriceRule, SupportAssignment, SupportCharge, SupportPlan
from .resolution import RuleSpec


def _org_ids(actor: Actor) -> set[int] | None:
    if not permissions.has(actor, Perm.PRICE_RULES_READ) or actor.kind is ActorKind.CUSTOMER:
        return set()
    return tenancy_selectors.readable_organisation_ids(actor)


def price_rules_for(actor: Actor) -> QuerySet[PriceRule]:
    ids = _org_ids(actor)
    qs = PriceRule.objects.select_related("organisation", "reseller", "customer")
    return qs if ids is None else qs.filter(organisation_id__in=ids)


def support_plans_for(actor: Actor) -> QuerySet[SupportPlan]:
    ids = _org_ids(actor)
    qs = SupportPlan.objects.select_related("organisation")
    return qs if ids is None else qs.filter(organisation_id__in=ids)


def spec_of(rule: PriceRule) -> RuleSpec:
    return RuleSpec(
        id=rule.pk,
        method=rule.method,
        reseller_id=rule.reseller_id,
        customer_id=rule.customer_id,
        category=rule.category,
        product_id=rule.product_id,
        sku_id=rule.sku_id,
        meter_category=rule.meter_category,
        percent=rule.percent,
        unit_price=rule.unit_price,
        currency=rule.currency,
        effective_from=rule.effective_from,
        effective_to=rule.effective_to,
    )


def rule_specs(organisation_id: int, start: dt.date, end: dt.date) -> list[RuleSpec]:
    """An organisation's rules in force at some point of [start, end] (for the billing run; unscoped)."""
    qs = PriceRule.objects.filter(organisation_id=organisation_id, effective_from__lte=end).filter(
        Q(effective_to__isnull=True) | Q(effective_to__gte=start)
    )
    return [spec_of(r) for r in qs.order_by("pk")]


def support_assignments(
    organisation_id: int, start: dt.date, end: dt.date, *, customer_ids: Collection[int] | None = None
) -> list[SupportAssignment]:
    """Customers' support plans in force during [start, end] for an organisation's customers (unscoped), or
    for some of them."""
    qs = SupportAssignment.objects.filter(plan__organisation_id=organisation_id, effective_from__lte=end).filter(
        Q(effective_to__isnull=True) | Q(effective_to__gte=start)
    )
    if customer_ids is not None:
        qs = qs.filter(customer_id__in=customer_ids)
    return list(qs.select_related("plan", "customer").order_by("customer_id", "effective_from", "pk"))


def support_charges(customer_id: int, plan_id: int, start: dt.date, end: dt.date) -> list[SupportCharge]:
    qs = SupportCharge.objects.filter(customer_id=customer_id, plan_id=plan_id, occurred_on__range=(start, end))
    return list(qs.order_by("occurred_on", "pk"))
