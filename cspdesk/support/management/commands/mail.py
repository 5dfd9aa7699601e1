from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.core.actor import Actor
from cspdesk.core.output import ReportCommand
from cspdesk.support import imap, services


class Command(ReportCommand):
    help = (
        "Take in e-mail: `cspdesk mail ingest FILE...` files raw RFC 822 messages (or '-' for stdin); "
        "`cspdesk mail fetch` files the unseen messages of the IMAP mailbox (CSPDESK_IMAP_* settings)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("action", choices=["ingest", "fetch"])
        parser.add_argument("files", nargs="*", metavar="FILE")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("cli:mail")
        if options["action"] == "fetch":
            fetched = imap.fetch(actor, imap.ImapSettings.from_environment())
            lines = [f"uid {r['uid']}: {r['action']} {r['reference'] or r['reason']}" for r in fetched]
            self.report(options, fetched, "\n".join(lines) or "no new messages")
            return
        if not options["files"]:
            raise CommandError("name at least one FILE (or '-')")
        results = []
        for name in options["files"]:
            if name == "-":
                raw = sys.stdin.buffer.read()
            else:
                path = Path(name)
                if not path.is_file():
                    raise CommandError(f"{name}: no such file")
                raw = path.read_bytes()
            results.append({"file": name, **services.take_in_email(actor, raw).as_dict()})
        text = "\n".join(
            f"{r['file']}: {r['action']}" + (f" {r['reference']}" if r["reference"] else f" ({r['reason']})")
            for r in results
        )
        self.report(options, results, text)
