"""Money as ``Decimal`` with ISO 4217 minor units. Never ``float``."""

from __future__ import annotations

import decimal
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from babel.numbers import get_currency_precision, list_currencies

_KNOWN = frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in _KNOWN


# ISO 4217's minor units where CLDR's display digits (what Babel reports) differ or have changed between
# releases (Babel 2.19 moved COP, HUF and IDR to 0 and RSD to 2): amounts follow ISO, never a library upgrade.
_ISO_MINOR_UNITS: Final = {"COP": 2, "HUF": 2, "IDR": 2, "RSD": 2}


def minor_units(currency: str) -> int:
    """Digits after the decimal point for ``currency`` (EUR 2, HUF 2, JPY 0), as ISO 4217 counts them."""
    if currency in _ISO_MINOR_UNITS:
        return _ISO_MINOR_UNITS[currency]
    return int(get_currency_precision(currency))


def quantize(amount: Decimal, currency: str, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Round ``amount`` to the currency's minor unit with a named rounding mode."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    exp = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exp, rounding=rounding)


def parse_decimal(text: str) -> Decimal:
    """Parse a plain decimal string ('1234.5', '-0.01'); raises ValueError on anything else."""
    try:
        value = Decimal(text.strip())
    except (decimal.InvalidOperation, AttributeError) as exc:
        raise ValueError(f"not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite decimal number: {text!r}")
    return value
