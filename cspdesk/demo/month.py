"""The demo's month of Partner Center data, through the production code paths.

The demo serves a local Partner Center emulator (seeded from :mod:`cspdesk.demo.world`), points the
real client at it by configuration, syncs customers and subscriptions from it, and imports generated
reconciliation files for the last closed month with the real importer. Everything is idempotent: a
second run finds the files already imported and the sync unchanged.
"""

from __future__ import annotations

import datetime as dt
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings

from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.partnercenter import sync as pc_sync
from cspdesk.partnercenter.emulator.server import RunningEmulator, start_in_thread
from cspdesk.partnercenter.recon import generator
from cspdesk.partnercenter.recon import services as recon

from . import world

EMULATOR_PORT = 8765
SEED = 2026
USAGE_ROWS = 20_000


def last_closed_period(today: dt.date | None = None) -> str:
    today = today or clock.today()
    first = today.replace(day=1)
    return f"{first - dt.timedelta(days=1):%Y-%m}"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_emulator(port: int = EMULATOR_PORT) -> RunningEmulator:
    """Serve the emulator in this process and point the Partner Center client at it."""
    emulator = start_in_thread("127.0.0.1", port if _port_free(port) else 0)
    settings.PARTNER_CENTER = {
        **settings.PARTNER_CENTER,
        "BASE_URL": emulator.url,
        "AUTHORITY": emulator.url,
        "AUTHORITY_USGOV": emulator.url,
        # The emulator takes any consent; app+user tokens also open service requests (escalations).
        "REFRESH_TOKEN": settings.PARTNER_CENTER.get("REFRESH_TOKEN") or "demo-consent",
    }
    return emulator


def sync() -> dict[str, Any]:
    return pc_sync.sync(Actor.system("demo-loader")).as_dict()


def import_month(period: str | None = None) -> list[dict[str, Any]]:
    """Generate the month's recon files (deterministic) under var/demo-recon/ and import them."""
    period = period or last_closed_period()
    out = Path(settings.VAR_DIR) / "demo-recon" / period
    paths = generator.generate(out, period, n_customers=0, usage_rows=USAGE_ROWS, seed=SEED)
    actor = Actor.system("demo-loader")
    results = []
    for path in sorted(paths):
        try:
            results.append(recon.import_file(actor, path).as_dict())
        except DomainError as exc:
            results.append({"file": str(path), "error": exc.as_dict()})
    return results


def load_price_rules() -> int:
    """Create the demo world's price rules and support plans that are missing; returns how many were added."""
    from cspdesk.catalog import services as catalog
    from cspdesk.catalog.models import PriceRule, SupportAssignment, SupportPlan
    from cspdesk.tenancy.models import Customer, Organisation

    actor = Actor.system("demo-loader")
    start = dt.date.fromisoformat(world.PRICE_RULES_FROM)

    def org(key: str) -> Organisation:
        spec = next(o for o in world.ORGANISATIONS if o.key == key)
        return Organisation.objects.get(invoice_series=spec.invoice_series)

    def customer(key: str) -> Customer:
        return Customer.objects.get(tenant_id=world.customer_tenant_id(key))

    added = 0
    for r in world.PRICE_RULES:
        seller = org(r.org)
        reseller = org(r.reseller) if r.reseller else None
        cust = customer(r.customer) if r.customer else None
        scope: dict[str, Any] = {
            "organisation": org(r.org), "reseller": org(r.reseller) if r.reseller else None,
            "customer": customer(r.customer) if r.customer else None, "category": r.category,
            "product_id": r.product_id, "sku_id": r.sku_id, "meter_category": r.meter_category,
        }  # fmt: skip
        if PriceRule.objects.filter(**scope).exists():
            continue
        catalog.create_price_rule(
            actor, organisation_id=seller.pk, method=r.method, effective_from=start,
            reseller_id=reseller.pk if reseller else None, customer_id=cust.pk if cust else None, category=r.category,
            product_id=r.product_id, sku_id=r.sku_id, meter_category=r.meter_category,
            percent=Decimal(r.percent) if r.percent else None,
            unit_price=Decimal(r.unit_price) if r.unit_price else None, currency=r.currency, note=r.note,
        )  # fmt: skip
        added += 1
    for p in world.SUPPORT_PLANS:
        plan = SupportPlan.objects.filter(organisation=org(p.org), name=p.name).first()
        if plan is None:
            plan = catalog.create_support_plan(
                actor, organisation_id=org(p.org).pk, name=p.name, price_model=p.price_model, currency=p.currency,
                amount=Decimal(p.amount) if p.amount else None, percent=Decimal(p.percent) if p.percent else None,
                minimum=Decimal(p.minimum) if p.minimum else None, maximum=Decimal(p.maximum) if p.maximum else None,
            )  # fmt: skip
            added += 1
        for key in p.customers:
            if not SupportAssignment.objects.filter(customer=customer(key), plan=plan).exists():
                catalog.assign_support_plan(actor, customer_id=customer(key).pk, plan_id=plan.pk, effective_from=start)
                added += 1
    return added


def bill_month(period: str | None = None) -> dict[str, Any]:
    """Bill and finalize the month once: a second run finds it finalized and nothing new to bill."""
    from cspdesk.billing import services as billing
    from cspdesk.billing.management.commands.bill import run_report
    from cspdesk.billing.models import BillingRun, RunStatus

    period = period or last_closed_period()
    start = billing.parse_period(period)
    actor = Actor.system("demo-loader")
    done = BillingRun.objects.filter(period=start, status=RunStatus.FINALIZED).order_by("-pk").first()
    pending = billing.billable_charge_lines(start).filter(customer__isnull=False).exists()
    if done is not None and not pending:
        return {**run_report(done.pk), "unchanged": True}
    run = billing.latest_draft_run(start) or billing.bill(actor, start)
    run = billing.finalize_run(actor, run.pk)
    return {**run_report(run.pk), "unchanged": False}


def load_payments(period: str | None = None) -> list[dict[str, Any]]:
    """Pay the demo month's invoices as :data:`world.PAYMENTS` says (paid, partly paid, unpaid); once each:
    a payment's key names the invoice, so a second load records nothing new."""
    from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
    from cspdesk.core.money import quantize
    from cspdesk.payments import selectors as payment_selectors
    from cspdesk.payments import services as payments
    from cspdesk.payments.models import PaymentSource

    start = dt.date.fromisoformat(f"{period or last_closed_period()}-01")
    actor = Actor.system("demo-loader")
    out = []
    for spec in world.PAYMENTS:
        invoice = (
            Invoice.objects.filter(
                customer__tenant_id=world.customer_tenant_id(spec.customer),
                period=start,
                kind=InvoiceKind.INVOICE,
                status=InvoiceStatus.FINALIZED,
            )
            .order_by("-pk")
            .first()
        )
        if invoice is None or invoice.customer_id is None:
            continue
        amount = quantize(Decimal(invoice.total) * Decimal(spec.share), invoice.currency)
        if amount > 0:
            payments.record_payment(
                actor, amount=amount, currency=invoice.currency, received_on=clock.today(),
                customer_id=invoice.customer_id, method=spec.method, source=PaymentSource.DEMO,
                reference=f"{invoice.number}", external_key=f"demo:{invoice.number}",
            )  # fmt: skip
        out.append({"invoice": invoice.number, "customer": spec.customer, "paid": amount,
                    "open": payment_selectors.open_balance(invoice), "currency": invoice.currency})  # fmt: skip
    return out
