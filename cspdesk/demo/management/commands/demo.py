from __future__ import annotations

import sys
import threading
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandParser

from cspdesk.core.output import ReportCommand
from cspdesk.demo import collections as demo_collections
from cspdesk.demo import desk, month, world


class Command(ReportCommand):
    help = "Migrate, load the demo world and serve cspdesk on 127.0.0.1:8000, printing every login."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--no-serve", action="store_true", help="load the world and exit")
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address to serve on (default 127.0.0.1:8000)")

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = options["json"]
        call_command(
            "migrate", interactive=False, verbosity=0 if quiet else 1, stdout=sys.stderr if quiet else self.stdout
        )
        logins = world.load()
        emulator = month.start_emulator()
        demo_collections.restore_emulator(emulator)
        synced = month.sync()
        imports = month.import_month()
        month.load_price_rules()
        billed = month.bill_month()
        paid = month.load_payments()
        dunning = demo_collections.load_collections()
        desk.load_desks()
        tickets = desk.load_tickets()
        rows = [login.as_dict() for login in logins]
        width = max(len(r["username"]) for r in rows)
        lines = [f"Demo world loaded: {len(rows)} logins (passwords and API tokens are new on every load).", ""]
        for r in rows:
            where = r["organisation"] or r["customer"]
            lines.append(f"  {r['username']:<{width}}  {r['password']}  {r['role']:<22} {where}")
        totals = synced["totals"]
        lines += [
            "",
            f"Partner Center emulator: {emulator.url}  (sync: customers {_counts(totals['customers'])}; "
            f"subscriptions {_counts(totals['subscriptions'])})",
            f"Reconciliation files for {month.last_closed_period()}:",
            *(f"  {_import_line(r)}" for r in imports),
            f"Billing run {billed['run_id']} for {billed['period']}: {billed['status']}"
            f"{' (unchanged)' if billed['unchanged'] else ''}, {billed['invoices']} invoices",
            *(f"  {i['number']}  {i['buyer']}  {i['total']} {i['currency']}" for i in billed["invoice_list"]),
            "  PDF and UBL: /api/v1/invoices/{id}/pdf and /api/v1/invoices/{id}/ubl (cspdesk invoice list)",
            "Payments (cspdesk payments list, cspdesk ar --balances): "
            + ", ".join(f"{p['customer']} paid {p['paid']}, open {p['open']} {p['currency']}" for p in paid),
            "Support tickets: " + ", ".join(f"{t['reference']} ({t['status']})" for t in tickets),
            "Collections (cspdesk collections cases; policy: /collections/policy/<organisation id>/): "
            + ", ".join(
                f"{c['customer']} at {c['stage'] or 'no step yet'}"
                + (f" ({c['suspended_subscriptions']} suspended)" if c["suspended_subscriptions"] else "")
                for c in dunning["cases"]
            ),
        ]
        if not options["no_serve"]:
            lines += [
                "",
                f"Serving on http://{options['addr']}/  (Ctrl-C to stop); background tasks run in-process",
                "(a payment that clears an overdue balance reactivates the suspended subscriptions in seconds)",
            ]
        document = {
            "logins": rows,
            "partner_center": {"emulator": emulator.url, "sync": synced},
            "imports": imports,
            "billing": billed,
            "payments": paid,
            "tickets": tickets,
            "collections": dunning,
        }
        self.report(options, document, "\n".join(lines))
        if not options["no_serve"]:
            self.stdout.flush()
            start_task_worker()
            call_command("runserver", options["addr"], use_reloader=False)


def start_task_worker() -> threading.Thread | None:
    """The demo's background worker: the database queue's worker in a thread of the serving process, so what
    production does on `cspdesk worker` (reactivate after payment, send notices) happens here too, within a
    second or two. Nothing to do when tasks run where they are enqueued (the immediate backend)."""
    if settings.TASKS["default"]["BACKEND"] != "django_tasks_db.DatabaseBackend":
        return None
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(queue_names=list(settings.TASKS_QUEUES), interval=1.0, batch=False, backend_name="default",
                    startup_delay=False, max_tasks=None, worker_id="demo", excluded_queue_names=[])  # fmt: skip
    thread = threading.Thread(target=worker.run, name="tasks", daemon=True)
    thread.start()
    return thread


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in counts.items())


def _import_line(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"{result['file']}: refused: {result['error']['message']}"
    return (
        f"#{result['import_id']} {result['kind']} {result['invoice_number'] or '(unbilled)'}: {result['rows']} rows, "
        f"{result['total_cost']} {result['currency']}, unassigned {result['unassigned_cost']}"
    )
