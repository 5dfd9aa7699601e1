"""After a month's import and a billing run the PostgreSQL planner's statistics describe the tables as written,
so the run that follows reads each part's charge lines through the customer index instead of every line."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from cspdesk.billing import services
from cspdesk.billing.models import InvoiceLine
from cspdesk.core.actor import Actor
from cspdesk.partnercenter.recon.models import ChargeLine
from tests.fixtures import import_demo_month

SYSTEM = Actor.system("test")


def _estimated_rows(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        row = cursor.fetchone()
    assert row is not None
    return float(row[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_import_and_a_billing_run_leave_the_planner_statistics_current(demo, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    import_demo_month("2026-10", 400)
    lines = ChargeLine.objects.count()
    assert lines > 0 and _estimated_rows("recon_chargeline") == lines  # never analyzed: -1
    services.bill(SYSTEM, services.parse_period("2026-10"))
    assert _estimated_rows("billing_invoiceline") == InvoiceLine.objects.count() > 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_split_import_leaves_the_planner_statistics_current(demo, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cspdesk.demo import month
    from cspdesk.partnercenter.recon import generator, runs

    settings.VAR_DIR = tmp_path / "var"
    paths = generator.generate(tmp_path / "files", "2026-10", n_customers=0, usage_rows=400, seed=month.SEED)
    billed = next(p for p in paths if p.name.startswith("nuvola-eur-usage-billed"))
    runs.import_parallel(SYSTEM, billed, in_process=True, per_part=2)
    lines = ChargeLine.objects.count()
    assert lines > 0 and _estimated_rows("recon_chargeline") == lines
