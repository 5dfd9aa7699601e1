"""Money rounds to ISO 4217's minor units, whatever the installed CLDR rounds to for display."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cspdesk.core import l10n
from cspdesk.core.money import minor_units, quantize


@pytest.mark.parametrize(
    ("currency", "digits"),
    [("EUR", 2), ("SEK", 2), ("HUF", 2), ("USD", 2), ("GBP", 2), ("JPY", 0), ("KRW", 0), ("COP", 2), ("IDR", 2),
     ("RSD", 2), ("KWD", 3), ("BHD", 3)],
)  # fmt: skip
def test_minor_units_are_iso_4217(currency: str, digits: int) -> None:
    assert minor_units(currency) == digits
    assert quantize(Decimal("1234.56789"), currency).as_tuple().exponent == -digits


def test_amounts_print_with_the_decimals_they_were_rounded_to() -> None:
    assert l10n.money(quantize(Decimal("700510.004"), "HUF"), "HUF", "hu") == "700\xa0510,00\xa0Ft"
    assert l10n.money(quantize(Decimal("12.3456"), "KWD"), "KWD", "en") == "KWD12.346"
    assert l10n.money(quantize(Decimal("279840.4"), "JPY"), "JPY", "en") == "JP¥279,840"
    assert l10n.unit_price(Decimal("0.012345"), "HUF", "hu") == "0,012345\xa0Ft"  # a price keeps its decimals
    assert l10n.unit_price(Decimal("3"), "HUF", "hu") == "3,00\xa0Ft"  # and shows at least the currency's
