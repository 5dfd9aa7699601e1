"""The demo world as a test fixture: the same organisations, customers and users the demo shows."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.test import Client

from cspdesk.core.actor import Actor
from cspdesk.demo import world
from cspdesk.tenancy import selectors
from cspdesk.tenancy.models import Customer, Organisation


@dataclass
class DemoWorld:
    logins: dict[str, world.Login]

    def org(self, key: str) -> Organisation:
        spec = next(s for s in world.ORGANISATIONS if s.key == key)
        return Organisation.objects.get(invoice_series=spec.invoice_series)

    def customer(self, key: str) -> Customer:
        return Customer.objects.get(tenant_id=world.customer_tenant_id(key))

    def actor(self, username: str) -> Actor:
        return selectors.actor_for_user(get_user_model().objects.get(username=username))

    def api(self, username: str) -> Client:
        """A client that authenticates with the user's API token."""
        return Client(HTTP_AUTHORIZATION=f"Bearer {self.logins[username].api_token}")

    def browser(self, username: str) -> Client:
        client = Client()
        assert client.login(username=username, password=self.logins[username].password)
        return client


def load_demo_world() -> DemoWorld:
    return DemoWorld({login.username: login for login in world.load()})


def import_demo_month(period: str, usage_rows: int) -> None:
    """The demo's generated recon files for ``period`` (``usage_rows`` daily-usage rows) imported, and the
    demo's price rules: a month ready to bill. Call with VAR_DIR pointing at the test's own folder."""
    from cspdesk.demo import month

    before = month.USAGE_ROWS
    month.USAGE_ROWS = usage_rows
    try:
        results = month.import_month(period)
    finally:
        month.USAGE_ROWS = before
    assert all("error" not in r for r in results), results
    month.load_price_rules()
