"""The demo's payments: paid, partly paid and unpaid customers, loaded once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from cspdesk.core import clock
from cspdesk.demo import month
from cspdesk.payments import selectors
from cspdesk.payments.models import Payment
from tests.payments.fixtures import make_invoice

NOW = dt.datetime(2026, 6, 15, 9, 0, tzinfo=dt.UTC)


def test_demo_payments_are_idempotent(demo) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        invoices = {k: make_invoice(demo.customer(k), "200.00", due=dt.date(2026, 7, 15), issued=dt.date(2026, 6, 1))
                    for k in ("bellavista", "liffey", "douro")}  # fmt: skip
        first = month.load_payments("2026-06")
        second = month.load_payments("2026-06")
    assert {(r["customer"], r["paid"], r["open"]) for r in first} == {
        ("bellavista", Decimal("200.00"), Decimal("0.00")),
        ("liffey", Decimal("80.00"), Decimal("120.00")),
        ("douro", Decimal("0.00"), Decimal("200.00")),
    }
    assert second == first
    assert Payment.objects.count() == 2
    assert selectors.open_balance(invoices["douro"]) == Decimal("200.00")
