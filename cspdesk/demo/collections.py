"""The demo's collections: a policy per billing organisation, earlier months billed on earlier dates so some
customers are overdue, and the engine walked day by day up to today, so the demo shows one customer at each
stage (reminder, final notice, suspension, no renewal, handed over) with real suspensions in the emulator.

Everything goes through the production services: recon import, billing run and finalization (with the clock
set to the month's invoicing day), payments, and ``collections.services.run``. A second load finds the months
billed and the stages run, and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings

from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.partnercenter.emulator.server import RunningEmulator
from cspdesk.partnercenter.emulator.state import EmulatorError

from . import world

ACTOR = Actor.system("demo-loader")
POLICY: dict[str, Any] = {
    "stages": [
        {"days": 7, "action": "reminder"},
        {"days": 14, "action": "final_notice"},
        {"days": 30, "action": "suspend"},
        {"days": 45, "action": "cancel_at_renewal"},
        {"days": 60, "action": "hand_over"},
    ],
    "grace_days": 3,
    "categories": ["azure", "microsoft365"],
}
MINIMUMS = {"nuvola": {"EUR": "20", "USD": "20"}, "fjall": {"SEK": "200", "HUF": "8000"}, "atlantico": {"EUR": "20"}}
# Earlier months, counted back from the last closed one, and how many days before today each was invoiced
# (payment terms are 30 days, so an invoice issued N days ago is N - 30 days past due).
EARLIER = ((1, 38), (2, 46), (3, 70), (4, 80), (5, 95))
# The earliest of those months each customer has left unpaid (0: all paid), which sets its stage today.
UNPAID_FROM = {"angstrom": 1, "padaria": 2, "bellavista": 3, "douro": 4, "gyor": 5, "liffey": 0, "prairie": 0}
USAGE_ROWS = 400


def _period(months_back: int, today: dt.date) -> str:
    first = today.replace(day=1)
    for _ in range(months_back + 1):
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return f"{first:%Y-%m}"


def _at(day: dt.date) -> Any:
    return clock.frozen(dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC))


def restore_emulator(emulator: RunningEmulator) -> int:
    """Partner Center keeps what it was told; the demo's emulator starts fresh on each load. Tell it again
    what collections changed (suspensions, renewal turned off) so the sync finds the two agreeing."""
    from cspdesk.collections.models import Suspension, SuspensionState
    from cspdesk.partnercenter.models import Subscription

    changed = 0
    suspended = set(
        Suspension.objects.filter(state=SuspensionState.SUSPENDED).values_list("subscription_id", flat=True)
    )
    for sub in Subscription.objects.filter(pk__in=suspended) | Subscription.objects.filter(auto_renew=False):
        org = sub.customer.organisation
        partner = next(s.key for s in world.ORGANISATIONS if s.invoice_series == (org.parent or org).invoice_series)
        pid, tid, sid = str(world.partner_tenant_id(partner)), str(sub.customer.tenant_id), str(sub.pc_subscription_id)
        try:
            current = emulator.state.subscription(pid, tid, sid)
        except EmulatorError:  # a subscription the emulator does not seed: nothing to tell it
            continue
        # In the order collections made them (suspension before renewal), one change per call, as Partner
        # Center saw them: the subscription's version (its etag) then matches the one we mirrored.
        if current["status"] != sub.status:
            emulator.state.patch_subscription(pid, tid, sid, {"status": sub.status}, "")
            changed += 1
        if current["autoRenewEnabled"] != sub.auto_renew:
            emulator.state.patch_subscription(pid, tid, sid, {"autoRenewEnabled": sub.auto_renew}, "")
            changed += 1
    return changed


def _bill_earlier_months(today: dt.date) -> list[str]:
    from cspdesk.billing import services as billing
    from cspdesk.billing.models import BillingRun, RunStatus
    from cspdesk.partnercenter.recon import generator
    from cspdesk.partnercenter.recon import services as recon

    from .month import SEED

    billed = []
    for back, days_ago in EARLIER:
        period = _period(back, today)
        start = billing.parse_period(period)
        if BillingRun.objects.filter(period=start, status=RunStatus.FINALIZED).exists():
            continue
        with _at(today - dt.timedelta(days=days_ago)):
            out = Path(settings.VAR_DIR) / "demo-recon" / period
            for path in sorted(generator.generate(out, period, n_customers=0, usage_rows=USAGE_ROWS, seed=SEED)):
                recon.import_file(ACTOR, path)
            run = billing.latest_draft_run(start) or billing.bill(ACTOR, start)
            billing.finalize_run(ACTOR, run.pk)
        billed.append(period)
    return billed


def _pay_earlier_months(today: dt.date) -> None:
    """Each customer pays the months before the one it left unpaid, on their due dates."""
    from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
    from cspdesk.payments import selectors as payment_selectors
    from cspdesk.payments import services as payments
    from cspdesk.payments.models import PaymentSource

    for key, unpaid_from in UNPAID_FROM.items():
        for back, _days in EARLIER:
            if unpaid_from and back <= unpaid_from:
                continue
            start = dt.date.fromisoformat(_period(back, today) + "-01")
            invoice = Invoice.objects.filter(
                customer__tenant_id=world.customer_tenant_id(key),
                period=start,
                kind=InvoiceKind.INVOICE,
                status=InvoiceStatus.FINALIZED,
            ).first()
            if invoice is None or invoice.customer_id is None or invoice.due_date is None:
                continue
            amount = payment_selectors.open_balance(invoice)
            if amount <= Decimal(0):
                continue
            with _at(min(invoice.due_date, today)):
                payments.record_payment(
                    ACTOR, amount=amount, currency=invoice.currency, received_on=min(invoice.due_date, today),
                    customer_id=invoice.customer_id, source=PaymentSource.DEMO, reference=invoice.number,
                    external_key=f"demo:{invoice.number}", invoice_id=invoice.pk,
                )  # fmt: skip


def load_collections(today: dt.date | None = None) -> dict[str, Any]:
    """Policies, overdue months and the engine walked to today; returns each customer's stage."""
    from cspdesk.collections import services as collections
    from cspdesk.collections.models import Case, CaseStatus, Policy, Suspension, SuspensionState

    today = today or clock.today()
    for spec in world.ORGANISATIONS:
        org = world_org(spec.key)
        if org is None or not org.bills_customers or Policy.objects.filter(organisation=org).exists():
            continue
        collections.set_policy(ACTOR, {**POLICY, "minimum_amounts": MINIMUMS.get(spec.key, {})},
                               organisation_id=org.pk)  # fmt: skip
    billed = _bill_earlier_months(today)
    _pay_earlier_months(today)
    first = today - dt.timedelta(days=max(d for _, d in EARLIER) - 30 + 1)
    day = first
    while day <= today:
        with _at(day):
            collections.run(ACTOR, today=day)
        day += dt.timedelta(days=1)
    cases = []
    for case in Case.objects.filter(status=CaseStatus.OPEN).select_related("customer").order_by("customer__name"):
        suspended = Suspension.objects.filter(case=case, state=SuspensionState.SUSPENDED).count()
        cases.append({"customer": case.customer.name, "stage": case.last_stage_key, "overdue": case.overdue_amounts,
                      "since": case.oldest_due_date, "suspended_subscriptions": suspended})  # fmt: skip
    return {"months_billed": billed, "cases": cases}


def world_org(key: str) -> Any:
    from cspdesk.tenancy.models import Organisation

    spec = next(o for o in world.ORGANISATIONS if o.key == key)
    return Organisation.objects.filter(invoice_series=spec.invoice_series).first()
