"""``cspdesk payables-remind``: run the daily Microsoft payables reminder task now (cron or the worker)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from cspdesk.core.output import ReportCommand
from cspdesk.payments import services, tasks


class Command(ReportCommand):
    help = "E-mail billing admins about Microsoft invoices due within N days (default 7) or overdue; once per stage."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--days", type=int, default=services.REMIND_DAYS_BEFORE)
        parser.add_argument("--enqueue", action="store_true", help="enqueue the task for the worker instead")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["enqueue"]:
            result = tasks.remind_microsoft_payables.enqueue(days_before=options["days"])
            self.report(options, {"enqueued": str(result.id)}, f"enqueued {result.id}")
            return
        sent = tasks.remind_microsoft_payables.call(days_before=options["days"])
        text = "\n".join(f"{s['number']} {s['stage']} → {', '.join(s['to'])}" for s in sent)
        self.report(options, {"sent": sent}, text or "no reminders due")
