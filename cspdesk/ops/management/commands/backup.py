"""``cspdesk backup --out FILE [--json]``: the database and the files under VAR_DIR in one tar archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.core.errors import DomainError
from cspdesk.core.output import ReportCommand
from cspdesk.ops import backup


class Command(ReportCommand):
    help = "Back up the database (SQLite online backup or pg_dump) and VAR_DIR's recon staging and files."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--out", required=True, help="the archive to write (.tar.gz)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            manifest = backup.create(Path(options["out"]))
        except DomainError as exc:
            raise CommandError(exc.message) from None
        size = sum(p["size"] for p in manifest["parts"])
        text = (
            f"backup written to {manifest['archive']}: {manifest['vendor']} database and "
            f"{len(manifest['parts']) - 1} file(s), {size} bytes before compression"
        )
        self.report(options, manifest, text)
