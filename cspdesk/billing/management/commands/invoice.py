"""``cspdesk invoice list|export|send|credit``: finalized documents from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.billing import archive, delivery, selectors, services
from cspdesk.billing.models import Invoice
from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.core.money import quantize
from cspdesk.core.output import ReportCommand, dumps
from cspdesk.tenancy import selectors as tenancy_selectors


def invoice_dict(i: Invoice) -> dict[str, Any]:
    q = i.currency
    return {
        "id": i.pk, "number": i.number or None, "kind": i.kind, "organisation_id": i.organisation_id,
        "organisation": i.organisation.legal_name, "customer_id": i.customer_id,
        "buyer_organisation_id": i.buyer_organisation_id, "buyer": i.buyer_name, "period": f"{i.period:%Y-%m}",
        "currency": i.currency, "net": quantize(i.net, q), "tax": quantize(i.tax, q), "total": quantize(i.total, q),
        "balance": quantize(services.balance(i), q), "status": i.status, "issue_date": i.issue_date,
        "due_date": i.due_date, "credits_invoice": i.credited_invoice.number if i.credited_invoice else None,
        "exchange_rate": i.exchange_rate, "exchange_rate_date": i.exchange_rate_date, "sent_at": i.sent_at,
    }  # fmt: skip


class Command(ReportCommand):
    help = "Invoices and credit notes: list, export as PDF or UBL, send by e-mail, credit."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        ls = sub.add_parser("list", help="list invoices and credit notes")
        ls.add_argument("--status", choices=["draft", "finalized"])
        ls.add_argument("--period", help="YYYY-MM")
        ls.add_argument("--json", action="store_true")
        ex = sub.add_parser("export", help="write the PDF or UBL XML of a document")
        ex.add_argument("invoice", help="id or number")
        ex.add_argument("--format", choices=["pdf", "ubl"], required=True)
        ex.add_argument("--out", required=True, type=Path)
        se = sub.add_parser("send", help="e-mail a finalized document with its PDF and XML")
        se.add_argument("invoice", help="id or number")
        se.add_argument("--force", action="store_true", help="send again although already sent")
        cr = sub.add_parser("credit", help="issue a credit note for a finalized invoice")
        cr.add_argument("invoice", help="id or number")
        cr.add_argument("--reason", required=True)
        cr.add_argument("--line", type=int, action="append", dest="lines", help="credit only this line (repeat)")
        cr.add_argument("--json", action="store_true")

    def _find(self, actor: Actor, ref: str) -> Invoice:
        qs = selectors.invoices_for(actor)
        if not ref.isdigit():
            found = qs.filter(number=ref).first()
            if found is None:
                raise CommandError(f"no invoice numbered {ref}")
            return found
        return tenancy_selectors.get_or_404(qs, int(ref), "invoice")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cspdesk-invoice")
        try:
            getattr(self, "_" + options["subcommand"])(actor, options)
        except DomainError as exc:
            raise CommandError(exc.message) from exc

    def _list(self, actor: Actor, options: dict[str, Any]) -> None:
        qs = selectors.invoices_for(actor).order_by("period", "organisation_id", "number", "pk")
        if options["status"]:
            qs = qs.filter(status=options["status"])
        if options["period"]:
            qs = qs.filter(period=services.parse_period(options["period"]))
        rows = [invoice_dict(i) for i in qs]
        text = "\n".join(
            f"{r['id']:>5} {r['number'] or '(draft)':<18} {r['kind']:<11} {r['period']} {r['buyer']:<32} "
            f"{r['total']:>14} {r['currency']} {r['status']} due {r['due_date']}"
            for r in rows
        )
        self.report(options, rows, text or "no invoices")

    def _export(self, actor: Actor, options: dict[str, Any]) -> None:
        invoice = self._find(actor, options["invoice"])
        data = archive.document(invoice, options["format"])
        options["out"].write_bytes(data)
        self.stdout.write(f"{invoice.number or invoice.pk}: {len(data)} bytes written to {options['out']}")

    def _send(self, actor: Actor, options: dict[str, Any]) -> None:
        invoice = delivery.send_invoice(actor, self._find(actor, options["invoice"]).pk, force=options["force"])
        self.stdout.write(f"{invoice.number} sent to {', '.join(invoice.sent_to)}")

    def _credit(self, actor: Actor, options: dict[str, Any]) -> None:
        original = self._find(actor, options["invoice"])
        note = services.issue_credit_note(actor, original.pk, reason=options["reason"], positions=options["lines"])
        d = invoice_dict(note)
        if options.get("json"):
            self.stdout.write(dumps(d))
        else:
            self.stdout.write(f"{note.number} credits {original.number}: {d['total']} {note.currency}")
