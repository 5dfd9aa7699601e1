"""``cspdesk payments import|record|list|suspense|assign|apply-credit``: payment intake from the command line."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.core.output import ReportCommand
from cspdesk.payments import selectors, services
from cspdesk.tenancy.models import Customer, Organisation

ACTOR = Actor.system("cspdesk-payments")


def organisation_id(ref: str | None) -> int | None:
    """An organisation by id or invoice series (``NUV``)."""
    if not ref:
        return None
    org = Organisation.objects.filter(invoice_series=ref).first() or (
        Organisation.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
    )
    if org is None:
        raise CommandError(f"no organisation {ref!r} (give its id or invoice series)")
    return org.pk


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise CommandError(f"not an amount: {text!r}") from None


class Command(ReportCommand):
    help = "Payments: import a bank statement (camt.053 XML or CSV), record by hand, list, the suspense queue."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        im = sub.add_parser("import", help="import a bank statement: camt.053 XML or CSV (layout from settings)")
        im.add_argument("file", type=Path)
        im.add_argument("--org", help="receiving organisation (id or invoice series); needed with several")
        im.add_argument("--layout", type=Path, help="CSV layout as a JSON file (columns, date_format, …)")
        rec = sub.add_parser("record", help="record a payment by hand")
        rec.add_argument("--customer", type=int, help="customer id (omit: matched by reference, else suspense)")
        rec.add_argument("--org", help="receiving organisation when no customer is given")
        rec.add_argument("--amount", required=True)
        rec.add_argument("--currency", required=True)
        rec.add_argument("--date", required=True, type=dt.date.fromisoformat)
        rec.add_argument("--reference", default="")
        rec.add_argument("--method", default="bank_transfer")
        rec.add_argument("--invoice", type=int, help="invoice id to pay first")
        sub.add_parser("list", help="list payments")
        sub.add_parser("suspense", help="payments whose customer could not be told")
        asg = sub.add_parser("assign", help="match a suspense payment to a customer")
        asg.add_argument("payment", type=int)
        asg.add_argument("--customer", type=int, required=True)
        asg.add_argument("--invoice", type=int)
        ac = sub.add_parser("apply-credit", help="apply customers' unapplied money to their open invoices")
        ac.add_argument("--customer", type=int, help="one customer (default: every customer with credit)")
        for p in sub.choices.values():
            p.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["subcommand"].replace("-", "_"))(options)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None

    def _import(self, o: dict[str, Any]) -> None:
        org = organisation_id(o.get("org"))
        if org is None:
            orgs = list(Organisation.objects.values_list("pk", flat=True)[:2])
            if len(orgs) != 1:
                raise CommandError("say which organisation received the money: --org SERIES")
            org = orgs[0]
        layout = json.loads(o["layout"].read_text()) if o.get("layout") else None
        r = services.import_statement(ACTOR, o["file"], organisation_id=org, layout=layout)
        text = (f"{r['file']} ({r['format']}): {r['entries']} entries, {r['created']} new payments "
                f"({r['in_suspense']} in suspense), {r['duplicates']} already imported, {r['debits_skipped']} debits "
                f"skipped, {len(r['errors'])} refused")  # fmt: skip
        text += "".join(f"\n  {e['place']}: {e['message']}" for e in r["errors"])
        self.report(o, r, text)

    def _record(self, o: dict[str, Any]) -> None:
        r = services.record_payment(ACTOR, amount=_decimal(o["amount"]), currency=o["currency"],
                                    received_on=o["date"], customer_id=o.get("customer"),
                                    organisation_id=organisation_id(o.get("org")), reference=o["reference"],
                                    method=o["method"], invoice_id=o.get("invoice"))  # fmt: skip
        d = selectors.payment_dict(r.payment)
        self.report(o, d, _line(d))

    def _list(self, o: dict[str, Any]) -> None:
        rows = [selectors.payment_dict(p) for p in selectors.payments_for(ACTOR).order_by("received_on", "pk")]
        self.report(o, {"payments": rows}, "\n".join(_line(d) for d in rows) or "no payments")

    def _suspense(self, o: dict[str, Any]) -> None:
        rows = [selectors.payment_dict(p) for p in selectors.suspense_for(ACTOR)]
        self.report(o, {"suspense": rows}, "\n".join(_line(d) for d in rows) or "the suspense queue is empty")

    def _assign(self, o: dict[str, Any]) -> None:
        p = services.assign_customer(ACTOR, o["payment"], o["customer"], o.get("invoice"))
        d = selectors.payment_dict(p)
        self.report(o, d, _line(d))

    def _apply_credit(self, o: dict[str, Any]) -> None:
        ids = [o["customer"]] if o.get("customer") else list(
            Customer.objects.filter(payments__isnull=False).distinct().values_list("pk", flat=True))  # fmt: skip
        made = [a for c in ids for a in services.apply_customer_credit(ACTOR, c)]
        rows = [{"payment_id": a.payment_id, "invoice_id": a.invoice_id, "amount": a.amount} for a in made]
        self.report(o, {"allocations": rows}, f"{len(rows)} allocations made")


def _line(d: dict[str, Any]) -> str:
    paid = ", ".join(f"{a['invoice']} {a['amount']}" for a in d["allocations"] if not a["reversed_at"])
    who = d["customer"] or "SUSPENSE"
    return (f"#{d['id']} {d['received_on']} {d['amount']} {d['currency']} {who}: {paid or 'unallocated'}"
            f"{'; credit ' + str(d['unallocated']) if d['unallocated'] and d['customer'] else ''}")  # fmt: skip
