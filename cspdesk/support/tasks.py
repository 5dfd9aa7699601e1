"""Background entry points for the support desk. Thin and safe to retry."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from cspdesk.core.actor import Actor

from . import services


@task()
def upkeep() -> dict[str, Any]:
    """Every few minutes: sync Microsoft escalations and raise SLA warnings and breaches (each once)."""
    actor = Actor.system("support-upkeep")
    return {"escalations": services.sync_escalations(actor), "sla": services.sla_sweep(actor)}
