"""The demo world's month, imported with the real importer and billed: conservation, idempotency, documents."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from django.db.models import Sum
from lxml import etree

from cspdesk.billing import services
from cspdesk.billing.documents import rules
from cspdesk.billing.documents.build import render_pdf, render_ubl
from cspdesk.billing.models import Invoice, InvoiceLineCharge, InvoiceStatus
from cspdesk.core.actor import Actor
from cspdesk.partnercenter.recon.models import ChargeLine, Import, ImportKind
from tests.fixtures import import_demo_month

PERIOD = "2026-10"


@pytest.fixture
def demo_month(demo, settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    import_demo_month(PERIOD, 3000)
    return demo


def test_demo_month_bills_every_cost_once(demo_month, ubl_schemas) -> None:  # type: ignore[no-untyped-def]
    system = Actor.system("test")
    run = services.bill(system, services.parse_period(PERIOD))
    review = run.review
    assert review["invoices"] > 0
    # Azure is billed from the daily usage file only: cost on drafts = each invoice file's assigned cost
    invoices = Import.objects.filter(kind=ImportKind.INVOICE, period="2026-10-01")
    billed_cost = InvoiceLineCharge.objects.filter(
        line__invoice__run=run, line__invoice__buyer_organisation__isnull=True
    )
    assigned = sum((i.assigned_cost for i in invoices), Decimal(0))
    assert billed_cost.aggregate(s=Sum("cost"))["s"].quantize(Decimal("0.01")) == assigned.quantize(Decimal("0.01"))
    usage_ids = set(ChargeLine.objects.filter(source__kind=ImportKind.USAGE_BILLED).values_list("pk", flat=True))
    assert usage_ids & set(billed_cost.values_list("charge_line_id", flat=True))
    second = services.bill(system, services.parse_period(PERIOD))
    assert Invoice.objects.filter(status=InvoiceStatus.DRAFT).count() == second.review["invoices"]
    assert second.review["totals"] == review["totals"]
    services.finalize_run(system, second.pk)
    for inv in Invoice.objects.filter(run=second):
        root = etree.fromstring(render_ubl(inv))
        name = etree.QName(root).localname
        assert ubl_schemas[name].validate(root), ubl_schemas[name].error_log
        assert rules.check(root) == []
        assert render_pdf(inv).startswith(b"%PDF")
