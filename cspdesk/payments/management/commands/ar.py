"""``cspdesk ar [--json] [--balances]``: receivables aging per organisation, DSO, and customer balances."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from cspdesk.core.actor import Actor
from cspdesk.core.output import ReportCommand
from cspdesk.payments import selectors


class Command(ReportCommand):
    help = "Accounts receivable aging (current, 1-30, 31-60, 61-90, over 90 days) per organisation, with DSO."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--balances", action="store_true", help="also list the balance of each customer")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cspdesk-ar")
        report = selectors.aging_report(actor)
        if options["balances"]:
            report["customers"] = selectors.customer_balances(actor)
        lines = [f"Aging as of {report['as_of']} (current / 1-30 / 31-60 / 61-90 / >90 = total; DSO)"]
        for row in report["organisations"]:
            b = row["buckets"]
            lines.append(f"  {row['organisation']} {row['currency']}: {b['current']} / {b['1_30']} / {b['31_60']} / "
                         f"{b['61_90']} / {b['over_90']} = {b['total']}; DSO {row['dso_days'] or '-'}")  # fmt: skip
        for c in report.get("customers", []):
            lines.append(f"  {c['customer']}: open {c['open']} {c['currency']}, overdue {c['overdue']}, "
                         f"credit {c['credit']}, balance {c['balance']}")  # fmt: skip
        self.report(options, report, "\n".join(lines))
