"""The recon-file generator: deterministic, exact row counts, Partner Center's layouts, consistent files."""

from __future__ import annotations

import csv
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from cspdesk.core.actor import Actor
from cspdesk.demo import world
from cspdesk.partnercenter.recon import generator, services
from cspdesk.partnercenter.recon.layouts import INVOICE_COLUMNS, USAGE_COLUMNS
from cspdesk.partnercenter.recon.models import Import
from tests.fixtures import load_demo_world


def _digest(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generator.generate(tmp_path_factory.mktemp("gen") / "a", "2026-10", 8, 3000, 42)


def test_same_seed_same_bytes_and_another_seed_differs(files: list[Path], tmp_path: Path) -> None:
    again = generator.generate(tmp_path / "b", "2026-10", 8, 3000, 42)
    assert _digest(again) == _digest(files)
    other = generator.generate(tmp_path / "c", "2026-10", 8, 3000, 43)
    assert set(_digest(other).values()).isdisjoint(_digest(files).values())


def test_files_have_the_exact_layouts_and_row_counts(files: list[Path]) -> None:
    kinds = [next(k for k in ("-invoice-", "-usage-billed-", "-usage-unbilled-") if k in p.name) for p in files]
    assert sorted(kinds) == ["-invoice-"] * 5 + ["-usage-billed-"] * 5 + ["-usage-unbilled-"] * 5
    billed = 0
    for p in files:
        header = p.read_text(encoding="utf-8").split("\n", 1)[0].split(",")
        assert tuple(header) == (INVOICE_COLUMNS if "-invoice-" in p.name else USAGE_COLUMNS)
        if "usage-billed" in p.name:
            billed += len(_rows(p))
    assert billed == 3000


def test_invoice_summarises_the_billed_usage_and_carries_the_charge_types(files: list[Path]) -> None:
    seen: set[str] = set()
    for inv in (p for p in files if "-invoice-" in p.name):
        rows = _rows(inv)
        seen |= {r["ChargeType"] for r in rows}
        usage = next(p for p in files if "usage-billed" in p.name and p.name.split("-")[:2] == inv.name.split("-")[:2])
        azure = sum(Decimal(r["Subtotal"]) for r in rows if r["ProductId"] == generator.AZURE_PLAN[0])
        assert azure == sum(Decimal(r["BillingPreTaxTotal"]) for r in _rows(usage))
        assert {r["InvoiceNumber"] for r in rows} == {r["InvoiceNumber"] for r in _rows(usage)}
    assert {"new", "cycleCharge", "addQuantity", "removeQuantity"} <= seen


def test_every_demo_subscription_appears(files: list[Path]) -> None:
    subs = set()
    for p in files:
        subs |= {r["SubscriptionId"] for r in _rows(p)}
    assert {str(s.subscription_id) for s in world.SUBSCRIPTIONS} <= subs


def test_generated_files_import_without_rejects(db: None, settings: object, tmp_path: Path, files: list[Path]) -> None:
    settings.VAR_DIR = tmp_path  # type: ignore[attr-defined]
    load_demo_world()
    results = [services.import_file(Actor.system("test"), p) for p in files]
    assert [r.imported.rejected for r in results] == [0] * 15
    assert sum(r.imported.rows for r in results if r.imported.kind == "usage_billed") == 3000
    demo_tenants = {str(world.customer_tenant_id(c.key)) for c in world.CUSTOMERS}
    for r in results:
        assert not demo_tenants & {t["tenant_id"] for t in r.imported.summary["unassigned_tenants"]}
    assert Import.objects.filter(kind="usage_unbilled").count() == 5
    with_pec = [
        r for r in results if r.imported.kind == "usage_billed" and r.imported.charge_lines.filter(credit__gt=0)
    ]
    assert with_pec


def test_command_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("generate-recon", "--period", "2026-10", "--customers", "2", "--usage-rows", "500",
                 "--out", str(tmp_path), "--seed", "5", "--json")  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["files"]) == len(list(tmp_path.glob("*.csv"))) >= 9
