"""The column sets of Partner Center's new-commerce recon files, and header detection.

Column names are matched case-insensitively; ``ResellerMpnId`` (Microsoft's docs) and ``Tier2MpnId``
(downloaded files) are the same column, held as ``Tier2MpnId``. Columns are read by name, not position.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cspdesk.core.errors import ValidationFailed


class Kind(StrEnum):
    INVOICE = "invoice"
    USAGE_BILLED = "usage_billed"
    USAGE_UNBILLED = "usage_unbilled"


INVOICE_COLUMNS: tuple[str, ...] = (
    "PartnerId", "CustomerId", "CustomerName", "CustomerDomainName", "CustomerCountry", "InvoiceNumber",
    "MpnId", "Tier2MpnId", "OrderId", "OrderDate", "ProductId", "SkuId", "AvailabilityId", "SkuName",
    "ProductName", "ChargeType", "UnitPrice", "Quantity", "Subtotal", "TaxTotal", "Total", "Currency",
    "PriceAdjustmentDescription", "PublisherName", "PublisherId", "SubscriptionDescription", "SubscriptionId",
    "ChargeStartDate", "ChargeEndDate", "TermAndBillingCycle", "EffectiveUnitPrice", "UnitType", "AlternateId",
    "BillableQuantity", "BillingFrequency", "PricingCurrency", "PCToBCExchangeRate", "PCToBCExchangeRateDate",
    "MeterDescription", "ReservationOrderId", "CreditReasonCode", "SubscriptionStartDate", "SubscriptionEndDate",
    "ReferenceId", "ProductQualifiers", "PromotionId", "ProductCategory",
)  # fmt: skip

USAGE_COLUMNS: tuple[str, ...] = (
    "PartnerId", "PartnerName", "CustomerId", "CustomerName", "CustomerDomainName", "CustomerCountry", "MpnId",
    "Tier2MpnId", "InvoiceNumber", "ProductId", "SkuId", "AvailabilityId", "SkuName", "ProductName",
    "PublisherName", "PublisherId", "SubscriptionDescription", "SubscriptionId", "ChargeStartDate",
    "ChargeEndDate", "UsageDate", "MeterType", "MeterCategory", "MeterId", "MeterSubCategory", "MeterName",
    "MeterRegion", "Unit", "ResourceLocation", "ConsumedService", "ResourceGroup", "ResourceURI", "ChargeType",
    "UnitPrice", "Quantity", "UnitType", "BillingPreTaxTotal", "BillingCurrency", "PricingPreTaxTotal",
    "PricingCurrency", "ServiceInfo1", "ServiceInfo2", "Tags", "AdditionalInfo", "EffectiveUnitPrice",
    "PCToBCExchangeRate", "PCToBCExchangeRateDate", "EntitlementId", "EntitlementDescription",
    "PartnerEarnedCreditPercentage", "CreditPercentage", "CreditType", "BenefitOrderId", "BenefitId",
    "BenefitType",
)  # fmt: skip

ALIASES = {"resellermpnid": "Tier2MpnId"}

# Charge types Microsoft documents or that real files show; anything else is kept and reported.
KNOWN_CHARGE_TYPES: dict[str, str] = {
    v.lower(): v
    for v in (
        "new", "renew", "cycleCharge", "addQuantity", "removeQuantity", "cancel", "convert",
        "cancelImmediate", "customerCredit", "usage", "purchase", "refund",
    )
}  # fmt: skip


@dataclass(frozen=True)
class Layout:
    """One file layout: its columns and which of them older files may lack."""

    name: str
    columns: tuple[str, ...]
    optional: frozenset[str]
    guid: tuple[str, ...]  # required GUIDs
    optional_guid: tuple[str, ...]
    dates: tuple[str, ...]  # required dates
    optional_dates: tuple[str, ...]
    decimals: tuple[str, ...]  # required decimals
    optional_decimals: tuple[str, ...]
    currency: str  # billing currency column
    pricing_currency: str
    cost: str  # cost in billing currency (pre-tax): the conserved amount
    quantity: str
    meter: bool

    def by_key(self) -> dict[str, str]:
        return {c.lower(): c for c in self.columns}


INVOICE = Layout(
    name="invoice",
    columns=INVOICE_COLUMNS,
    optional=frozenset({"ProductCategory"}),
    guid=("PartnerId", "CustomerId", "SubscriptionId"),
    optional_guid=("ReferenceId",),
    dates=("OrderDate", "ChargeStartDate", "ChargeEndDate"),
    optional_dates=("PCToBCExchangeRateDate", "SubscriptionStartDate", "SubscriptionEndDate"),
    decimals=("Subtotal", "BillableQuantity"),
    optional_decimals=("UnitPrice", "Quantity", "TaxTotal", "Total", "EffectiveUnitPrice", "PCToBCExchangeRate"),
    currency="Currency",
    pricing_currency="PricingCurrency",
    cost="Subtotal",
    quantity="BillableQuantity",
    meter=False,
)

USAGE = Layout(
    name="usage",
    columns=USAGE_COLUMNS,
    optional=frozenset({"BenefitOrderId", "BenefitId", "BenefitType"}),
    guid=("PartnerId", "CustomerId", "SubscriptionId"),
    optional_guid=("MeterId", "EntitlementId"),
    dates=("ChargeStartDate", "ChargeEndDate", "UsageDate"),
    optional_dates=("PCToBCExchangeRateDate",),
    decimals=("BillingPreTaxTotal", "Quantity"),
    optional_decimals=(
        "UnitPrice",
        "PricingPreTaxTotal",
        "EffectiveUnitPrice",
        "PCToBCExchangeRate",
        "PartnerEarnedCreditPercentage",
        "CreditPercentage",
    ),
    currency="BillingCurrency",
    pricing_currency="PricingCurrency",
    cost="BillingPreTaxTotal",
    quantity="Quantity",
    meter=True,
)

LAYOUTS = (INVOICE, USAGE)


@dataclass(frozen=True)
class Detected:
    layout: Layout
    columns: tuple[str, ...]  # canonical names in file order
    missing_optional: tuple[str, ...]


class UnknownHeader(ValidationFailed):
    code = "unknown_header"


def _key(name: str) -> str:
    key = name.replace("\ufeff", "").strip().strip('"').strip().lower()
    return ALIASES.get(key, key).lower()


def detect(header: list[str]) -> Detected:
    """The layout whose columns the header names, or :class:`UnknownHeader` listing the differences."""
    keys = [_key(h) for h in header]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise UnknownHeader(f"the header names these columns more than once: {', '.join(dupes)}", field="header")
    best: tuple[int, Layout, list[str], list[str]] | None = None
    for layout in LAYOUTS:
        known = layout.by_key()
        required = {k for k, c in known.items() if c not in layout.optional}
        missing = [known[k] for k in known if k in required and k not in keys]
        unexpected = [h for h, k in zip(header, keys, strict=True) if k not in known]
        if not missing and not unexpected:
            canonical = tuple(known[k] for k in keys)
            absent = tuple(c for c in layout.columns if c.lower() not in keys)
            return Detected(layout, canonical, absent)
        score = len(missing) + len(unexpected)
        if best is None or score < best[0]:
            best = (score, layout, missing, unexpected)
    assert best is not None
    _, layout, missing, unexpected = best
    parts = [f"the header matches no known recon layout (closest: {layout.name})"]
    if missing:
        parts.append(f"missing columns: {', '.join(missing)}")
    if unexpected:
        parts.append(f"unexpected columns: {', '.join(unexpected)}")
    raise UnknownHeader("; ".join(parts), field="header")
