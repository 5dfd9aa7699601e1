from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from cspdesk.billing.documents import labels
from cspdesk.billing.documents.model import ExchangeRate
from cspdesk.billing.tax import VatCategory
from cspdesk.core import l10n
from cspdesk.core.l10n import LANGUAGES, normalize_language

NBSP = "\xa0"


def test_every_language_has_every_label_and_category_name() -> None:
    keys = set(labels.LABELS["en"])
    for language in LANGUAGES:
        assert set(labels.LABELS[language]) == keys, language
        assert set(labels.CATEGORY_NAMES[language]) == set(VatCategory), language
        assert all(text.strip() for text in labels.LABELS[language].values()), language


@pytest.mark.parametrize(
    ("language", "amount", "currency", "expected"),
    [
        ("it", "1234.56", "EUR", f"1.234,56{NBSP}€"),
        ("sv", "1234.56", "SEK", f"1{NBSP}234,56{NBSP}kr"),
        ("pt-pt", "1234.56", "EUR", f"1234,56{NBSP}€"),
        ("pt-pt", "12345.67", "EUR", f"12{NBSP}345,67{NBSP}€"),
        ("hu", "1234.56", "HUF", f"1{NBSP}234,56{NBSP}Ft"),
        ("en", "1234.56", "EUR", "€1,234.56"),
        ("en", "279840", "JPY", "JP¥279,840"),
        ("hu", "-1234.56", "HUF", f"-1{NBSP}234,56{NBSP}Ft"),
    ],
    ids=[
        "it-EUR",
        "sv-SEK",
        "pt-EUR-4-digits-ungrouped",
        "pt-EUR-5-digits-grouped",
        "hu-HUF",
        "en-EUR",
        "en-JPY",
        "hu-negative",
    ],
)
def test_money_in_local_format(language: str, amount: str, currency: str, expected: str) -> None:
    assert l10n.money(Decimal(amount), currency, language) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "3 Nov 2026"),
        ("it", "3 nov 2026"),
        ("sv", "3 nov. 2026"),
        ("pt-pt", "03/11/2026"),
        ("hu", "2026. nov. 3."),
    ],
)
def test_dates_in_local_format(language: str, expected: str) -> None:
    assert l10n.day(date(2026, 11, 3), language) == expected


@pytest.mark.parametrize(
    ("language", "quantity", "rate", "price"),
    [
        ("en", "1,250.5", "25.5%", "€0.1133"),
        ("it", "1.250,5", "25,5%", f"0,1133{NBSP}€"),
        ("sv", f"1{NBSP}250,5", f"25,5{NBSP}%", f"0,1133{NBSP}€"),
        ("pt-pt", "1250,5", "25,5%", f"0,1133{NBSP}€"),
        ("hu", f"1{NBSP}250,5", "25,5%", f"0,1133{NBSP}EUR"),
    ],
)
def test_numbers_rates_and_unit_prices_keep_their_decimals(language: str, quantity: str, rate: str, price: str) -> None:
    assert l10n.number(Decimal("1250.5"), language) == quantity
    assert l10n.number(Decimal("25.000"), language) == "25"
    assert l10n.percent(Decimal("25.5"), language) == rate
    assert l10n.unit_price(Decimal("0.1133"), "EUR", language) == price


def test_exchange_rate_sentence() -> None:
    rate = ExchangeRate("USD", Decimal("0.9187"), date(2026, 10, 31), "ECB")
    assert labels.exchange_rate_sentence(rate, "EUR", "en") == "Exchange rate: 1 USD = 0.9187 EUR on 31 Oct 2026 (ECB)"
    assert labels.exchange_rate_sentence(rate, "EUR", "pt-PT") == (
        "Taxa de câmbio: 1 USD = 0,9187 EUR em 31/10/2026 (ECB)"
    )


@pytest.mark.parametrize("code", ["pt-PT", "pt_PT", "PT-pt", " pt-pt "])
def test_language_codes_are_normalised(code: str) -> None:
    assert normalize_language(code) == "pt-pt"


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported language 'fr'"):
        labels.label("invoice", "fr")
