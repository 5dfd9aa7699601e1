"""Tenant isolation, enumerated: every API operation and console page that takes an object id, for every
login of the demo world, against one object of every other tenant.

The operations come from /api/v1/openapi.json and the pages from the URL resolver, so endpoints added later
are covered without editing this file. An id parameter this test cannot place (no list endpoint to learn the
objects from, or objects with no owner field) fails the test until it is given an owner rule or an entry
in ``NOT_TENANT_SCOPED`` with the reason and the test that covers it instead.

The owner of an object is read from the system actor's listing: ``customer_id`` (a customer's object),
else ``organisation_id`` (a partner's), or the id itself for organisations and customers. A staff login of
organisation O may reach O and its child resellers and their customers; a customer user only its customer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from cspdesk.core.actor import Actor, ActorKind
from cspdesk.partnercenter.emulator import RunningEmulator
from cspdesk.tenancy import services as tenancy_services
from tests.collections.fixtures import pc  # noqa: F401 - the Partner Center emulator fixture
from tests.fixtures import DemoWorld, import_demo_month

pytestmark = pytest.mark.django_db

API = "/api/v1"
PARAM = re.compile(r"\{([a-z_]+)\}")

# Id parameters whose objects belong to a user or to nobody rather than to a tenant: path → why, and where
# that rule is tested instead.
NOT_TENANT_SCOPED: dict[str, str] = {
    f"{API}/tokens/{{token_id}}": "a user's own API tokens (tests/tenancy/test_api.py: revoke another's → 404)",
    f"{API}/support/providers/{{rule_id}}/events": "an outsourcer's webhook, no login: the HMAC signature is the "
    "credential (tests/support/test_outsourcing.py::test_provider_replies_come_back_once_and_forgeries_change_nothing)",
}

# Console page parameters → the API collection that lists the same objects.
CONSOLE_PARAM_COLLECTIONS: dict[str, str] = {
    "customer_id": f"{API}/customers",
    "subscription_id": f"{API}/subscriptions",
    "run_id": f"{API}/billing/runs",
    "payment_id": f"{API}/payments",
    "ticket_id": f"{API}/tickets",
    "rule_id": f"{API}/price-rules",
    "user_id": f"{API}/users",
    "case_id": f"{API}/collections/cases",
    # portal pages: the first id in the route is the foreign object; later ones (a line, a file) are set to 1
    "invoice_id": f"{API}/invoices",
    "position": f"{API}/invoices",
    "attachment_id": f"{API}/tickets",
}

# Owner rules for collections whose items carry no customer_id / organisation_id of their own.
SELF_OWNED = {f"{API}/organisations": "org", f"{API}/customers": "customer"}

# Collections with no list endpoint: where to read their objects and owners from instead.
MODEL_SOURCES: dict[str, tuple[str, str]] = {
    f"{API}/billing/runs": ("billing.BillingRun", "organisation_id"),
    f"{API}/allocations": ("payments.Allocation", "invoice__organisation_id"),
    f"{API}/price-rules": ("catalog.PriceRule", "organisation_id"),
}

MAX_PER_OWNER = 1  # objects tried per foreign owner, per login and operation


@dataclass(frozen=True)
class Owner:
    kind: str  # "org" | "customer"
    pk: int
    buyer: int | None = None  # an organisation's invoice to its reseller: the reseller reads it too


@dataclass
class World:
    org_parent: dict[int, int | None]
    customer_org: dict[int, int]

    def reachable(self, actor: Actor, owner: Owner) -> bool:
        if actor.kind is ActorKind.CUSTOMER:
            return owner == Owner("customer", actor.customer_pk)
        own = actor.organisation_pk
        if owner.buyer is not None and owner.buyer == own:
            return True
        orgs = {own} | {pk for pk, parent in self.org_parent.items() if parent == own}
        org = owner.pk if owner.kind == "org" else self.customer_org[owner.pk]
        return org in orgs


def _root_client() -> Client:
    root = get_user_model().objects.create_superuser("isolation.root", "root@example.test", "Not-used-pw-1234")
    _, secret = tenancy_services.issue_api_token(
        Actor(kind=ActorKind.SYSTEM, user_id=root.pk, username="isolation.root"), "isolation"
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def _list_all(client: Client, path: str) -> list[dict[str, Any]] | None:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = client.get(path, {"limit": 100, "offset": offset})
        if response.status_code != 200:
            return None
        body = response.json()
        page = body["items"] if isinstance(body, dict) and "items" in body else body
        if not isinstance(page, list):
            return None
        items += page
        if not isinstance(body, dict) or len(page) < 100:
            return items
        offset += 100


def _owner(collection: str, item: dict[str, Any]) -> Owner | None:
    if collection in SELF_OWNED:
        return Owner(SELF_OWNED[collection], item["id"])
    if item.get("customer_id") is not None:
        return Owner("customer", item["customer_id"])
    if item.get("organisation_id") is not None:
        return Owner("org", item["organisation_id"], item.get("buyer_organisation_id"))
    return None


def _api_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(method, path template, id parameter, collection path) for every operation with an id in its path."""
    for path, item in spec["paths"].items():
        params = PARAM.findall(path)
        if not params:
            continue
        # The first parameter names the tenant-owned object; later ones (a line position, …) sit inside it.
        collection = path[: path.index("{" + params[0] + "}")].rstrip("/")
        for method in item:
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, path, params[0], collection


def _console_patterns() -> Iterator[tuple[str, str]]:
    """(route with <int:…> converters, parameter) for every console page that takes an id."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, route)
            elif isinstance(p, URLPattern):
                for name in re.findall(r"<(?:\w+:)?(\w+)>", route):
                    yield route, name

    yield from (r for r in walk(get_resolver().url_patterns, "/") if r[0].startswith(("/console/", "/portal/")))


NO_SUCH_ID = 2_000_000_000


def _call(client: Client, method: str, url: str) -> int:
    if method == "get":
        return client.get(url).status_code
    return getattr(client, method)(url, data={}, content_type="application/json").status_code


def _fill(template: str, value: int) -> str:
    """The template with its first parameter set to ``value`` and any later one (a position inside it) to 1."""
    filled = PARAM.sub(str(value), template, count=1)
    filled = re.sub(r"<(?:\w+:)?\w+>", str(value), filled, count=1)
    return re.sub(r"<(?:\w+:)?\w+>", "1", PARAM.sub("1", filled))


def _more_objects(settings: Any, var: Path) -> None:
    """The subscriptions (synced from the emulator), a billed and finalized month (billing runs, invoices and
    their lines, charge lines, Microsoft invoices) and the demo's tickets (opened only: no escalation, nothing
    leaves the machine), so those are tried too."""
    from cspdesk.demo import desk, month
    from cspdesk.partnercenter import sync

    assert sync.sync(Actor.system("isolation")).as_dict()["ok"] is True

    settings.VAR_DIR, settings.MEDIA_ROOT = var, var / "files"
    import_demo_month("2026-10", 600)
    assert month.bill_month("2026-10")["invoice_list"], "the month should bill some invoices"
    from cspdesk.demo.world import TICKETS, customer_tenant_id
    from cspdesk.support import services as support
    from cspdesk.tenancy.models import Customer

    desk.load_desks()
    for spec in TICKETS:
        customer = Customer.objects.get(tenant_id=customer_tenant_id(spec.customer))
        support.open_ticket(
            desk._actor(spec.opener), customer_id=customer.pk, subject=spec.subject, body=spec.body,
            category=spec.category, service=spec.service, severity=spec.severity,
        )  # fmt: skip


def test_no_login_reaches_another_tenants_object(
    demo: DemoWorld,
    pc: RunningEmulator,  # noqa: F811 - the fixture
    settings: Any,
    tmp_path: Path,
) -> None:
    _more_objects(settings, tmp_path / "var")
    root = _root_client()
    spec = Client().get(f"{API}/openapi.json").json()
    orgs = _list_all(root, f"{API}/organisations") or []
    customers = _list_all(root, f"{API}/customers") or []
    world = World({o["id"]: o["parent_id"] for o in orgs}, {c["id"]: c["organisation_id"] for c in customers})
    assert len(world.org_parent) >= 3 and len(world.customer_org) >= 5, "the demo world should span tenants"

    # Learn every collection's objects and their owners.
    objects: dict[str, dict[Owner, list[int]]] = {}
    unplaced: list[str] = []
    operations = list(_api_operations(spec))
    console = list(_console_patterns())
    collections = {c for _, path, _, c in operations if path not in NOT_TENANT_SCOPED}
    for route, name in console:
        if name not in CONSOLE_PARAM_COLLECTIONS:
            unplaced.append(f"console {route}: map <{name}> in CONSOLE_PARAM_COLLECTIONS")
        else:
            collections.add(CONSOLE_PARAM_COLLECTIONS[name])
    for collection in sorted(collections):
        items = _list_all(root, collection)
        if items is None and collection in MODEL_SOURCES:
            model, field = MODEL_SOURCES[collection]
            kind = "customer" if field.endswith("customer_id") else "org"
            items = [{"id": pk, field: owner} for pk, owner in apps.get_model(model).objects.values_list("pk", field)]
            objects[collection] = {}
            for item in items:
                objects[collection].setdefault(Owner(kind, item[field]), []).append(item["id"])
            continue
        if items is None:
            unplaced.append(f"{collection}: no list endpoint to learn its objects from")
            continue
        by_owner: dict[Owner, list[int]] = {}
        for item in items:
            owner = _owner(collection, item)
            if owner is None:
                unplaced.append(f"{collection}: item {item.get('id')} has no customer_id/organisation_id")
                break
            by_owner.setdefault(owner, []).append(item["id"])
        objects[collection] = by_owner
    assert not unplaced, "endpoints this test cannot place:\n" + "\n".join(unplaced)

    breaches: list[str] = []
    checked = 0
    for username in sorted(demo.logins):
        actor = demo.actor(username)
        api = demo.api(username)
        browser = Client()
        browser.force_login(get_user_model().objects.get(username=username))
        listed: dict[str, set[int] | None] = {}
        baseline: dict[tuple[str, str], int] = {}
        for method, path, _param, collection in operations:
            if path in NOT_TENANT_SCOPED:
                continue
            if collection not in listed:
                visible = None if collection in MODEL_SOURCES else _list_all(api, collection)
                listed[collection] = {i["id"] for i in visible} if visible is not None else None
            for owner, ids in objects[collection].items():
                if world.reachable(actor, owner):
                    continue
                for pk in ids[:MAX_PER_OWNER]:
                    checked += 1
                    status = _call(api, method, _fill(path, pk))
                    if baseline.get((method, path)) is None:
                        baseline[(method, path)] = _call(api, method, _fill(path, NO_SUCH_ID))
                    # A foreign object must look exactly like an absent one: 404, or the role-level refusal
                    # (403, 405, 422 for the empty body) this login gets for an id that does not exist at all.
                    absent = baseline[(method, path)]
                    if not (status == 404 or (status == absent and not 200 <= absent < 300)):
                        breaches.append(f"{username} {method.upper()} {_fill(path, pk)} → {status} ({owner})")
                    if listed[collection] and pk in listed[collection]:  # type: ignore[operator]
                        breaches.append(f"{username} lists {collection} item {pk} ({owner})")
        for route, name in console:
            collection = CONSOLE_PARAM_COLLECTIONS[name]
            for owner, ids in objects[collection].items():
                if world.reachable(actor, owner):
                    continue
                for pk in ids[:MAX_PER_OWNER]:
                    checked += 1
                    status = browser.get(_fill(route, pk)).status_code
                    if status != 404:
                        breaches.append(f"{username} page {_fill(route, pk)} → {status} ({owner})")
    empty = sorted(c for c, by_owner in objects.items() if not by_owner)
    print(f"isolation: {checked} cross-tenant requests; collections with no demo objects: {empty}")
    assert not breaches, "cross-tenant access:\n" + "\n".join(breaches)
    assert checked > 100, checked
