"""``cspdesk bill --period YYYY-MM [--finalize] [--json]``: rate a period into draft invoices, or finalize them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.billing import runs, services
from cspdesk.billing.models import Invoice
from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.core.money import quantize
from cspdesk.core.output import ReportCommand


def run_report(run_id: int) -> dict[str, Any]:
    from cspdesk.billing.models import BillingRun

    run = BillingRun.objects.get(pk=run_id)
    invoices = Invoice.objects.filter(run=run).select_related("customer", "buyer_organisation").order_by("pk")
    return {
        "run_id": run.pk,
        "status": run.status,
        **run.review,
        "invoice_list": [
            {"id": i.pk, "number": i.number or None, "buyer": i.buyer_name, "currency": i.currency,
             "net": quantize(i.net, i.currency), "tax": quantize(i.tax, i.currency),
             "total": quantize(i.total, i.currency), "status": i.status}
            for i in invoices
        ],
    }  # fmt: skip


def text_of(report: dict[str, Any]) -> str:
    lines = [f"billing run {report['run_id']} for {report['period']}: {report['status']}, "
             f"{report['invoices']} invoices from {report['charge_lines']} charge lines"]  # fmt: skip
    for cur, t in report["totals"].items():
        lines.append(f"  {cur}: cost {t['cost']}, net {t['net']}, tax {t['tax']}, total {t['total']}, "
                     f"margin {t['margin']}")  # fmt: skip
    for c in report["customers"]:
        flags = ", ".join(a["code"] for a in c["anomalies"])
        lines.append(f"  {c['buyer_name']} ({c['currency']}): cost {c['cost']} price {c['price']} margin "
                     f"{c['margin']} change {c.get('change_percent')}%{'  ⚠ ' + flags if flags else ''}")  # fmt: skip
    for a in report["anomalies"]:
        lines.append(f"  ⚠ {a['code']}: {a['message']}")
    for i in report["invoice_list"]:
        if i["number"]:
            lines.append(f"  {i['number']}  {i['buyer']}  {i['total']} {i['currency']}")
    return "\n".join(lines)


class Command(ReportCommand):
    help = (
        "Rate every charge line of a period into draft invoices (re-running replaces drafts); --finalize numbers them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--period", required=True, help="the month, YYYY-MM")
        parser.add_argument("--finalize", action="store_true", help="finalize the period's draft run")
        parser.add_argument("--move-threshold", type=Decimal, default=None, metavar="PERCENT",
                            help="flag customers whose bill moved more than this (default 25)")  # fmt: skip
        parser.add_argument("--workers", action="store_true",
                            help="split the run per buyer over the background workers and wait for them")  # fmt: skip
        parser.add_argument("--timeout", type=float, default=3600, help="with --workers: give up after S seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cspdesk-bill")

        def bill(period: Any) -> Any:
            if options["workers"]:
                return runs.run_parallel(actor, period, threshold=options["move_threshold"], timeout=options["timeout"])
            return services.bill(actor, period, threshold=options["move_threshold"])

        try:
            period = services.parse_period(options["period"])
            if options["finalize"]:
                run = services.latest_draft_run(period) or bill(period)
                run = services.finalize_run(actor, run.pk)
            else:
                run = bill(period)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        except TimeoutError as exc:
            raise CommandError(f"{exc}; the workers carry on, see `cspdesk bill --period` later") from exc
        report = run_report(run.pk)
        self.report(options, report, text_of(report))
