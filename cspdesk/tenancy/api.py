"""Organisations, customers, users and API tokens over /api/v1/. Thin: parse, resolve the actor, call."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router
from ninja.pagination import paginate

from cspdesk.api import actor
from cspdesk.core.pagination import Pagination

from . import permissions, selectors, services
from .models import Membership
from .permissions import Perm
from .schemas import (
    CustomerIn,
    CustomerOut,
    CustomerPatch,
    ErrorOut,
    MeOut,
    OrganisationIn,
    OrganisationOut,
    OrganisationPatch,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
    UserPatch,
)

router = Router(tags=["tenancy"])
ERRORS: dict[int | str, Any] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    422: ErrorOut,
}


def _user_out(m: Membership) -> dict[str, Any]:
    u = m.user
    return {
        "id": u.pk,
        "username": u.get_username(),
        "email": u.email,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "is_active": u.is_active,
        "organisation_id": m.organisation_id,
        "customer_id": m.customer_id,
        "roles": sorted(g.role for g in m.grants.all()),
    }


@router.get("/me", response={200: MeOut, **ERRORS})
def me(request: HttpRequest) -> dict[str, Any]:
    a = actor(request)
    return {
        "id": a.user_id,
        "username": a.username,
        "kind": a.kind.value,
        "organisation_id": a.organisation_id,
        "customer_id": a.customer_id,
        "roles": sorted(a.roles),
        "permissions": sorted(p.value for p in permissions.permissions_of(a)),
    }


@router.get("/organisations", response=list[OrganisationOut])
@paginate(Pagination)
def list_organisations(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.ORGANISATIONS_READ)
    return selectors.organisations_for(a).order_by("pk")


@router.get("/organisations/{organisation_id}", response={200: OrganisationOut, **ERRORS})
def get_organisation(request: HttpRequest, organisation_id: int) -> Any:
    return selectors.get_or_404(selectors.organisations_for(actor(request)), organisation_id, "organisation")


@router.post("/organisations", response={201: OrganisationOut, **ERRORS})
def create_organisation(request: HttpRequest, payload: OrganisationIn) -> Any:
    data = payload.dict()
    return 201, services.create_organisation(actor(request), **data)


@router.patch("/organisations/{organisation_id}", response={200: OrganisationOut, **ERRORS})
def update_organisation(request: HttpRequest, organisation_id: int, payload: OrganisationPatch) -> Any:
    return services.update_organisation(actor(request), organisation_id, **payload.dict(exclude_unset=True))


@router.get("/customers", response=list[CustomerOut])
@paginate(Pagination)
def list_customers(request: HttpRequest, organisation_id: int | None = None, q: str = "") -> Any:
    a = actor(request)
    permissions.require(a, Perm.CUSTOMERS_READ)
    qs = selectors.customers_for(a).order_by("pk")
    if organisation_id is not None:
        qs = qs.filter(organisation_id=organisation_id)
    if q:
        qs = qs.filter(name__icontains=q)
    return qs


@router.get("/customers/{customer_id}", response={200: CustomerOut, **ERRORS})
def get_customer(request: HttpRequest, customer_id: int) -> Any:
    return selectors.get_or_404(selectors.customers_for(actor(request)), customer_id, "customer")


@router.post("/customers", response={201: CustomerOut, **ERRORS})
def create_customer(request: HttpRequest, payload: CustomerIn) -> Any:
    data = {k: v for k, v in payload.dict().items() if v is not None}
    return 201, services.create_customer(actor(request), **data)


@router.patch("/customers/{customer_id}", response={200: CustomerOut, **ERRORS})
def update_customer(request: HttpRequest, customer_id: int, payload: CustomerPatch) -> Any:
    return services.update_customer(actor(request), customer_id, **payload.dict(exclude_unset=True))


@router.get("/users", response=list[UserOut])
@paginate(Pagination)
def list_users(request: HttpRequest) -> Any:
    a = actor(request)
    permissions.require(a, Perm.USERS_READ)
    return [_user_out(m) for m in selectors.memberships_for(a).order_by("user_id")]


@router.get("/users/{user_id}", response={200: UserOut, **ERRORS})
def get_user(request: HttpRequest, user_id: int) -> Any:
    m = selectors.memberships_for(actor(request)).filter(user_id=user_id).first()
    if m is None:
        return 404, {"code": "not_found", "message": f"no user with id {user_id}", "field": None}
    return _user_out(m)


@router.post("/users", response={201: UserOut, **ERRORS})
def create_user(request: HttpRequest, payload: UserIn) -> Any:
    return 201, _user_out(services.create_user(actor(request), **payload.dict()))


@router.patch("/users/{user_id}", response={200: UserOut, **ERRORS})
def update_user(request: HttpRequest, user_id: int, payload: UserPatch) -> Any:
    return _user_out(services.update_user(actor(request), user_id, **payload.dict(exclude_unset=True)))


@router.get("/tokens", response=list[TokenOut])
def list_tokens(request: HttpRequest) -> Any:
    return selectors.tokens_for(actor(request))


@router.post("/tokens", response={201: TokenCreatedOut, **ERRORS})
def create_token(request: HttpRequest, payload: TokenIn) -> Any:
    token, secret = services.issue_api_token(actor(request), payload.name)
    return 201, {**TokenOut.from_orm(token).dict(), "token": secret}


@router.delete("/tokens/{token_id}", response={200: TokenOut, **ERRORS})
def revoke_token(request: HttpRequest, token_id: int) -> Any:
    return services.revoke_api_token(actor(request), token_id)
