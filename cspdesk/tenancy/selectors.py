"""Reads scoped by an :class:`Actor`: the only place tenancy filters are written.

Who sees what:
- a direct-bill partner's or a reseller's staff: their own organisation and its customers;
- an indirect provider's staff: their organisation, their resellers, and (read-only) the resellers' customers;
- a customer user: their own customer only;
- the system actor (jobs, the demo loader, platform operators): everything.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import NotFound, Unauthenticated

from . import permissions
from .models import ApiToken, Customer, Membership, Organisation, OrganisationKind
from .permissions import Perm

User = get_user_model()


def actor_for_user(user: Any, request_id: str | None = None) -> Actor:
    """The actor for an authenticated Django user."""
    if user is None or not user.is_authenticated:
        raise Unauthenticated("log in or send an API token")
    membership = (
        Membership.objects.filter(user_id=user.pk).select_related("customer").prefetch_related("grants").first()
    )
    if membership is None:
        if user.is_superuser:
            return Actor(kind=ActorKind.SYSTEM, user_id=user.pk, username=user.get_username(), request_id=request_id)
        return Actor(kind=ActorKind.STAFF, user_id=user.pk, username=user.get_username(), request_id=request_id)
    roles = frozenset(g.role for g in membership.grants.all())
    if membership.organisation_id is not None:
        return Actor(
            kind=ActorKind.STAFF,
            user_id=user.pk,
            username=user.get_username(),
            organisation_id=membership.organisation_id,
            roles=roles,
            request_id=request_id,
        )
    customer = membership.customer
    assert customer is not None  # the membership_one_home constraint: no organisation means a customer
    return Actor(
        kind=ActorKind.CUSTOMER,
        user_id=user.pk,
        username=user.get_username(),
        organisation_id=customer.organisation_id,
        customer_id=membership.customer_id,
        roles=roles,
        request_id=request_id,
    )


def readable_organisation_ids(actor: Actor) -> set[int] | None:
    """Organisations whose data the actor may read; ``None`` means all."""
    if actor.is_system:
        return None
    if actor.organisation_id is None:
        return set()
    if actor.kind is ActorKind.CUSTOMER:
        return set()
    ids = {actor.organisation_id}
    ids |= set(Organisation.objects.filter(parent_id=actor.organisation_id).values_list("pk", flat=True))
    return ids


def organisations_for(actor: Actor) -> QuerySet[Organisation]:
    if not permissions.has(actor, Perm.ORGANISATIONS_READ):
        return Organisation.objects.none()
    ids = readable_organisation_ids(actor)
    qs = Organisation.objects.all()
    return qs if ids is None else qs.filter(pk__in=ids)


def organisations_changeable_by(actor: Actor) -> QuerySet[Organisation]:
    """An organisation's global admin changes it; an indirect provider's also changes its resellers."""
    if not permissions.has(actor, Perm.ORGANISATIONS_CHANGE):
        return Organisation.objects.none()
    return organisations_for(actor)


def customers_for(actor: Actor, perm: Perm = Perm.CUSTOMERS_READ) -> QuerySet[Customer]:
    """Customers the actor may read (or, with a change permission, change)."""
    if not permissions.has(actor, perm):
        return Customer.objects.none()
    qs = Customer.objects.select_related("organisation")
    if actor.is_system:
        return qs
    if actor.kind is ActorKind.CUSTOMER:
        if perm.value.endswith(".change") and perm is not Perm.TICKETS_CHANGE:
            return qs.none()
        return qs.filter(pk=actor.customer_pk)
    if perm.value.endswith(".read"):
        ids = readable_organisation_ids(actor) or set()
        return qs.filter(organisation_id__in=ids)
    # Changes only in the actor's own organisation: a provider reads its resellers' customers, no more.
    return qs.filter(organisation_id=actor.organisation_pk)


def billing_organisations_for(actor: Actor) -> QuerySet[Organisation]:
    """Organisations under which the actor may create customers."""
    if not permissions.has(actor, Perm.CUSTOMERS_CHANGE) or actor.kind is ActorKind.CUSTOMER:
        return Organisation.objects.none()
    qs = Organisation.objects.exclude(kind=OrganisationKind.INDIRECT_PROVIDER)
    return qs if actor.is_system else qs.filter(pk=actor.organisation_pk)


def memberships_for(actor: Actor, perm: Perm = Perm.USERS_READ) -> QuerySet[Membership]:
    if not permissions.has(actor, perm):
        return Membership.objects.none()
    qs = Membership.objects.select_related("user", "organisation", "customer").prefetch_related("grants")
    if actor.is_system:
        return qs
    if actor.kind is ActorKind.CUSTOMER:
        return qs.filter(customer_id=actor.customer_pk)
    if perm is Perm.USERS_READ:
        ids = readable_organisation_ids(actor) or set()
    else:
        ids = {actor.organisation_id} if actor.organisation_id else set()
    return qs.filter(Q(organisation_id__in=ids) | Q(customer__organisation_id__in=ids))


def get_or_404(qs: QuerySet[Any], pk: Any, what: str) -> Any:
    """One object from an already scoped queryset; absent and forbidden look the same (404)."""
    try:
        return qs.get(pk=pk)
    except (qs.model.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"no {what} with id {pk}") from None


def tokens_for(actor: Actor) -> QuerySet[ApiToken]:
    """The actor's own API tokens (nobody lists another user's)."""
    return ApiToken.objects.filter(user_id=actor.user_pk) if actor.user_id else ApiToken.objects.none()
