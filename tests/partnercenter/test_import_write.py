"""The recon import writes its charge lines and rejected rows below the ORM (``cspdesk.core.bulk``): what it
stores, column by column and (on SQLite) storage class by storage class, is what the former path stored
through model instances and ``bulk_create``; so are the import's figures, summary and audit event."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.db import connection, transaction
from django.db.models import CharField, Model
from django.utils import timezone

from cspdesk.audit.models import AuditEvent
from cspdesk.core import bulk, clock
from cspdesk.core.actor import Actor
from cspdesk.core.models import ScheduledRun
from cspdesk.partnercenter.recon import importer, services
from cspdesk.partnercenter.recon.models import ChargeLine, Import, RejectedRow
from cspdesk.tenancy.models import Customer, Organisation, OrganisationKind
from tests.partnercenter import recon_fixtures as f

SYSTEM = Actor.system("test")
LONG_NAME = "Trattoria Bellavista " + "e" * 230  # CustomerName holds 200 characters
LONG_PRODUCT = "Microsoft 365 " + "x" * 320  # ProductName holds 300


def _org(key: str, kind: str, series: str, tenant: str | None, mpn: str, **kw: Any) -> Organisation:
    return Organisation.objects.create(
        kind=kind, legal_name=key.title(), address_line1="x", city="x", country="IT", pc_tenant_id=tenant,
        mpn_id=mpn, invoice_series=series, billing_currency=kw.pop("currency", "EUR"), **kw,
    )  # fmt: skip


def _customer(org: Organisation, tenant: str) -> Customer:
    return Customer.objects.create(
        organisation=org, tenant_id=tenant, name=tenant[:8], default_domain="x.example", address_line1="x", city="x",
        country="IT", currency=org.billing_currency,
    )  # fmt: skip


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    nuvola = _org("nuvola", OrganisationKind.DIRECT_BILL_PARTNER, "NUV", f.NUVOLA, "5012345")
    nordmoln = _org("nordmoln", OrganisationKind.INDIRECT_PROVIDER, "NMD", f.NORDMOLN, "6023456", currency="SEK")
    fjall = _org("fjall", OrganisationKind.INDIRECT_RESELLER, "FJS", None, "6134567", parent=nordmoln, currency="SEK")
    return {"nuvola": nuvola, "bellavista": _customer(nuvola, f.BELLAVISTA), "liffey": _customer(nuvola, f.LIFFEY),
            "angstrom": _customer(fjall, f.ANGSTROM)}  # fmt: skip


# --- the former path, kept here as the reference -------------------------------------------------------------


def _former_insert_lines(staging: importer.Staging, imp: Import, matcher: Any) -> tuple[Decimal, int]:
    sizes = {
        fld.name: fld.max_length
        for fld in ChargeLine._meta.get_fields()
        if isinstance(fld, CharField) and fld.max_length and fld.name in importer.CHARGE_FIELDS
    }
    total, count = Decimal(0), 0
    batch: list[ChargeLine] = []
    for g in importer.charge_groups(staging):
        g["customer_tenant_id"] = uuid.UUID(g["customer_tenant_id"])
        g["customer_id"] = matcher.match(str(g["customer_tenant_id"]), g["reseller_mpn_id"])
        g["credit_percentage"] = Decimal(g["credit_percentage"])
        for name, size in sizes.items():
            g[name] = g[name][:size]
        batch.append(ChargeLine(source=imp, organisation_id=imp.organisation_id, currency=imp.currency, **g))
        total += g["cost"]
        count += 1
    ChargeLine.objects.bulk_create(batch, batch_size=2000)
    return total, count


def _former_write_rejects(staging: importer.Staging, imp: Import, file_name: str) -> Counter[str]:
    reasons = Counter[str]()
    batch = []
    for r in importer.rejects(staging):
        reasons[r["reason"]] += 1
        batch.append(RejectedRow(source=imp, file_name=file_name, **r))
    RejectedRow.objects.bulk_create(batch, batch_size=2000)
    return reasons


# --- what the database holds ---------------------------------------------------------------------------------


def _stored(model: type[Model], order: str, skip: tuple[str, ...] = ("id", "source_id")) -> list[tuple[Any, ...]]:
    """The table's rows as the driver returns them, with each value's SQLite storage class where there is one."""
    quote = connection.ops.quote_name
    columns = [quote(fld.column) for fld in model._meta.concrete_fields if fld.column not in skip]
    table = quote(model._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
        rows = cur.fetchall()
        if connection.vendor != "sqlite":
            return rows
        cur.execute(f"SELECT {', '.join(f'typeof({c})' for c in columns)} FROM {table} ORDER BY {order}")
        return [tuple(zip(r, t, strict=True)) for r, t in zip(rows, cur.fetchall(), strict=True)]


def _import_snapshot(path: Path, var: Path, settings: Any) -> dict[str, Any]:
    """Import ``path``, read back everything it wrote, then roll it back."""
    settings.VAR_DIR = var
    with transaction.atomic():
        result = services.import_file(SYSTEM, path)
        shown = {k: v for k, v in result.as_dict().items() if k not in ("import_id", "raw_path")}
        if shown.get("microsoft_invoice"):
            shown["microsoft_invoice"] = {k: v for k, v in shown["microsoft_invoice"].items() if k != "id"}
        event = AuditEvent.objects.get(action="recon.imported", object_id=str(result.imported.pk))
        snapshot = {
            "result": shown,
            "lines": _stored(ChargeLine, "first_line"),
            "rejects": _stored(RejectedRow, "line_number"),
            "audit": (event.action, event.organisation_id, event.before, event.after),
        }
        transaction.set_rollback(True)
    return snapshot


def _files(tmp: Path) -> dict[str, Path]:
    invoice = [
        f.invoice_row(),
        f.invoice_row(Subtotal="40.48", TaxTotal="8.90", Total="49.38", BillableQuantity="2"),
        f.invoice_row(CustomerId=f.LIFFEY, CustomerName=LONG_NAME, ProductName=LONG_PRODUCT, Subtotal="100.000001",
                      TaxTotal="23", Total="123.000001", BillableQuantity="5", PCToBCExchangeRate=""),
        f.invoice_row(CustomerId=f.UNKNOWN, CustomerName="Nobody\x00Known", Subtotal="-3.50", TaxTotal="-0.77",
                      Total="-4.27", ChargeType="cancel", ChargeStartDate="10/15/2026", CreditReasonCode="Refund"),
        f.invoice_row(Subtotal="12,5"),  # rejected: bad_decimal
        f.invoice_row(ChargeStartDate="10/31/2026", ChargeEndDate="10/1/2026", CustomerName="Bad\x00row"),
    ]  # fmt: skip
    usage = [
        f.usage_row(Quantity="0.0000000001", BillingPreTaxTotal="0.000001", PricingPreTaxTotal="0.000001"),
        f.usage_row(UsageDate="2026-10-06", Quantity="24", BillingPreTaxTotal="2.20"),
        f.usage_row(MeterId="1d8c7b6a-5f4e-4d3c-8b2a-19087f6e5d4c", Quantity="100", UnitPrice="0.02",
                    EffectiveUnitPrice="0.017", BillingPreTaxTotal="1.56", PartnerEarnedCreditPercentage="15"),
        f.usage_row(Quantity="-1"),  # rejected: negative_quantity
    ]  # fmt: skip
    reseller = [
        f.usage_row(PartnerId=f.NORDMOLN, CustomerId=f.ANGSTROM, Tier2MpnId="6134567", BillingCurrency="SEK",
                    InvoiceNumber="", BillingPreTaxTotal="25.00"),
        f.usage_row(PartnerId=f.NORDMOLN, CustomerId=f.ANGSTROM, Tier2MpnId="6999999", BillingCurrency="SEK",
                    InvoiceNumber="", BillingPreTaxTotal="7.00"),
    ]  # fmt: skip
    return {
        "invoice": f.write(tmp / "invoice.csv", invoice),
        "usage": f.write(tmp / "usage.csv", usage),
        "reseller-unbilled": f.write(tmp / "reseller.csv", reseller),
    }


@pytest.mark.parametrize("kind", ["invoice", "usage", "reseller-unbilled"])
def test_an_import_stores_what_the_former_path_stored(
    world: dict[str, Any], tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = _files(tmp_path)[kind]
    now = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)
    with clock.frozen(now):
        stored = _import_snapshot(path, tmp_path / "var-new", settings)
        monkeypatch.setattr(services, "_insert_lines", _former_insert_lines)
        monkeypatch.setattr(services, "write_rejects", _former_write_rejects)
        former = _import_snapshot(path, tmp_path / "var-former", settings)

    assert stored["lines"] == former["lines"]
    assert stored["rejects"] == former["rejects"]
    assert stored["result"] == former["result"]
    assert stored["audit"] == former["audit"]
    assert len(stored["lines"]) == stored["result"]["charge_lines"] >= 2
    assert len(stored["rejects"]) == stored["result"]["rejected"] == {"invoice": 2, "usage": 1}.get(kind, 0)


def test_the_stored_lines_hold_the_files_values(world: dict[str, Any], tmp_path: Path, settings: Any) -> None:
    settings.VAR_DIR = tmp_path / "var"
    imp = services.import_file(SYSTEM, _files(tmp_path)["invoice"]).imported
    lines = list(ChargeLine.objects.filter(source=imp).order_by("first_line"))
    assert [(ln.customer_id, ln.cost, ln.tax, ln.quantity, ln.charge_start, ln.exchange_rate) for ln in lines] == [
        (world["bellavista"].pk, Decimal("60.72"), Decimal("13.35"), Decimal("3"), dt.date(2026, 10, 1),
         Decimal("0.92")),
        (world["liffey"].pk, Decimal("100.000001"), Decimal("23"), Decimal("5"), dt.date(2026, 10, 1), None),
        (None, Decimal("-3.50"), Decimal("-0.77"), Decimal("1"), dt.date(2026, 10, 15), Decimal("0.92")),
    ]  # fmt: skip
    assert lines[1].customer_name == LONG_NAME[:200] and lines[1].product_name == LONG_PRODUCT[:300]
    assert lines[2].customer_name == "Nobody\ufffdKnown" and lines[2].credit == Decimal("-3.50")
    assert lines[2].customer_tenant_id == uuid.UUID(f.UNKNOWN) and lines[2].credit_type == "Refund"
    rejects = list(RejectedRow.objects.filter(source=imp).order_by("line_number"))
    assert [(r.line_number, r.column, r.reason) for r in rejects] == [
        (6, "Subtotal", "bad_decimal"),
        (7, "ChargeEndDate", "date_order"),
    ]
    assert rejects[1].raw["CustomerName"] == "Bad\ufffdrow"
    assert rejects[1].problems == [{"column": "ChargeEndDate", "reason": "date_order", "value": "10/1/2026"}]


# --- the helper ----------------------------------------------------------------------------------------------


def _an_import(org: Organisation, sha: str) -> Import:
    return Import.objects.create(
        organisation=org, kind="invoice", file_name="x.csv", file_sha256=sha, file_size=1, invoice_number=sha[:8],
        partner_tenant_id=uuid.UUID(f.NUVOLA), period=dt.date(2026, 10, 1), currency="EUR", rows=0, rejected=0,
        total_cost=0, assigned_cost=0, unassigned_cost=0, customers=0, raw_path="", imported_by="test",
    )  # fmt: skip


LINE_VALUES: list[dict[str, Any]] = [
    {"customer_tenant_id": uuid.UUID(f.BELLAVISTA), "quantity": Decimal("1.5000000000"), "cost": Decimal("0E-6"),
     "pricing_cost": Decimal("123456789.123456"), "exchange_rate": None, "tax": 0, "credit": "2.5",
     "credit_percentage": Decimal("15"), "charge_start": dt.date(2026, 10, 1), "charge_end": dt.date(2026, 10, 31)},
    {"customer_tenant_id": f.LIFFEY, "quantity": 3, "cost": Decimal("-0.000001"), "pricing_cost": 1.25,
     "exchange_rate": Decimal("0.9200000000"), "tax": Decimal("4.45"), "credit": Decimal(0),
     "credit_percentage": Decimal("0.0001"), "charge_start": "2026-10-02", "charge_end": dt.date(2026, 10, 2)},
]  # fmt: skip


def test_insert_rows_stores_what_bulk_create_stores(world: dict[str, Any]) -> None:
    org = world["nuvola"]
    common = {"organisation_id": org.pk, "customer_name": "Liffey", "reseller_mpn_id": "", "subscription_id": f.SUB,
              "product_id": "P", "sku_id": "0001", "charge_type": "new", "currency": "EUR", "row_count": 1,
              "first_line": 2, "last_line": 2}  # fmt: skip
    by_orm, by_rows = _an_import(org, "a" * 64), _an_import(org, "b" * 64)
    ChargeLine.objects.bulk_create([ChargeLine(source=by_orm, **common, **v) for v in LINE_VALUES])
    names = ["source", *common, *LINE_VALUES[0]]
    rows = [(by_rows.pk, *common.values(), *v.values()) for v in LINE_VALUES]

    assert bulk.insert_rows(ChargeLine, names, rows, batch_size=1) == 2

    def stored(imp: Import) -> list[tuple[Any, ...]]:
        return [r for r in _stored(ChargeLine, "id", skip=("id",)) if r[0] in (imp.pk, (imp.pk, "integer"))]

    assert [r[1:] for r in stored(by_rows)] == [r[1:] for r in stored(by_orm)]
    read = ChargeLine.objects.filter(source=by_rows).order_by("id").values_list("pricing_cost", "credit", "tax")
    assert list(read) == [
        (Decimal("123456789.123456"), Decimal("2.5"), Decimal(0)),
        (Decimal("1.25"), Decimal(0), Decimal("4.45")),
    ]


def test_left_out_fields_get_what_a_new_instance_gets(world: dict[str, Any]) -> None:
    """Import's status and summary defaults, and created_at from the clock (a callable default, per row)."""
    values = {"organisation_id": world["nuvola"].pk, "kind": "invoice", "file_name": "x.csv", "file_size": 1,
              "partner_tenant_id": uuid.UUID(f.NUVOLA), "period": dt.date(2026, 10, 1), "currency": "EUR",
              "rows": 0, "rejected": 0, "total_cost": 0, "assigned_cost": 0, "unassigned_cost": 0, "customers": 0,
              "raw_path": "", "imported_by": "test"}  # fmt: skip
    with clock.frozen(dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)):
        Import.objects.bulk_create([Import(file_sha256="a" * 64, invoice_number="G1", **values)])
        bulk.insert_rows(Import, ["file_sha256", "invoice_number", *values], [("b" * 64, "G2", *values.values())])
    orm, rows = _stored(Import, "file_sha256", skip=("id", "file_sha256", "invoice_number"))
    assert rows == orm
    made = Import.objects.get(file_sha256="b" * 64)
    assert (made.status, made.summary, made.superseded_by_id) == ("active", {}, None)
    assert made.created_at == dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def test_an_insert_time_field_is_stamped_and_may_not_be_given(db: None) -> None:
    before = timezone.now()
    bulk.insert_rows(ScheduledRun, ["job", "slot"], [("nightly", "2026-11-01"), ("nightly", "2026-11-02")])
    runs = list(ScheduledRun.objects.order_by("slot"))
    assert [(r.slot, r.task_id) for r in runs] == [("2026-11-01", ""), ("2026-11-02", "")]
    assert all(before <= r.created_at <= timezone.now() for r in runs)
    with pytest.raises(ValueError, match="created_at is set by the insert itself"):
        bulk.insert_rows(ScheduledRun, ["job", "slot", "created_at"], [("nightly", "x", before)])


def test_a_bad_row_or_field_stores_nothing(world: dict[str, Any]) -> None:
    imp = _an_import(world["nuvola"], "c" * 64)
    good = (imp.pk, 2, "Subtotal", "bad_decimal", "Subtotal: expected a decimal number", [], {})
    names = ["source", "line_number", "column", "reason", "message", "problems", "raw"]
    with pytest.raises(ValueError), transaction.atomic():
        bulk.insert_rows(RejectedRow, names, [good, good[:-1]])
    with pytest.raises(FieldDoesNotExist):
        bulk.insert_rows(RejectedRow, ["source", "nonsense"], [(imp.pk, 1)])
    assert not RejectedRow.objects.exists()
    assert bulk.insert_rows(RejectedRow, names, iter([])) == 0
