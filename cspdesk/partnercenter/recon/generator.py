"""Realistic new-commerce recon files, deterministic by seed: the demo world plus generated customers.

Per partner organisation (direct-bill partner or indirect provider) and billing currency, as Partner
Center issues one invoice per billing currency: an invoice recon file, the billed daily rated usage of
the period (its Azure rows are summarised per meter in the invoice file) and unbilled usage of the
following month. Usage rows are computed and written by DuckDB, so millions of rows take seconds.
"""

# ruff: noqa: S608, S311 - SQL built from literals generated here; seeded test data, not secrets.
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import duckdb

from cspdesk.demo import world

from .layouts import INVOICE_COLUMNS, USAGE_COLUMNS

USD_RATES = {"USD": Decimal("1"), "EUR": Decimal("0.9184"), "SEK": Decimal("10.4512"), "HUF": Decimal("362.85"),
             "GBP": Decimal("0.7921"), "DKK": Decimal("6.8530")}  # fmt: skip

# product id, sku id, availability, name, USD list price per seat and month, category
LICENSES = [
    ("CFQ7TTC0LCHC", "0002", "CFQ7TTC0KJ6Q", "Microsoft 365 Business Premium", Decimal("22.00"), "Microsoft365"),
    ("CFQ7TTC0LFLX", "0001", "CFQ7TTC0J8T3", "Microsoft 365 E3", Decimal("36.00"), "Microsoft365"),
    ("CFQ7TTC0LDPB", "0001", "CFQ7TTC0JMQS", "Microsoft 365 Business Standard", Decimal("12.50"), "Microsoft365"),
    ("CFQ7TTC0LH18", "0001", "CFQ7TTC0K5DW", "Microsoft 365 Business Basic", Decimal("6.00"), "Microsoft365"),
    ("CFQ7TTC0LFK6", "0001", "CFQ7TTC0K1Z5", "Dynamics 365 Sales Enterprise", Decimal("105.00"), "Dynamics365"),
    ("CFQ7TTC0LFLZ", "0002", "CFQ7TTC0KHLR", "Dynamics 365 Business Central Essentials", Decimal("80.00"),
     "Dynamics365"),
    ("CFQ7TTC0LHSF", "0001", "CFQ7TTC0KD0F", "Exchange Online (Plan 1)", Decimal("4.00"), "Microsoft365"),
]  # fmt: skip
AZURE_PLAN = ("DZH318Z0BPS6", "0001", "DZH318Z0BPS6", "Azure plan")

# category, subcategory, name, unit, USD unit price, consumed service
METERS = [
    ("Virtual Machines", "Dv5 Series", "D2s v5", "1 Hour", "0.096", "Microsoft.Compute"),
    ("Virtual Machines", "Dv5 Series", "D4s v5", "1 Hour", "0.192", "Microsoft.Compute"),
    ("Virtual Machines", "Bs Series", "B2ms", "1 Hour", "0.0832", "Microsoft.Compute"),
    ("Virtual Machines", "Ev5 Series", "E8s v5", "1 Hour", "0.504", "Microsoft.Compute"),
    ("Virtual Machines", "Dv5 Series Windows", "D2s v5", "1 Hour", "0.188", "Microsoft.Compute"),
    ("Storage", "Premium SSD Managed Disks", "P10 LRS Disk", "1/Month", "0.0264", "Microsoft.Compute"),
    ("Storage", "Standard SSD Managed Disks", "E10 LRS Disk", "1/Month", "0.0128", "Microsoft.Compute"),
    ("Storage", "General Block Blob v2", "Hot LRS Data Stored", "1 GB/Month", "0.0208", "Microsoft.Storage"),
    ("Storage", "General Block Blob v2", "Cool LRS Data Stored", "1 GB/Month", "0.0152", "Microsoft.Storage"),
    ("Storage", "Tables", "LRS Data Stored", "1 GB/Month", "0.045", "Microsoft.Storage"),
    ("Storage", "Files v2", "Hot LRS Data Stored", "1 GB/Month", "0.0255", "Microsoft.Storage"),
    ("Bandwidth", "Rtn Preference: MGN", "Standard Data Transfer Out", "1 GB", "0.087", "Microsoft.Network"),
    ("Virtual Network", "IP Addresses", "Standard IPv4 Static Public IP", "1 Hour", "0.005", "Microsoft.Network"),
    ("Load Balancer", "Standard", "Standard Data Processed", "1 GB", "0.005", "Microsoft.Network"),
    ("VPN Gateway", "VpnGw1", "VpnGw1", "1 Hour", "0.19", "Microsoft.Network"),
    ("SQL Database", "Single vCore", "vCore", "1 Hour", "0.5044", "Microsoft.Sql"),
    ("SQL Database", "Single Standard", "S1 DTUs", "1/Day", "0.9792", "Microsoft.Sql"),
    ("Azure App Service", "Premium v3 Plan", "P1 v3 App", "1 Hour", "0.169", "Microsoft.Web"),
    ("Azure App Service", "Basic Plan", "B1 App", "1 Hour", "0.075", "Microsoft.Web"),
    ("Azure Monitor", "Log Analytics", "Pay-as-you-go Data Ingestion", "1 GB", "2.76", "Microsoft.OperationalInsights"),
    ("Key Vault", "Standard", "Operations", "10K", "0.03", "Microsoft.KeyVault"),
    ("Azure Cosmos DB", "Serverless", "Request Units", "1M", "0.25", "Microsoft.DocumentDB"),
    ("Backup", "Backup", "Protected Instances", "1/Month", "0.3333", "Microsoft.RecoveryServices"),
    ("Azure Kubernetes Service", "Standard", "Uptime SLA", "1 Hour", "0.10", "Microsoft.ContainerService"),
]  # fmt: skip
RESOURCE_GROUPS = ["rg-web", "rg-data", "rg-shared", "rg-backup", "rg-dev", "rg-analytics", "rg-network", "rg-ai"]
REGIONS = ["westeurope", "northeurope", "swedencentral", "italynorth", "eastus"]


@dataclass(frozen=True)
class GenCustomer:
    key: str
    tenant_id: uuid.UUID
    name: str
    domain: str
    country: str
    currency: str
    partner: str  # the partner organisation whose files carry it (direct-bill partner or provider)
    reseller_mpn: str  # "" for a direct-bill partner's customer
    known: bool  # True when cspdesk's demo world has it


@dataclass(frozen=True)
class GenSubscription:
    customer: GenCustomer
    subscription_id: uuid.UUID
    product: tuple[str, str, str, str]
    price: Decimal
    category: str
    quantity: int
    annual: bool
    azure: bool


def _uuid(*parts: object) -> uuid.UUID:
    return uuid.uuid5(world.NAMESPACE, ":".join(map(str, parts)))


def _partner_of(org_key: str) -> tuple[str, str]:
    spec = next(o for o in world.ORGANISATIONS if o.key == org_key)
    if spec.parent:
        parent = next(o for o in world.ORGANISATIONS if o.key == spec.parent)
        return parent.key, spec.mpn_id
    return spec.key, ""


def customers(n: int, seed: int) -> list[GenCustomer]:
    """The demo world's customers, ``n`` generated ones and three tenants cspdesk does not know."""
    rng = random.Random(seed)
    out: list[GenCustomer] = []
    for c in world.CUSTOMERS:
        partner, mpn = _partner_of(c.org)
        out.append(GenCustomer(c.key, world.customer_tenant_id(c.key), c.name, c.default_domain, c.country,
                               c.currency, partner, mpn, True))  # fmt: skip
    homes = [("nuvola", "IT", "EUR"), ("nuvola", "IE", "EUR"), ("fjall", "SE", "SEK"), ("atlantico", "PT", "EUR"),
             ("nuvola", "US", "USD"), ("fjall", "HU", "HUF")]  # fmt: skip
    words = ["Alba", "Borea", "Cedro", "Delta", "Etna", "Fiordo", "Granit", "Helio", "Iris", "Lago", "Mira", "Norr"]
    kinds = ["Logistica", "Bygg", "Textil", "Foods", "Data", "Clinic", "Legal", "Motors", "Studio", "Energia"]
    for i in range(n + 3):
        org, country, currency = homes[rng.randrange(len(homes))]
        partner, mpn = _partner_of(org)
        name = f"{rng.choice(words)} {rng.choice(kinds)} {i + 1:04d}"
        key = f"gen{i + 1:05d}" if i < n else f"unknown{i - n + 1}"
        out.append(GenCustomer(key, _uuid("gen-customer", seed, key), name, f"{key}.onmicrosoft.com", country,
                               currency, partner, mpn, False))  # fmt: skip
    return out


def subscriptions(custs: list[GenCustomer], seed: int) -> list[GenSubscription]:
    rng = random.Random(seed + 1)
    demo = {s.customer: [] for s in world.SUBSCRIPTIONS}  # type: dict[str, list[world.SubscriptionSpec]]
    for s in world.SUBSCRIPTIONS:
        demo[s.customer].append(s)
    out: list[GenSubscription] = []
    for c in custs:
        if c.known:
            for s in demo.get(c.key, []):
                azure = s.billing_type == "usage"
                lic = next((x for x in LICENSES if x[0] == s.product_id), None)
                product = AZURE_PLAN if azure or lic is None else lic[:4]
                price = Decimal(0) if lic is None else lic[4]
                out.append(GenSubscription(c, s.subscription_id, product, price, s.category, s.quantity,
                                           s.billing_cycle == "annual", azure))  # fmt: skip
            continue
        for lic in rng.sample(LICENSES, rng.randint(1, 3)):
            out.append(GenSubscription(c, _uuid("gen-sub", seed, c.key, lic[0]), lic[:4], lic[4], lic[5],
                                       rng.choice([1, 3, 5, 10, 25, 50, 120]), rng.random() < 0.2, False))  # fmt: skip
        out.append(GenSubscription(c, _uuid("gen-sub", seed, c.key, "azure"), AZURE_PLAN, Decimal(0), "Azure", 1,
                                   False, True))  # fmt: skip
    return out


def _mdy(d: dt.date) -> str:
    return f"{d.month}/{d.day}/{d.year}"


def _floor2(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def _month_end(d: dt.date) -> dt.date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def _license_rows(subs: list[GenSubscription], period: dt.date, invoice: str, currency: str, partner_tenant: str,
                  partner_mpn: str, rng: random.Random) -> list[dict[str, str]]:  # fmt: skip
    """NCE license charges: cycle charges, renewals, new purchases, prorated seat changes, cancellations."""
    rate = USD_RATES[currency]
    end = _month_end(period)
    days = end.day
    rows: list[dict[str, str]] = []
    for s in subs:
        if s.azure:
            continue
        c = s.customer
        unit = _floor2(s.price * rate)

        def row(
            ct: str,
            qty: int,
            amount: Decimal,
            start: dt.date,
            stop: dt.date,
            order: dt.date,
            sub: GenSubscription = s,
            c: GenCustomer = c,
        ) -> None:
            r = {col: "" for col in INVOICE_COLUMNS}
            r.update({
                "PartnerId": partner_tenant, "CustomerId": str(c.tenant_id), "CustomerName": c.name,
                "CustomerDomainName": c.domain, "CustomerCountry": c.country, "InvoiceNumber": invoice,
                "MpnId": partner_mpn, "Tier2MpnId": c.reseller_mpn or "0",
                "OrderId": hashlib.sha1(f"{sub.subscription_id}{ct}{start}".encode()).hexdigest()[:12],  # noqa: S324
                "OrderDate": _mdy(order), "ProductId": sub.product[0], "SkuId": sub.product[1],
                "AvailabilityId": sub.product[2], "SkuName": sub.product[3], "ProductName": sub.product[3],
                "ChargeType": ct, "UnitPrice": f"{sub.price}", "Quantity": str(qty), "Subtotal": f"{amount}",
                "TaxTotal": "0.00", "Total": f"{amount}", "Currency": currency,
                "PriceAdjustmentDescription": "[]", "PublisherName": "Microsoft Corporation", "PublisherId": "",
                "SubscriptionDescription": sub.product[3], "SubscriptionId": str(sub.subscription_id),
                "ChargeStartDate": _mdy(start), "ChargeEndDate": _mdy(stop),
                "TermAndBillingCycle": "One-Year commitment for yearly billing" if sub.annual
                else "One-Year commitment for monthly billing",
                "EffectiveUnitPrice": f"{sub.price}", "UnitType": "", "AlternateId": str(sub.subscription_id)[:12],
                "BillableQuantity": str(qty), "BillingFrequency": "Annual" if sub.annual else "Monthly",
                "PricingCurrency": "USD", "PCToBCExchangeRate": f"{rate}",
                "PCToBCExchangeRateDate": _mdy(period - dt.timedelta(days=1)),
                "SubscriptionStartDate": _mdy(period),
                "SubscriptionEndDate": _mdy(period.replace(year=period.year + 1) - dt.timedelta(days=1)),
                "ReferenceId": str(_uuid("ref", sub.subscription_id, ct)), "ProductQualifiers": "[]",
                "ProductCategory": sub.category,
            })  # fmt: skip
            if ct == "cancel":
                r["CreditReasonCode"] = "Cancellation credit"
            rows.append(r)

        roll = rng.random()
        months = 12 if s.annual else 1
        full = unit * s.quantity * months
        if roll < 0.08:  # bought this month
            start = period + dt.timedelta(days=rng.randrange(days))
            row("new", s.quantity, full, start, end, start)
        elif roll < 0.15 or (s.annual and s.customer.known):  # renewed this month
            row("renew", s.quantity, full, period, end, period)
        elif not s.annual:
            row("cycleCharge", s.quantity, unit * s.quantity, period, end, period)
        if rng.random() < 0.12:  # seats changed mid-month: refund the old quantity, charge the new, prorated
            day = period + dt.timedelta(days=rng.randrange(1, days))
            remaining = Decimal(days - day.day + 1) / Decimal(days)
            delta = rng.choice([-2, -1, 1, 2, 5])
            new_q = max(1, s.quantity + delta)
            ct = "addQuantity" if new_q > s.quantity else "removeQuantity"
            row(ct, s.quantity, -_floor2(unit * remaining) * s.quantity, day, end, day)
            row(ct, new_q, _floor2(unit * remaining) * new_q, day, end, day)
        if rng.random() < 0.02:  # cancelled within the window: full credit
            day = period + dt.timedelta(days=rng.randrange(days))
            row("cancel", s.quantity, -(unit * s.quantity), day, end, day)
    return rows


def _usage_select(groups_table: str, rows: int, seed: int, start: dt.date, days: int, invoice: str,
                  partner_tenant: str, partner_name: str, partner_mpn: str, currency: str) -> str:  # fmt: skip
    """SQL producing ``rows`` daily usage rows in the exact column order, spread over the series."""
    rate = USD_RATES[currency]
    charge_end = _month_end(start)
    inv = f"'{invoice}'" if invoice else "NULL"
    cols = {
        "PartnerId": f"'{partner_tenant}'", "PartnerName": f"'{partner_name}'", "CustomerId": "s.tenant",
        "CustomerName": "s.cname", "CustomerDomainName": "s.domain", "CustomerCountry": "s.country",
        "MpnId": f"'{partner_mpn}'", "Tier2MpnId": "s.reseller", "InvoiceNumber": inv,
        "ProductId": f"'{AZURE_PLAN[0]}'", "SkuId": f"'{AZURE_PLAN[1]}'", "AvailabilityId": f"'{AZURE_PLAN[2]}'",
        "SkuName": "'Azure plan'", "ProductName": "'Azure plan'", "PublisherName": "'Microsoft'",
        "PublisherId": "NULL", "SubscriptionDescription": "'Azure plan'", "SubscriptionId": "s.sub",
        "ChargeStartDate": f"'{_mdy(start.replace(day=1))}'", "ChargeEndDate": f"'{_mdy(charge_end)}'",
        "UsageDate": f"strftime(DATE '{start}' + CAST(r.i // s.n_series % {days} AS INTEGER), '%-m/%-d/%Y')",
        "MeterType": "s.mname", "MeterCategory": "s.mcat", "MeterId": "s.meter", "MeterSubCategory": "s.msub",
        "MeterName": "s.mname", "MeterRegion": "s.region", "Unit": "s.unit", "ResourceLocation": "s.region",
        "ConsumedService": "s.service", "ResourceGroup": "s.rg",
        "ResourceURI": "'/subscriptions/' || s.entitlement || '/resourceGroups/' || s.rg || '/providers/' || "
                       "s.service || '/res-' || CAST(r.i % 7 AS VARCHAR)",
        "ChargeType": "'new'", "UnitPrice": "CAST(s.price AS VARCHAR)", "Quantity": "CAST(q AS VARCHAR)",
        "UnitType": "s.unit",
        "BillingPreTaxTotal": f"CAST(floor(s.eprice * q * {rate} * 100) * 0.01 AS DECIMAL(18,2))",
        "BillingCurrency": f"'{currency}'", "PricingPreTaxTotal": "CAST(round(s.eprice * q, 6) AS DECIMAL(18,6))",
        "PricingCurrency": "'USD'", "ServiceInfo1": "NULL", "ServiceInfo2": "NULL",
        "Tags": "'{\"env\":\"' || s.env || '\",\"costcenter\":\"cc-' || s.rg || '\"}'",
        "AdditionalInfo": "'{\"ImageType\":null,\"ServiceType\":\"Standard\"}'",
        "EffectiveUnitPrice": "CAST(s.eprice AS VARCHAR)", "PCToBCExchangeRate": f"'{rate}'",
        "PCToBCExchangeRateDate": f"'{_mdy(start.replace(day=1) - dt.timedelta(days=1))}'",
        "EntitlementId": "s.entitlement", "EntitlementDescription": "s.entitlement_name",
        "PartnerEarnedCreditPercentage": "CAST(s.pec AS VARCHAR)", "CreditPercentage": "'0'",
        "CreditType": "CASE WHEN s.pec > 0 THEN 'Partner Earned Credit' END", "BenefitOrderId": "NULL",
        "BenefitId": "NULL", "BenefitType": "NULL",
    }  # fmt: skip
    select = ",\n".join(f'{expr} AS "{name}"' for name, expr in ((c, cols[c]) for c in USAGE_COLUMNS))
    return f"""
        SELECT {select} FROM (
            SELECT i, i % (SELECT max(n_series) FROM {groups_table}) AS k,
                   CAST(hash(i, {seed}) % 2000000 AS DECIMAL(18,6)) * 0.00001 + 0.01 AS q
            FROM range({rows}) t(i)) r
        JOIN {groups_table} s ON s.k = r.k
        ORDER BY r.i"""


_SERIES_COLS = ("k", "n_series", "tenant", "cname", "domain", "country", "reseller", "sub", "entitlement",
                "entitlement_name", "meter", "mcat", "msub", "mname", "unit", "price", "eprice", "service", "region",
                "rg", "env", "pec")  # fmt: skip


def _series(subs: list[GenSubscription], seed: int) -> list[tuple[object, ...]]:
    """Usage series: customer × Azure subscription × meter × resource group, with list and effective price."""
    rng = random.Random(seed + 2)
    out: list[tuple[object, ...]] = []
    for s in subs:
        if not s.azure:
            continue
        c = s.customer
        for e in range(rng.randint(1, 2)):
            entitlement = _uuid("entitlement", s.subscription_id, e)
            pec = rng.random() < 0.35
            region = rng.choice(REGIONS)
            for rg in rng.sample(RESOURCE_GROUPS, rng.randint(2, 4)):
                for m in rng.sample(METERS, rng.randint(3, 8)):
                    price = Decimal(m[4])
                    eprice = (price * Decimal("0.85")).quantize(Decimal("0.000001")) if pec else price
                    out.append((0, 0, str(c.tenant_id), c.name, c.domain, c.country, c.reseller_mpn,
                                str(s.subscription_id), str(entitlement), f"{c.name} production" if e == 0
                                else f"{c.name} dev/test", str(_uuid("meter", m[0], m[1], m[2])), m[0], m[1], m[2],
                                m[3], price, eprice, m[5], region, rg, "prod" if e == 0 else "dev",
                                15 if pec else 0))  # fmt: skip
    n = len(out)
    return [(i, n, *row[2:]) for i, row in enumerate(out)]


_NULL = "\\N"


def _insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[Any], scratch: Path) -> None:
    """Append Python rows to a DuckDB table through a scratch CSV file (``None`` is NULL, ``""`` stays empty).

    DuckDB's ``executemany`` inserts one row per call, which took minutes for a few thousand rows; reading a
    file is one statement whatever the row count.
    """

    def cell(value: object) -> str:
        return _NULL if value is None else '"' + str(value).replace('"', '""') + '"'

    described = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table]
    ).fetchall()
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in described) + "}"
    try:
        with scratch.open("w", encoding="utf-8", newline="") as fh:
            for row in rows:
                fh.write(",".join(cell(v) for v in row) + "\n")
        con.execute(
            f"""INSERT INTO {table} SELECT * FROM read_csv('{scratch.as_posix()}', header=false, auto_detect=false,
                columns={columns}, delim=',', quote='"', escape='"', nullstr='{_NULL}', strict_mode=true)"""
        )
    finally:
        scratch.unlink(missing_ok=True)


def write_usage(con: duckdb.DuckDBPyConnection, path: Path, series: list[tuple[object, ...]], rows: int, seed: int,
                start: dt.date, days: int, invoice: str, partner_key: str, currency: str) -> None:  # fmt: skip
    """Write one daily rated usage file of exactly ``rows`` rows."""
    spec = next(o for o in world.ORGANISATIONS if o.key == partner_key)
    con.execute("DROP TABLE IF EXISTS series")
    con.execute("CREATE TABLE series (k INTEGER, n_series INTEGER, tenant VARCHAR, cname VARCHAR, domain VARCHAR, "
                "country VARCHAR, reseller VARCHAR, sub VARCHAR, entitlement VARCHAR, entitlement_name VARCHAR, "
                "meter VARCHAR, mcat VARCHAR, msub VARCHAR, mname VARCHAR, unit VARCHAR, price DECIMAL(18,6), "
                "eprice DECIMAL(18,6), service VARCHAR, region VARCHAR, rg VARCHAR, env VARCHAR, "
                "pec INTEGER)")  # fmt: skip
    _insert_rows(con, "series", series, path.with_suffix(".series.tmp"))
    sql = _usage_select("series", rows, seed, start, days, invoice, str(world.partner_tenant_id(partner_key)),
                        spec.legal_name.replace("'", "''"), spec.mpn_id, currency)  # fmt: skip
    con.execute(f"COPY ({sql}) TO '{path.as_posix()}' (FORMAT csv, HEADER true)")


def generate(out: Path, period: str, n_customers: int, usage_rows: int, seed: int) -> list[Path]:
    """Write every file for ``period`` (YYYY-MM) under ``out``; returns their paths."""
    start = dt.date.fromisoformat(period + "-01")
    out.mkdir(parents=True, exist_ok=True)
    custs = customers(n_customers, seed)
    subs = subscriptions(custs, seed)
    groups: dict[tuple[str, str], list[GenSubscription]] = {}
    for s in subs:
        groups.setdefault((s.customer.partner, s.customer.currency), []).append(s)
    all_series = {key: _series(g, seed + i) for i, (key, g) in enumerate(sorted(groups.items()))}
    total_series = sum(len(v) for v in all_series.values()) or 1
    keys = sorted(groups)
    shares = {k: usage_rows * len(all_series[k]) // total_series for k in keys}
    if keys:
        shares[max(keys, key=lambda k: len(all_series[k]))] += usage_rows - sum(shares.values())
    rng = random.Random(seed + 3)
    con = duckdb.connect()
    con.execute("SET memory_limit = '1GB'")
    con.execute("SET enable_progress_bar = false")  # a command's output is its own
    paths: list[Path] = []
    next_month = _month_end(start) + dt.timedelta(days=1)
    for partner, currency in keys:
        spec = next(o for o in world.ORGANISATIONS if o.key == partner)
        invoice = "G" + str(int(hashlib.sha256(f"{seed}{partner}{currency}{period}".encode()).hexdigest(), 16))[:9]
        series = all_series[(partner, currency)]
        stem = f"{partner}-{currency.lower()}"
        billed = out / f"{stem}-usage-billed-{invoice}.csv"
        unbilled = out / f"{stem}-usage-unbilled-{next_month:%Y-%m}.csv"
        if series:
            write_usage(con, billed, series, shares[(partner, currency)], seed, start, _month_end(start).day,
                        invoice, partner, currency)  # fmt: skip
            write_usage(con, unbilled, series, max(1, shares[(partner, currency)] // 10), seed + 7, next_month,
                        10, "", partner, currency)  # fmt: skip
            paths += [billed, unbilled]
        tenant = str(world.partner_tenant_id(partner))
        lic = _license_rows(groups[(partner, currency)], start, invoice, currency, tenant, spec.mpn_id, rng)
        paths.append(_write_invoice(con, out / f"{stem}-invoice-{invoice}.csv", lic,
                                    billed if series else None, start, currency))  # fmt: skip
    con.close()
    return paths


def _write_invoice(con: duckdb.DuckDBPyConnection, path: Path, license_rows: list[dict[str, str]],
                   billed: Path | None, period: dt.date, currency: str) -> Path:  # fmt: skip
    """License rows plus the billed Azure usage summarised per customer × subscription × meter."""
    con.execute("DROP TABLE IF EXISTS inv")
    con.execute("CREATE TABLE inv (" + ", ".join(f'"{c}" VARCHAR' for c in INVOICE_COLUMNS) + ")")
    if license_rows:
        _insert_rows(con, "inv", [[r[c] or None for c in INVOICE_COLUMNS] for r in license_rows],
                     path.with_suffix(".rows.tmp"))  # fmt: skip
    if billed is not None:
        end = _month_end(period)
        summary = {
            "PartnerId": "any_value(PartnerId)", "CustomerId": "CustomerId", "CustomerName": "any_value(CustomerName)",
            "CustomerDomainName": "any_value(CustomerDomainName)", "CustomerCountry": "any_value(CustomerCountry)",
            "InvoiceNumber": "any_value(InvoiceNumber)", "MpnId": "any_value(MpnId)",
            "Tier2MpnId": "coalesce(any_value(Tier2MpnId), '0')", "OrderId": "NULL",
            "OrderDate": f"'{_mdy(end)}'", "ProductId": "any_value(ProductId)", "SkuId": "any_value(SkuId)",
            "AvailabilityId": "any_value(AvailabilityId)", "SkuName": "'Azure plan'", "ProductName": "'Azure plan'",
            "ChargeType": "'new'", "UnitPrice": "CAST(any_value(UnitPrice) AS VARCHAR)",
            "Quantity": "CAST(sum(CAST(Quantity AS DECIMAL(38,6))) AS VARCHAR)",
            "Subtotal": "CAST(sum(CAST(BillingPreTaxTotal AS DECIMAL(38,2))) AS VARCHAR)", "TaxTotal": "'0.00'",
            "Total": "CAST(sum(CAST(BillingPreTaxTotal AS DECIMAL(38,2))) AS VARCHAR)", "Currency": f"'{currency}'",
            "PriceAdjustmentDescription": "CASE WHEN max(CAST(PartnerEarnedCreditPercentage AS INTEGER)) > 0 THEN "
            "'[\"15.0% Partner earned credit for services managed\"]' ELSE '[]' END",
            "PublisherName": "'Microsoft'", "PublisherId": "NULL", "SubscriptionDescription": "'Azure plan'",
            "SubscriptionId": "SubscriptionId", "ChargeStartDate": "any_value(ChargeStartDate)",
            "ChargeEndDate": "any_value(ChargeEndDate)", "TermAndBillingCycle": "'Azure plan consumption'",
            "EffectiveUnitPrice": "CAST(any_value(EffectiveUnitPrice) AS VARCHAR)", "UnitType": "any_value(Unit)",
            "AlternateId": "NULL", "BillableQuantity": "CAST(sum(CAST(Quantity AS DECIMAL(38,6))) AS VARCHAR)",
            "BillingFrequency": "'Monthly'", "PricingCurrency": "'USD'",
            "PCToBCExchangeRate": "any_value(PCToBCExchangeRate)",
            "PCToBCExchangeRateDate": "any_value(PCToBCExchangeRateDate)",
            "MeterDescription": "any_value(MeterCategory) || ' - ' || any_value(MeterName)",
            "ReservationOrderId": "NULL", "CreditReasonCode": "NULL", "SubscriptionStartDate": "NULL",
            "SubscriptionEndDate": "NULL", "ReferenceId": "NULL", "ProductQualifiers": "'[]'", "PromotionId": "NULL",
            "ProductCategory": "'Azure'",
        }  # fmt: skip
        select = ", ".join(f"{summary[c]}" for c in INVOICE_COLUMNS)
        con.execute(f"""INSERT INTO inv SELECT {select}
                        FROM read_csv('{billed.as_posix()}', all_varchar=true, header=true)
                        GROUP BY CustomerId, SubscriptionId, MeterId ORDER BY CustomerId, SubscriptionId, MeterId""")
    con.execute(f"COPY inv TO '{path.as_posix()}' (FORMAT csv, HEADER true)")
    return path
