"""The permission matrix: which role may do what. ``docs/roles.md`` is written from this table.

Permissions say *what* a role may do; selectors say *where* (which organisations and customers).
Services call :func:`require` before they change anything; views and the API reuse the same checks.
"""

from __future__ import annotations

from enum import StrEnum

from cspdesk.core.actor import Actor
from cspdesk.core.errors import Forbidden

from .models import CustomerRole, StaffRole


class Perm(StrEnum):
    ORGANISATIONS_READ = "organisations.read"
    ORGANISATIONS_CHANGE = "organisations.change"
    CUSTOMERS_READ = "customers.read"
    CUSTOMERS_CHANGE = "customers.change"
    SUBSCRIPTIONS_READ = "subscriptions.read"
    SUBSCRIPTIONS_CHANGE = "subscriptions.change"
    PRICE_RULES_READ = "price_rules.read"
    PRICE_RULES_CHANGE = "price_rules.change"
    INVOICES_READ = "invoices.read"
    INVOICES_CHANGE = "invoices.change"
    PAYMENTS_READ = "payments.read"
    PAYMENTS_CHANGE = "payments.change"
    COLLECTIONS_READ = "collections.read"
    COLLECTIONS_CHANGE = "collections.change"
    DISPUTES_CHANGE = "disputes.change"
    TICKETS_READ = "tickets.read"
    TICKETS_CHANGE = "tickets.change"
    USERS_READ = "users.read"
    USERS_CHANGE = "users.change"
    AUDIT_READ = "audit.read"
    INSIGHTS_READ = "insights.read"


P = Perm
_STAFF_ALL_READ = {P.ORGANISATIONS_READ, P.CUSTOMERS_READ}

MATRIX: dict[str, frozenset[Perm]] = {
    StaffRole.GLOBAL_ADMIN: frozenset(Perm),
    StaffRole.USER_MANAGEMENT_ADMIN: frozenset(
        _STAFF_ALL_READ | {P.TICKETS_READ, P.USERS_READ, P.USERS_CHANGE, P.AUDIT_READ}
    ),
    StaffRole.HELPDESK_AGENT: frozenset(
        _STAFF_ALL_READ
        | {
            P.CUSTOMERS_CHANGE,
            P.SUBSCRIPTIONS_READ,
            P.SUBSCRIPTIONS_CHANGE,
            P.INVOICES_READ,
            P.PAYMENTS_READ,
            P.COLLECTIONS_READ,
            P.DISPUTES_CHANGE,
            P.TICKETS_READ,
            P.TICKETS_CHANGE,
        }
    ),
    StaffRole.BILLING_ADMIN: frozenset(
        _STAFF_ALL_READ
        | {
            P.CUSTOMERS_CHANGE,
            P.SUBSCRIPTIONS_READ,
            P.PRICE_RULES_READ,
            P.PRICE_RULES_CHANGE,
            P.INVOICES_READ,
            P.INVOICES_CHANGE,
            P.PAYMENTS_READ,
            P.PAYMENTS_CHANGE,
            P.COLLECTIONS_READ,
            P.COLLECTIONS_CHANGE,
            P.DISPUTES_CHANGE,
            P.TICKETS_READ,
            P.TICKETS_CHANGE,
            P.INSIGHTS_READ,
        }
    ),
    StaffRole.SALES_AGENT: frozenset(
        _STAFF_ALL_READ
        | {
            P.CUSTOMERS_CHANGE,
            P.SUBSCRIPTIONS_READ,
            P.SUBSCRIPTIONS_CHANGE,
            P.PRICE_RULES_READ,
            P.TICKETS_READ,
            P.INSIGHTS_READ,
        }
    ),
    CustomerRole.CUSTOMER_ADMIN: frozenset(
        {
            P.CUSTOMERS_READ,
            P.SUBSCRIPTIONS_READ,
            P.INVOICES_READ,
            P.PAYMENTS_READ,
            P.TICKETS_READ,
            P.TICKETS_CHANGE,
            P.USERS_READ,
            P.USERS_CHANGE,
        }
    ),
    CustomerRole.CUSTOMER_BILLING: frozenset(
        {P.CUSTOMERS_READ, P.SUBSCRIPTIONS_READ, P.INVOICES_READ, P.PAYMENTS_READ, P.TICKETS_READ, P.TICKETS_CHANGE}
    ),
    CustomerRole.CUSTOMER_USER: frozenset({P.CUSTOMERS_READ, P.SUBSCRIPTIONS_READ, P.TICKETS_READ, P.TICKETS_CHANGE}),
}

# Roles a granter may hand out: nobody below global admin can create a global admin.
GRANTABLE_BY: dict[str, frozenset[str]] = {
    StaffRole.GLOBAL_ADMIN: frozenset({r.value for r in StaffRole} | {r.value for r in CustomerRole}),
    StaffRole.USER_MANAGEMENT_ADMIN: frozenset(
        {r.value for r in StaffRole if r is not StaffRole.GLOBAL_ADMIN} | {r.value for r in CustomerRole}
    ),
    CustomerRole.CUSTOMER_ADMIN: frozenset({r.value for r in CustomerRole}),
}


def permissions_of(actor: Actor) -> frozenset[Perm]:
    if actor.is_system:
        return frozenset(Perm)
    granted: set[Perm] = set()
    for role in actor.roles:
        granted |= MATRIX.get(role, frozenset())
    return frozenset(granted)


def has(actor: Actor, perm: Perm) -> bool:
    return perm in permissions_of(actor)


def require(actor: Actor, perm: Perm) -> None:
    if not has(actor, perm):
        raise Forbidden(f"your role does not allow {perm.value}", code="permission_denied")


def grantable_roles(actor: Actor) -> frozenset[str]:
    if actor.is_system:
        return GRANTABLE_BY[StaffRole.GLOBAL_ADMIN]
    out: set[str] = set()
    for role in actor.roles:
        out |= GRANTABLE_BY.get(role, frozenset())
    return frozenset(out)
