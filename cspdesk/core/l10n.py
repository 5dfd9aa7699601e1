"""Local formats for the five languages cspdesk speaks: numbers, money and dates through Babel.

English uses Irish English (an EU English: day-month-year dates, the euro sign before the amount).
"""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Final

from babel import Locale
from babel.dates import format_date
from babel.numbers import NumberPattern, format_currency, format_decimal, format_percent

from cspdesk.core.money import minor_units

# Same codes as ``tenancy.models.Locale`` (Django's lower-case language codes).
LANGUAGES: Final = ("en", "it", "sv", "pt-pt", "hu")

_BABEL_LOCALE: Final = {"en": "en_IE", "it": "it_IT", "sv": "sv_SE", "pt-pt": "pt_PT", "hu": "hu_HU"}


def normalize_language(code: str) -> str:
    """``'pt-PT'``, ``'pt_PT'`` and ``'pt-pt'`` are one language; raise ``ValueError`` for others."""
    value = (code or "").strip().lower().replace("_", "-")
    if value not in LANGUAGES:
        raise ValueError(f"unsupported language {code!r}; expected one of {', '.join(LANGUAGES)}")
    return value


def babel_locale(code: str) -> str:
    return _BABEL_LOCALE[normalize_language(code)]


# CLDR's minimumGroupingDigits, which Babel does not apply: Portuguese writes 1234,56 but 12 345,67.
_MIN_GROUPING_DIGITS: Final = {"pt-pt": 2}


def _grouped(value: Decimal, language: str) -> bool:
    digits = len(str(abs(int(value))))
    return digits >= 3 + _MIN_GROUPING_DIGITS.get(language, 1)


@lru_cache(maxsize=64)
def _currency_pattern(language: str, digits: int, exact: bool) -> NumberPattern:
    """The locale's currency pattern showing the currency's minor units as cspdesk counts them
    (:func:`cspdesk.core.money.minor_units`, ISO 4217), not as the installed CLDR rounds them for display:
    an amount on an invoice is printed with the decimals it was rounded to (HUF 1 234,56 Ft, JPY 279 840)."""
    pattern = copy.copy(Locale.parse(_BABEL_LOCALE[language]).currency_formats["standard"])
    pattern.frac_prec = (digits, digits if exact else max(digits, 10))
    return pattern


def money(amount: Decimal, currency: str, language: str) -> str:
    """``1.234,56 €`` (it), ``1 234,56 kr`` (sv), ``1234,56 €`` (pt-PT), ``1 234,56 Ft`` (hu), ``€1,234.56`` (en)."""
    lang = normalize_language(language)
    return format_currency(amount, currency, format=_currency_pattern(lang, minor_units(currency), True),
                           locale=babel_locale(lang), currency_digits=False,
                           group_separator=_grouped(amount, lang))  # fmt: skip


def number(value: Decimal, language: str) -> str:
    """A quantity, price or rate with all its significant decimals, in local format."""
    lang = normalize_language(language)
    value = value.normalize() if value == value.to_integral_value() else value
    return format_decimal(
        value, locale=babel_locale(lang), decimal_quantization=False, group_separator=_grouped(value, lang)
    )


def unit_price(value: Decimal, currency: str, language: str) -> str:
    """A unit price: at least the currency's decimals, more when the price has them."""
    lang = normalize_language(language)
    return format_currency(value, currency, format=_currency_pattern(lang, minor_units(currency), False),
                           locale=babel_locale(lang), currency_digits=False, decimal_quantization=False,
                           group_separator=_grouped(value, lang))  # fmt: skip


def percent(rate: Decimal, language: str) -> str:
    """A VAT rate given in percent (22, 25.5) as ``22 %`` / ``25,5%`` in local style."""
    return format_percent(rate / Decimal(100), locale=babel_locale(language), decimal_quantization=False)


def day(value: date, language: str) -> str:
    """A date in the language's medium format: ``31 Oct 2026``, ``31 ott 2026``, ``2026. okt. 31.``."""
    return format_date(value, format="medium", locale=babel_locale(language))
