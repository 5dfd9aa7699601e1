"""``cspdesk generate-recon --period 2026-10 --customers N --usage-rows M --out DIR --seed S``."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.core.output import ReportCommand
from cspdesk.partnercenter.recon import generator


class Command(ReportCommand):
    help = "Write realistic new-commerce recon files (invoice, billed and unbilled daily usage), deterministic by seed."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--period", required=True, help="billing month, YYYY-MM")
        parser.add_argument("--customers", type=int, default=20, help="generated customers besides the demo world's")
        parser.add_argument("--usage-rows", type=int, default=10_000, help="billed daily usage rows over all files")
        parser.add_argument("--out", type=Path, required=True, help="directory to write to")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", options["period"]):
            raise CommandError("--period must be YYYY-MM")
        if options["customers"] < 0 or options["usage_rows"] < 0:
            raise CommandError("--customers and --usage-rows must not be negative")
        began = time.monotonic()
        print(f"writing recon files for {options['period']} to {options['out']} …", file=sys.stderr, flush=True)
        paths = generator.generate(
            options["out"], options["period"], options["customers"], options["usage_rows"], options["seed"]
        )
        files = [{"path": str(p), "bytes": p.stat().st_size} for p in paths]
        text = "\n".join(f"{f['path']}  ({f['bytes']:,} bytes)" for f in files)
        self.report(options, {"files": files, "seconds": round(time.monotonic() - began, 2)}, text)
