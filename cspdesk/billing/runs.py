"""A billing run split per buyer: one part per draft invoice (seller, buyer, source currency), done by the
workers in parallel, each committing its invoice with the part's "done" mark (so a killed worker leaves no half
invoice and the retry drafts it once); the last part writes the run's review. The result equals
:func:`cspdesk.billing.services.bill` in one process: the same buckets, the same rating code, the same order.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from cspdesk.core import fanout
from cspdesk.core.actor import Actor
from cspdesk.core.models import WorkBatch, WorkPart
from cspdesk.tenancy.models import Organisation

from . import services
from .models import BillingRun, Invoice, RunStatus

KIND = "billing.draft"


def _part_key(bucket: services.Bucket) -> str:
    # sorts like services.bucket_order: seller id (zero-padded), buyer key, source currency
    return f"{bucket.seller.pk:012d}|{bucket.buyer_key}|{bucket.source_currency}"


def _lines(period: dt.date) -> Any:
    return services.billable_charge_lines(period)


def buyers_per_part() -> int:
    return max(1, int(getattr(settings, "CSPDESK_BILLING_BUYERS_PER_PART", 50)))


@transaction.atomic
def start_run(actor: Actor, period: dt.date, *, threshold: Decimal | None = None,
              per_part: int | None = None) -> tuple[BillingRun, WorkBatch]:  # fmt: skip
    """Replace the period's drafts with a new run and enqueue its parts (after the commit): consecutive buyers,
    ``per_part`` (CSPDESK_BILLING_BUYERS_PER_PART, 50) to a part, so that a part's fixed cost (a task, a
    transaction, reading the rules) is shared; a part's key is its first buyer's."""
    threshold = services.move_threshold() if threshold is None else threshold
    per_part = per_part or buyers_per_part()
    run, sellers, replaced = services.begin_run(actor, period)
    lines = services.load_charge_lines(_lines(period))
    buckets, unassigned = services._buckets(sellers, lines)
    ordered = sorted(buckets, key=services.bucket_order)
    parts = []
    for i in range(0, len(ordered), per_part):
        group = ordered[i : i + per_part]
        buyers = [{"seller_id": b.seller.pk, "buyer": b.buyer_key, "currency": b.source_currency} for b in group]
        parts.append((_part_key(group[0]), {"buyers": buyers}))
    run.review = {"period": f"{period:%Y-%m}", "drafting": True, "parts": len(parts)}
    run.save(update_fields=["review"])
    batch = fanout.start(
        KIND, f"run:{run.pk}", parts, handler="cspdesk.billing.runs.draft_part",
        finisher="cspdesk.billing.runs.finish_run", atomic=True,
        params={"run_id": run.pk, "actor": fanout.actor_json(actor), "threshold": threshold,
                "charge_lines": len(lines), "replaced": replaced,
                "unassigned": {str(k): v for k, v in unassigned.items()},
                "sellers": [s.pk for s in sellers]},
    )  # fmt: skip
    return run, batch


def draft_part(batch: WorkBatch, part: WorkPart) -> dict[str, Any]:
    """The draft invoices of a part's buyers; runs inside the part's transaction (all of them or none)."""
    run = BillingRun.objects.get(pk=batch.params["run_id"])
    if run.status != RunStatus.DRAFT:
        return {"skipped": f"run {run.pk} is {run.status}"}
    period = run.period
    buyers = part.args.get("buyers") or [part.args]  # a part enqueued before buyers were grouped holds one
    wanted = {(b["seller_id"], b["buyer"], b["currency"]) for b in buyers}
    customer_ids = [int(b["buyer"].partition(":")[2]) for b in buyers if b["buyer"].startswith("customer:")]
    reseller_ids = [int(b["buyer"].partition(":")[2]) for b in buyers if not b["buyer"].startswith("customer:")]
    lines_qs = _lines(period).filter(currency__in={b["currency"] for b in buyers}).filter(
        Q(customer_id__in=customer_ids) | Q(customer__organisation_id__in=reseller_ids)
    )  # fmt: skip
    lines = services.load_charge_lines(lines_qs)
    sellers = list(Organisation.objects.filter(pk__in=batch.params["sellers"]).order_by("pk"))
    buckets, _ = services._buckets(sellers, lines)
    mine = sorted(
        (b for b in buckets if (b.seller.pk, b.buyer_key, b.source_currency) in wanted), key=services.bucket_order
    )
    if not mine:  # their charge lines were billed or withdrawn since the run started
        return {"skipped": "no charge lines left for these buyers"}
    # the part's own buyers' support plans and last period's totals, read once for the part
    cache = services.RunCache(period, customers=customer_ids, resellers=reseller_ids)
    _, reviews = services.draft_buckets(run, mine, lines, Decimal(str(batch.params["threshold"])), cache)
    return {"reviews": reviews}


def finish_run(batch: WorkBatch) -> dict[str, Any]:
    """Every buyer is drafted: the run's review, as :func:`services.bill` writes it."""
    params = batch.params
    run = BillingRun.objects.select_for_update().get(pk=params["run_id"])
    if run.status != RunStatus.DRAFT:
        return {"run_id": run.pk, "status": run.status}
    customers = [
        review
        for p in batch.parts.order_by("key")
        for review in p.result.get("reviews", [p.result["review"]] if "review" in p.result else [])
    ]
    # the totals add up the parts' figures as drafted (what services.bill adds up), not the stored columns
    invoices = [
        Invoice(currency=c["currency"], cost=Decimal(c["cost"]), net=Decimal(c["price"]), tax=Decimal(c["tax"]),
                total=Decimal(c["total"]))
        for c in customers if c.get("invoice_id") is not None
    ]  # fmt: skip
    unassigned = {int(k): Decimal(v) for k, v in params["unassigned"].items()}
    services.finish_review(fanout.actor_of(params["actor"]), run, run.period, charge_lines=params["charge_lines"],
                           invoices=invoices, customers=customers, unassigned=unassigned,
                           replaced=params["replaced"], threshold=Decimal(str(params["threshold"])))  # fmt: skip
    return {"run_id": run.pk, "invoices": len(invoices)}


def run_parallel(actor: Actor, period: dt.date, *, threshold: Decimal | None = None,
                 timeout: float = 3600, in_process: bool = False) -> BillingRun:  # fmt: skip
    """Start the split run and wait for the workers (``in_process``: do the parts here, one after another)."""
    run, batch = start_run(actor, period, threshold=threshold)
    if in_process:
        fanout.drain(batch.pk)
    else:
        fanout.wait(batch.pk, timeout=timeout)
    run.refresh_from_db()
    return run
