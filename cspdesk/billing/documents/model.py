"""A finished billing document (invoice or credit note) as plain, immutable data.

The renderers (:mod:`.ubl`, :mod:`.pdf`) read only this model; the billing runs
build it from the database. Constructing a :class:`Document` checks it and
computes its totals and VAT breakdown (:func:`compute_totals`), so a document
that exists is arithmetically consistent.

Money rules (EN 16931, and the project's invariant 4):

* every amount is a ``Decimal`` in the document currency, quantized to the
  currency's minor unit with :func:`cspdesk.core.money.quantize` (half-up);
* a line's net amount is ``quantity × unit price`` rounded once (BT-131);
  the unit price keeps its own precision;
* the VAT breakdown has one entry per (category, rate): its taxable amount is
  the exact sum of its lines' net amounts (BR-S-08, BR-AE-08, BR-O-08, …) and its
  VAT amount is ``taxable × rate / 100`` rounded to the minor unit (BR-CO-17;
  two decimals for EUR, SEK, HUF, none for JPY, which has no fractional unit);
* the totals are exact sums, never re-rounded (BR-CO-10 … BR-CO-16).

Credit notes carry positive amounts, like the invoice they correct; the kind
says which way the money goes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from cspdesk.core.l10n import normalize_language
from cspdesk.core.money import is_currency, quantize

from ..tax import VatCategory, VatTreatment


class DocumentKind(enum.StrEnum):
    """UNTDID 1001 document type codes (BT-3)."""

    INVOICE = "380"
    CREDIT_NOTE = "381"


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2
    additional_street: str = ""
    region: str = ""

    def __post_init__(self) -> None:
        if len(self.country) != 2 or not self.country.isalpha() or not self.country.isupper():
            raise ValueError(f"address country must be ISO 3166-1 alpha-2 in capitals, got {self.country!r}")


@dataclass(frozen=True)
class Party:
    """Seller (BG-4) or buyer (BG-7)."""

    name: str
    address: Address
    vat_id: str = ""  # with its country prefix (BT-31 / BT-48)
    registration_id: str = ""  # company registration number (BT-30 / BT-47)
    email: str = ""  # organisation or billing contact e-mail
    endpoint_scheme: str = ""  # Peppol electronic address (BT-34 / BT-49), EAS code
    endpoint_id: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a party needs a name")
        if bool(self.endpoint_scheme) != bool(self.endpoint_id):
            raise ValueError("an electronic address needs both its scheme and its identifier")

    @property
    def country(self) -> str:
        return self.address.country


@dataclass(frozen=True)
class BankAccount:
    iban: str
    bic: str = ""
    account_name: str = ""


@dataclass(frozen=True)
class ExchangeRate:
    """The conversion used to price the document: 1 ``source_currency`` = ``rate`` document currency."""

    source_currency: str
    rate: Decimal
    rate_date: date
    provider: str = ""  # e.g. "ECB" or "Microsoft reconciliation file"

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal) or self.rate <= 0:
            raise ValueError("an exchange rate is a positive Decimal")
        if not is_currency(self.source_currency):
            raise ValueError(f"{self.source_currency!r} is not an ISO 4217 currency")


@dataclass(frozen=True)
class PrecedingInvoice:
    """The invoice a credit note corrects (BG-3)."""

    number: str
    issue_date: date


@dataclass(frozen=True)
class Line:
    """One document line (BG-25)."""

    id: str
    description: str
    group: str  # service / subscription the line belongs to; the PDF groups by it
    quantity: Decimal
    unit_price: Decimal  # net price per unit, without VAT (BT-146); never negative (BR-27)
    net_amount: Decimal  # quantity × unit price, rounded to the minor unit (BT-131)
    vat: VatTreatment
    unit_code: str = "C62"  # UN/ECE Rec. 20: C62 one, MON month, HUR hour, DAY day
    period_start: date | None = None
    period_end: date | None = None
    reference: str = ""  # "explain this charge": where the amount came from
    item_id: str = ""  # seller's item id (SKU)

    def __post_init__(self) -> None:
        if not self.id.strip() or not self.description.strip():
            raise ValueError("a line needs an id and a description")
        for name in ("quantity", "unit_price", "net_amount"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"line {self.id}: {name} must be Decimal")
        if self.unit_price < 0:
            raise ValueError(f"line {self.id}: the unit price cannot be negative (BR-27)")
        if (self.period_start is None) != (self.period_end is None):
            raise ValueError(f"line {self.id}: a period needs both its start and its end")
        if self.period_start and self.period_end and self.period_end < self.period_start:
            raise ValueError(f"line {self.id}: the period ends before it starts (BR-30)")


def line_net_amount(quantity: Decimal, unit_price: Decimal, currency: str) -> Decimal:
    """BT-131: quantity × unit price, rounded half-up to the currency's minor unit."""
    return quantize(quantity * unit_price, currency)


@dataclass(frozen=True)
class VatBreakdown:
    """One VAT breakdown entry (BG-23), per category and rate."""

    category: VatCategory
    rate: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal
    exemption_code: str = ""
    exemption_reason: str = ""


@dataclass(frozen=True)
class Totals:
    """Document totals (BG-22) and the VAT breakdown (BG-23)."""

    line_extension: Decimal  # BT-106 sum of line net amounts
    tax_exclusive: Decimal  # BT-109 (no document-level allowances or charges)
    tax_total: Decimal  # BT-110
    tax_inclusive: Decimal  # BT-112
    payable: Decimal  # BT-115 (nothing prepaid, no rounding amount)
    vat_breakdown: tuple[VatBreakdown, ...]


_CATEGORY_ORDER = {c: i for i, c in enumerate(VatCategory)}


def compute_totals(lines: Iterable[Line], currency: str) -> Totals:
    """Totals and VAT breakdown from the lines, as EN 16931 requires (see the module docstring)."""
    groups: dict[tuple[VatCategory, Decimal], list[Line]] = {}
    line_sum = Decimal(0)
    for line in lines:
        line_sum += line.net_amount
        groups.setdefault((line.vat.category, line.vat.rate), []).append(line)
    breakdown = []
    for (category, rate), members in sorted(groups.items(), key=lambda kv: (_CATEGORY_ORDER[kv[0][0]], kv[0][1])):
        reasons = {(m.vat.exemption_code, m.vat.exemption_reason) for m in members}
        if len(reasons) > 1:
            raise ValueError(
                f"lines of VAT category {category.value} at {rate}% disagree on the exemption reason: {sorted(reasons)}"
            )
        ((code, reason),) = reasons
        taxable = sum((m.net_amount for m in members), Decimal(0))
        tax = quantize(taxable * rate / Decimal(100), currency)
        breakdown.append(VatBreakdown(category, rate, taxable, tax, code, reason))
    tax_total = sum((b.tax_amount for b in breakdown), Decimal(0))
    line_sum = quantize(line_sum, currency)  # exact already; fixes the exponent of an empty sum
    tax_total = quantize(tax_total, currency)
    return Totals(
        line_extension=line_sum,
        tax_exclusive=line_sum,
        tax_total=tax_total,
        tax_inclusive=line_sum + tax_total,
        payable=line_sum + tax_total,
        vat_breakdown=tuple(breakdown),
    )


@dataclass(frozen=True)
class Document:
    """An invoice or a credit note, finished: numbered, dated, priced and taxed."""

    kind: DocumentKind
    number: str
    issue_date: date
    currency: str
    language: str  # en, it, sv, pt-pt, hu
    seller: Party
    buyer: Party
    lines: tuple[Line, ...]
    due_date: date | None = None
    payment_terms: str = ""
    bank: BankAccount | None = None
    portal_url: str = ""
    policy_url: str = ""  # the seller's published collections policy for this buyer (reminders, suspension)
    exchange_rate: ExchangeRate | None = None
    preceding_invoice: PrecedingInvoice | None = None
    buyer_reference: str = ""  # the customer's own reference (BT-10); defaults to the number in UBL
    note: str = ""
    totals: Totals = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", normalize_language(self.language))
        object.__setattr__(self, "lines", tuple(self.lines))
        if not self.number.strip():
            raise ValueError("a document needs a number")
        if not is_currency(self.currency):
            raise ValueError(f"{self.currency!r} is not an ISO 4217 currency")
        if not self.lines:
            raise ValueError(f"document {self.number} has no lines")
        ids = [line.id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError(f"document {self.number}: line ids repeat")
        for line in self.lines:
            expected = line_net_amount(line.quantity, line.unit_price, self.currency)
            if line.net_amount != expected or line.net_amount.as_tuple().exponent != expected.as_tuple().exponent:
                raise ValueError(
                    f"document {self.number} line {line.id}: net amount {line.net_amount} is not "
                    f"{line.quantity} × {line.unit_price} rounded to {self.currency} ({expected})"
                )
        if self.due_date is not None and self.due_date < self.issue_date:
            raise ValueError(f"document {self.number}: due date before issue date")
        if self.kind is DocumentKind.CREDIT_NOTE and self.preceding_invoice is None:
            raise ValueError(f"credit note {self.number} must reference the invoice it corrects")
        if self.kind is DocumentKind.INVOICE and self.preceding_invoice is not None:
            raise ValueError(f"invoice {self.number} cannot reference a preceding invoice; issue a credit note")
        object.__setattr__(self, "totals", compute_totals(self.lines, self.currency))

    @property
    def is_credit_note(self) -> bool:
        return self.kind is DocumentKind.CREDIT_NOTE

    @property
    def period(self) -> tuple[date, date] | None:
        """The invoicing period (BG-14): from the earliest line start to the latest line end."""
        starts = [line.period_start for line in self.lines if line.period_start is not None]
        ends = [line.period_end for line in self.lines if line.period_end is not None]
        if not starts or not ends:
            return None
        return min(starts), max(ends)

    def groups(self) -> list[tuple[str, tuple[Line, ...]]]:
        """Lines grouped by service/subscription, groups in order of first appearance."""
        grouped: dict[str, list[Line]] = {}
        for line in self.lines:
            grouped.setdefault(line.group, []).append(line)
        return [(key, tuple(members)) for key, members in grouped.items()]

    def notes(self) -> tuple[str, ...]:
        """Distinct legal VAT notes of the document (reverse charge, out of scope), in breakdown order."""
        seen: list[str] = []
        for entry in self.totals.vat_breakdown:
            if entry.exemption_reason and entry.exemption_reason not in seen:
                seen.append(entry.exemption_reason)
        return tuple(seen)
