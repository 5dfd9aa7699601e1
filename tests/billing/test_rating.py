"""The rating engine: methods, proration kept, rounding per line, totals equal line sums."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cspdesk.billing.documents.model import Line, compute_totals
from cspdesk.billing.rating import engine
from cspdesk.billing.tax import VatCategory, VatTreatment
from cspdesk.catalog.resolution import RuleSpec

D = Decimal
OCT = dt.date(2026, 10, 1)


def charge(i: int = 1, cost: str = "100", qty: str = "10", full: str | None = "100", list_cost: str | None = None,
           charge_type: str = "cycleCharge", start: dt.date = OCT, **kw: object) -> engine.Charge:  # fmt: skip
    base: dict[str, object] = dict(
        id=i, customer_id=1, reseller_id=None, subscription_id="sub-1", product_id="P", sku_id="0001",
        product_name="Microsoft 365 E3", sku_name="Microsoft 365 E3", meter_category="", category="microsoft365",
        charge_type=charge_type, start=start, end=dt.date(2026, 10, 31), quantity=D(qty), cost=D(cost),
        currency="EUR", full_cost=D(full) if full else None, list_cost=D(list_cost) if list_cost else None,
    )  # fmt: skip
    base.update(kw)
    return engine.Charge(**base)  # type: ignore[arg-type]


def same(amount: Decimal, _currency: str) -> Decimal:
    return amount


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        pytest.param(None, D("100"), id="no-rule-at-cost"),
        pytest.param(RuleSpec(1, "pass_through"), D("100"), id="pass-through"),
        pytest.param(RuleSpec(1, "markup", percent=D("12.5")), D("112.5"), id="markup"),
        pytest.param(RuleSpec(1, "list_adjust", percent=D("-10")), D("108"), id="discount-on-list"),
        pytest.param(RuleSpec(1, "list_adjust", percent=D("5")), D("126"), id="uplift-on-list"),
        pytest.param(RuleSpec(1, "fixed_unit", unit_price=D("11"), currency="EUR"), D("110"), id="fixed-unit"),
    ],
)
def test_methods(rule: RuleSpec | None, expected: Decimal) -> None:
    assert engine.price_charge(charge(list_cost="120"), rule, same) == expected


def test_fixed_unit_price_in_another_currency_is_converted() -> None:
    rule = RuleSpec(1, "fixed_unit", unit_price=D("100"), currency="SEK")
    price = engine.price_charge(charge(), rule, lambda a, c: a * D("0.09") if c == "SEK" else a)
    assert price == D("90.00")


@pytest.mark.parametrize("method", ["markup", "fixed_unit", "list_adjust"])
def test_mid_term_change_and_cancel_keep_microsofts_proration(method: str) -> None:
    """Seats 10 → 12 on day 21 of 31: Microsoft refunds 11/31 of 10 seats and charges 11/31 of 12; a cancel
    credits the month. The customer gets the same factors, priced by the same rule."""
    rule = RuleSpec(1, method, percent=D("20"), unit_price=D("12"), currency="EUR")
    f = D(11) / D(31)
    refund = charge(1, cost=str(-(D(100) * f)), qty="10", full="100", charge_type="removeQuantity")
    add = charge(2, cost=str(D(120) * f), qty="12", full="120", charge_type="addQuantity")
    cancel = charge(3, cost="-100", qty="10", full="100", charge_type="cancel")
    per_seat = D("12")  # markup: 10 × 1.2; fixed: 12; list + 20 % with no list price in the file: cost × 1.2
    prices = [engine.price_charge(c, rule, same) for c in (refund, add, cancel)]
    assert prices[0] == pytest.approx(-10 * per_seat * f)
    assert prices[1] == pytest.approx(12 * per_seat * f)
    assert prices[2] == -10 * per_seat
    priced = [engine.Priced(c, rule, p) for c, p in zip((refund, add, cancel), prices, strict=True)]
    lines = engine.build_lines(priced, "EUR")
    by_type = {ln.description.split("(")[-1].rstrip(")"): ln for ln in lines}
    assert by_type["removeQuantity"].quantity == -10 and by_type["removeQuantity"].net_amount == D("-42.58")
    assert by_type["addQuantity"].quantity == 12 and by_type["addQuantity"].net_amount == D("51.10")
    assert by_type["cancel"].net_amount == D("-120.00")
    assert all(ln.unit_price >= 0 for ln in lines)


def test_azure_lines_group_per_meter_category() -> None:
    az = dict(category="azure", product_name="Azure plan", full=None, qty="3")
    priced = [
        engine.Priced(charge(1, cost="1.005", meter_category="Storage", **az), None, D("1.005")),  # type: ignore[arg-type]
        engine.Priced(charge(2, cost="2.001", meter_category="Storage", **az), None, D("2.001")),  # type: ignore[arg-type]
        engine.Priced(charge(3, cost="5", meter_category="Virtual Machines", **az), None, D("5")),  # type: ignore[arg-type]
    ]
    lines = engine.build_lines(priced, "EUR")
    assert [(ln.description, ln.net_amount, len(ln.charges)) for ln in lines] == [
        ("Azure plan – Storage (cycleCharge)", D("3.01"), 2),
        ("Azure plan – Virtual Machines (cycleCharge)", D("5.00"), 1),
    ]


@pytest.mark.parametrize(
    ("model", "spend", "expected"),
    [("flat_monthly", "0", "99"), ("percent_of_spend", "100", "50"), ("percent_of_spend", "3000", "300"),
     ("percent_of_spend", "9000", "500"), ("per_hour", "0", "247.5")],
)  # fmt: skip
def test_support_fees(model: str, spend: str, expected: str) -> None:
    fee = engine.support_fee(model, amount=D("99") if model != "per_hour" else D("165"), percent=D("10"),
                             minimum=D("50"), maximum=D("500"), spend=D(spend), quantity=D("1.5"))  # fmt: skip
    assert fee == D(expected)


amounts = st.decimals(min_value=D("-5000"), max_value=D("5000"), places=6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(amounts, st.integers(0, 500), st.sampled_from(["S", "AE"])), min_size=1, max_size=30),
    st.sampled_from(["EUR", "SEK", "HUF", "JPY"]),
    st.decimals(min_value=D("0.01"), max_value=D("400"), places=4),
)
def test_totals_are_exactly_the_sum_of_rounded_lines(rows: list[tuple[Decimal, int, str]], currency: str,
                                                     fx: Decimal) -> None:  # fmt: skip
    priced = [
        engine.Priced(charge(i, cost=str(a), qty=str(q), full=None, subscription_id=f"s{i}"), None, a)
        for i, (a, q, _cat) in enumerate(rows)
    ]
    lines = engine.build_lines(priced, currency, fx)
    vat = {"S": VatTreatment(VatCategory.STANDARD, D("22")),
           "AE": VatTreatment(VatCategory.REVERSE_CHARGE, D(0), "VATEX-EU-AE", "Reverse charge")}  # fmt: skip
    doc_lines = [
        Line(str(n), d.description, d.group, d.quantity, d.unit_price, d.net_amount, vat[rows[n][2]])
        for n, d in enumerate(lines)
    ]  # every line passes the document's own check: net = quantity × unit price, rounded once
    totals = compute_totals(doc_lines, currency)
    assert totals.line_extension == sum((d.net_amount for d in lines), D(0))
    assert totals.payable == totals.line_extension + sum((b.tax_amount for b in totals.vat_breakdown), D(0))
    for d in lines:
        assert d.unit_price >= 0
        exact = sum((p for _c, _cost, p in d.charges), D(0))
        assert abs(d.net_amount - exact) <= abs(d.quantity) * D("0.0000005") + D(1).scaleb(
            -2 if currency != "JPY" else 0
        )
