"""billing.changes: the comparison is pure and tested on snapshots; the words in five languages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cspdesk.billing.changes import (
    Change,
    ChangeKind,
    LineClass,
    LineFact,
    Snapshot,
    compare,
    sentence,
    sentences,
    summary,
)

D = Decimal


def snap(*lines: LineFact, net: str = "100", rate: str | None = None, period: str = "2026-10-01") -> Snapshot:
    return Snapshot(1, "INV-1", dt.date.fromisoformat(period), "EUR", D(net), "USD" if rate else "EUR",
                    D(rate) if rate else None, lines)  # fmt: skip


def licence(key: str, qty: str, price: str, days: int = 31, label: str | None = None) -> LineFact:
    q, p = D(qty), D(price)
    return LineFact(LineClass.LICENCE, key, label or key, q, p, q * p, days)


def usage(service: str, amount: str) -> LineFact:
    return LineFact(LineClass.USAGE, service, service, D(1), D(amount), D(amount), 31)


def kinds(changes: list[Change] | tuple[Change, ...]) -> list[tuple[ChangeKind, str, Decimal | None, Decimal | None]]:
    return [(c.kind, c.key, c.before, c.after) for c in changes]


def test_no_previous_invoice_means_no_changes() -> None:
    result = compare(snap(licence("E3", "10", "20")), None)
    assert result.changes == () and result.net_delta is None and summary(result, "en") == ""


def test_licences_added_removed_new_and_gone() -> None:
    before = snap(licence("E3", "10", "20"), licence("Visio", "3", "10"), licence("Teams", "5", "4"))
    after = snap(licence("E3", "12", "20"), licence("Visio", "1", "10"), licence("Copilot", "2", "30"))
    assert kinds(compare(after, before).changes) == [
        (ChangeKind.PRODUCT_NEW, "Copilot", None, D(2)),
        (ChangeKind.LICENCES_ADDED, "E3", D(10), D(12)),
        (ChangeKind.PRODUCT_GONE, "Teams", D(5), None),
        (ChangeKind.LICENCES_REMOVED, "Visio", D(3), D(1)),
    ]


def test_a_mid_month_addition_counts_with_the_monthly_line_and_the_price_is_the_full_months() -> None:
    before = snap(licence("E3", "10", "20"))
    # 10 for the month at 20, plus 2 added for 15 days at a prorated 9.68: 12 licences, price per licence 20
    after = snap(licence("E3", "10", "21"), licence("E3", "2", "9.68", days=15))
    assert kinds(compare(after, before).changes) == [
        (ChangeKind.LICENCES_ADDED, "E3", D(10), D(12)),
        (ChangeKind.PRICE, "E3", D(20), D(21)),
    ]


def test_a_credit_for_removed_licences_lowers_the_count() -> None:
    before = snap(licence("E3", "10", "20"))
    after = snap(licence("E3", "10", "20"), licence("E3", "-3", "10", days=16))
    assert kinds(compare(after, before).changes) == [(ChangeKind.LICENCES_REMOVED, "E3", D(10), D(7))]


def test_usage_per_service_largest_change_first() -> None:
    before = snap(usage("Storage", "10"), usage("Virtual Machines", "100"), usage("Backup", "5"))
    after = snap(usage("Storage", "12"), usage("Virtual Machines", "80"), usage("Key Vault", "1"))
    assert kinds(compare(after, before).changes) == [
        (ChangeKind.USAGE, "Virtual Machines", D(100), D(80)),
        (ChangeKind.USAGE, "Backup", D(5), None),
        (ChangeKind.USAGE, "Storage", D(10), D(12)),
        (ChangeKind.USAGE, "Key Vault", None, D(1)),
    ]


def test_exchange_rate_and_support_fee_changes() -> None:
    fee = LineFact(LineClass.SUPPORT, "Gold", "Gold", D(1), D(50), D(50))
    fee2 = LineFact(LineClass.SUPPORT, "Gold", "Gold", D(1), D(55), D(55))
    result = compare(snap(fee2, rate="0.92"), snap(fee, rate="0.9"))
    assert kinds(result.changes) == [
        (ChangeKind.SUPPORT, "Gold", D(50), D(55)),
        (ChangeKind.EXCHANGE_RATE, "USD/EUR", D("0.9"), D("0.92")),
    ]


def test_the_same_rate_is_no_change() -> None:
    assert compare(snap(rate="0.9"), snap(rate="0.9")).changes == ()


facts = st.lists(
    st.builds(
        LineFact,
        st.sampled_from(list(LineClass)),
        st.sampled_from(["A", "B", "C"]),
        st.just("x"),
        st.decimals(-5, 50, places=0, allow_nan=False),
        st.decimals(0, 100, places=2, allow_nan=False),
        st.decimals(-500, 5000, places=2, allow_nan=False),
        st.integers(1, 31),
    ),
    max_size=8,
)


@given(facts)
def test_an_invoice_compared_with_itself_has_no_changes(lines: list[LineFact]) -> None:
    s = snap(*lines)
    result = compare(s, s)
    assert result.changes == () and result.net_delta == 0


@given(facts, facts)
def test_licence_changes_add_up_to_the_difference_in_licences(before: list[LineFact], after: list[LineFact]) -> None:
    result = compare(snap(*after), snap(*before))

    def total(lines: list[LineFact], key: str) -> Decimal:
        return sum((ln.quantity for ln in lines if ln.cls is LineClass.LICENCE and ln.key == key), D(0))

    for key in ("A", "B", "C"):
        seen = [
            c
            for c in result.changes
            if c.key == key
            and c.kind
            in (ChangeKind.LICENCES_ADDED, ChangeKind.LICENCES_REMOVED, ChangeKind.PRODUCT_NEW, ChangeKind.PRODUCT_GONE)
        ]
        assert sum((c.delta for c in seen), D(0)) == total(after, key) - total(before, key)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "E3: 2 licences added (10 → 12)."),
        ("it", "E3: 2 licenze aggiunte (10 → 12)."),
        ("sv", "E3: 2 licenser tillagda (10 → 12)."),
        ("pt-pt", "E3: 2 licenças adicionadas (10 → 12)."),
        ("hu", "E3: 2 licenc hozzáadva (10 → 12)."),
    ],
)
def test_licences_added_in_five_languages(language: str, expected: str) -> None:
    change = Change(ChangeKind.LICENCES_ADDED, "E3", "E3", D(10), D(12))
    assert sentence(change, "EUR", language) == expected


def test_one_licence_is_singular() -> None:
    change = Change(ChangeKind.LICENCES_REMOVED, "E3", "E3", D(12), D(11))
    assert sentence(change, "EUR", "en") == "E3: 1 licence removed (12 → 11)."
    assert sentence(change, "EUR", "it") == "E3: 1 licenza rimossa (12 → 11)."


def test_usage_and_totals_use_local_money_formats() -> None:
    before = snap(usage("Storage", "1234.5"), net="2000")
    after = snap(usage("Storage", "1300"), net="2100.25")
    result = compare(after, before)
    assert sentences(result, "hu") == [
        "Azure-használat – Storage: 1\xa0234,50\xa0EUR → 1\xa0300,00\xa0EUR (+65,50\xa0EUR)."
    ]
    assert sentences(result, "en") == ["Azure usage for Storage: €1,234.50 → €1,300.00 (+€65.50)."]
    assert summary(result, "en") == ("Total before tax: €2,000.00 last month, €2,100.25 this month (+€100.25, +5%).")
