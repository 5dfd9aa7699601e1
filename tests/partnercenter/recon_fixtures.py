"""Small recon files for tests: rows with sensible defaults, written as CSV, CSV+BOM, gzip or zip."""

from __future__ import annotations

import csv
import gzip
import io
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cspdesk.demo import world
from cspdesk.partnercenter.recon.layouts import INVOICE_COLUMNS, USAGE_COLUMNS

NUVOLA = str(world.partner_tenant_id("nuvola"))
NORDMOLN = str(world.partner_tenant_id("nordmoln"))
BELLAVISTA = str(world.customer_tenant_id("bellavista"))
LIFFEY = str(world.customer_tenant_id("liffey"))
ANGSTROM = str(world.customer_tenant_id("angstrom"))
UNKNOWN = "0f1e2d3c-4b5a-4968-8776-655443322110"
SUB = "11111111-2222-4333-8444-555555555555"
METER = "9d8c7b6a-5f4e-4d3c-8b2a-19087f6e5d4c"


def invoice_row(**over: Any) -> dict[str, str]:
    row = {c: "" for c in INVOICE_COLUMNS}
    row.update({
        "PartnerId": NUVOLA, "CustomerId": BELLAVISTA, "CustomerName": "Trattoria Bellavista S.r.l.",
        "CustomerDomainName": "bellavista.onmicrosoft.com", "CustomerCountry": "IT", "InvoiceNumber": "G000000001",
        "MpnId": "5012345", "Tier2MpnId": "0", "OrderId": "ord1", "OrderDate": "10/1/2026",
        "ProductId": "CFQ7TTC0LCHC", "SkuId": "0002", "AvailabilityId": "CFQ7TTC0KJ6Q",
        "SkuName": "Microsoft 365 Business Premium", "ProductName": "Microsoft 365 Business Premium",
        "ChargeType": "new", "UnitPrice": "22.00", "Quantity": "1", "Subtotal": "20.24", "TaxTotal": "4.45",
        "Total": "24.69", "Currency": "EUR", "PublisherName": "Microsoft Corporation",
        "SubscriptionDescription": "Microsoft 365 Business Premium", "SubscriptionId": SUB,
        "ChargeStartDate": "10/1/2026", "ChargeEndDate": "10/31/2026",
        "TermAndBillingCycle": "One-Year commitment for monthly/yearly billing", "EffectiveUnitPrice": "22.00",
        "BillableQuantity": "1", "BillingFrequency": "Monthly", "PricingCurrency": "USD",
        "PCToBCExchangeRate": "0.92", "PCToBCExchangeRateDate": "9/30/2026", "ProductCategory": "Microsoft365",
    })  # fmt: skip
    row.update({k: str(v) for k, v in over.items()})
    return row


def usage_row(**over: Any) -> dict[str, str]:
    row = {c: "" for c in USAGE_COLUMNS}
    row.update({
        "PartnerId": NUVOLA, "PartnerName": "Nuvola Informatica S.r.l.", "CustomerId": BELLAVISTA,
        "CustomerName": "Trattoria Bellavista S.r.l.", "CustomerCountry": "IT", "MpnId": "5012345",
        "Tier2MpnId": "", "InvoiceNumber": "G000000001", "ProductId": "DZH318Z0BPS6", "SkuId": "0001",
        "SkuName": "Azure plan", "ProductName": "Azure plan", "PublisherName": "Microsoft",
        "SubscriptionId": SUB, "ChargeStartDate": "2026-10-01", "ChargeEndDate": "2026-10-31",
        "UsageDate": "2026-10-05", "MeterCategory": "Virtual Machines", "MeterId": METER,
        "MeterName": "D2s v5", "ResourceGroup": "rg-web", "ChargeType": "new", "UnitPrice": "0.10",
        "Quantity": "24", "BillingPreTaxTotal": "2.20", "BillingCurrency": "EUR", "PricingPreTaxTotal": "2.40",
        "PricingCurrency": "USD", "EffectiveUnitPrice": "0.10", "PCToBCExchangeRate": "0.92",
        "PCToBCExchangeRateDate": "2026-09-30", "EntitlementId": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
        "PartnerEarnedCreditPercentage": "0", "CreditPercentage": "0",
    })  # fmt: skip
    row.update({k: str(v) for k, v in over.items()})
    return row


def csv_text(rows: Iterable[dict[str, str]], columns: Iterable[str] | None = None) -> str:
    rows = list(rows)
    cols = list(columns) if columns is not None else list(rows[0])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r.get(c, "") for c in cols])
    return buf.getvalue()


def write(
    path: Path,
    rows: Iterable[dict[str, str]],
    *,
    columns: Iterable[str] | None = None,
    bom: bool = False,
    fmt: str = "csv",
) -> Path:
    """Write ``rows`` as ``fmt`` (csv, gz or zip) and return the path."""
    data = (("\ufeff" if bom else "") + csv_text(rows, columns)).encode("utf-8")
    if fmt == "gz":
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    elif fmt == "zip":
        path = path.with_suffix(".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.with_suffix(".csv").name, data)
    else:
        path.write_bytes(data)
    return path


def new_guid(n: int) -> str:
    return str(uuid.UUID(int=n))
