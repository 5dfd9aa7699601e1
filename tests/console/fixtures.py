"""Builders for console tests: Microsoft charge lines, a drafted billing run, tickets with SLA clocks."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from cspdesk.billing import services as billing
from cspdesk.billing.models import BillingRun
from cspdesk.catalog import services as catalog
from cspdesk.core.actor import Actor
from cspdesk.demo import desk
from cspdesk.partnercenter.recon.models import ChargeLine, Import
from cspdesk.support import services as support
from cspdesk.support.models import Ticket
from tests.fixtures import DemoWorld

D = Decimal
OCT = dt.date(2026, 10, 1)
SEP = dt.date(2026, 9, 1)
SYSTEM = Actor.system("test")


def make_import(org: Any, *, period: dt.date = OCT, currency: str = "EUR", number: str = "G1") -> Import:
    return Import.objects.create(
        organisation=org, kind="invoice", file_name=f"invoice-{number}-{currency}.csv",
        file_sha256=uuid.uuid4().hex * 2,
        file_size=1, partner_tenant_id=uuid.uuid4(), invoice_number=number, period=period, currency=currency, rows=1,
        rejected=0, total_cost=0, assigned_cost=0, unassigned_cost=0, customers=1, raw_path="x", imported_by="t",
    )  # fmt: skip


def make_line(imp: Import, customer: Any, cost: str, **kw: Any) -> ChargeLine:
    end = dt.date(imp.period.year + (imp.period.month == 12), imp.period.month % 12 + 1, 1) - dt.timedelta(days=1)
    base: dict[str, Any] = dict(
        source=imp, organisation=imp.organisation, customer=customer,
        customer_tenant_id=customer.tenant_id if customer else uuid.uuid4(), subscription_id="sub-1",
        product_id="CFQ7TTC0LFLX", sku_id="0001", product_name="Microsoft 365 E3", sku_name="Microsoft 365 E3",
        charge_type="cycleCharge", charge_start=imp.period, charge_end=end, quantity=D(10), cost=D(cost),
        currency=imp.currency, pricing_cost=D(cost), pricing_currency=imp.currency, exchange_rate=D(1),
        row_count=1, first_line=2, last_line=2,
    )  # fmt: skip
    base.update(kw)
    return ChargeLine.objects.create(**base)


def drafted_run(demo: DemoWorld, *, blocked: bool = False) -> BillingRun:
    """Nuvola's October: Bellavista priced at +10 %, Liffey below cost (a negative margin), 7.00 EUR on an
    unknown tenant; with ``blocked``, Prairie (billed in USD) has no exchange rate."""
    org = demo.org("nuvola")
    catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(10), effective_from=OCT)
    catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="list_adjust", percent=D(-20),
                              customer_id=demo.customer("liffey").pk, effective_from=OCT)  # fmt: skip
    imp = make_import(org)
    make_line(imp, demo.customer("bellavista"), "100.00")
    make_line(imp, demo.customer("liffey"), "50.00")
    make_line(imp, None, "7.00")
    if blocked:
        make_line(imp, demo.customer("prairie"), "30.00")
    return billing.bill(demo.actor("nuvola.billing"), OCT)


def open_tickets(demo: DemoWorld) -> list[Ticket]:
    """The demo desks (service hours, SLA policies) and the demo's tickets, opened by their customers."""
    from cspdesk.demo.world import TICKETS, customer_tenant_id
    from cspdesk.tenancy.models import Customer

    desk.load_desks()
    out = []
    for spec in TICKETS:
        customer = Customer.objects.get(tenant_id=customer_tenant_id(spec.customer))
        out.append(support.open_ticket(
            demo.actor(spec.opener), customer_id=customer.pk, subject=spec.subject, body=spec.body,
            category=spec.category, service=spec.service, severity=spec.severity,
        ))  # fmt: skip
    return out
