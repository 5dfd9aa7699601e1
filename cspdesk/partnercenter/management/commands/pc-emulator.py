"""``cspdesk pc-emulator --port 8765 [--faults SPEC]``: serve the local Partner Center in the foreground."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cspdesk.partnercenter.emulator import EmulatorConfig, EmulatorServer, FaultSpecError, parse_spec, serve


class Command(BaseCommand):
    help = (
        "Serve a local Partner Center (REST subset + token endpoint) seeded from the demo world. Point cspdesk "
        "at it with PARTNER_CENTER_BASE_URL and PARTNER_CENTER_AUTHORITY set to its URL. Faults: "
        "ENDPOINT:KIND[:count=N|p=P,retry_after=S,delay=S,method=M][;...], KIND one of 429, 500, 503, slow, "
        "drop, drop_after, cut; change them at run time with POST/DELETE /_emulator/faults. It also serves "
        "Microsoft Graph's billing export under /v1.0 (PARTNER_CENTER_GRAPH_BASE_URL={url}/v1.0)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
        parser.add_argument("--faults", default="", help="faults to start with, e.g. 'customers:429:count=2'")
        parser.add_argument("--client-id", default="", help="accept only this client id (default: any)")
        parser.add_argument("--client-secret", default="", help="accept only this client secret (default: any)")
        parser.add_argument("--refresh-token", default="", help="accept only this refresh token (default: any)")
        parser.add_argument("--log-requests", action="store_true", help="log every request on stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            faults = parse_spec(options["faults"])
        except FaultSpecError as exc:
            raise CommandError(f"--faults: {exc}") from exc
        config = EmulatorConfig(options["client_id"], options["client_secret"], options["refresh_token"])

        def ready(server: EmulatorServer) -> None:
            self.stdout.write(f"Partner Center emulator listening on {server.url}")
            self.stdout.flush()

        serve(
            options["host"],
            options["port"],
            faults=faults,
            config=config,
            quiet=not options["log_requests"],
            ready=ready,
        )
        self.stderr.write("stopped")
