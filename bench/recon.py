"""Recon import on 1,000,000 daily-usage rows: cspdesk vs plain DuckDB vs a straightforward pandas script.

Each contender runs in its own subprocess so peak RSS is its own. Targets: cspdesk within 2x of plain
DuckDB and at least 5x faster than pandas. CPU seconds (user + system, all threads) are printed beside the
wall time: on a shared machine they say what the work cost when the wall time says how busy the machine was.

``CSPDESK_BENCH_ROWS=6100000`` (or ``BENCH_RECON_ROWS``) benchmarks a ~5 GB file instead, the size the
bounded-memory requirement names (peak RSS under 1.5 GB); the file is generated once under var/bench.
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
ROWS = int(os.environ.get("CSPDESK_BENCH_ROWS") or os.environ.get("BENCH_RECON_ROWS") or "1000000")
SEED = 7
KEY = ["CustomerId", "Tier2MpnId", "SubscriptionId", "ProductId", "SkuId", "MeterId", "ChargeType",
       "ChargeStartDate", "ChargeEndDate"]  # fmt: skip


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _setup_django(workdir: Path) -> None:
    os.environ["CSPDESK_VAR_DIR"] = str(workdir / "var")
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "cspdesk.settings"
    import django

    django.setup()


def make_file(path: Path) -> None:
    """One billed daily-usage file of exactly ROWS rows for the demo partner Nuvola (EUR)."""
    import datetime as dt

    import duckdb

    from cspdesk.partnercenter.recon import generator

    custs = [c for c in generator.customers(150, SEED) if c.partner == "nuvola" and c.currency == "EUR"]
    series = generator._series(generator.subscriptions(custs, SEED), SEED)
    con = duckdb.connect()
    generator.write_usage(con, path, series, ROWS, SEED, dt.date(2026, 10, 1), 31, "G000BENCH1", "nuvola", "EUR")
    con.close()


def measure_cspdesk(path: Path) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-cspdesk-"))
    _setup_django(workdir)
    from django.core.management import call_command

    from cspdesk.core.actor import Actor
    from cspdesk.demo import world
    from cspdesk.partnercenter.recon import services

    call_command("migrate", verbosity=0)
    world.load()
    cpu, began = _cpu_seconds(), time.perf_counter()
    result = services.import_file(Actor.system("bench"), path)
    seconds = time.perf_counter() - began
    imp = result.imported
    return {"seconds": seconds, "cpu": _cpu_seconds() - cpu, "rows": imp.rows, "groups": imp.summary["charge_lines"],
            "total": str(imp.total_cost)}  # fmt: skip


def measure_duckdb(path: Path) -> dict[str, object]:
    import duckdb

    cpu, began = _cpu_seconds(), time.perf_counter()
    con = duckdb.connect()
    keys = ", ".join(f'"{k}"' for k in KEY)
    groups, rows, total = con.execute(
        f"""SELECT count(*), sum(n), sum(cost) FROM (
              SELECT {keys}, count(*) AS n, sum(CAST("BillingPreTaxTotal" AS DECIMAL(38,10))) AS cost,
                     sum(CAST("Quantity" AS DECIMAL(38,10))) AS qty
              FROM read_csv('{path}') GROUP BY ALL)"""
    ).fetchone()  # type: ignore[misc]
    return {"seconds": time.perf_counter() - began, "cpu": _cpu_seconds() - cpu, "rows": rows, "groups": groups,
            "total": str(total)}  # fmt: skip


def measure_pandas(path: Path) -> dict[str, object]:
    import pandas as pd

    cpu, began = _cpu_seconds(), time.perf_counter()
    df = pd.read_csv(path)
    agg = df.groupby(KEY, dropna=False).agg(n=("Quantity", "size"), qty=("Quantity", "sum"),
                                            cost=("BillingPreTaxTotal", "sum"))  # fmt: skip
    return {"seconds": time.perf_counter() - began, "cpu": _cpu_seconds() - cpu, "rows": int(agg["n"].sum()),
            "groups": len(agg), "total": f"{agg['cost'].sum():.2f}"}  # fmt: skip


MEASURES = {"cspdesk": measure_cspdesk, "duckdb": measure_duckdb, "pandas": measure_pandas}


def _child(name: str, path: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.recon", "--measure", name, str(path)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> bool:
    data = ROOT / "var" / "bench"
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"usage-{ROWS}-seed{SEED}.csv"
    if not path.exists():
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.recon", "--make", str(path)], cwd=ROOT, check=True)
        print(f"generated {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - began:.1f} s")
    results = {name: _child(name, path) for name in MEASURES}
    print(f"{'contender':<10} {'seconds':>8} {'CPU s':>7} {'rows/s':>12} {'peak RSS':>10} {'groups':>7}  total cost")
    for name, r in results.items():
        rate = float(r["rows"]) / float(r["seconds"])  # type: ignore[arg-type]
        print(
            f"{name:<10} {r['seconds']:>8.2f} {r['cpu']:>7.2f} {rate:>12,.0f} {r['peak_rss_mb']:>7.0f} MB "
            f"{r['groups']:>7}  {r['total']}"
        )
    c, d, p = (float(results[n]["seconds"]) for n in ("cspdesk", "duckdb", "pandas"))  # type: ignore[arg-type]
    slower, faster = c / d, p / c
    print(f"cspdesk / plain DuckDB: {slower:.2f}x the time (target ≤ 2x)")
    print(f"pandas / cspdesk:       {faster:.2f}x faster (target ≥ 5x)")
    cc, cd, cp = (float(results[n]["cpu"]) for n in ("cspdesk", "duckdb", "pandas"))  # type: ignore[arg-type]
    print(f"in CPU seconds:         {cc / cd:.2f}x plain DuckDB, {cp / cc:.2f}x less than pandas")
    same = results["cspdesk"]["total"] == results["duckdb"]["total"].rstrip("0").rstrip(".") or (  # type: ignore[union-attr]
        float(results["cspdesk"]["total"]) == float(results["duckdb"]["total"])  # type: ignore[arg-type]
    )
    print(f"totals agree: {same}")
    return slower <= 2 and faster >= 5 and same


if __name__ == "__main__":
    if len(sys.argv) == 1:  # python -m bench.recon: the benchmark itself (as python -m bench recon runs it)
        sys.exit(0 if run() else 1)
    if sys.argv[1] == "--make":
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cspdesk.settings")
        import django

        django.setup()
        make_file(Path(sys.argv[2]))
    else:
        result = MEASURES[sys.argv[2]](Path(sys.argv[3]))
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result))
