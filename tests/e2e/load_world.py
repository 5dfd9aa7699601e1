"""Load the browser tests' world into a fresh database and print what the tests need, as JSON.

Run as ``python -m tests.e2e.load_world`` with ``CSPDESK_VAR_DIR`` (and so the SQLite file) pointing at a
temporary directory; the server the browser talks to is then started on the same directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

OVERDUE_PERIOD, DRAFT_PERIOD = "2026-07", "2026-08"
OVERDUE_DAYS = 89  # July was invoiced so long ago that Liffey's unpaid invoice is this many days late today
E2E_POLICY: dict[str, Any] = {
    "stages": [
        {"days": 7, "action": "reminder"},
        {"days": 14, "action": "final_notice"},
        {"days": 30, "action": "suspend"},
        {"days": 60, "action": "hand_over"},
    ],
    "grace_days": 0,
    "categories": ["azure", "microsoft365"],
}


def console_world(demo: Any) -> dict[str, Any]:
    """What the console's browser tests need on top of the portal's world: a draft billing run to review (August),
    and a suspension waiting for approval. July is billed as if it were invoiced long ago; every customer pays it
    on its due date except Liffey, whose case is walked through the reminder and the final notice to the
    suspension, which a run with a cap of 0 holds back for a billing admin. Today's run would hand Liffey over.
    August is drafted with a promotion that prices Prairie below cost, so the review has something to flag."""
    import datetime as dt
    from decimal import Decimal

    from cspdesk.billing import services as billing
    from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
    from cspdesk.catalog import services as catalog
    from cspdesk.collections import services as collections
    from cspdesk.collections.models import ActionStatus, CaseAction
    from cspdesk.core import clock
    from cspdesk.core.actor import Actor
    from cspdesk.demo import month
    from cspdesk.payments import selectors as payment_selectors
    from cspdesk.payments import services as payments
    from cspdesk.payments.models import PaymentSource

    system = Actor.system("e2e-loader")
    today = clock.today()

    def at(day: dt.date) -> Any:
        return clock.frozen(dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC))

    nuvola = demo.org("nuvola")
    collections.set_policy(system, E2E_POLICY, organisation_id=nuvola.pk)
    with at(today - dt.timedelta(days=OVERDUE_DAYS + 30)):
        assert all("error" not in r for r in month.import_month(OVERDUE_PERIOD))
        run = billing.bill(system, billing.parse_period(OVERDUE_PERIOD))
        billing.finalize_run(system, run.pk)
    liffey = demo.customer("liffey")
    due = None
    for inv in Invoice.objects.filter(run=run, kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED,
                                      customer__isnull=False):  # fmt: skip
        assert inv.due_date is not None
        if inv.customer_id == liffey.pk:
            due = inv.due_date
            continue
        with at(inv.due_date):
            payments.record_payment(system, amount=payment_selectors.open_balance(inv), currency=inv.currency,
                                    received_on=inv.due_date, customer_id=inv.customer_id, invoice_id=inv.pk,
                                    source=PaymentSource.DEMO, reference=inv.number)  # fmt: skip
    assert due is not None and (today - due).days >= 60, (due, today)
    for days in (7, 14, 30):
        day = due + dt.timedelta(days=days)
        with at(day):
            collections.run(system, today=day, cap=0, organisation_id=nuvola.pk)
    waiting = CaseAction.objects.get(case__customer=liffey, status=ActionStatus.AWAITING_APPROVAL)
    assert waiting.details["subscriptions"], "Liffey has subscriptions the policy covers"

    assert all("error" not in r for r in month.import_month(DRAFT_PERIOD))
    # An August promotion for Prairie, priced below Microsoft's cost: the review flags it before the rest.
    catalog.create_price_rule(system, organisation_id=nuvola.pk, method="list_adjust", percent=Decimal(-20),
                              customer_id=demo.customer("prairie").pk, effective_from=dt.date(2026, 8, 1),
                              effective_to=dt.date(2026, 8, 31), note="August promotion")  # fmt: skip
    draft = billing.bill(demo.actor("nuvola.billing"), billing.parse_period(DRAFT_PERIOD))
    return {
        "draft_run": draft.pk,
        "draft_invoices": draft.invoices.filter(organisation=nuvola).count(),
        "waiting_case": waiting.case_id,
        "waiting_customer": liffey.name,
        "waiting_subscriptions": [int(i) for i in waiting.details["subscriptions"]],
    }


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cspdesk.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
    from tests.portal.world import load

    call_command("migrate", interactive=False, verbosity=0)
    world = load(Path(settings.VAR_DIR))
    console = console_world(world.demo)
    invoices = {}
    for inv in Invoice.objects.filter(kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED,
                                      customer__isnull=False).select_related("customer"):  # fmt: skip
        key = next(k for k in ("bellavista", "liffey", "prairie", "angstrom", "gyor", "padaria", "douro")
                   if world.demo.customer(k).pk == inv.customer_id)  # fmt: skip
        invoices.setdefault(key, []).append(
            {
                "id": inv.pk,
                "number": inv.number,
                "period": f"{inv.period:%Y-%m}",
                "total": str(inv.total),
                "currency": inv.currency,
            }
        )
    out = {
        "logins": {u: {"password": x.password, "token": x.api_token} for u, x in world.demo.logins.items()},
        "invoices": invoices,
        "fewer_licences": world.fewer_licences,
        "console": console,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
