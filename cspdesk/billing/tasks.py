"""Background entry points for billing. Thin, take plain values, safe to retry."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from cspdesk.core.actor import Actor

from . import runs, services


@task()
def start_billing_run(period: str) -> dict[str, Any]:
    """Draft a period over the workers: one part per buyer (see :mod:`cspdesk.billing.runs`)."""
    run, batch = runs.start_run(Actor.system("billing-run"), services.parse_period(period))
    return {"run_id": run.pk, "batch_id": batch.pk}
