"""The recon import split per customer (done here, without a worker) gives what ``import_file`` gives in one
process: the same import figures, charge lines, rejected rows and Microsoft payable; a part done again writes
nothing; a half-written import is invisible to billing."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from cspdesk.audit.models import AuditEvent
from cspdesk.billing import services as billing
from cspdesk.core import fanout
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict
from cspdesk.core.models import BatchStatus, PartState, WorkPart
from cspdesk.demo import month
from cspdesk.partnercenter.recon import generator, runs, services
from cspdesk.partnercenter.recon.models import ChargeLine, Import, ImportStatus, MicrosoftInvoice
from tests.scale import snapshots

PERIOD = "2026-10"
SYSTEM = Actor.system("tests")


@pytest.fixture(scope="module")
def month_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo month's files for Nuvola in EUR (the demo customers and three tenants cspdesk does not know);
    the billed usage file with two bad rows added."""
    out = tmp_path_factory.mktemp("files")
    paths = generator.generate(out, PERIOD, n_customers=0, usage_rows=1500, seed=month.SEED)
    named = {kind: next(p for p in paths if p.name.startswith(f"nuvola-eur-{kind}"))
             for kind in ("usage-billed", "usage-unbilled", "invoice")}  # fmt: skip
    billed = named["usage-billed"]
    with billed.open(newline="") as fh:
        rows = list(csv.reader(fh))
    bad = list(rows[5])
    bad[rows[0].index("BillingPreTaxTotal")] = "12,5"  # a decimal comma: rejected, kept for review
    with billed.open("a", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerow(bad)
        fh.write("too,few,fields\r\n")
    return named


@pytest.fixture
def files(demo, month_files: dict[str, Path]) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    return month_files


def single_process(path: Path, var: Path, settings: Any) -> dict[str, Any]:
    """What ``import_file`` makes of ``path``, then rolled back so the split import starts from the same state."""
    settings.VAR_DIR = var
    with transaction.atomic():
        expected = snapshots.recon_import(services.import_file(SYSTEM, path).imported)
        transaction.set_rollback(True)
    assert not Import.objects.filter(file_sha256=expected["import"]["file_sha256"]).exists()
    return expected


@pytest.mark.parametrize("name", ["usage-billed", "usage-unbilled", "invoice"])
def test_split_import_equals_the_single_process_import(files, settings, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    path = files[name]
    expected = single_process(path, tmp_path / "single", settings)
    assert sum(expected["lines"].values()) == expected["summary"]["charge_lines"] > 0
    settings.VAR_DIR = tmp_path / "split"
    result = runs.import_parallel(SYSTEM, path, in_process=True, per_part=2)
    imp = result.imported
    assert not result.duplicate and imp.status == ImportStatus.ACTIVE
    assert snapshots.recon_import(imp) == expected
    # conservation: every accepted row's cost is on exactly one charge line, customers' or unassigned
    lines = ChargeLine.objects.filter(source=imp)
    assert sum(ln.cost for ln in lines) == imp.total_cost == imp.assigned_cost + imp.unassigned_cost
    assert len({ln.first_line for ln in lines}) == lines.count()
    batch = runs.batch_of(imp)
    assert batch is not None and batch.status == BatchStatus.DONE
    unassigned = 1 if imp.summary["unassigned_tenants"] else 0
    assert imp.customers >= 2  # so that a part holds more than one
    assert batch.parts.count() == -(-imp.customers // 2) + unassigned  # two customers to a part
    assert (settings.VAR_DIR / imp.raw_path).is_file()
    if name == "usage-billed":
        assert imp.rejected == 2 and imp.summary["unassigned_tenants"]
    if name == "invoice":
        assert expected["payable"] and imp.summary["microsoft_invoice"]["number"] == imp.invoice_number
    # the same file again, either way, is the same import
    again = runs.import_parallel(SYSTEM, path, in_process=True)
    assert again.duplicate and again.imported.pk == imp.pk
    assert services.import_file(SYSTEM, path).imported.pk == imp.pk
    assert ChargeLine.objects.filter(source=imp).count() == sum(expected["lines"].values())


def test_a_part_done_again_writes_nothing(files, settings, tmp_path: Path, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    path = files["usage-billed"]
    expected = single_process(path, tmp_path / "single", settings)
    settings.VAR_DIR = tmp_path / "split"
    result, batch = runs.start_import(SYSTEM, path, per_part=1)
    assert batch is not None
    imp = result.imported
    first = batch.parts.exclude(key=runs.UNASSIGNED).order_by("key").first()
    assert first is not None
    done = fanout.run_part(first.pk)
    written = ChargeLine.objects.filter(source=imp).count()
    assert done["lines"] == written > 0
    assert fanout.run_part(first.pk) == {"part": first.pk, "skipped": True}
    # the part's "done" mark lost (say a worker's commit was only half seen): doing it again writes nothing
    WorkPart.objects.filter(pk=first.pk).update(state=PartState.PENDING)
    again = fanout.run_part(first.pk)
    assert again["skipped"] == "charge lines already written" and again["lines"] == written
    assert ChargeLine.objects.filter(source=imp).count() == written
    # a worker that died holding a part: its lease ran out, the part is taken over and written once
    second = batch.parts.order_by("key")[1]
    WorkPart.objects.filter(pk=second.pk).update(state=PartState.RUNNING, attempts=1,
                                                 leased_until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # fmt: skip
    assert runs.lines_path(imp).is_file()
    with django_capture_on_commit_callbacks(execute=True):
        fanout.drain(batch.pk)
    second.refresh_from_db()
    assert (second.state, second.attempts) == (PartState.DONE, 2)
    assert snapshots.recon_import(imp) == expected
    assert not runs.lines_path(imp).exists()  # the parts' input is gone once all are written


def test_a_half_written_import_is_not_billable(files, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    period = billing.parse_period(PERIOD)
    result, batch = runs.start_import(SYSTEM, files["usage-billed"])
    assert batch is not None
    fanout.run_part(batch.parts.exclude(key=runs.UNASSIGNED).order_by("key")[0].pk)
    imp = result.imported
    assert imp.status == ImportStatus.IMPORTING and ChargeLine.objects.filter(source=imp).exists()
    assert not billing.billable_charge_lines(period).filter(source=imp).exists()
    assert not AuditEvent.objects.filter(action="recon.imported", object_id=str(imp.pk)).exists()
    # the same invoice from another file cannot start while this one is being written
    copy = tmp_path / "copy.csv"
    copy.write_bytes(files["usage-billed"].read_bytes() + b"\r\n")
    with pytest.raises(Conflict) as refused:
        runs.start_import(SYSTEM, copy, replace=True)
    assert refused.value.code == "import_running"
    fanout.drain(batch.pk)
    assert billing.billable_charge_lines(period).filter(source=imp).count() == imp.summary["charge_lines"]


def test_replace_supersedes_the_earlier_file_only_when_the_new_one_is_complete(files, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    first = services.import_file(SYSTEM, files["invoice"]).imported
    with files["invoice"].open(newline="") as fh:
        rows = list(csv.reader(fh))
    cost = rows[0].index("Subtotal")
    rows[1][cost] = str(Decimal(rows[1][cost]) + 1)  # Microsoft's corrected file for the same invoice
    total = rows[0].index("Total")
    rows[1][total] = str(Decimal(rows[1][total]) + 1)
    corrected = tmp_path / "corrected.csv"
    with corrected.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows(rows)
    with pytest.raises(Conflict):
        runs.start_import(SYSTEM, corrected)
    result, batch = runs.start_import(SYSTEM, corrected, replace=True)
    assert batch is not None
    first.refresh_from_db()
    assert first.status == ImportStatus.ACTIVE  # the earlier file is billed until the new one is complete
    fanout.drain(batch.pk)
    first.refresh_from_db()
    new = result.imported
    new.refresh_from_db()
    assert (first.status, first.superseded_by_id, new.status) == (ImportStatus.SUPERSEDED, new.pk, ImportStatus.ACTIVE)
    assert new.summary["superseded_import_id"] == first.pk
    payable = MicrosoftInvoice.objects.get(organisation=new.organisation, number=new.invoice_number)
    assert payable.source_id == new.pk and payable.subtotal == first.total_cost + 1 == new.total_cost
