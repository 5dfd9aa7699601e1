from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from cspdesk.core.actor import Actor
from cspdesk.core.output import ReportCommand
from cspdesk.support import services


class Command(ReportCommand):
    help = "Support desk upkeep: `cspdesk support sync` syncs Microsoft escalations and raises SLA warnings/breaches."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("action", choices=["sync"])

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cli:support")
        result = {"escalations": services.sync_escalations(actor), "sla": services.sla_sweep(actor)}
        esc, sla = result["escalations"], result["sla"]
        text = (
            f"escalations: {esc['checked']} checked, {esc['notes']} new notes, {esc['closed']} closed, "
            f"{esc['failed']} failed; SLA: {sla['warned']} warnings, {sla['breached']} breaches"
        )
        self.report(options, result, text)
