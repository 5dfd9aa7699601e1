"""A whole month end to end: import, rate, finalize and render (PDF + UBL) for many customers.

The generated month (``cspdesk generate-recon``'s generator) has ``CSPDESK_BENCH_CUSTOMERS`` customers
(default 10,000) and ``CSPDESK_BENCH_MONTH_ROWS`` daily-usage rows (default 1,000,000), for the demo world's
partners; the customers are registered first, as a partner's would be. Each stage's wall time, CPU seconds and
throughput are printed; the target is the whole month (import + rate + finalize + render) in under 2 minutes.

"render" is what finalizing queues: storing every invoice's PDF and UBL as issued (``billing.archive``), done by
``CSPDESK_BENCH_RENDER_WORKERS`` ``cspdesk worker`` processes (default: one per core); its CPU seconds are theirs.

Runs on SQLite under a temporary directory unless ``BENCH_DATABASE_URL`` names another database. The files are
generated once under var/bench/ and reused.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = int(os.environ.get("CSPDESK_BENCH_CUSTOMERS", "10000"))
ROWS = int(os.environ.get("CSPDESK_BENCH_MONTH_ROWS", "1000000"))
PERIOD = "2026-10"
SEED = 11
TARGET_SECONDS = 120.0
RENDER_WORKERS = int(os.environ.get("CSPDESK_BENCH_RENDER_WORKERS", str(os.cpu_count() or 2)))


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    u = resource.getrusage(who)
    return u.ru_utime + u.ru_stime


def _files(customers: int = CUSTOMERS, rows: int = ROWS) -> list[Path]:
    out = ROOT / "var" / "bench" / f"month-{PERIOD}-{customers}c-{rows}r-seed{SEED}"
    done = out / "done.json"
    if done.exists():
        return [out / name for name in json.loads(done.read_text())]
    from cspdesk.partnercenter.recon import generator

    began = time.perf_counter()
    paths = generator.generate(out, PERIOD, n_customers=customers, usage_rows=rows, seed=SEED)
    done.write_text(json.dumps([p.name for p in paths]))
    size = sum(p.stat().st_size for p in paths) / 1e6
    print(f"generated {len(paths)} files ({size:.0f} MB) in {time.perf_counter() - began:.1f} s", flush=True)
    return paths


def _register_customers(customers: int = CUSTOMERS) -> int:
    """The generated customers as the partner's own records (bulk: this is set-up, not a measured stage)."""
    from cspdesk.demo import world
    from cspdesk.partnercenter.recon import generator
    from cspdesk.tenancy.models import Customer, Organisation

    orgs = {o.invoice_series: o for o in Organisation.objects.all()}
    by_key = {spec.key: orgs[spec.invoice_series] for spec in world.ORGANISATIONS}
    by_mpn = {spec.mpn_id: orgs[spec.invoice_series] for spec in world.ORGANISATIONS}
    locale = {"IT": "it", "SE": "sv", "PT": "pt-pt", "HU": "hu"}
    made = []
    for c in generator.customers(customers, SEED):
        if c.known or not c.key.startswith("gen"):
            continue
        made.append(Customer(
            organisation=by_mpn[c.reseller_mpn] if c.reseller_mpn else by_key[c.partner], tenant_id=c.tenant_id,
            default_domain=c.domain, name=c.name, address_line1="Via Roma 1", city="Milano", country=c.country,
            locale=locale.get(c.country, "en"), currency=c.currency, billing_emails=[f"billing@{c.domain}"],
        ))  # fmt: skip
    Customer.objects.bulk_create(made, batch_size=2000)
    return len(made)


def measure() -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-month-"))
    os.environ["CSPDESK_VAR_DIR"] = str(workdir / "var")
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "cspdesk.settings"
    os.environ.setdefault("CSPDESK_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    import django

    django.setup()
    import datetime as dt

    from django.core.management import call_command
    from django.db import connection

    from cspdesk.billing import services as billing
    from cspdesk.billing.models import Invoice, IssuedDocument
    from cspdesk.core.actor import Actor
    from cspdesk.demo import month, world
    from cspdesk.partnercenter.recon import services as recon

    paths = _files()
    call_command("migrate", verbosity=0)
    world.load()
    registered = _register_customers()
    month.load_price_rules()
    actor = Actor.system("bench")
    stages: dict[str, dict[str, float]] = {}

    def stage(name: str, count: int, began: float, cpu: float, who: int = resource.RUSAGE_SELF) -> None:
        seconds = time.perf_counter() - began
        stages[name] = {"seconds": seconds, "cpu": _cpu(who) - cpu, "count": count}
        rate = count / seconds
        used = stages[name]["cpu"]
        print(f"  {name:<9} {seconds:8.1f} s  {used:8.1f} CPU s  {rate:10,.0f} /s  ({count:,})", flush=True)

    began, cpu = time.perf_counter(), _cpu()
    rows = 0
    for p in paths:
        rows += recon.import_file(actor, p).imported.rows
    stage("import", rows, began, cpu)
    period = dt.date.fromisoformat(PERIOD + "-01")
    began, cpu = time.perf_counter(), _cpu()
    run = billing.bill(actor, period)
    drafts = run.invoices.count()
    stage("rate", drafts, began, cpu)
    began, cpu = time.perf_counter(), _cpu()
    billing.finalize_run(actor, run.pk)
    stage("finalize", drafts, began, cpu)
    # Finalizing queued the storing of every invoice's PDF and UBL (billing.archive); the workers do it.
    connection.close()  # the workers write to the same database file
    from bench.scale import Sampler

    sampler = Sampler()
    began, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    workers = [subprocess.Popen([sys.executable, "-m", "cspdesk", "worker", "--burst", "--name", f"bench-render-{n}",
                                 "--verbosity", "0"], cwd=ROOT) for n in range(RENDER_WORKERS)]  # fmt: skip
    for n, w in enumerate(workers):
        sampler.watch(f"worker-{n}", w.pid)
    failed = [w.wait() for w in workers]
    sampler.stop()
    if any(failed):
        raise SystemExit("a render worker failed")
    rendered = IssuedDocument.objects.filter(invoice__run=run).count() // 2
    if rendered != Invoice.objects.filter(run=run).count():
        raise SystemExit(f"only {rendered} of {drafts} invoices have their documents stored")
    stage("render", rendered, began, cpu, resource.RUSAGE_CHILDREN)
    total = sum(s["seconds"] for s in stages.values())
    return {"customers": registered, "rows": rows, "invoices": drafts, "stages": stages, "total": total,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "render_workers": RENDER_WORKERS,
            "worker_peak_rss_mb": max(sampler.peaks.values())}  # fmt: skip


def run() -> bool:
    print(f"a month of {CUSTOMERS:,} generated customers and {ROWS:,} usage rows ({PERIOD})", flush=True)
    out = subprocess.run([sys.executable, "-m", "bench.month", "--measure"], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    lines = out.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    result = json.loads(lines[-1])
    print(f"whole month: {result['total']:.1f} s for {result['invoices']:,} invoices "
          f"({result['invoices'] / result['total']:.1f} invoices/s), peak RSS {result['peak_rss_mb']:.0f} MB, "
          f"{result['render_workers']} render workers (peak RSS {result['worker_peak_rss_mb']:.0f} MB) "
          f"(target < {TARGET_SECONDS:.0f} s)")  # fmt: skip
    return bool(result["total"] < TARGET_SECONDS)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:] == ["--measure"]:
        print(json.dumps(measure()))
