"""``cspdesk pc SUBCOMMAND``: Partner Center operations.

``cspdesk pc sync [--json] [--organisation ID]``;
``cspdesk pc export (--invoice ID | --unbilled current|last [--currency EUR]) --kind invoice|usage
[--attributes full|basic] [--import] [--organisation ID] [--json]``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.core.output import ReportCommand
from cspdesk.partnercenter import services, sync
from cspdesk.partnercenter.graph_export import ExportRequest


class Command(ReportCommand):
    help = (
        "Partner Center operations: 'sync' pulls customers and subscriptions into cspdesk; 'export' downloads "
        "reconciliation data through Microsoft Graph (and with --import imports it)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        sync_parser = subcommands.add_parser(
            "sync",
            help="pull customers and subscriptions of every organisation with a Partner Center tenant",
        )
        sync_parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        sync_parser.add_argument(
            "--organisation",
            type=int,
            default=None,
            metavar="ID",
            help="only this organisation (a direct-bill partner or indirect provider)",
        )

        export = subcommands.add_parser(
            "export",
            help="export billed or unbilled reconciliation data through Microsoft Graph to ./var, and import it",
        )
        which = export.add_mutually_exclusive_group(required=True)
        which.add_argument("--invoice", metavar="ID", help="a billed invoice, e.g. G016907411")
        which.add_argument("--unbilled", choices=["current", "last"], help="the unbilled billing period")
        export.add_argument("--currency", help="billing currency of an unbilled export (default: the organisation's)")
        export.add_argument(
            "--kind", choices=["invoice", "usage"], required=True, help="invoice reconciliation or daily rated usage"
        )
        export.add_argument("--attributes", choices=["full", "basic"], default="full", help="attribute set")
        export.add_argument("--import", dest="do_import", action="store_true", help="import the downloaded data")
        export.add_argument("--organisation", type=int, default=None, metavar="ID", help="the partner organisation")
        export.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "sync":
            self._sync(options)
        elif options["subcommand"] == "export":
            self._export(options)

    def _export(self, options: dict[str, Any]) -> None:
        actor = Actor.system("pc-export")
        try:
            currency = options["currency"]
            if options["unbilled"] and not currency:
                currency = services.export_organisation(options["organisation"]).billing_currency
            request = ExportRequest(
                kind=options["kind"],
                invoice_id=options["invoice"] or "",
                billing_period=options["unbilled"] or "",
                currency=(currency or "").upper() if options["unbilled"] else "",
                attribute_set=options["attributes"],
            )
            result = services.export_reconciliation(
                actor, request, organisation_id=options["organisation"], do_import=options["do_import"]
            )
        except DomainError as exc:
            if options["json"]:
                self.report(options, {"error": exc.as_dict()}, "")
            raise CommandError(f"{exc.code}: {exc}") from exc
        self.report(options, result.as_dict(), result.text())

    def _sync(self, options: dict[str, Any]) -> None:
        try:
            report = sync.sync(Actor.system("pc-sync"), organisation_id=options["organisation"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        data = report.as_dict()
        self.report(options, data, _text(data))
        if not report.ok:
            raise CommandError("Partner Center sync finished with errors (see above)")


def _text(data: dict[str, Any]) -> str:
    def counts(c: dict[str, int]) -> str:
        return f"{c['created']} created, {c['updated']} updated, {c['unchanged']} unchanged"

    lines = []
    for org in data["organisations"]:
        lines.append(f"{org['organisation']}:")
        lines.append(f"  customers:     {counts(org['customers'])}")
        lines.append(f"  subscriptions: {counts(org['subscriptions'])}")
        for u in org["unplaced"]:
            subs = f"{u['subscriptions']} subscription{'s' if u['subscriptions'] != 1 else ''}"
            lines.append(f"  unplaced: {u['name']} ({u['tenant_id']}), {subs}: {u['reason']}")
        for r in org["rejected"]:
            lines.append(f"  rejected: {r['tenant_id']}: {r['message']}")
        if org["error"]:
            lines.append(f"  FAILED: {org['error']['message']}")
    for s in data["skipped"]:
        lines.append(f"{s['organisation']}: skipped ({s['reason']})")
    if data["recon_linked"] is not None:
        lines.append(f"recon charge lines linked to customers: {data['recon_linked']}")
    t = data["totals"]
    lines.append(
        f"total: customers {counts(t['customers'])}; subscriptions {counts(t['subscriptions'])}; "
        f"{data['unplaced']} unplaced"
    )
    return "\n".join(lines)
