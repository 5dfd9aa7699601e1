"""Subscriptions mirrored from Partner Center, over /api/v1/ (read-only). Thin: resolve the actor, select."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router
from ninja.pagination import paginate

from cspdesk.api import actor
from cspdesk.core.pagination import Pagination
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.permissions import Perm
from cspdesk.tenancy.schemas import ErrorOut

from . import selectors
from .schemas import SubscriptionOut

router = Router(tags=["partnercenter"])


@router.get("/subscriptions", response=list[SubscriptionOut])
@paginate(Pagination)
def list_subscriptions(request: HttpRequest, customer_id: int | None = None, status: str | None = None) -> Any:
    a = actor(request)
    permissions.require(a, Perm.SUBSCRIPTIONS_READ)
    qs = selectors.subscriptions_for(a).order_by("pk")
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    if status:
        qs = qs.filter(status=status)
    return qs


@router.get("/subscriptions/{subscription_id}", response={200: SubscriptionOut, 403: ErrorOut, 404: ErrorOut})
def get_subscription(request: HttpRequest, subscription_id: int) -> Any:
    a = actor(request)
    permissions.require(a, Perm.SUBSCRIPTIONS_READ)
    return tenancy_selectors.get_or_404(selectors.subscriptions_for(a), subscription_id, "subscription")
