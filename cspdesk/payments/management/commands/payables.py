"""``cspdesk payables``: what the partner owes Microsoft and when.

Without options it lists each Microsoft invoice: its total, the cost billed on to customers, unassigned cost,
margin, due date, paid or not, and flags (unassigned cost, due within 7 days, overdue). ``--mark-paid INVOICE
--date D`` records a payment; ``--remind`` sends the due-soon and overdue reminders now; ``--cash`` is the
8-week view of receivables expected against Microsoft payables due.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.billing.payables import payables
from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.core.output import ReportCommand
from cspdesk.payments import selectors, services


class Command(ReportCommand):
    help = "Microsoft payables: list; --mark-paid INVOICE --date D; --remind (the daily reminders); --cash (8 weeks)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--mark-paid", metavar="INVOICE", help="Microsoft invoice number (or id) paid")
        parser.add_argument("--date", type=dt.date.fromisoformat, help="payment date (YYYY-MM-DD)")
        parser.add_argument("--amount", type=Decimal, help="amount paid (default: the invoice total)")
        parser.add_argument("--reference", default="")
        parser.add_argument("--remind", action="store_true", help="send due-soon and overdue reminders now")
        parser.add_argument("--days", type=int, default=services.REMIND_DAYS_BEFORE,
                            help="remind this many days before the due date (default 7)")  # fmt: skip
        parser.add_argument("--cash", action="store_true", help="receivables expected vs payables due, 8 weeks")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cspdesk-payables")
        try:
            if options["mark_paid"]:
                if options["date"] is None:
                    raise CommandError("--mark-paid needs --date YYYY-MM-DD")
                p = services.mark_microsoft_paid(actor, options["mark_paid"], paid_on=options["date"],
                                                 amount=options["amount"], reference=options["reference"])  # fmt: skip
                mi = p.microsoft_invoice
                self.report(options, {"number": mi.number, "paid_on": p.paid_on, "amount": p.amount,
                                      "currency": mi.currency}, f"{mi.number} paid on {p.paid_on}")  # fmt: skip
            elif options["remind"]:
                sent = services.remind_payables(actor, days_before=options["days"])
                text = "\n".join(f"{s['number']} {s['stage']} → {', '.join(s['to'])}" for s in sent)
                self.report(options, {"sent": sent}, text or "no reminders due")
            elif options["cash"]:
                weeks = selectors.cash_forecast(actor)
                text = "\n".join(f"{w['week_start']} {w['currency']}: in {w['receivables_expected']}, "
                                 f"out {w['microsoft_payables_due']}, net {w['net']}" for w in weeks)  # fmt: skip
                self.report(options, {"weeks": weeks}, text or "nothing expected")
            else:
                rows = payables(actor)
                text = "\n".join(
                    f"{r['number']} due {r['due_date']}: {r['microsoft_total']} {r['currency']}, billed on "
                    f"{r['billed_on_cost']}, unassigned {r['unassigned_cost']}, margin {r['margin']}, "
                    + (f"paid {r['paid_on']}" if r["paid"] else "UNPAID")
                    + (f"  ⚠ {', '.join(r['flags'])}" if r["flags"] else "")
                    for r in rows
                )
                self.report(options, {"payables": rows}, text or "no Microsoft invoices")
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
