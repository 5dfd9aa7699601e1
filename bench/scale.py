"""Billing a generated month on 1 and on 2 workers (RQ on Redis, PostgreSQL): invoices/s and peak RSS per worker.

The month is ``cspdesk generate-recon``'s generator for the demo world's partners, with
``CSPDESK_BENCH_SCALE_CUSTOMERS`` generated customers (default 50,000) and ``CSPDESK_BENCH_SCALE_ROWS`` daily-usage
rows (default 10,000,000): a partner of tens of thousands of customers. At that size the files take 9.7 GB under
var/bench/ and the bench about 30 minutes on a 2-core machine (docs/deploy.md has the figures); for a quick look::

    CSPDESK_BENCH_SCALE_CUSTOMERS=1000 CSPDESK_BENCH_SCALE_ROWS=100000 make bench  # a few minutes

The customers are registered, the files imported with ``cspdesk import --workers`` (2 workers, measured too),
then the period is billed three times, each run replacing the previous drafts: in one process
(``cspdesk bill``), and split per buyer with ``cspdesk bill --workers`` on 1 and on 2 ``cspdesk worker``
processes started beforehand. Every run must give the same totals. Wall time is the command's, Django start-up
included; "parts" is the batch's own time (first part enqueued → last part done). A worker's peak RSS is sampled
every 0.2 s as the worker's RSS plus the unique memory (USS) of the work horse RQ forks per task.

Needs ``BENCH_DATABASE_URL`` (a PostgreSQL database the bench wipes, its ``public`` schema dropped; created when
the server has none of that name) and ``BENCH_REDIS_URL`` (a Redis database it flushes); without them it is
skipped with a note. The generated files are kept under var/bench/ and reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = int(os.environ.get("CSPDESK_BENCH_SCALE_CUSTOMERS", "50000"))
ROWS = int(os.environ.get("CSPDESK_BENCH_SCALE_ROWS", "10000000"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
PERIOD = "2026-10"


class Sampler:
    """Peak memory of processes, sampled in a thread: a worker's RSS plus its forked work horses' USS."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self.watched: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, name: str, pid: int) -> None:
        self.watched[name] = pid
        self.peaks.setdefault(name, 0.0)

    def _sample(self, pid: int) -> float:
        import psutil

        try:
            proc = psutil.Process(pid)
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += child.memory_full_info().uss
        except psutil.NoSuchProcess:
            return 0.0
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in list(self.watched.items()):
                self.peaks[name] = max(self.peaks[name], self._sample(pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _cspdesk(*args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cspdesk", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=log.open("ab"))  # fmt: skip


def _timed(sampler: Sampler, name: str, *args: str, log: Path) -> tuple[float, Any]:
    began = time.perf_counter()
    proc = _cspdesk(*args, log=log)
    sampler.watch(name, proc.pid)
    out, _ = proc.communicate()
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"cspdesk {' '.join(args)} failed ({proc.returncode}); see {log}")
    return seconds, json.loads(out)


def _start_workers(n: int, sampler: Sampler, log: Path, tag: str) -> list[subprocess.Popen[bytes]]:
    import redis
    from rq import Worker

    procs = []
    for i in range(n):
        proc = subprocess.Popen([sys.executable, "-m", "cspdesk", "worker", "--name", f"bench-{tag}-{i + 1}"],
                                cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip
        sampler.watch(f"{tag} worker {i + 1}", proc.pid)
        procs.append(proc)
    client = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + 120
    while len(Worker.all(connection=client)) < n:  # listening: start-up is not part of the measurement
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} workers did not start; see {log}")
        time.sleep(0.2)
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _batch_seconds(kind: str) -> float:
    from cspdesk.core.models import WorkBatch

    batch = WorkBatch.objects.filter(kind=kind).order_by("-pk").first()
    assert batch is not None and batch.finished_at is not None
    return (batch.finished_at - batch.created_at).total_seconds()


def _ensure_database(url: str) -> None:
    """Create the bench's PostgreSQL database when the server does not have it yet (a fresh machine)."""
    from urllib.parse import urlsplit

    import psycopg
    from psycopg import sql

    try:
        psycopg.connect(url).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    parts = urlsplit(url)
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(parts.path.lstrip("/"))))


def measure() -> dict[str, Any]:
    _ensure_database(DATABASE_URL)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    log = workdir / "processes.log"
    os.environ.update({
        "CSPDESK_VAR_DIR": str(workdir / "var"), "DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL,
        "CSPDESK_TASKS_BACKEND": "rq", "DJANGO_SETTINGS_MODULE": "cspdesk.settings",
        "CSPDESK_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    })  # fmt: skip
    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from django.db import connection

    from bench import month
    from cspdesk.demo import month as demo_month
    from cspdesk.demo import world

    with connection.cursor() as cur:  # the bench's own database, from scratch
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    redis.Redis.from_url(REDIS_URL).flushdb()
    call_command("migrate", verbosity=0)
    world.load()
    registered = month._register_customers(CUSTOMERS)
    demo_month.load_price_rules()
    paths = month._files(CUSTOMERS, ROWS)
    connection.close()
    sampler = Sampler()
    result: dict[str, Any] = {"customers": registered, "log": str(log), "runs": {}}
    try:
        workers = _start_workers(2, sampler, log, "import")
        seconds, imported = _timed(sampler, "import command", "import", "--workers", "--json", *map(str, paths),
                                   log=log)  # fmt: skip
        _stop_workers(workers)
        rows = sum(r["rows"] for r in imported)
        lines = sum(r["charge_lines"] for r in imported)
        peaks = {k.removeprefix("import "): v for k, v in sampler.peaks.items() if k.startswith("import")}
        result["import"] = {"seconds": seconds, "rows": rows, "charge_lines": lines, "files": len(paths),
                            "parts": _batch_seconds("recon.import"), "peak_rss_mb": peaks}  # fmt: skip
        print(f"  import   2 workers: {rows:,} rows → {lines:,} charge lines in {seconds:.1f} s "
              f"({rows / seconds:,.0f} rows/s)", flush=True)  # fmt: skip
        for n in (0, 1, 2):
            tag = f"{n}w"
            workers = _start_workers(n, sampler, log, tag) if n else []
            args = ["bill", "--period", PERIOD, "--json", *(["--workers"] if n else [])]
            seconds, report = _timed(sampler, f"{tag} command", *args, log=log)
            _stop_workers(workers)
            run = {"seconds": seconds, "invoices": report["invoices"], "totals": report["totals"],
                   "parts": _batch_seconds("billing.draft") if n else None,
                   "peak_rss_mb": {k.removeprefix(f"{tag} "): v for k, v in sampler.peaks.items()
                                   if k.startswith(tag)}}  # fmt: skip
            result["runs"][str(n)] = run
            print(f"  billing  {n} worker(s): {run['invoices']:,} invoices in {seconds:.1f} s "
                  f"({run['invoices'] / seconds:,.1f} invoices/s)", flush=True)  # fmt: skip
    finally:
        sampler.stop()
    return result


def _table(result: dict[str, Any]) -> str:
    runs = result["runs"]
    head = ["", "in one process", "1 worker", "2 workers"]
    cols = [runs[k] for k in ("0", "1", "2")]

    def rss(run: dict[str, Any], who: str) -> str:
        found = [f"{v:,.0f}" for k, v in sorted(run["peak_rss_mb"].items()) if k.startswith(who)]
        return " / ".join(found) or "-"

    rows = [
        ["invoices", *(f"{c['invoices']:,}" for c in cols)],
        ["wall time, s", *(f"{c['seconds']:.1f}" for c in cols)],
        ["parts (batch), s", *("-" if c["parts"] is None else f"{c['parts']:.1f}" for c in cols)],
        ["invoices/s", *(f"{c['invoices'] / c['seconds']:,.1f}" for c in cols)],
        ["peak RSS per worker, MB", *(rss(c, "worker") for c in cols)],
        ["peak RSS of the command, MB", *(rss(c, "command") for c in cols)],
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    return "\n".join("  " + "  ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i])
                                       for i, v in enumerate(r)) for r in [head, *rows])  # fmt: skip


def run() -> bool:
    if not DATABASE_URL.startswith("postgres") or not REDIS_URL:
        print("skipped: set BENCH_DATABASE_URL=postgres://… (a database the bench wipes) and "
              "BENCH_REDIS_URL=redis://…/N (a Redis database it flushes)")  # fmt: skip
        return True
    print(f"billing a month of {CUSTOMERS:,} generated customers and {ROWS:,} usage rows ({PERIOD}) on 1 and 2 "
          "workers", flush=True)  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "bench.scale", "--measure"], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    lines = out.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    result = json.loads(lines[-1])
    print(_table(result))
    imp = result["import"]
    workers = " / ".join(f"{v:,.0f}" for k, v in sorted(imp["peak_rss_mb"].items()) if k.startswith("worker"))
    print(f"  import on 2 workers: parts {imp['parts']:.1f} s, peak RSS per worker {workers} MB, "
          f"command {imp['peak_rss_mb'].get('command', 0):,.0f} MB")  # fmt: skip
    totals = {json.dumps(r["totals"], sort_keys=True) for r in result["runs"].values()}
    same = len(totals) == 1
    print(f"  the three runs' totals are {'the same' if same else 'DIFFERENT'}; logs: {result['log']}")
    return same


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:] == ["--measure"]:
        print(json.dumps(measure()))
