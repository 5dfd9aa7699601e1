"""``cspdesk import FILE... [--json] [--replace] [--workers] [--show-rejects IMPORT_ID]``."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.core.output import ReportCommand
from cspdesk.partnercenter.recon import runs, selectors, services


class Command(ReportCommand):
    help = (
        "Import Partner Center new-commerce recon files (invoice reconciliation, daily rated usage; .csv, "
        ".csv.gz or .zip). With --json: one JSON object for one file, an array for several."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("files", nargs="*", type=Path, metavar="FILE")
        parser.add_argument("--replace", action="store_true", help="supersede an earlier file for the same invoice")
        parser.add_argument(
            "--organisation", type=int, help="organisation id, when no organisation has the file's PartnerId"
        )
        parser.add_argument(
            "--invoice-date", type=dt.date.fromisoformat, help="the Microsoft invoice date (YYYY-MM-DD)"
        )
        parser.add_argument("--show-rejects", type=int, metavar="IMPORT_ID", help="list the rejected rows of an import")
        parser.add_argument("--workers", action="store_true",
                            help="stage the file here, write each customer's charge lines on the background workers "
                                 "and wait for them")  # fmt: skip
        parser.add_argument("--timeout", type=float, default=3600, help="with --workers: give up after S seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cli:import")
        if options["show_rejects"] is not None:
            return self._rejects(actor, options)
        if not options["files"]:
            raise CommandError("name at least one FILE (or --show-rejects IMPORT_ID)")
        results: list[dict[str, Any]] = []
        texts: list[str] = []
        failed = False
        for path in options["files"]:
            print(f"importing {path} …", file=sys.stderr, flush=True)
            try:
                if options["workers"]:
                    result = runs.import_parallel(
                        actor, path, replace=options["replace"], organisation_id=options["organisation"],
                        invoice_date=options["invoice_date"], timeout=options["timeout"],
                    )  # fmt: skip
                else:
                    result = services.import_file(
                        actor, path, replace=options["replace"], organisation_id=options["organisation"],
                        invoice_date=options["invoice_date"],
                    )  # fmt: skip
            except TimeoutError as exc:
                raise CommandError(f"{exc}; the workers carry on, see `cspdesk import --json {path}` later") from exc
            except DomainError as exc:
                failed = True
                results.append({"file": str(path), "error": exc.as_dict()})
                texts.append(f"{path}: refused ({exc.code}): {exc.message}")
                continue
            results.append(result.as_dict())
            texts.append(result.text())
        document: Any = results[0] if len(results) == 1 else results
        self.report(options, document, "\n".join(texts))
        if failed:
            if options["json"]:
                sys.exit(1)
            raise CommandError("some files were refused (see above)")

    def _rejects(self, actor: Actor, options: dict[str, Any]) -> None:
        try:
            rows = list(selectors.rejects_for(actor, options["show_rejects"]))
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        data = [{"file": r.file_name, "line": r.line_number, "column": r.column, "reason": r.reason,
                 "message": r.message, "problems": r.problems, "raw": r.raw} for r in rows]  # fmt: skip
        text = "\n".join(f"{r.file_name}:{r.line_number}: {r.column or '-'}: {r.reason}: {r.message}" for r in rows)
        self.report(
            options,
            {"import_id": options["show_rejects"], "rejected": len(data), "rows": data},
            text or f"import {options['show_rejects']} has no rejected rows",
        )
