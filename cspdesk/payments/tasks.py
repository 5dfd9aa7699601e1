"""Background entry points for payments. Thin and safe to retry."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from cspdesk.core.actor import Actor

from . import services


@task()
def remind_microsoft_payables(days_before: int = services.REMIND_DAYS_BEFORE) -> list[dict[str, Any]]:
    """Daily: e-mail the billing admins about Microsoft invoices due soon or overdue (once per stage)."""
    return services.remind_payables(Actor.system("payables-reminder"), days_before=days_before)
