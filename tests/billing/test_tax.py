from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from cspdesk.billing.tax import (
    EU_MEMBER_STATES,
    OUT_OF_SCOPE_NOTE,
    REVERSE_CHARGE_NOTE,
    STANDARD_RATES,
    VATEX_OUT_OF_SCOPE,
    VATEX_REVERSE_CHARGE,
    RateTable,
    UnsupportedTaxCase,
    VatCategory,
    VatTreatment,
    determine_vat,
    is_valid_eu_vat_number,
    vat_number_country,
)

ON = date(2026, 10, 31)


@pytest.mark.parametrize(
    ("country", "rate"),
    [
        ("IT", "22"),
        ("SE", "25"),
        ("PT", "23"),
        ("HU", "27"),
        ("IE", "23"),
        ("DE", "19"),
        ("FR", "20"),
        ("ES", "21"),
        ("NL", "21"),
        ("FI", "25.5"),
        ("EE", "24"),
        ("RO", "21"),
        ("SK", "23"),
    ],
)
def test_standard_rates_2026(country: str, rate: str) -> None:
    assert STANDARD_RATES.standard_rate(country, ON) == Decimal(rate)


def test_rate_table_covers_every_member_state() -> None:
    assert STANDARD_RATES.countries() == EU_MEMBER_STATES
    assert len(EU_MEMBER_STATES) == 27


@pytest.mark.parametrize(
    ("country", "day", "rate"),
    [
        ("FI", date(2024, 8, 31), "24"),
        ("FI", date(2024, 9, 1), "25.5"),
        ("EE", date(2025, 6, 30), "22"),
        ("EE", date(2025, 7, 1), "24"),
        ("RO", date(2025, 7, 31), "19"),
        ("RO", date(2025, 8, 1), "21"),
        ("SK", date(2024, 12, 31), "20"),
        ("SK", date(2025, 1, 1), "23"),
    ],
)
def test_rate_in_force_on_the_tax_point(country: str, day: date, rate: str) -> None:
    assert STANDARD_RATES.standard_rate(country, day) == Decimal(rate)


def test_rate_table_is_configurable_without_changing_the_default() -> None:
    changed = STANDARD_RATES.with_rate("DE", date(2027, 1, 1), "21")
    assert changed.standard_rate("DE", date(2026, 12, 31)) == Decimal(19)
    assert changed.standard_rate("DE", date(2027, 1, 1)) == Decimal(21)
    assert STANDARD_RATES.standard_rate("DE", date(2027, 1, 1)) == Decimal(19)
    custom = RateTable({"it": [(date(2020, 1, 1), "22")]})
    assert custom.standard_rate("IT", ON) == Decimal(22)


def test_rate_table_errors_name_the_country_and_date() -> None:
    with pytest.raises(UnsupportedTaxCase, match="'US'"):
        STANDARD_RATES.standard_rate("US", ON)
    with pytest.raises(UnsupportedTaxCase, match="IT in force on 2019-12-31"):
        RateTable({"IT": [(date(2020, 1, 1), "22")]}).standard_rate("IT", date(2019, 12, 31))
    with pytest.raises(ValueError, match="not a percentage"):
        RateTable({"IT": [(date(2020, 1, 1), "122")]})


@pytest.mark.parametrize(
    ("vat_id", "country"),
    [
        ("IT00743110157", "IT"),
        ("SE556703748501", "SE"),
        ("PT501964843", "PT"),
        ("HU12892312", "HU"),
        ("DE 136 695 976", "DE"),
        ("FR40303265045", "FR"),
        ("IE6388047V", "IE"),
        ("ESB58378431", "ES"),
        ("NL004495445B01", "NL"),
        ("EL094259216", "GR"),
    ],
)
def test_valid_vat_numbers(vat_id: str, country: str) -> None:
    assert vat_number_country(vat_id) == country


@pytest.mark.parametrize(
    "vat_id",
    [
        "",
        "IT00743110158",
        "SE556703748502",
        "PT501964842",
        "HU12892313",
        "DE136695977",
        "XX123456789",
        "GB980780684",
        "not a vat number",
    ],
    ids=[
        "empty",
        "IT-check-digit",
        "SE-check-digit",
        "PT-check-digit",
        "HU-check-digit",
        "DE-check-digit",
        "unknown-prefix",
        "GB-not-EU",
        "garbage",
    ],
)
def test_invalid_vat_numbers(vat_id: str) -> None:
    assert vat_number_country(vat_id) is None
    assert not is_valid_eu_vat_number(vat_id)


def test_northern_ireland_xi_numbers_do_not_count_for_services() -> None:
    # XI numbers identify Northern Ireland traders for goods only.
    assert vat_number_country("XI980780684") is None


@pytest.mark.parametrize("buyer_vat_id", ["IT01000000016", ""], ids=["business", "consumer"])
def test_domestic_customer_pays_the_sellers_rate(buyer_vat_id: str) -> None:
    vat = determine_vat(seller_country="IT", buyer_country="IT", buyer_vat_id=buyer_vat_id, language="it", on=ON)
    assert vat == VatTreatment(VatCategory.STANDARD, Decimal(22))


@pytest.mark.parametrize(
    ("language", "note"),
    [
        ("en", "Reverse charge – Article 196 of Council Directive 2006/112/EC"),
        ("it", "Inversione contabile – articolo 196 della direttiva 2006/112/CE del Consiglio"),
        ("sv", "Omvänd betalningsskyldighet – artikel 196 i rådets direktiv 2006/112/EG"),
        ("pt-PT", "Autoliquidação – artigo 196.º da Diretiva 2006/112/CE do Conselho"),
        ("hu", "Fordított adózás – a Tanács 2006/112/EK irányelvének 196. cikke"),
    ],
)
def test_intra_eu_business_is_reverse_charged_with_the_note_in_its_language(language: str, note: str) -> None:
    vat = determine_vat(seller_country="IT", buyer_country="PT", buyer_vat_id="PT501964843", language=language, on=ON)
    assert vat == VatTreatment(VatCategory.REVERSE_CHARGE, Decimal(0), VATEX_REVERSE_CHARGE, note)


def test_greek_business_with_el_prefix_is_reverse_charged() -> None:
    vat = determine_vat(seller_country="SE", buyer_country="GR", buyer_vat_id="EL094259216", language="en", on=ON)
    assert vat.category is VatCategory.REVERSE_CHARGE


@pytest.mark.parametrize(
    ("buyer_vat_id", "why"),
    [
        ("", "consumer (no VAT number)"),
        ("PT501964842", "wrong check digit"),
        ("IT01000000016", "VAT number of the seller's own member state"),
    ],
)
def test_eu_customer_without_a_valid_foreign_vat_number_pays_the_sellers_rate(buyer_vat_id: str, why: str) -> None:
    vat = determine_vat(seller_country="IT", buyer_country="PT", buyer_vat_id=buyer_vat_id, language="pt-pt", on=ON)
    assert vat == VatTreatment(VatCategory.STANDARD, Decimal(22)), why


@pytest.mark.parametrize("buyer_country", ["US", "JP", "CH", "NO", "GB"])
@pytest.mark.parametrize("language", ["en", "it", "sv", "pt-pt", "hu"])
def test_customer_outside_the_eu_is_out_of_scope_with_the_reason(buyer_country: str, language: str) -> None:
    vat = determine_vat(seller_country="HU", buyer_country=buyer_country, buyer_vat_id="", language=language, on=ON)
    assert vat == VatTreatment(VatCategory.OUT_OF_SCOPE, Decimal(0), VATEX_OUT_OF_SCOPE, OUT_OF_SCOPE_NOTE[language])
    assert "2006/112/" in vat.exemption_reason


def test_out_of_scope_notes_state_the_reason() -> None:
    assert OUT_OF_SCOPE_NOTE["en"] == (
        "Not subject to VAT – place of supply outside the EU (Articles 44 and 59 of Council Directive 2006/112/EC)"
    )
    assert set(OUT_OF_SCOPE_NOTE) == set(REVERSE_CHARGE_NOTE) == {"en", "it", "sv", "pt-pt", "hu"}


def test_seller_outside_the_eu_is_refused() -> None:
    with pytest.raises(UnsupportedTaxCase, match="'GB' is not an EU member state"):
        determine_vat(seller_country="GB", buyer_country="GB", buyer_vat_id="", language="en", on=ON)


def test_unsupported_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported language 'de'"):
        determine_vat(seller_country="IT", buyer_country="IT", buyer_vat_id="", language="de", on=ON)


def test_categories_and_their_meanings() -> None:
    assert [c.value for c in VatCategory] == ["S", "Z", "E", "AE", "K", "G", "O"]
    assert VatCategory.REVERSE_CHARGE.meaning == "VAT reverse charge"
    assert VatCategory.OUT_OF_SCOPE.meaning == "Services outside scope of tax"
    assert not VatCategory.OUT_OF_SCOPE.has_rate
    assert all(c.has_rate for c in VatCategory if c is not VatCategory.OUT_OF_SCOPE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((VatCategory.STANDARD, Decimal(0)), "rate above 0"),
        ((VatCategory.STANDARD, Decimal(22), "VATEX-EU-AE"), "takes no exemption reason"),
        ((VatCategory.REVERSE_CHARGE, Decimal(22), VATEX_REVERSE_CHARGE), "has rate 0"),
        ((VatCategory.REVERSE_CHARGE, Decimal(0)), "needs an exemption reason"),
        ((VatCategory.OUT_OF_SCOPE, Decimal(0)), "needs an exemption reason"),
    ],
    ids=["S-zero-rate", "S-with-reason", "AE-with-rate", "AE-without-reason", "O-without-reason"],
)
def test_inconsistent_treatments_are_refused(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VatTreatment(*args)  # type: ignore[arg-type]
