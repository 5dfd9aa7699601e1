"""State changes for organisations, customers, users and API tokens.

Each operation: check the permission and the tenant scope, validate, write, record one audit event.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from cspdesk.audit import services as audit
from cspdesk.core import clock
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed

from . import permissions, selectors, validation
from .models import (
    ApiToken,
    Cloud,
    Customer,
    CustomerRole,
    CustomerStatus,
    Membership,
    Organisation,
    OrganisationKind,
    RoleGrant,
    StaffRole,
)
from .permissions import Perm

User = get_user_model()

_ORG_VALIDATORS: dict[str, Callable[..., Any]] = {
    "country": validation.country,
    "billing_currency": lambda v, field: validation.currency(v, field),
    "default_locale": lambda v, field: validation.locale(v, field),
    "vat_id": validation.vat_id,
    "pc_tenant_id": lambda v, field: None if v in (None, "") else validation.tenant_id(v, field),
    "bank_iban": validation.iban,
    "bank_bic": validation.bic,
}
_CUSTOMER_VALIDATORS: dict[str, Callable[..., Any]] = {
    "country": validation.country,
    "currency": validation.currency,
    "locale": validation.locale,
    "vat_id": validation.vat_id,
    "tenant_id": validation.tenant_id,
    "billing_emails": validation.emails,
}
_ORG_FIELDS = {
    "legal_name",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "region",
    "country",
    "vat_id",
    "pc_tenant_id",
    "mpn_id",
    "pc_cloud",
    "billing_currency",
    "default_locale",
    "invoice_series",
    "payment_terms_days",
    "microsoft_payment_terms_days",
    "has_unified_support",
    "has_advanced_support",
    "has_signature_support",
    "bank_iban",
    "bank_bic",
    "bank_account_name",
}
_CUSTOMER_FIELDS = {
    "tenant_id",
    "default_domain",
    "name",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "region",
    "country",
    "locale",
    "currency",
    "vat_id",
    "billing_emails",
    "payment_terms_days",
    "status",
}


def _clean(data: dict[str, Any], allowed: set[str], validators: dict[str, Callable[..., Any]]) -> dict[str, Any]:
    unknown = set(data) - allowed
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationFailed(f"{name!r} cannot be set here", field=name)
    out = {}
    for name, value in data.items():
        check = validators.get(name)
        out[name] = check(value, field=name) if check else value
    for required in ("legal_name", "name", "address_line1", "city", "default_domain", "invoice_series"):
        if required in out and not str(out[required] or "").strip():
            raise ValidationFailed(f"{required} must not be empty", field=required)
    if "pc_cloud" in out and out["pc_cloud"] not in Cloud.values:
        raise ValidationFailed(f"pc_cloud must be one of {', '.join(Cloud.values)}", field="pc_cloud")
    if "status" in out and out["status"] not in CustomerStatus.values:
        raise ValidationFailed(f"status must be one of {', '.join(CustomerStatus.values)}", field="status")
    return out


def _save(instance: Any, what: str) -> None:
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        raise Conflict(f"this {what} clashes with an existing one ({exc})", code="duplicate") from None


# --- organisations ---------------------------------------------------------------------------------


@transaction.atomic
def create_organisation(actor: Actor, *, kind: str, parent_id: int | None = None, **fields: Any) -> Organisation:
    permissions.require(actor, Perm.ORGANISATIONS_CHANGE)
    if kind not in OrganisationKind.values:
        raise ValidationFailed(f"kind must be one of {', '.join(OrganisationKind.values)}", field="kind")
    data = _clean(fields, _ORG_FIELDS, _ORG_VALIDATORS)
    if kind == OrganisationKind.INDIRECT_RESELLER:
        if parent_id is None:
            raise ValidationFailed("an indirect reseller needs its indirect provider as parent", field="parent_id")
        parent = selectors.get_or_404(selectors.organisations_changeable_by(actor), parent_id, "organisation")
        if parent.kind != OrganisationKind.INDIRECT_PROVIDER:
            raise ValidationFailed("the parent of a reseller must be an indirect provider", field="parent_id")
    else:
        if parent_id is not None:
            raise ValidationFailed("only an indirect reseller has a parent", field="parent_id")
        if not actor.is_system:
            raise Forbidden("only a platform operator creates top-level partners", code="permission_denied")
        parent = None
    org = Organisation(kind=kind, parent=parent, **data)
    _save(org, "organisation")
    audit.record(actor, "organisation.created", obj=org, after=audit.snapshot(org), organisation_id=org.pk)
    return org


@transaction.atomic
def update_organisation(actor: Actor, organisation_id: int, **fields: Any) -> Organisation:
    permissions.require(actor, Perm.ORGANISATIONS_CHANGE)
    org = selectors.get_or_404(
        selectors.organisations_changeable_by(actor).select_for_update(), organisation_id, "organisation"
    )
    data = _clean(fields, _ORG_FIELDS, _ORG_VALIDATORS)
    before = audit.snapshot(org)
    for name, value in data.items():
        setattr(org, name, value)
    org.updated_at = clock.now()
    _save(org, "organisation")
    old, new = audit.changes(before, audit.snapshot(org))
    audit.record(actor, "organisation.updated", obj=org, before=old, after=new, organisation_id=org.pk)
    return org


# --- customers -------------------------------------------------------------------------------------


@transaction.atomic
def create_customer(actor: Actor, *, organisation_id: int, **fields: Any) -> Customer:
    permissions.require(actor, Perm.CUSTOMERS_CHANGE)
    org = selectors.get_or_404(selectors.billing_organisations_for(actor), organisation_id, "billing organisation")
    for required in ("tenant_id", "name", "default_domain", "address_line1", "city", "country"):
        if not fields.get(required):
            raise ValidationFailed(f"{required} is required", field=required)
    fields.setdefault("currency", org.billing_currency)
    fields.setdefault("locale", org.default_locale)
    data = _clean(fields, _CUSTOMER_FIELDS, _CUSTOMER_VALIDATORS)
    customer = Customer(organisation=org, **data)
    _save(customer, "customer (tenant id already registered for this organisation?)")
    audit.record(
        actor,
        "customer.created",
        obj=customer,
        after=audit.snapshot(customer),
        organisation_id=org.pk,
        customer_id=customer.pk,
    )
    return customer


@transaction.atomic
def update_customer(actor: Actor, customer_id: int, **fields: Any) -> Customer:
    permissions.require(actor, Perm.CUSTOMERS_CHANGE)
    visible = selectors.get_or_404(selectors.customers_for(actor), customer_id, "customer")
    if not selectors.customers_for(actor, Perm.CUSTOMERS_CHANGE).filter(pk=visible.pk).exists():
        raise Forbidden("you may read this customer but not change it", code="read_only")
    customer = Customer.objects.select_for_update().get(pk=visible.pk)
    data = _clean(fields, _CUSTOMER_FIELDS, _CUSTOMER_VALIDATORS)
    before = audit.snapshot(customer)
    for name, value in data.items():
        setattr(customer, name, value)
    customer.updated_at = clock.now()
    _save(customer, "customer")
    old, new = audit.changes(before, audit.snapshot(customer))
    audit.record(
        actor,
        "customer.updated",
        obj=customer,
        before=old,
        after=new,
        organisation_id=customer.organisation_id,
        customer_id=customer.pk,
    )
    return customer


# --- users -----------------------------------------------------------------------------------------


def _check_roles(actor: Actor, roles: Iterable[str], staff: bool) -> list[str]:
    wanted = sorted(set(roles))
    valid = StaffRole.values if staff else CustomerRole.values
    for role in wanted:
        if role not in valid:
            kind = "staff" if staff else "customer"
            raise ValidationFailed(f"{role!r} is not a {kind} role; expected one of {', '.join(valid)}", field="roles")
    if not wanted:
        raise ValidationFailed("a user needs at least one role", field="roles")
    refused = [r for r in wanted if r not in permissions.grantable_roles(actor)]
    if refused:
        raise Forbidden(f"your role may not grant {', '.join(refused)}", code="permission_denied")
    return wanted


def _customers_for_user_admin(actor: Actor) -> Any:
    """Customers whose users the actor may manage: its own organisation's, or (customer admin) its own."""
    if actor.is_system:
        return Customer.objects.all()
    if actor.kind is ActorKind.CUSTOMER:
        return Customer.objects.filter(pk=actor.customer_pk)
    return Customer.objects.filter(organisation_id=actor.organisation_pk)


def _membership_view(m: Membership) -> dict[str, Any]:
    return {
        "username": m.user.get_username(),
        "email": m.user.email,
        "is_active": m.user.is_active,
        "organisation_id": m.organisation_id,
        "customer_id": m.customer_id,
        "roles": sorted(g.role for g in m.grants.all()),
    }


@transaction.atomic
def create_user(
    actor: Actor,
    *,
    username: str,
    email: str,
    password: str,
    roles: list[str],
    organisation_id: int | None = None,
    customer_id: int | None = None,
    first_name: str = "",
    last_name: str = "",
    locale: str = "",
) -> Membership:
    permissions.require(actor, Perm.USERS_CHANGE)
    if (organisation_id is None) == (customer_id is None):
        raise ValidationFailed(
            "give either organisation_id (staff) or customer_id (customer user)", field="organisation_id"
        )
    if organisation_id is not None:
        if actor.is_system:
            own = Organisation.objects.all()
        elif actor.kind is ActorKind.STAFF:
            own = Organisation.objects.filter(pk=actor.organisation_pk)
        else:
            own = Organisation.objects.none()
        selectors.get_or_404(own, organisation_id, "organisation")
        staff = True
    else:
        selectors.get_or_404(_customers_for_user_admin(actor), customer_id, "customer")
        staff = False
    granted = _check_roles(actor, roles, staff)
    username = (username or "").strip()
    if not username:
        raise ValidationFailed("username is required", field="username")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"the username {username!r} is taken", code="duplicate", field="username")
    if email:
        validation.emails([email], field="email")
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), field="password") from None
    user.set_password(password)
    user.save()
    membership = Membership.objects.create(
        user=user,
        organisation_id=organisation_id,
        customer_id=customer_id,
        locale=validation.locale(locale) if locale else "",
    )
    RoleGrant.objects.bulk_create([RoleGrant(membership=membership, role=r) for r in granted])
    home = membership.organisation or (membership.customer.organisation if membership.customer else None)
    org_id = home.pk if home else None
    audit.record(
        actor,
        "user.created",
        object_type="auth.user",
        object_id=user.pk,
        after=_membership_view(membership),
        organisation_id=org_id,
        customer_id=customer_id,
    )
    return membership


@transaction.atomic
def update_user(
    actor: Actor,
    user_id: int,
    *,
    roles: list[str] | None = None,
    is_active: bool | None = None,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    locale: str | None = None,
) -> Membership:
    permissions.require(actor, Perm.USERS_CHANGE)
    m = selectors.memberships_for(actor).filter(user_id=user_id).first()
    if m is None:
        raise NotFound(f"no user with id {user_id}")
    if not selectors.memberships_for(actor, Perm.USERS_CHANGE).filter(pk=m.pk).exists():
        raise Forbidden("you may read this user but not change them", code="read_only")
    if m.user_id == actor.user_id and (
        is_active is False or (roles is not None and set(roles) != set(g.role for g in m.grants.all()))
    ):
        raise Forbidden("you cannot change your own roles or deactivate yourself", code="self_change")
    current = {g.role for g in m.grants.all()}
    if current - permissions.grantable_roles(actor):
        raise Forbidden("this user holds a role above yours", code="permission_denied")
    before = _membership_view(m)
    user = m.user
    if roles is not None:
        wanted = _check_roles(actor, roles, m.organisation_id is not None)
        RoleGrant.objects.filter(membership=m).exclude(role__in=wanted).delete()
        RoleGrant.objects.bulk_create([RoleGrant(membership=m, role=r) for r in wanted if r not in current])
    if is_active is not None:
        user.is_active = is_active
        if not is_active:
            ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=clock.now())
    if email is not None:
        user.email = validation.emails([email], field="email")[0] if email else ""
    if first_name is not None:
        user.first_name = first_name
    if last_name is not None:
        user.last_name = last_name
    user.save()
    if locale is not None:
        m.locale = validation.locale(locale) if locale else ""
        m.save(update_fields=["locale"])
    m = selectors.memberships_for(actor).get(pk=m.pk)
    old, new = audit.changes(before, _membership_view(m))
    org_id = m.organisation_id or (m.customer.organisation_id if m.customer else None)
    audit.record(
        actor,
        "user.updated",
        object_type="auth.user",
        object_id=user.pk,
        before=old,
        after=new,
        organisation_id=org_id,
        customer_id=m.customer_id,
    )
    return m


@transaction.atomic
def set_password(actor: Actor, user_id: int, password: str) -> None:
    """Set a password (the user themself, or a user admin over a user in scope)."""
    if actor.user_id != user_id:
        permissions.require(actor, Perm.USERS_CHANGE)
        if (
            not actor.is_system
            and not selectors.memberships_for(actor, Perm.USERS_CHANGE).filter(user_id=user_id).exists()
        ):
            raise NotFound(f"no user with id {user_id}")
    user = User.objects.get(pk=user_id)
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), field="password") from None
    user.set_password(password)
    user.save(update_fields=["password"])
    audit.record(actor, "user.password_set", object_type="auth.user", object_id=user_id)


# --- API tokens ------------------------------------------------------------------------------------

TOKEN_PREFIX = "csp"


def _digest(secret: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def issue_api_token(actor: Actor, name: str) -> tuple[ApiToken, str]:
    """Create a token for the actor's own user; returns the row and the secret (shown once)."""
    if actor.user_id is None:
        raise Forbidden("only a user can hold an API token", code="permission_denied")
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("give the token a name", field="name")
    prefix = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(user_id=actor.user_id, name=name, prefix=prefix, digest=_digest(secret))
    audit.record(actor, "api_token.issued", obj=token, after={"name": name, "prefix": prefix})
    return token, secret


@transaction.atomic
def revoke_api_token(actor: Actor, token_id: int) -> ApiToken:
    qs = ApiToken.objects.select_for_update()
    if not actor.is_system:
        qs = qs.filter(user_id=actor.user_pk)
    token = selectors.get_or_404(qs, token_id, "API token")
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        token.save(update_fields=["revoked_at"])
        audit.record(actor, "api_token.revoked", obj=token, after={"prefix": token.prefix})
    return token


def authenticate_token(secret: str) -> Any:
    """The active user holding ``secret``, or raise :class:`Unauthenticated`."""
    parts = (secret or "").split("_")
    if len(parts) < 3 or parts[0] != TOKEN_PREFIX:
        raise Unauthenticated("malformed API token")
    token = ApiToken.objects.select_related("user").filter(digest=_digest(secret)).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        raise Unauthenticated("unknown or revoked API token")
    now = clock.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
