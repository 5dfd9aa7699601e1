"""The demo world as the portal shows it: two billed months, subscriptions synced from the Partner Center
emulator, one of them suspended. Shared by the portal page tests and the browser tests (tests/e2e).

September's recon data is edited after import (test data, not a billing path) so that October has something
to tell in "what changed": two more Microsoft 365 licences for Bellavista and more Azure usage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.test import Client, override_settings

from cspdesk.billing import services as billing
from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.core.actor import Actor
from cspdesk.demo import desk, month, world
from cspdesk.partnercenter import services as pc_services
from cspdesk.partnercenter import sync as pc_sync
from cspdesk.partnercenter.client import PartnerCenterClient
from cspdesk.partnercenter.emulator.server import start_in_thread
from cspdesk.partnercenter.models import Subscription, SubscriptionStatus
from cspdesk.partnercenter.recon.models import ChargeLine
from tests.fixtures import DemoWorld, load_demo_world

PERIODS = ("2026-09", "2026-10")
SUSPENDED_REASON = "non-payment of invoice NUV-2026-000001"


@dataclass
class PortalWorld:
    demo: DemoWorld
    var_dir: Path
    fewer_licences: str = ""  # the SKU name that had two licences fewer in September
    suspended: Subscription | None = None

    def client(self, username: str, language: str | None = None) -> Client:
        client = self.demo.browser(username)
        if language:
            client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        return client

    def invoice(self, customer_key: str, period: str = PERIODS[-1]) -> Invoice:
        return Invoice.objects.get(
            customer=self.demo.customer(customer_key), period=f"{period}-01", kind=InvoiceKind.INVOICE,
            status=InvoiceStatus.FINALIZED,
        )  # fmt: skip


def _september_was_smaller(customer_key: str, period: str) -> str:
    """Two licences fewer of the customer's largest licence line, and 20 % less of each Azure charge."""
    tenant = world.customer_tenant_id(customer_key)
    lines = ChargeLine.objects.filter(customer_tenant_id=tenant, source__period=f"{period}-01")
    licence = lines.filter(meter_category="", quantity__gt=2).exclude(product_name__istartswith="azure")
    top = licence.order_by("-quantity", "pk").first()
    assert top is not None, "the demo customer has a licence line"
    share = (top.quantity - 2) / top.quantity
    top.quantity -= 2
    top.cost = (top.cost * share).quantize(Decimal("0.000001"))
    top.pricing_cost = (top.pricing_cost * share).quantize(Decimal("0.000001"))
    top.save(update_fields=["quantity", "cost", "pricing_cost"])
    for line in lines.exclude(meter_category=""):
        line.cost = (line.cost * Decimal("0.8")).quantize(Decimal("0.000001"))
        line.save(update_fields=["cost"])
    return top.sku_name or top.product_name


def bill_months(periods: tuple[str, ...] = PERIODS) -> str:
    system = Actor.system("test")
    month.USAGE_ROWS = 2000
    changed = ""
    for i, period in enumerate(periods):
        results = month.import_month(period)
        assert all("error" not in r for r in results), results
        if i == 0 and len(periods) > 1:
            changed = _september_was_smaller("bellavista", period)
        month.load_price_rules()
        run = billing.bill(system, billing.parse_period(period))
        billing.finalize_run(system, run.pk)
        month.load_payments(period)
    return changed


@contextlib.contextmanager
def partner_center() -> Iterator[None]:
    """The Partner Center emulator in a thread, the client pointed at it, for the block."""
    emulator = start_in_thread("127.0.0.1", 0)
    pc = {**settings.PARTNER_CENTER, "BASE_URL": emulator.url, "AUTHORITY": emulator.url,
          "AUTHORITY_USGOV": emulator.url, "REFRESH_TOKEN": "test-consent"}  # fmt: skip
    try:
        with override_settings(PARTNER_CENTER=pc):
            yield
    finally:
        emulator.stop()


def load(var_dir: Path) -> PortalWorld:
    """Load everything (the caller provides the transaction or database and ``VAR_DIR``)."""
    demo = load_demo_world()
    with partner_center():
        pc_sync.sync(Actor.system("test"))
        changed = bill_months()
        sub = (
            Subscription.objects.filter(customer=demo.customer("bellavista"), status=SubscriptionStatus.ACTIVE)
            .order_by("offer_name", "pk")
            .first()
        )
        assert sub is not None, "the emulator has subscriptions for the demo customer"
        with PartnerCenterClient.for_organisation(sub.customer.organisation) as client:
            pc_services.suspend_subscription(Actor.system("collections"), sub.pk, client, reason=SUSPENDED_REASON)
        sub.refresh_from_db()
        desk.load_desks()
        desk.load_tickets()
    return PortalWorld(demo, var_dir, changed, sub)
