from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cspdesk.billing.documents.model import (
    Document,
    DocumentKind,
    Line,
    PrecedingInvoice,
    VatBreakdown,
    compute_totals,
    line_net_amount,
)
from cspdesk.billing.tax import VATEX_OUT_OF_SCOPE, VATEX_REVERSE_CHARGE, VatCategory, VatTreatment
from cspdesk.core.money import quantize

from . import fixtures

S22 = VatTreatment(VatCategory.STANDARD, Decimal(22))
S10 = VatTreatment(VatCategory.STANDARD, Decimal(10))
AE = VatTreatment(VatCategory.REVERSE_CHARGE, Decimal(0), VATEX_REVERSE_CHARGE, "Reverse charge")
O = VatTreatment(VatCategory.OUT_OF_SCOPE, Decimal(0), VATEX_OUT_OF_SCOPE, "Not subject to VAT")  # noqa: E741


def test_domestic_invoice_totals_by_hand() -> None:
    doc = fixtures.domestic_it()
    # 25 × 19.80 = 495.00; 3 × 9.58 = 28.74; 744 × 0.1133 = 84.2952 → 84.30;
    # 1250.5 × 0.0184 = 23.0092 → 23.01; 1 × 1234.56 = 1234.56.
    assert [line.net_amount for line in doc.lines] == [
        Decimal("495.00"),
        Decimal("28.74"),
        Decimal("84.30"),
        Decimal("23.01"),
        Decimal("1234.56"),
    ]
    t = doc.totals
    assert t.line_extension == Decimal("1865.61")
    assert t.tax_exclusive == Decimal("1865.61")
    assert t.vat_breakdown == (VatBreakdown(VatCategory.STANDARD, Decimal(22), Decimal("1865.61"), Decimal("410.43")),)
    assert t.tax_total == Decimal("410.43")  # 1865.61 × 0.22 = 410.4342
    assert t.tax_inclusive == t.payable == Decimal("2276.04")


def test_jpy_has_no_minor_unit() -> None:
    doc = fixtures.out_of_scope_jpy()
    assert all(line.net_amount.as_tuple().exponent == 0 for line in doc.lines)
    assert doc.totals.payable == Decimal("279840")
    assert str(doc.totals.payable) == "279840"


def test_vat_breakdown_per_category_and_rate_rounds_once_per_category() -> None:
    # Three lines at 22 % whose VAT rounded per line would be 0.02 + 0.02 + 0.02 = 0.06;
    # per category it is 0.21 × 0.22 = 0.0462 → 0.05 (BR-CO-17).
    lines = [_line(str(i), "1", "0.07", S22) for i in range(3)]
    lines += [_line("x", "2", "5.00", S10), _line("y", "1", "3.00", AE)]
    totals = compute_totals(lines, "EUR")
    assert totals.vat_breakdown == (
        VatBreakdown(VatCategory.STANDARD, Decimal(10), Decimal("10.00"), Decimal("1.00")),
        VatBreakdown(VatCategory.STANDARD, Decimal(22), Decimal("0.21"), Decimal("0.05")),
        VatBreakdown(
            VatCategory.REVERSE_CHARGE,
            Decimal(0),
            Decimal("3.00"),
            Decimal("0.00"),
            VATEX_REVERSE_CHARGE,
            "Reverse charge",
        ),
    )
    assert totals.tax_total == Decimal("1.05")
    assert totals.payable == Decimal("14.26")


def test_lines_of_one_category_must_agree_on_the_exemption_reason() -> None:
    other = dataclasses.replace(AE, exemption_reason="Reverse charge (other wording)")
    with pytest.raises(ValueError, match="disagree on the exemption reason"):
        compute_totals([_line("1", "1", "1.00", AE), _line("2", "1", "1.00", other)], "EUR")


def _line(line_id: str, qty: str, price: str, vat: VatTreatment, currency: str = "EUR") -> Line:
    quantity, unit_price = Decimal(qty), Decimal(price)
    return Line(
        line_id, f"item {line_id}", "group", quantity, unit_price, line_net_amount(quantity, unit_price, currency), vat
    )


CURRENCIES = ["EUR", "SEK", "HUF", "JPY", "USD"]
TREATMENTS = [
    S22,
    S10,
    VatTreatment(VatCategory.STANDARD, Decimal("25.5")),
    VatTreatment(VatCategory.STANDARD, Decimal(27)),
    AE,
    O,
]


@st.composite
def priced_lines(draw: st.DrawFn) -> tuple[str, list[Line]]:
    currency = draw(st.sampled_from(CURRENCIES))
    count = draw(st.integers(min_value=1, max_value=25))
    lines = []
    for i in range(count):
        quantity = draw(
            st.decimals(
                min_value=Decimal("-500"), max_value=Decimal("100000"), places=4, allow_nan=False, allow_infinity=False
            )
        )
        price = draw(
            st.decimals(
                min_value=Decimal(0), max_value=Decimal("50000"), places=6, allow_nan=False, allow_infinity=False
            )
        )
        vat = draw(st.sampled_from(TREATMENTS))
        lines.append(
            Line(
                str(i), f"item {i}", f"group {i % 3}", quantity, price, line_net_amount(quantity, price, currency), vat
            )
        )
    return currency, lines


@settings(max_examples=300, deadline=None)
@given(priced_lines())
def test_totals_are_exact_sums_of_the_lines(case: tuple[str, list[Line]]) -> None:
    currency, lines = case
    totals = compute_totals(lines, currency)
    line_sum = sum((line.net_amount for line in lines), Decimal(0))
    # BR-CO-10, BR-CO-13 (no document allowances or charges)
    assert totals.line_extension == line_sum
    assert totals.tax_exclusive == totals.line_extension
    # BR-CO-14, BR-CO-15, BR-CO-16 (nothing prepaid)
    assert totals.tax_total == sum((b.tax_amount for b in totals.vat_breakdown), Decimal(0))
    assert totals.tax_inclusive == totals.tax_exclusive + totals.tax_total
    assert totals.payable == totals.tax_inclusive
    # One breakdown entry per (category, rate); taxable = exact line sum; VAT = taxable × rate rounded once.
    keys = {(line.vat.category, line.vat.rate) for line in lines}
    assert {(b.category, b.rate) for b in totals.vat_breakdown} == keys
    assert len(totals.vat_breakdown) == len(keys)
    for entry in totals.vat_breakdown:
        members = [line for line in lines if (line.vat.category, line.vat.rate) == (entry.category, entry.rate)]
        assert entry.taxable_amount == sum((m.net_amount for m in members), Decimal(0))
        assert entry.tax_amount == quantize(entry.taxable_amount * entry.rate / 100, currency)
        if entry.category is not VatCategory.STANDARD:
            assert entry.tax_amount == 0
    # Every amount sits on the currency's minor unit.
    exponent = quantize(Decimal(0), currency).as_tuple().exponent
    for amount in (
        totals.line_extension,
        totals.tax_total,
        totals.payable,
        *(b.taxable_amount for b in totals.vat_breakdown),
        *(b.tax_amount for b in totals.vat_breakdown),
    ):
        assert amount.as_tuple().exponent == exponent


@settings(max_examples=100, deadline=None)
@given(priced_lines())
def test_documents_from_random_lines_carry_the_same_totals(case: tuple[str, list[Line]]) -> None:
    currency, lines = case
    if any(line.vat.category is VatCategory.OUT_OF_SCOPE for line in lines):
        lines = [dataclasses.replace(line, vat=O) for line in lines]
    doc = Document(
        DocumentKind.INVOICE,
        "INV-1",
        date(2026, 11, 3),
        currency,
        "en",
        fixtures.SELLER_IT,
        fixtures.BUYER_PT,
        tuple(lines),
    )
    assert doc.totals == compute_totals(lines, currency)


def _doc(**changes: object) -> Document:
    base = fixtures.domestic_it()
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init}
    fields.update(changes)
    return Document(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lines": ()}, "has no lines"),
        ({"currency": "XYZ"}, "not an ISO 4217 currency"),
        ({"language": "de"}, "unsupported language"),
        ({"due_date": date(2026, 11, 2)}, "due date before issue date"),
        ({"kind": DocumentKind.CREDIT_NOTE}, "must reference the invoice it corrects"),
        ({"preceding_invoice": PrecedingInvoice("INV-1", date(2026, 1, 1))}, "cannot reference a preceding invoice"),
    ],
    ids=[
        "no-lines",
        "currency",
        "language",
        "due-before-issue",
        "credit-note-without-invoice",
        "invoice-with-preceding",
    ],
)
def test_inconsistent_documents_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _doc(**changes)


def test_line_net_amount_must_be_quantity_times_price_rounded() -> None:
    good = fixtures.domestic_it().lines
    wrong = dataclasses.replace(good[0], net_amount=Decimal("495.01"))
    with pytest.raises(ValueError, match=r"line 1: net amount 495.01 is not 25 × 19.80 rounded to EUR \(495.00\)"):
        _doc(lines=(wrong, *good[1:]))
    unquantized = dataclasses.replace(good[0], net_amount=Decimal("495"))
    with pytest.raises(ValueError, match="net amount 495 is not"):
        _doc(lines=(unquantized, *good[1:]))
    with pytest.raises(ValueError, match="line ids repeat"):
        _doc(lines=(good[0], good[0]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"unit_price": Decimal("-1")}, "cannot be negative"),
        ({"quantity": 1.5}, "quantity must be Decimal"),
        ({"period_end": None}, "needs both its start and its end"),
        ({"period_end": date(2026, 9, 30)}, "ends before it starts"),
    ],
)
def test_inconsistent_lines_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        dataclasses.replace(fixtures.domestic_it().lines[0], **changes)


def test_groups_keep_first_appearance_order_and_period_spans_the_lines() -> None:
    doc = fixtures.domestic_it()
    assert [(key, [line.id for line in members]) for key, members in doc.groups()] == [
        (fixtures.M365, ["1", "2"]),
        (fixtures.AZURE, ["3", "4"]),
        (fixtures.SUPPORT, ["5"]),
    ]
    assert doc.period == (date(2026, 10, 1), date(2026, 10, 31))


def test_language_is_normalised() -> None:
    assert _doc(language="pt-PT").language == "pt-pt"
    assert _doc(language="pt_PT").language == "pt-pt"


def test_notes_list_each_legal_note_once() -> None:
    assert fixtures.reverse_charge_pt().notes() == (
        "Autoliquidação – artigo 196.º da Diretiva 2006/112/CE do Conselho",
    )
    assert fixtures.domestic_it().notes() == ()


def test_documents_are_immutable() -> None:
    doc = fixtures.domestic_it()
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.number = "X"  # type: ignore[misc]
