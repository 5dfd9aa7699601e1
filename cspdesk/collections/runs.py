"""The collections run split per customer: one part per customer (decide its stage, then send its Partner
Center changes) and one per case that only has Partner Center work left (a reactivation), done by the workers
in parallel. Each part reuses the engine's exactly-once rules (``(case, stage)`` and ``(case, subscription)``
rows, claims before a Partner Center call, idempotency keys), so a part retried after a killed worker does
nothing twice; the run's suspension cap is one counter on the batch row, taken inside the customer's own
transaction (a rolled back decision gives its place back).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F

from cspdesk.audit import services as audit
from cspdesk.core import clock, fanout, outbox
from cspdesk.core.actor import Actor
from cspdesk.core.models import WorkBatch, WorkPart
from cspdesk.tenancy import permissions
from cspdesk.tenancy.permissions import Perm

from . import services
from .models import Case

KIND = "collections.run"


@dataclass
class SharedCapReport(services.RunReport):
    batch_id: int = 0

    def take_suspension(self) -> bool:
        # Called inside the customer's decision transaction: the conditional update holds the batch row until
        # that commits, so two workers never both take the last place.
        return bool(WorkBatch.objects.filter(pk=self.batch_id, counter__lt=self.cap).update(counter=F("counter") + 1))


def start_run(
    actor: Actor, *, today: dt.date | None = None, cap: int | None = None, organisation_id: int | None = None
) -> WorkBatch:
    """Enqueue the day's run, one part per customer (after the commit)."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    today = today or clock.today()
    customers = services._candidate_customers(actor, Perm.COLLECTIONS_CHANGE, today, organisation_id)
    busy = services._cases_with_partner_center_work(actor, organisation_id)
    only_pc = Case.objects.filter(pk__in=busy).exclude(customer_id__in=customers).values_list("pk", flat=True)
    parts = [(f"customer:{c:012d}", {"customer_id": c}) for c in customers]
    parts += [(f"case:{c:012d}", {"case_id": c}) for c in sorted(only_pc)]
    with transaction.atomic():
        return fanout.start(
            KIND, f"{today.isoformat()}:{organisation_id or 'all'}:{clock.now().isoformat()}", parts,
            handler="cspdesk.collections.runs.run_part", finisher="cspdesk.collections.runs.finish_run",
            atomic=False,  # a part commits its decision, then calls Partner Center: the engine's own order
            params={"actor": fanout.actor_json(actor), "today": today, "organisation_id": organisation_id,
                    "cap": services.suspension_cap() if cap is None else cap},
        )  # fmt: skip


def run_part(batch: WorkBatch, part: WorkPart) -> dict[str, Any]:
    params = batch.params
    actor = fanout.actor_of(params["actor"])
    today = dt.date.fromisoformat(params["today"])
    report = SharedCapReport(today, False, int(params["cap"]), batch_id=batch.pk)
    if "customer_id" in part.args:
        customer_id = int(part.args["customer_id"])
        services._decide(actor, customer_id, today, report)
        mine = set(Case.objects.filter(customer_id=customer_id).values_list("pk", flat=True))
        cases = [c for c in services._cases_with_partner_center_work(actor, params["organisation_id"]) if c in mine]
    else:
        cases = [int(part.args["case_id"])]
    for case_id in cases:
        report.partner_center += services.process_case(case_id, today=today)
    outbox.flush()
    return {k: v for k, v in report.as_dict().items() if k in ("actions", "closed", "partner_center", "skipped")}


def finish_run(batch: WorkBatch) -> dict[str, Any]:
    """Every part is done: the run's report, in customer order, and its audit event."""
    params = batch.params
    out: dict[str, Any] = {"today": params["today"], "dry_run": False, "suspension_cap": params["cap"],
                           "actions": [], "closed": [], "partner_center": [], "skipped": []}  # fmt: skip
    for part in batch.parts.order_by("key"):
        for name in ("actions", "closed", "partner_center", "skipped"):
            out[name] += part.result.get(name, [])
    audit.record(fanout.actor_of(params["actor"]), "collections.run", object_type="collections.run",
                 object_id=params["today"], after={"today": params["today"], "actions": len(out["actions"]),
                 "closed": len(out["closed"]), "partner_center": len(out["partner_center"]),
                 "batch_id": batch.pk})  # fmt: skip
    return out


def run_parallel(actor: Actor, *, today: dt.date | None = None, cap: int | None = None,
                 organisation_id: int | None = None, timeout: float = 3600,
                 in_process: bool = False) -> dict[str, Any]:  # fmt: skip
    """Start the split run and wait for the workers (``in_process``: do the parts here)."""
    batch = start_run(actor, today=today, cap=cap, organisation_id=organisation_id)
    if in_process:
        fanout.drain(batch.pk)
    else:
        fanout.wait(batch.pk, timeout=timeout)
    batch.refresh_from_db()
    return batch.result
