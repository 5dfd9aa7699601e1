"""The customer portal under load: ``wrk`` against the invoice list and the ticket list, alone and in a mix.

A child process loads the demo world (``cspdesk demo --no-serve``) into its own database (SQLite under
var/bench/load, or ``BENCH_DATABASE_URL``), scales it up — every invoice and ticket copied
``CSPDESK_BENCH_LOAD_SCALE`` times (default 10) into earlier years, so a customer's lists hold years of history —
and logs in a customer's administrator (Bellavista), whose session cookie a wrk Lua script sends. The server runs
as ``cspdesk runserver --noreload`` (threaded) with DEBUG off: gunicorn is not one of cspdesk's dependencies, so
the figures are a floor for a production WSGI server. Each scenario runs ``CSPDESK_BENCH_LOAD_SECONDS`` (default
15) with ``CSPDESK_BENCH_LOAD_CONNECTIONS`` (default 8) connections on 2 threads; requests/s and the p50/p99
latency are printed. The mix is what a customer's users do: mostly the invoice list and the open tickets, some
the portal's home, all tickets and credit notes.

Needs ``wrk`` on the PATH (Debian: ``apt-get install wrk``); without it the bench is skipped with a note.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCALE = int(os.environ.get("CSPDESK_BENCH_LOAD_SCALE", "10"))
SECONDS = int(os.environ.get("CSPDESK_BENCH_LOAD_SECONDS", "15"))
CONNECTIONS = int(os.environ.get("CSPDESK_BENCH_LOAD_CONNECTIONS", "8"))
LOGIN = "bellavista.admin"
MIX = [  # (path, weight)
    ("/portal/invoices/", 40),
    ("/portal/tickets/", 25),
    ("/portal/", 15),
    ("/portal/tickets/?state=all", 10),
    ("/portal/invoices/?kind=credit_note", 10),
]
SCENARIOS = {
    "invoice list": [("/portal/invoices/", 1)],
    "ticket list": [("/portal/tickets/?state=all", 1)],
    "mix": MIX,
}

LUA = """
local paths = {%(paths)s}
local cookie = "sessionid=%(session)s"
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {["Cookie"] = cookie, ["Accept-Language"] = "it"})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT {\\"requests\\": %%d, \\"seconds\\": %%f, \\"p50_ms\\": %%f, \\"p99_ms\\": %%f, "
    .. "\\"errors\\": %%d, \\"non_2xx\\": %%d}\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def _env(workdir: Path) -> dict[str, str]:
    return {**os.environ, "CSPDESK_VAR_DIR": str(workdir), "DJANGO_SETTINGS_MODULE": "cspdesk.settings",
            "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{workdir / 'load.sqlite3'}"),
            "CSPDESK_DEBUG": "0", "CSPDESK_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}  # fmt: skip


def _years_back(day: dt.date | None, years: int) -> dt.date | None:
    if day is None:
        return None
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _scale_up(factor: int) -> dict[str, int]:
    """Copy every finalized invoice and every ticket ``factor`` times into earlier years."""
    from cspdesk.billing.models import Invoice
    from cspdesk.support.models import Ticket

    invoices = list(Invoice.objects.exclude(number=""))
    tickets = list(Ticket.objects.all())
    copies: list[Invoice] = []
    for years in range(1, factor + 1):
        for inv in invoices:
            values = {f.attname: getattr(inv, f.attname) for f in Invoice._meta.concrete_fields if f.attname != "id"}
            values.update(
                number=f"{inv.number}~{years}",
                sequence=None,
                period=_years_back(inv.period, years),
                issue_date=_years_back(inv.issue_date, years),
                due_date=_years_back(inv.due_date, years),
            )
            copies.append(Invoice(**values))
    Invoice.objects.bulk_create(copies, batch_size=1000)
    ticket_copies = []
    for years in range(1, factor + 1):
        for t in tickets:
            values = {f.attname: getattr(t, f.attname) for f in Ticket._meta.concrete_fields if f.attname != "id"}
            values["reference"] = f"{t.reference}~{years}"
            values["created_at"] = t.created_at - dt.timedelta(days=365 * years)
            ticket_copies.append(Ticket(**values))
    Ticket.objects.bulk_create(ticket_copies, batch_size=1000)
    return {"invoices": Invoice.objects.count(), "tickets": Ticket.objects.count()}


def _child(workdir: Path) -> dict[str, Any]:
    os.environ.update(_env(workdir))
    sys.path.insert(0, str(ROOT))
    import io

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from cspdesk.billing.models import Invoice
    from cspdesk.demo import world
    from cspdesk.support.models import Ticket
    from cspdesk.tenancy.models import Customer

    call_command("demo", "--no-serve", "--json", stdout=io.StringIO(), stderr=io.StringIO())
    counts = _scale_up(SCALE) if not Invoice.objects.filter(number__contains="~").exists() else {}
    user = get_user_model().objects.get(username=LOGIN)
    client = Client()
    client.force_login(user)  # a real session row, as a login through the form leaves
    customer = Customer.objects.get(tenant_id=world.customer_tenant_id(LOGIN.split(".")[0]))
    mine = {
        "invoices": Invoice.objects.filter(customer=customer).count(),
        "tickets": Ticket.objects.filter(customer=customer).count(),
    }
    return {"session": client.cookies["sessionid"].value, "counts": counts, "customer": mine}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wrk(url: str, paths: list[tuple[str, int]], session: str, script: Path) -> dict[str, Any]:
    weighted = [p for p, w in paths for _ in range(w)]
    spread = [weighted[(i * 7) % len(weighted)] for i in range(len(weighted))]  # interleave, keep the weights
    script.write_text(LUA % {"paths": ", ".join(json.dumps(p) for p in spread), "session": session})
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout", "10s", "-s", str(script),
                          url], check=True, capture_output=True, text=True)  # fmt: skip
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / result["seconds"]
    return result


def run() -> bool:
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (Debian: apt-get install wrk)")
        return True
    workdir = ROOT / "var" / "bench" / "load"
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bench.load", "--child", str(workdir)], cwd=ROOT, check=True,
                         capture_output=True, text=True)  # fmt: skip
    setup = json.loads(out.stdout.strip().splitlines()[-1])
    mine = setup["customer"]
    print(f"demo loaded and scaled ×{SCALE} in {time.perf_counter() - began:.1f} s: {setup['counts'] or 'kept'}; "
          f"{LOGIN} sees {mine['invoices']} invoices and {mine['tickets']} tickets")  # fmt: skip
    port = _free_port()
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "cspdesk", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=ROOT, env=_env(workdir), stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    ok = True
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the server did not start; see {workdir / 'server.log'}") from None
                time.sleep(0.3)
        for path, _ in MIX:  # the session is a customer's: every page answers 200, not a redirect to the login
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", path, headers={"Cookie": f"sessionid={setup['session']}"})
            status = conn.getresponse().status
            conn.close()
            if status != 200:
                raise RuntimeError(f"{path} answered {status} to {LOGIN}'s session")
        _wrk(url, MIX, setup["session"], workdir / "warmup.lua")  # templates compiled, caches warm
        print(f"runserver (threaded, DEBUG off), wrk -t2 -c{CONNECTIONS} -d{SECONDS}s, as {LOGIN}")
        print(f"  {'scenario':<14} {'requests/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'non-2xx':>8}")
        for name, paths in SCENARIOS.items():
            r = _wrk(url, paths, setup["session"], workdir / f"{name.replace(' ', '-')}.lua")
            print(f"  {name:<14} {r['rps']:>10.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>7} "
                  f"{r['non_2xx']:>8}")  # fmt: skip
            ok = ok and r["non_2xx"] == 0 and r["errors"] == 0 and r["requests"] > 0
        print("  mix: " + ", ".join(f"{p} {w}%" for p, w in MIX))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return ok


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(Path(sys.argv[2]))))
    else:
        sys.exit(0 if run() else 1)
