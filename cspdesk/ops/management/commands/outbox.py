"""``cspdesk outbox``: the e-mails waiting to go out or given up on; ``--send`` sends the waiting ones now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from cspdesk.core import outbox
from cspdesk.core.models import MailStatus, OutboundMail
from cspdesk.core.output import ReportCommand


class Command(ReportCommand):
    help = "List queued and failed e-mails; --send sends what is due, --retry-failed queues failed ones again."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--send", action="store_true", help="send every due e-mail now, from this process")
        parser.add_argument("--retry-failed", action="store_true", help="give failed e-mails a fresh set of attempts")

    def handle(self, *args: Any, **options: Any) -> None:
        data: dict[str, Any] = {}
        if options["retry_failed"]:
            data["requeued"] = outbox.retry_failed()
        if options["send"]:
            data["sent"] = outbox.flush()
        waiting = OutboundMail.objects.exclude(status=MailStatus.SENT).order_by("pk")
        data["mails"] = [
            {"id": m.pk, "key": m.key, "status": m.status, "to": m.to, "subject": m.subject, "attempts": m.attempts,
             "last_error": m.last_error, "created_at": m.created_at}
            for m in waiting
        ]  # fmt: skip
        lines = [f"{m['id']} {m['status']:<7} {m['attempts']}× {', '.join(m['to'])}: {m['subject']}"
                 + (f" ({m['last_error']})" if m["last_error"] else "") for m in data["mails"]]  # fmt: skip
        if "sent" in data:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(data["sent"].items()))
            lines.insert(0, f"sent: {outcomes or 'nothing due'}")
        self.report(options, data, "\n".join(lines) or "no e-mail waiting")
