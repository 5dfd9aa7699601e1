"""``cspdesk scheduler [--once] [--interval S] [--job NAME]``: enqueue the periodic jobs when they are due.

Daily: the collections run (CSPDESK_COLLECTIONS_AT, default 06:00 UTC), the Microsoft payables reminders
(CSPDESK_PAYABLES_REMIND_AT, 07:00); every CSPDESK_SUPPORT_EVERY_MINUTES (5): support upkeep. Each tick also
re-enqueues split-run parts whose worker died. Idempotent per slot, so two schedulers (or a cron line with
``--once``) never run a day's job twice.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from django.core.management.base import CommandError, CommandParser

from cspdesk.core.output import ReportCommand
from cspdesk.ops import schedule


class Command(ReportCommand):
    help = "Enqueue the daily and periodic jobs when due (one slot each, however many schedulers run)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--once", action="store_true", help="one tick, then exit (for cron)")
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between ticks (default 30)")
        parser.add_argument("--job", action="append", help="only this job (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        names = {j.name for j in schedule.jobs()}
        only = set(options["job"]) if options["job"] else None
        if only and only - names:
            raise CommandError(f"unknown job(s) {', '.join(sorted(only - names))}; jobs: {', '.join(sorted(names))}")
        if options["once"]:
            result = schedule.tick(only=only)
            self.report(options, result, _text(result))
            return
        stop = False

        def _stop(*_a: Any) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop:
            result = schedule.tick(only=only)
            if result["enqueued"] or result["swept"]["requeued"] or result["swept"]["finished"]:
                self.report(options, result, _text(result))
                self.stdout.flush()
            deadline = time.monotonic() + options["interval"]
            while not stop and time.monotonic() < deadline:
                time.sleep(0.2)


def _text(result: dict[str, Any]) -> str:
    lines = [f"{result['at']}: " + (", ".join(f"{e['job']} {e['slot']}" for e in result["enqueued"]) or "nothing due")]
    swept = result["swept"]
    if swept["requeued"] or swept["finished"] or swept["stuck"]:
        lines.append(f"  split runs: {len(swept['requeued'])} parts re-enqueued, {len(swept['finished'])} runs "
                     f"finished, {len(swept['stuck'])} parts out of attempts")  # fmt: skip
    return "\n".join(lines)
