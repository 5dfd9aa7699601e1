"""The pure allocation module: matching rules, conservation, aging buckets and weeks (hypothesis)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iso11649

from cspdesk.payments import allocation
from cspdesk.payments.allocation import OpenItem, Planned

D = Decimal
TODAY = dt.date(2026, 6, 15)
A = OpenItem(1, "NUV-2026-000010", dt.date(2026, 3, 31), D("100.00"))
B = OpenItem(2, "NUV-2026-000011", dt.date(2026, 4, 30), D("250.00"))
C = OpenItem(3, "NUV-2026-000012", dt.date(2026, 5, 31), D("80.00"))
ITEMS = [C, A, B]


def test_rf_reference_is_valid_iso11649() -> None:
    ref = allocation.rf_reference("NUV-2026-000011")
    assert ref == "RF" + ref[2:4] + "NUV2026000011"
    assert iso11649.is_valid(ref)


@pytest.mark.parametrize(
    ("amount", "text", "expected"),
    [
        pytest.param("250.00", "Fattura NUV-2026-000011 grazie", [Planned(2, D("250.00"), "reference")], id="number"),
        pytest.param("250.00", "nuv 2026 000011", [Planned(2, D("250.00"), "reference")], id="number-spaced"),
        pytest.param(
            "250.00",
            f"ref {allocation.rf_reference('NUV-2026-000011')[:4]} {allocation.rf_reference('NUV-2026-000011')[4:]}",
            [Planned(2, D("250.00"), "reference")],
            id="rf-reference",
        ),
        pytest.param("80.00", "thanks", [Planned(3, D("80.00"), "exact_amount")], id="exact-amount"),
        pytest.param(
            "150.00", "", [Planned(1, D("100.00"), "oldest_first"), Planned(2, D("50.00"), "oldest_first")],
            id="oldest-first",
        ),
        pytest.param(
            "300.00", "NUV-2026-000012",
            [Planned(3, D("80.00"), "reference"), Planned(1, D("100.00"), "oldest_first"),
             Planned(2, D("120.00"), "oldest_first")],
            id="reference-then-oldest",
        ),
        pytest.param("40.00", "NUV-2026-000012", [Planned(3, D("40.00"), "reference")], id="partial-reference"),
        pytest.param(
            "999.00", "",
            [Planned(1, D("100.00"), "oldest_first"), Planned(2, D("250.00"), "oldest_first"),
             Planned(3, D("80.00"), "oldest_first")],
            id="overpayment-leaves-credit",
        ),
    ],
)  # fmt: skip
def test_plan_rules(amount: str, text: str, expected: list[Planned]) -> None:
    assert allocation.plan(D(amount), text, ITEMS) == expected


def test_number_prefix_of_a_longer_number_is_not_a_match() -> None:
    items = [OpenItem(1, "NUV-2026-00001", dt.date(2026, 1, 1), D(5)), OpenItem(2, "X-1", dt.date(2026, 2, 1), D(7))]
    assert allocation.references_in("NUV-2026-000012", items) == []


def test_forged_rf_reference_is_ignored() -> None:
    good = allocation.rf_reference("NUV-2026-000011")
    forged = "RF" + ("00" if good[2:4] != "00" else "01") + good[4:]
    assert allocation.references_in(forged.replace("NUV", "nuv x "), ITEMS) == []


money = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
items_st = st.lists(
    st.builds(
        lambda i, d, a: OpenItem(i, f"INV-{i:04d}", dt.date(2026, 1, 1) + dt.timedelta(days=d), a),
        st.integers(1, 9999),
        st.integers(0, 365),
        money,
    ),
    max_size=8,
    unique_by=lambda i: i.invoice_id,
)


@given(money, items_st, st.sampled_from(["", "INV-0001", "hello INV-0042 INV-0007"]))
def test_plan_conserves_money(amount: Decimal, items: list[OpenItem], text: str) -> None:
    plans = allocation.plan(amount, text, items)
    by_item: dict[int, Decimal] = {}
    for p in plans:
        assert p.amount > 0
        by_item[p.invoice_id] = by_item.get(p.invoice_id, D(0)) + p.amount
    open_of = {i.invoice_id: i.open_amount for i in items}
    assert all(v <= open_of[k] for k, v in by_item.items())
    assert sum(by_item.values(), D(0)) == min(amount, sum(open_of.values(), D(0)))


@pytest.mark.parametrize(
    ("due", "bucket"),
    [(TODAY + dt.timedelta(days=5), "current"), (TODAY, "current"), (TODAY - dt.timedelta(days=1), "1_30"),
     (TODAY - dt.timedelta(days=30), "1_30"), (TODAY - dt.timedelta(days=31), "31_60"),
     (TODAY - dt.timedelta(days=60), "31_60"), (TODAY - dt.timedelta(days=61), "61_90"),
     (TODAY - dt.timedelta(days=90), "61_90"), (TODAY - dt.timedelta(days=91), "over_90")],
)  # fmt: skip
def test_bucket_edges(due: dt.date, bucket: str) -> None:
    assert allocation.bucket(due, TODAY) == bucket


@given(st.lists(st.tuples(st.integers(-200, 400), money), max_size=30))
def test_aging_buckets_sum_to_total_and_respect_edges(rows: list[tuple[int, Decimal]]) -> None:
    items = [(TODAY - dt.timedelta(days=late), amount) for late, amount in rows]
    result = allocation.aging(items, TODAY)
    assert result["total"] == sum((a for _, a in rows), D(0))
    assert sum((result[b] for b in allocation.BUCKETS), D(0)) == result["total"]
    expected_over_90 = sum((a for late, a in rows if late > 90), D(0))
    assert result["over_90"] == expected_over_90
    assert result["current"] == sum((a for late, a in rows if late <= 0), D(0))


@given(st.lists(st.tuples(st.integers(-30, 120), money), max_size=30))
def test_weekly_keeps_everything_in_range(rows: list[tuple[int, Decimal]]) -> None:
    items = [(TODAY + dt.timedelta(days=d), a) for d, a in rows]
    weeks = allocation.weekly(items, TODAY, 8)
    assert [w["week_start"] for w in weeks] == [dt.date(2026, 6, 15) + dt.timedelta(weeks=i) for i in range(8)]
    horizon = dt.date(2026, 6, 15) + dt.timedelta(weeks=8)
    assert sum((w["amount"] for w in weeks), D(0)) == sum((a for d, a in items if d < horizon), D(0))  # type: ignore[misc]


def test_dso() -> None:
    assert allocation.dso(D("500"), D("1500"), 90) == D("30.0")
    assert allocation.dso(D("500"), D("0"), 90) is None
