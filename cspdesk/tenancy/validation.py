"""Field checks shared by the tenancy services (and reused by importers)."""

from __future__ import annotations

import uuid

from babel import Locale as BabelLocale
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum import vatin
from stdnum.exceptions import ValidationError as StdnumError

from cspdesk.core.errors import ValidationFailed
from cspdesk.core.money import is_currency

from .models import Locale

_COUNTRIES = frozenset(BabelLocale("en").territories)


def country(value: str, field: str = "country") -> str:
    code = (value or "").strip().upper()
    if len(code) != 2 or not code.isalpha() or code not in _COUNTRIES:
        raise ValidationFailed(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. IT, SE)", field=field)
    return code


def currency(value: str, field: str = "currency") -> str:
    code = (value or "").strip().upper()
    if not is_currency(code):
        raise ValidationFailed(f"{value!r} is not an ISO 4217 currency code (e.g. EUR, SEK)", field=field)
    return code


def locale(value: str, field: str = "locale") -> str:
    code = (value or "").strip().lower()
    if code not in Locale.values:
        raise ValidationFailed(
            f"{value!r} is not a supported language; expected one of {', '.join(Locale.values)}", field=field
        )
    return code


def tenant_id(value: object, field: str = "tenant_id") -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed(f"{value!r} is not a GUID (Microsoft Entra tenant id)", field=field) from None


def vat_id(value: str, field: str = "vat_id") -> str:
    """An EU VAT number (with country prefix) is checked with python-stdnum; others are kept as written."""
    text = (value or "").strip()
    if not text:
        return ""
    compact = vatin.compact(text)
    prefix = compact[:2].upper()
    if prefix.isalpha() and prefix in {
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "EL",
        "ES",
        "FI",
        "FR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
        "XI",
    }:
        try:
            return vatin.validate(compact)
        except StdnumError as exc:
            raise ValidationFailed(f"{text!r} is not a valid VAT number: {exc}", field=field) from None
    return text


def emails(values: list[str], field: str = "billing_emails") -> list[str]:
    out = []
    for i, raw in enumerate(values):
        addr = (raw or "").strip()
        try:
            validate_email(addr)
        except ValidationError:
            raise ValidationFailed(f"{raw!r} is not an e-mail address", field=f"{field}[{i}]") from None
        out.append(addr)
    return out


def iban(value: str, field: str = "bank_iban") -> str:
    """An IBAN with a valid checksum and country length, stored compact (``IT60X0542811101000000123456``)."""
    text = (value or "").strip()
    if not text:
        return ""
    try:
        return str(stdnum_iban.validate(text))
    except StdnumError as exc:
        raise ValidationFailed(f"{text!r} is not a valid IBAN ({exc})", field=field) from None


def bic(value: str, field: str = "bank_bic") -> str:
    """A SWIFT/BIC code of 8 or 11 characters."""
    text = (value or "").strip()
    if not text:
        return ""
    try:
        return str(stdnum_bic.validate(text))
    except StdnumError as exc:
        raise ValidationFailed(f"{text!r} is not a valid BIC ({exc})", field=field) from None
