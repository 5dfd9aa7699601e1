"""Every "no" cell of the permission matrix: the documented matrix is the enforced one, and each
operation that exists today refuses the roles without the permission, with no side effect."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from cspdesk.audit.models import AuditEvent
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import Forbidden
from cspdesk.tenancy import permissions
from cspdesk.tenancy.models import Customer, CustomerRole, Organisation, StaffRole
from cspdesk.tenancy.permissions import MATRIX, Perm
from tests.fixtures import DemoWorld

ROLES_DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"
ALL_ROLES = [*StaffRole, *CustomerRole]


def _documented_matrix() -> dict[str, dict[str, bool]]:
    lines = ROLES_DOC.read_text().splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("| permission |"))
    labels = [c.strip() for c in lines[header_at].strip("|").split("|")][1:]
    by_label = {str(r.label): r.value for r in ALL_ROLES}
    matrix: dict[str, dict[str, bool]] = {}
    for line in lines[header_at + 2 :]:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        perm = re.sub(r"`", "", cells[0])
        matrix[perm] = {by_label[label]: cell == "yes" for label, cell in zip(labels, cells[1:], strict=True)}
    return matrix


def test_documented_matrix_is_the_enforced_matrix() -> None:
    documented = _documented_matrix()
    assert set(documented) == {p.value for p in Perm}
    for perm in Perm:
        for role in ALL_ROLES:
            assert documented[perm.value][role.value] == (perm in MATRIX[role]), (perm.value, role.value)


NO_CELLS = [(role.value, perm) for role in ALL_ROLES for perm in Perm if perm not in MATRIX[role]]


@pytest.mark.parametrize(("role", "perm"), NO_CELLS, ids=[f"{r}-{p.value}" for r, p in NO_CELLS])
def test_every_no_cell_is_refused_by_the_service_check(role: str, perm: Perm) -> None:
    kind = ActorKind.CUSTOMER if role in CustomerRole.values else ActorKind.STAFF
    actor = Actor(kind=kind, user_id=1, username="x", organisation_id=1, roles=frozenset({role}))
    with pytest.raises(Forbidden):
        permissions.require(actor, perm)


STAFF = {
    "global_admin": "admin",
    "user_management_admin": "users",
    "helpdesk_agent": "helpdesk",
    "billing_admin": "billing",
    "sales_agent": "sales",
}
CUSTOMER_USERS = {
    "customer_admin": "angstrom.admin",
    "customer_user": "angstrom.user",
    "customer_billing": "bellavista.contabilita",
}


def _username(role: str) -> str:
    return f"fjall.{STAFF[role]}" if role in STAFF else CUSTOMER_USERS[role]


def _denied(role: str, perm: Perm) -> bool:
    return perm not in MATRIX[role]


@pytest.mark.django_db
@pytest.mark.parametrize("role", [r.value for r in ALL_ROLES])
def test_changing_an_organisation_needs_organisations_change(demo: DemoWorld, role: str) -> None:
    org = demo.org("fjall")
    before = AuditEvent.objects.count()
    response = demo.api(_username(role)).patch(
        f"/api/v1/organisations/{org.pk}", data={"payment_terms_days": 14}, content_type="application/json"
    )
    if _denied(role, Perm.ORGANISATIONS_CHANGE):
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
        assert Organisation.objects.get(pk=org.pk).payment_terms_days == 30
        assert AuditEvent.objects.count() == before
    else:
        assert response.status_code == 200
        assert Organisation.objects.get(pk=org.pk).payment_terms_days == 14


@pytest.mark.django_db
@pytest.mark.parametrize("role", [r.value for r in ALL_ROLES])
def test_changing_a_customer_needs_customers_change(demo: DemoWorld, role: str) -> None:
    customer = demo.customer("angstrom")
    response = demo.api(_username(role)).patch(
        f"/api/v1/customers/{customer.pk}", data={"payment_terms_days": 10}, content_type="application/json"
    )
    if _denied(role, Perm.CUSTOMERS_CHANGE):
        assert response.status_code == 403
        assert Customer.objects.get(pk=customer.pk).payment_terms_days is None
    else:
        assert response.status_code == 200
        assert Customer.objects.get(pk=customer.pk).payment_terms_days == 10


@pytest.mark.django_db
@pytest.mark.parametrize("role", [r.value for r in ALL_ROLES])
def test_listing_organisations_needs_organisations_read(demo: DemoWorld, role: str) -> None:
    response = demo.api(_username(role)).get("/api/v1/organisations")
    assert response.status_code == (403 if _denied(role, Perm.ORGANISATIONS_READ) else 200)


@pytest.mark.django_db
@pytest.mark.parametrize("role", [r.value for r in ALL_ROLES])
def test_listing_users_needs_users_read(demo: DemoWorld, role: str) -> None:
    response = demo.api(_username(role)).get("/api/v1/users")
    assert response.status_code == (403 if _denied(role, Perm.USERS_READ) else 200)


@pytest.mark.django_db
@pytest.mark.parametrize("role", [r.value for r in ALL_ROLES])
def test_creating_a_user_needs_users_change(demo: DemoWorld, role: str) -> None:
    staff_side = role in STAFF
    payload = {
        "username": f"new-{role}",
        "password": "Very-long-passw0rd!",
        "roles": ["helpdesk_agent"] if staff_side else ["customer_user"],
        **(
            {"organisation_id": demo.org("fjall").pk}
            if staff_side
            else {"customer_id": demo.actor(_username(role)).customer_id}
        ),
    }
    response = demo.api(_username(role)).post(
        "/api/v1/users", data=json.dumps(payload), content_type="application/json"
    )
    created = get_user_model().objects.filter(username=f"new-{role}").exists()
    if _denied(role, Perm.USERS_CHANGE):
        assert response.status_code == 403
        assert not created
    else:
        assert response.status_code == 201, response.json()
        assert created
        assert response.json()["roles"] == payload["roles"]


@pytest.mark.django_db
def test_user_management_admin_cannot_grant_global_admin(demo: DemoWorld) -> None:
    response = demo.api("fjall.users").post(
        "/api/v1/users",
        data=json.dumps(
            {
                "username": "climber",
                "password": "Very-long-passw0rd!",
                "roles": ["global_admin"],
                "organisation_id": demo.org("fjall").pk,
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 403
    assert not get_user_model().objects.filter(username="climber").exists()


@pytest.mark.django_db
def test_user_management_admin_cannot_demote_a_global_admin(demo: DemoWorld) -> None:
    admin_id = get_user_model().objects.get(username="fjall.admin").pk
    response = demo.api("fjall.users").patch(
        f"/api/v1/users/{admin_id}", data={"roles": ["sales_agent"]}, content_type="application/json"
    )
    assert response.status_code == 403
    assert demo.actor("fjall.admin").roles == {"global_admin"}


@pytest.mark.django_db
def test_nobody_changes_their_own_roles(demo: DemoWorld) -> None:
    me = get_user_model().objects.get(username="fjall.users").pk
    response = demo.api("fjall.users").patch(
        f"/api/v1/users/{me}",
        data={"roles": ["user_management_admin", "billing_admin"]},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "self_change"


@pytest.mark.django_db
def test_staff_roles_cannot_be_given_to_customer_users(demo: DemoWorld) -> None:
    response = demo.api("fjall.admin").post(
        "/api/v1/users",
        data=json.dumps(
            {
                "username": "mixed",
                "password": "Very-long-passw0rd!",
                "roles": ["billing_admin"],
                "customer_id": demo.customer("angstrom").pk,
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 422
    assert response.json() == {
        "code": "validation_error",
        "message": "'billing_admin' is not a customer role; expected one of customer_admin, customer_billing, "
        "customer_user",
        "field": "roles",
    }
