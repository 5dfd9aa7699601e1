"""``bulk.update_rows`` stores what the ORM's ``bulk_update`` stores, as the database holds it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from cspdesk.billing import services
from cspdesk.billing.models import Invoice
from cspdesk.core import bulk
from tests.billing.test_billing_run import OCT, SYSTEM, nuvola  # noqa: F401
from tests.fixtures import DemoWorld

FIELDS = ["series", "sequence", "number", "due_date"]


def _raw(pk: int) -> tuple[object, ...]:
    columns = ", ".join(connection.ops.quote_name(str(Invoice._meta.get_field(f).column)) for f in FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM billing_invoice WHERE id = %s", [pk])
        row = cursor.fetchone()
    assert row is not None
    return tuple(row)


def test_update_rows_stores_what_bulk_update_stores(nuvola: DemoWorld) -> None:  # noqa: F811
    run = services.bill(SYSTEM, OCT)
    ours, orms = Invoice.objects.filter(run=run).order_by("pk")
    values: list[tuple[object, ...]] = [("INV", 41, "INV-2026-00041", dt.date(2026, 12, 1)), ("", 0, "ÁŐ-ű", None)]
    blank = (ours.series, ours.sequence, ours.number, ours.due_date)
    for series, sequence, number, due in values:
        assert bulk.update_rows(Invoice, FIELDS, [(ours.pk, series, sequence, number, due)]) == 1
        stored = _raw(ours.pk)
        read = Invoice.objects.get(pk=ours.pk)
        assert (read.series, read.sequence, read.number, read.due_date) == (series, sequence, number, due)
        bulk.update_rows(Invoice, FIELDS, [(ours.pk, *blank)])  # numbers are unique: free it for the other
        orms.series, orms.sequence, orms.number, orms.due_date = series, sequence, number, due
        Invoice.objects.bulk_update([orms], FIELDS)
        assert repr(stored) == repr(_raw(orms.pk))
    untouched = Invoice.objects.get(pk=ours.pk)
    assert (untouched.net, untouched.status) == (ours.net, ours.status)  # only the named fields change


def test_update_rows_refuses_the_key_and_unknown_or_repeated_fields() -> None:
    with pytest.raises(ValueError, match="other than the key"):
        bulk.update_rows(Invoice, ["id"], [])
    with pytest.raises(ValueError, match="named twice"):
        bulk.update_rows(Invoice, ["number", "number"], [])
    with pytest.raises(Exception, match="has no field named 'nope'"):
        bulk.update_rows(Invoice, ["nope"], [])
