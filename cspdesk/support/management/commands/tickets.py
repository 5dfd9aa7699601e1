from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from cspdesk.core.actor import Actor
from cspdesk.core.output import ReportCommand
from cspdesk.support import selectors, services
from cspdesk.support.models import Status


class Command(ReportCommand):
    help = "List tickets with their SLA due times, breach state and escalation."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--status", choices=Status.values, help="only tickets in this status")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cli:tickets")
        qs = selectors.tickets_for(actor).prefetch_related("escalations").order_by("pk")
        if options["status"]:
            qs = qs.filter(status=options["status"])
        rows = []
        for t in qs:
            esc = t.escalations.order_by("-created_at").first()
            state = services.sla_state(t)
            rows.append({
                "id": t.pk, "reference": t.reference, "customer": t.customer.name, "category": t.category,
                "service": t.service, "severity": t.severity, "status": t.status, "turn": t.turn,
                "first_response_due": t.first_response_due, "resolution_due": t.resolution_due,
                "first_response_breached": t.first_response_breached, "resolution_breached": t.resolution_breached,
                "paused": state["paused"], "escalation_vehicle": esc.vehicle if esc else None,
                "ms_request_id": (esc.ms_request_id or None) if esc else None,
            })  # fmt: skip
        lines = [
            f"{r['reference']:<12} {r['status']:<16} {r['severity']:<8} {r['category']:<24} {r['customer']}"
            + (f"  → {r['escalation_vehicle']} {r['ms_request_id'] or ''}" if r["escalation_vehicle"] else "")
            for r in rows
        ]
        self.report(options, rows, "\n".join(lines) or "no tickets")
