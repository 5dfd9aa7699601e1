"""``cspdesk restore FILE [--json] [--force]``: put a ``cspdesk backup`` archive back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.core.errors import DomainError
from cspdesk.core.output import ReportCommand
from cspdesk.ops import backup


class Command(ReportCommand):
    help = "Restore a backup archive: replaces the database and VAR_DIR's recon staging and files."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("file", help="the archive written by `cspdesk backup`")
        parser.add_argument("--force", action="store_true", help="replace a database that already holds data")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            manifest = backup.restore(Path(options["file"]), force=options["force"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        text = (
            f"restored {manifest['vendor']} database from {manifest['archive']} "
            f"(made {manifest['created_at']}) and {manifest['restored_files']} file(s)"
        )
        self.report(options, manifest, text)
