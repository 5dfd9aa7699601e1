"""Reads of Partner Center data, scoped by an :class:`Actor` through the tenancy selectors."""

from __future__ import annotations

from django.db.models import QuerySet

from cspdesk.core.actor import Actor
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.permissions import Perm

from .models import Subscription, SubscriptionStatusChange


def subscriptions_for(actor: Actor, perm: Perm = Perm.SUBSCRIPTIONS_READ) -> QuerySet[Subscription]:
    """Subscriptions of the customers the actor may read (or, with a change permission, change)."""
    customers = tenancy_selectors.customers_for(actor, perm)
    return Subscription.objects.select_related("customer").filter(customer__in=customers)


def status_changes_for(actor: Actor) -> QuerySet[SubscriptionStatusChange]:
    return SubscriptionStatusChange.objects.filter(subscription__in=subscriptions_for(actor))
