"""Background entry points for collections. Thin, take ids, safe to retry."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from cspdesk.core import outbox
from cspdesk.core.actor import Actor
from cspdesk.core.output import to_jsonable

from . import runs, services


@task()
def run_collections(dry_run: bool = False) -> dict[str, Any]:
    """Daily: run every organisation's collections policy for today."""
    report = services.run(Actor.system("collections-daily"), dry_run=dry_run)
    return to_jsonable(report.as_dict())


@task()
def process_case(case_id: int) -> list[dict[str, Any]]:
    """Send a case's pending Partner Center changes now: a reactivation after a payment cleared the overdue
    balance or a billing admin lifted the case, or suspensions a billing admin approved."""
    results = services.process_case(case_id)
    outbox.flush()
    return to_jsonable(results)


@task()
def start_split_run() -> dict[str, Any]:
    """Daily, over many workers: today's run as one part per customer (see :mod:`cspdesk.collections.runs`)."""
    batch = runs.start_run(Actor.system("collections-daily"))
    return {"batch_id": batch.pk, "kind": batch.kind, "key": batch.key}
