"""VAT determination for the partner's invoices, in EN 16931 terms.

Pure functions and data: no database. The decision for one customer is a
:class:`VatTreatment` (EN 16931 VAT category, rate, exemption reason code and
the legal note printed on the invoice in the customer's language).

The rules (``determine_vat``), for a seller established in an EU member state
selling cloud services (Microsoft CSP subscriptions, Azure, support):

1. Customer in the seller's own country → **S**, the seller's domestic standard
   rate, whether or not the customer has a VAT number.
2. Customer in another member state with a VAT number that is valid (format and
   check digits, python-stdnum) and issued by a member state other than the
   seller's → **AE**, reverse charge, rate 0, exemption reason ``VATEX-EU-AE``
   and the note "Reverse charge – Article 196 of Council Directive 2006/112/EC"
   in the customer's language (place of supply: the customer's country, Art. 44).
3. Customer in another member state without a valid VAT number (a consumer, or a
   business that gave none) → **S** at the *seller's* domestic rate. This is a
   deliberate simplification: B2C electronically supplied services are taxable
   where the consumer lives (Art. 58) and are declared through the One-Stop Shop;
   OSS is out of scope for now, so such customers are charged the seller's rate
   and must be reviewed by the billing admin. A syntactically valid number is
   not proof of registration: a VIES lookup is the caller's job.
4. Customer outside the EU → **O**, not subject to VAT: the place of supply of
   these services is outside the EU (Art. 44 for businesses, Art. 59 for
   consumers), with exemption reason ``VATEX-EU-O`` and a note saying so.

The rate table is data (:class:`RateTable`): standard rates per country with the
date each took effect, so a charge is taxed at the rate in force on its tax
point and a partner can configure changes without code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

from cspdesk.core.l10n import normalize_language


class VatCategory(enum.StrEnum):
    """EN 16931 VAT category codes (UNCL5305 subset used by BT-118 / BT-151)."""

    STANDARD = "S"
    ZERO_RATED = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"
    EXPORT = "G"
    OUT_OF_SCOPE = "O"

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]

    @property
    def has_rate(self) -> bool:
        """EN 16931 forbids a VAT rate for category O (BR-O-05) and requires one for the others."""
        return self is not VatCategory.OUT_OF_SCOPE

    @property
    def is_zero_rate(self) -> bool:
        """Categories whose rate must be 0 (BR-Z-05, BR-E-05, BR-AE-05, BR-IC-05, BR-G-05)."""
        return self not in (VatCategory.STANDARD, VatCategory.OUT_OF_SCOPE)


_MEANINGS: Mapping[VatCategory, str] = {
    VatCategory.STANDARD: "Standard rate",
    VatCategory.ZERO_RATED: "Zero rated goods",
    VatCategory.EXEMPT: "Exempt from tax",
    VatCategory.REVERSE_CHARGE: "VAT reverse charge",
    VatCategory.INTRA_COMMUNITY: "VAT exempt for EEA intra-community supply of goods and services",
    VatCategory.EXPORT: "Free export item, VAT not charged",
    VatCategory.OUT_OF_SCOPE: "Services outside scope of tax",
}

# VATEX code list (CEF), the codes this module issues.
VATEX_REVERSE_CHARGE = "VATEX-EU-AE"
VATEX_OUT_OF_SCOPE = "VATEX-EU-O"

# ISO 3166-1 country → member state. Greece's VAT numbers start with EL.
EU_MEMBER_STATES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
_VAT_PREFIX_TO_COUNTRY = {"EL": "GR"}


class UnsupportedTaxCase(ValueError):
    """The seller or the data is outside what this module decides (e.g. a seller outside the EU)."""


@dataclass(frozen=True)
class RateChange:
    effective_from: date
    rate: Decimal


class RateTable:
    """Standard VAT rates per country (ISO 3166-1 alpha-2), each a history of changes.

    Configurable: build one from any mapping ``{country: [(effective_from, rate), ...]}``
    or derive one with :meth:`with_rate`.
    """

    def __init__(self, changes: Mapping[str, Iterable[tuple[date, Decimal | str]]]) -> None:
        table: dict[str, tuple[RateChange, ...]] = {}
        for country, history in changes.items():
            rows = sorted((RateChange(start, Decimal(rate)) for start, rate in history), key=lambda c: c.effective_from)
            if not rows:
                raise ValueError(f"no VAT rate for {country}")
            for row in rows:
                if not (Decimal(0) <= row.rate < Decimal(100)):
                    raise ValueError(f"VAT rate {row.rate} for {country} is not a percentage")
            table[country.upper()] = tuple(rows)
        self._table = table

    def countries(self) -> frozenset[str]:
        return frozenset(self._table)

    def standard_rate(self, country: str, on: date) -> Decimal:
        history = self._table.get(country.upper())
        if history is None:
            raise UnsupportedTaxCase(f"no VAT rate configured for country {country!r}")
        in_force = [c for c in history if c.effective_from <= on]
        if not in_force:
            raise UnsupportedTaxCase(f"no VAT rate for {country} in force on {on.isoformat()}")
        return in_force[-1].rate

    def with_rate(self, country: str, effective_from: date, rate: Decimal | str) -> RateTable:
        """A copy with one more change (a new rate from ``effective_from`` on)."""
        changes: dict[str, list[tuple[date, Decimal | str]]] = {
            c: [(r.effective_from, r.rate) for r in rows] for c, rows in self._table.items()
        }
        changes.setdefault(country.upper(), []).append((effective_from, rate))
        return RateTable(changes)


_ALWAYS = date(2000, 1, 1)

#: Standard rates of the 27 member states as of 2026, with the recent changes that still
#: matter for re-issued or corrected documents (Finland, Slovakia, Estonia, Romania).
STANDARD_RATES = RateTable(
    {
        "AT": [(_ALWAYS, "20")],
        "BE": [(_ALWAYS, "21")],
        "BG": [(_ALWAYS, "20")],
        "CY": [(_ALWAYS, "19")],
        "CZ": [(_ALWAYS, "21")],
        "DE": [(_ALWAYS, "19")],
        "DK": [(_ALWAYS, "25")],
        "EE": [(_ALWAYS, "20"), (date(2024, 1, 1), "22"), (date(2025, 7, 1), "24")],
        "ES": [(_ALWAYS, "21")],
        "FI": [(_ALWAYS, "24"), (date(2024, 9, 1), "25.5")],
        "FR": [(_ALWAYS, "20")],
        "GR": [(_ALWAYS, "24")],
        "HR": [(_ALWAYS, "25")],
        "HU": [(_ALWAYS, "27")],
        "IE": [(_ALWAYS, "23")],
        "IT": [(_ALWAYS, "22")],
        "LT": [(_ALWAYS, "21")],
        "LU": [(_ALWAYS, "17")],
        "LV": [(_ALWAYS, "21")],
        "MT": [(_ALWAYS, "18")],
        "NL": [(_ALWAYS, "21")],
        "PL": [(_ALWAYS, "23")],
        "PT": [(_ALWAYS, "23")],
        "RO": [(_ALWAYS, "19"), (date(2025, 8, 1), "21")],
        "SE": [(_ALWAYS, "25")],
        "SI": [(_ALWAYS, "22")],
        "SK": [(_ALWAYS, "20"), (date(2025, 1, 1), "23")],
    }
)


@dataclass(frozen=True)
class VatTreatment:
    """How one charge is taxed: what a document line and its VAT breakdown carry."""

    category: VatCategory
    rate: Decimal
    exemption_code: str = ""
    exemption_reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal):
            raise TypeError("VAT rate must be Decimal")
        if self.category.is_zero_rate or self.category is VatCategory.OUT_OF_SCOPE:
            if self.rate != 0:
                raise ValueError(f"VAT category {self.category.value} has rate 0, got {self.rate}")
            if not (self.exemption_code or self.exemption_reason) and self.category is not VatCategory.ZERO_RATED:
                raise ValueError(f"VAT category {self.category.value} needs an exemption reason code or text")
        elif self.rate <= 0:
            raise ValueError("standard-rated VAT needs a rate above 0 (BR-S-05)")
        if self.category in (VatCategory.STANDARD, VatCategory.ZERO_RATED) and (
            self.exemption_code or self.exemption_reason
        ):
            raise ValueError(f"VAT category {self.category.value} takes no exemption reason (BR-S-10, BR-Z-10)")


# The legal notes, per language. Reverse charge: the wording Article 226(11a) of the
# Directive requires ("Reverse charge"), in each language's official term, with the article.
REVERSE_CHARGE_NOTE: Mapping[str, str] = {
    "en": "Reverse charge – Article 196 of Council Directive 2006/112/EC",
    "it": "Inversione contabile – articolo 196 della direttiva 2006/112/CE del Consiglio",
    "sv": "Omvänd betalningsskyldighet – artikel 196 i rådets direktiv 2006/112/EG",
    "pt-pt": "Autoliquidação – artigo 196.º da Diretiva 2006/112/CE do Conselho",
    "hu": "Fordított adózás – a Tanács 2006/112/EK irányelvének 196. cikke",
}

OUT_OF_SCOPE_NOTE: Mapping[str, str] = {
    "en": "Not subject to VAT – place of supply outside the EU (Articles 44 and 59 of Council Directive 2006/112/EC)",
    "it": "Operazione non soggetta a IVA – luogo della prestazione fuori dall'Unione europea "
    "(articoli 44 e 59 della direttiva 2006/112/CE del Consiglio)",
    "sv": "Ej föremål för mervärdesskatt – tjänsten tillhandahålls utanför EU "
    "(artiklarna 44 och 59 i rådets direktiv 2006/112/EG)",
    "pt-pt": "Não sujeito a IVA – local da prestação de serviços fora da UE "
    "(artigos 44.º e 59.º da Diretiva 2006/112/CE do Conselho)",
    "hu": "Nem tartozik az áfa hatálya alá – a teljesítés helye az EU-n kívül van "
    "(a Tanács 2006/112/EK irányelvének 44. és 59. cikke)",
}


def vat_number_country(vat_id: str) -> str | None:
    """The member state (ISO 3166-1) of a valid EU VAT number, or ``None`` if it is not one.

    Checks the format and the check digits with python-stdnum; it does not ask VIES.
    Northern Ireland's XI numbers are for goods only and do not count for services.
    """
    text = (vat_id or "").strip()
    if not text:
        return None
    try:
        compact = eu_vat.validate(text)
    except StdnumError:
        return None
    prefix = compact[:2].upper()
    country = _VAT_PREFIX_TO_COUNTRY.get(prefix, prefix)
    return country if country in EU_MEMBER_STATES else None


def is_valid_eu_vat_number(vat_id: str) -> bool:
    return vat_number_country(vat_id) is not None


def determine_vat(
    *,
    seller_country: str,
    buyer_country: str,
    buyer_vat_id: str,
    language: str,
    on: date,
    rates: RateTable = STANDARD_RATES,
) -> VatTreatment:
    """The VAT treatment of the seller's services to one buyer on the tax point ``on``.

    See the module docstring for the rules; ``language`` picks the legal note's language.
    """
    lang = normalize_language(language)
    seller = seller_country.strip().upper()
    buyer = buyer_country.strip().upper()
    if seller not in EU_MEMBER_STATES:
        raise UnsupportedTaxCase(f"seller country {seller!r} is not an EU member state; no VAT rules for it")
    if buyer == seller:
        return VatTreatment(VatCategory.STANDARD, rates.standard_rate(seller, on))
    if buyer not in EU_MEMBER_STATES:
        return VatTreatment(VatCategory.OUT_OF_SCOPE, Decimal(0), VATEX_OUT_OF_SCOPE, OUT_OF_SCOPE_NOTE[lang])
    vat_country = vat_number_country(buyer_vat_id)
    if vat_country is not None and vat_country != seller:
        return VatTreatment(VatCategory.REVERSE_CHARGE, Decimal(0), VATEX_REVERSE_CHARGE, REVERSE_CHARGE_NOTE[lang])
    # EU consumer, or EU business without a valid foreign VAT number: seller's rate (OSS out of scope).
    return VatTreatment(VatCategory.STANDARD, rates.standard_rate(seller, on))
