"""How a run stores its drafts: many invoices' lines and explain links at once, below the ORM. What is stored must
not depend on how the drafts were grouped for storing, nor differ from what the ORM itself stores."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from cspdesk.billing import runs, services
from cspdesk.billing.models import Invoice, InvoiceLine, InvoiceLineCharge, LineKind
from cspdesk.core import bulk, fanout
from cspdesk.core.actor import Actor
from tests.fixtures import import_demo_month

PERIOD = "2026-10"
SYSTEM = Actor.system("test")
D = Decimal


@pytest.fixture
def demo_month(demo, settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    import_demo_month(PERIOD, 1500)
    return demo


def stored(run_pk: int) -> dict[str, Any]:
    """A run's invoices, lines and links as stored, by position instead of id (ids differ between runs)."""
    invoices = list(Invoice.objects.filter(run_id=run_pk).order_by("pk"))
    lines = list(InvoiceLine.objects.filter(invoice__run_id=run_pk).order_by("pk"))
    links = InvoiceLineCharge.objects.filter(line__invoice__run_id=run_pk).order_by("pk")
    where = {ln.pk: (ln.invoice_id, ln.position) for ln in lines}
    buyer = {inv.pk: (inv.organisation_id, inv.customer_id, inv.buyer_organisation_id, inv.source_currency)
             for inv in invoices}  # fmt: skip
    skip = {"id", "invoice"}
    fields = [f.attname for f in InvoiceLine._meta.concrete_fields if f.name not in skip]
    return {
        "invoices": [(buyer[inv.pk], inv.net, inv.tax, inv.total, inv.cost, inv.exchange_rate) for inv in invoices],
        "lines": [(buyer[ln.invoice_id], *(getattr(ln, f) for f in fields)) for ln in lines],
        # a link belongs to the line it was drafted for: its invoice's buyer and its position there
        "links": sorted(
            (buyer[where[k.line_id][0]], where[k.line_id][1], k.charge_line_id, k.cost, k.price) for k in links
        ),
        # lines are stored in the order they are drafted: by invoice, then by position
        "in_order": [where[ln.pk] for ln in lines] == sorted(where[ln.pk] for ln in lines),
    }


@pytest.mark.parametrize("store_lines", [1, 7, 10**9], ids=["each-invoice", "a-few-invoices", "all-at-once"])
def test_a_run_stores_the_same_lines_and_links_however_its_drafts_are_grouped(demo_month, monkeypatch,
                                                                              store_lines) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    period = services.parse_period(PERIOD)
    whole = stored(services.bill(SYSTEM, period).pk)
    assert whole["in_order"] and len(whole["invoices"]) > 3 and len(whole["links"]) > len(whole["lines"])
    monkeypatch.setattr(services, "STORE_LINES", store_lines)
    again = stored(services.bill(SYSTEM, period).pk)
    assert again == whole
    per_buyer, batch = runs.start_run(SYSTEM, period, per_part=1)  # one buyer per part: one store per invoice
    fanout.drain(batch.pk)
    assert stored(per_buyer.pk) == whole


def test_stored_values_are_those_the_orm_stores(demo_month) -> None:  # type: ignore[no-untyped-def]
    run = services.bill(SYSTEM, services.parse_period(PERIOD))
    invoice = Invoice.objects.filter(run=run).order_by("pk").first()
    assert invoice is not None
    oct1, oct31 = dt.date(2026, 10, 1), dt.date(2026, 10, 31)
    odd = [  # exponents the column does not have, a negative zero, a text choice, no price rule
        (D("1.5"), D("12.3456780"), D("18.5"), D("-0.00"), D("22.0"), LineKind.SUPPORT, None),
        (D("-3"), D("0.000001"), D("-0.000003"), D("1E+2"), D("0"), "microsoft", None),
    ]
    base = 1000
    rows = [
        (invoice.pk, base + i, kind, "desc", "group", "item", qty, unit, net, cost, "S", rate, "", "", oct1, oct31,
         rule, "markup")
        for i, (qty, unit, net, cost, rate, kind, rule) in enumerate(odd)
    ]  # fmt: skip
    bulk.insert_rows(InvoiceLine, services.LINE_COLUMNS, rows)
    InvoiceLine.objects.bulk_create([
        InvoiceLine(**dict(zip(services.LINE_COLUMNS, (invoice.pk, base + 100 + i, *row[2:]), strict=True)))
        for i, row in enumerate(rows)
    ])  # fmt: skip
    fields = [f for f in InvoiceLine._meta.concrete_fields if f.name not in {"id", "position"}]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT position, {columns} FROM billing_invoiceline WHERE position >= %s ORDER BY position",
                       [base])  # fmt: skip
        raw = cursor.fetchall()
    ours, orms = raw[: len(rows)], raw[len(rows) :]
    assert len(orms) == len(rows)
    assert [repr(r[1:]) for r in ours] == [repr(r[1:]) for r in orms]  # as the database holds them, exponents too
    read = InvoiceLine.objects.filter(invoice=invoice, position__gte=base).order_by("position")
    values = [tuple(getattr(ln, f.attname) for f in fields) for ln in read]
    assert repr(values[: len(rows)]) == repr(values[len(rows) :])  # and as the ORM reads them back
