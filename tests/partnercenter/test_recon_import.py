"""Recon file import: layouts, formats, validation, conservation, idempotency, customers, output."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cspdesk.audit.models import AuditEvent
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import Conflict, ValidationFailed
from cspdesk.partnercenter.recon import selectors, services
from cspdesk.partnercenter.recon.layouts import INVOICE_COLUMNS, USAGE_COLUMNS, UnknownHeader
from cspdesk.partnercenter.recon.models import ChargeLine, Import, MicrosoftInvoice, RejectedRow
from cspdesk.tenancy.models import Customer, Organisation, OrganisationKind
from tests.partnercenter import recon_fixtures as f

SYSTEM = Actor.system("test")


def _org(
    key: str,
    kind: str,
    series: str,
    tenant: str | None,
    mpn: str,
    parent: Organisation | None = None,
    currency: str = "EUR",
) -> Organisation:
    return Organisation.objects.create(
        kind=kind, parent=parent, legal_name=key.title(), address_line1="x", city="x", country="IT",
        pc_tenant_id=tenant, mpn_id=mpn, billing_currency=currency, invoice_series=series,
    )  # fmt: skip


def _customer(org: Organisation, tenant: str, name: str) -> Customer:
    return Customer.objects.create(
        organisation=org,
        tenant_id=tenant,
        name=name,
        default_domain="x.example",
        address_line1="x",
        city="x",
        country="IT",
        currency=org.billing_currency,
    )


@pytest.fixture
def world(db: None, settings: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    settings.VAR_DIR = tmp_path / "var"  # type: ignore[attr-defined]
    nuvola = _org("nuvola", OrganisationKind.DIRECT_BILL_PARTNER, "NUV", f.NUVOLA, "5012345")
    nordmoln = _org("nordmoln", OrganisationKind.INDIRECT_PROVIDER, "NMD", f.NORDMOLN, "6023456", currency="SEK")
    fjall = _org("fjall", OrganisationKind.INDIRECT_RESELLER, "FJS", None, "6134567", nordmoln, "SEK")
    atl = _org("atlantico", OrganisationKind.INDIRECT_RESELLER, "ATC", None, "6245678", nordmoln)
    return {
        "nuvola": nuvola, "nordmoln": nordmoln, "fjall": fjall, "atlantico": atl,
        "bellavista": _customer(nuvola, f.BELLAVISTA, "Trattoria Bellavista"),
        "liffey": _customer(nuvola, f.LIFFEY, "Liffey Analytics"),
        "angstrom": _customer(fjall, f.ANGSTROM, "Ångström Bygg"),
    }  # fmt: skip


def _import(path: Path, **kw: object) -> services.ImportResult:
    return services.import_file(SYSTEM, path, **kw)  # type: ignore[arg-type]


# --- layouts and formats ---------------------------------------------------------------------------------


def test_invoice_file_aggregates_rows_into_charge_lines(world: dict, tmp_path: Path) -> None:
    rows = [
        f.invoice_row(Subtotal="20.24", TaxTotal="4.45", Total="24.69", BillableQuantity="1"),
        f.invoice_row(CustomerId=f.LIFFEY, Subtotal="100.00", TaxTotal="23.00", Total="123.00", BillableQuantity="5"),
        f.invoice_row(Subtotal="40.48", TaxTotal="8.90", Total="49.38", BillableQuantity="2", ChargeType="New"),
    ]
    result = _import(f.write(tmp_path / "inv.csv", rows))
    imp = result.imported
    assert (imp.kind, imp.rows, imp.rejected, imp.currency) == ("invoice", 3, 0, "EUR")
    assert imp.total_cost == Decimal("160.72") and imp.unassigned_cost == 0 and imp.customers == 2
    lines = list(ChargeLine.objects.filter(source=imp).order_by("first_line"))
    assert [
        (ln.customer_id, ln.cost, ln.quantity, ln.tax, ln.row_count, ln.first_line, ln.last_line) for ln in lines
    ] == [
        (world["bellavista"].pk, Decimal("60.72"), Decimal("3"), Decimal("13.35"), 2, 2, 4),
        (world["liffey"].pk, Decimal("100.00"), Decimal("5"), Decimal("23.00"), 1, 3, 3),
    ]
    assert lines[0].charge_start == dt.date(2026, 10, 1) and lines[0].charge_end == dt.date(2026, 10, 31)
    assert lines[0].pricing_cost == Decimal("66.00") and lines[0].exchange_rate == Decimal("0.92")
    inv = MicrosoftInvoice.objects.get()
    assert (inv.number, inv.invoice_date, inv.due_date) == ("G000000001", dt.date(2026, 11, 1), dt.date(2026, 12, 31))
    assert (inv.subtotal, inv.tax, inv.total) == (Decimal("160.72"), Decimal("36.35"), Decimal("197.07"))
    assert (services.recon_dir() / str(imp.pk) / "rows.parquet").is_file()


def test_usage_file_groups_by_meter_and_computes_partner_earned_credit(world: dict, tmp_path: Path) -> None:
    other = "1d8c7b6a-5f4e-4d3c-8b2a-19087f6e5d4c"
    rows = [
        f.usage_row(UsageDate="2026-10-01", Quantity="24", BillingPreTaxTotal="2.20"),
        f.usage_row(UsageDate="10/2/2026", Quantity="24", BillingPreTaxTotal="2.20"),
        f.usage_row(MeterId=other, MeterName="LRS Data Stored", Quantity="100", UnitPrice="0.02",
                    EffectiveUnitPrice="0.017", BillingPreTaxTotal="1.56", PartnerEarnedCreditPercentage="15"),
    ]  # fmt: skip
    imp = _import(f.write(tmp_path / "use.csv", rows)).imported
    assert (imp.kind, imp.invoice_number, imp.total_cost) == ("usage_billed", "G000000001", Decimal("5.96"))
    lines = list(ChargeLine.objects.filter(source=imp).order_by("first_line"))
    assert [(ln.meter_id, ln.quantity, ln.cost, ln.row_count) for ln in lines] == [
        (f.METER, Decimal("48"), Decimal("4.40"), 2),
        (other, Decimal("100"), Decimal("1.56"), 1),
    ]
    # (0.02 - 0.017) × 100 × 0.92 = 0.276
    assert (lines[1].credit, lines[1].credit_percentage, lines[1].credit_type) == (
        Decimal("0.276"),
        Decimal("15"),
        "Partner earned credit",
    )
    assert lines[0].credit == 0
    assert MicrosoftInvoice.objects.count() == 0  # the payable comes from the invoice file


@pytest.mark.parametrize(
    ("fmt", "bom"),
    [("csv", False), ("csv", True), ("gz", False), ("gz", True), ("zip", False), ("zip", True)],
    ids=["csv", "csv-bom", "gz", "gz-bom", "zip", "zip-bom"],
)
def test_every_container_and_bom_imports_the_same(world: dict, tmp_path: Path, fmt: str, bom: bool) -> None:
    path = f.write(tmp_path / "inv.csv", [f.invoice_row(), f.invoice_row(CustomerId=f.LIFFEY)], bom=bom, fmt=fmt)
    imp = _import(path).imported
    assert (imp.kind, imp.rows, imp.rejected, imp.total_cost, imp.customers) == ("invoice", 2, 0, Decimal("40.48"), 2)


def test_header_variants_are_accepted(world: dict, tmp_path: Path) -> None:
    cols = [c.upper() if i % 2 else c.lower() for i, c in enumerate(INVOICE_COLUMNS) if c != "ProductCategory"]
    cols[cols.index("TIER2MPNID")] = "ResellerMPNID"
    rows = [
        {
            k: v
            for k, v in zip(cols, [f.invoice_row()[c] for c in INVOICE_COLUMNS if c != "ProductCategory"], strict=True)
        }
    ]
    imp = _import(f.write(tmp_path / "inv.csv", rows, columns=cols)).imported
    assert (imp.kind, imp.rows, imp.rejected, imp.total_cost) == ("invoice", 1, 0, Decimal("20.24"))
    assert ChargeLine.objects.get().reseller_mpn_id == "0"


def test_unbilled_usage_is_detected_without_benefit_columns(world: dict, tmp_path: Path) -> None:
    cols = [c for c in USAGE_COLUMNS if not c.startswith("Benefit")]
    imp = _import(f.write(tmp_path / "u.csv", [f.usage_row(InvoiceNumber="")], columns=cols)).imported
    assert (imp.kind, imp.invoice_number, imp.period) == ("usage_unbilled", "", dt.date(2026, 10, 1))


def test_unknown_header_is_refused_naming_missing_and_unexpected_columns(world: dict, tmp_path: Path) -> None:
    cols = [c for c in INVOICE_COLUMNS if c not in ("Subtotal", "Currency")] + ["Colour"]
    path = f.write(tmp_path / "x.csv", [f.invoice_row()], columns=cols)
    with pytest.raises(UnknownHeader) as exc:
        _import(path)
    assert exc.value.message == (
        "the header matches no known recon layout (closest: invoice); missing columns: Subtotal, Currency; "
        "unexpected columns: Colour"
    )
    assert Import.objects.count() == 0 and not list((services.recon_dir()).glob("*"))


# --- validation --------------------------------------------------------------------------------------------

INVOICE_CASES = [
    ("missing_value", "CustomerId", {"CustomerId": ""}),
    ("bad_guid", "SubscriptionId", {"SubscriptionId": "not-a-guid"}),
    ("bad_date", "ChargeStartDate", {"ChargeStartDate": "31/12/2026"}),
    ("bad_decimal", "Subtotal", {"Subtotal": "12,50", "Total": "12.50", "TaxTotal": "0"}),
    ("too_precise", "Subtotal", {"Subtotal": "1.0000001", "Total": "1.0000001", "TaxTotal": "0"}),
    ("bad_currency", "Currency", {"Currency": "EURO"}),
    ("sign", "Subtotal", {"ChargeType": "cancel", "Subtotal": "5.00", "Total": "5.00", "TaxTotal": "0"}),
    ("not_positive", "PCToBCExchangeRate", {"PCToBCExchangeRate": "0"}),
    ("date_order", "ChargeEndDate", {"ChargeEndDate": "9/30/2026"}),
    ("total_mismatch", "Total", {"Total": "99.99"}),
    ("partner_mismatch", "PartnerId", {"PartnerId": f.NORDMOLN}),
    ("invoice_mismatch", "InvoiceNumber", {"InvoiceNumber": "G999"}),
    ("currency_mismatch", "Currency", {"Currency": "USD"}),
]
USAGE_CASES = [
    ("negative_quantity", "Quantity", {"Quantity": "-1"}),
    ("out_of_range", "PartnerEarnedCreditPercentage", {"PartnerEarnedCreditPercentage": "150"}),
    ("bad_guid", "MeterId", {"MeterId": "meter-1"}),
    ("bad_date", "UsageDate", {"UsageDate": "2026-13-01"}),
    ("sign", "BillingPreTaxTotal", {"BillingPreTaxTotal": "-2.20"}),
]


@pytest.mark.parametrize(
    ("reason", "column", "override"), INVOICE_CASES, ids=[c[0] + "-invoice" for c in INVOICE_CASES]
)
def test_invoice_rejection_reasons(world: dict, tmp_path: Path, reason: str, column: str, override: dict) -> None:
    rows = [f.invoice_row(), f.invoice_row(**override), f.invoice_row()]
    imp = _import(f.write(tmp_path / "inv.csv", rows)).imported
    assert (imp.rows, imp.rejected, imp.total_cost) == (3, 1, Decimal("40.48"))
    bad = RejectedRow.objects.get(source=imp)
    assert (bad.file_name, bad.line_number, bad.column, bad.reason) == ("inv.csv", 3, column, reason)
    assert bad.raw[column] == override.get(column, "")
    assert imp.summary["reject_reasons"] == {reason: 1}


@pytest.mark.parametrize(("reason", "column", "override"), USAGE_CASES, ids=[c[0] + "-usage" for c in USAGE_CASES])
def test_usage_rejection_reasons(world: dict, tmp_path: Path, reason: str, column: str, override: dict) -> None:
    rows = [f.usage_row(), f.usage_row(), f.usage_row(**override)]
    imp = _import(f.write(tmp_path / "u.csv", rows)).imported
    assert (imp.rows, imp.rejected, imp.total_cost) == (3, 1, Decimal("4.40"))
    bad = RejectedRow.objects.get(source=imp)
    assert (bad.line_number, bad.column, bad.reason) == (4, column, reason)


def test_malformed_rows_are_rejected_and_line_numbers_stay_true(world: dict, tmp_path: Path) -> None:
    text = f.csv_text([f.invoice_row(), f.invoice_row(), f.invoice_row(Currency="XXY"), f.invoice_row()])
    lines = text.split("\r\n")
    lines[2] = lines[2] + ",extra"  # line 3 has one field too many
    path = tmp_path / "inv.csv"
    path.write_text("\r\n".join(lines), encoding="utf-8")
    imp = _import(path).imported
    assert (imp.rows, imp.rejected, imp.total_cost) == (4, 2, Decimal("40.48"))
    got = sorted(RejectedRow.objects.filter(source=imp).values_list("line_number", "reason"))
    assert got == [(3, "malformed_row"), (4, "bad_currency")]
    assert sorted(ChargeLine.objects.values_list("first_line", "last_line")) == [(2, 5)]


def test_unknown_charge_type_is_kept_and_reported(world: dict, tmp_path: Path) -> None:
    rows = [f.invoice_row(), f.invoice_row(ChargeType="loyaltyBonus")]
    result = _import(f.write(tmp_path / "inv.csv", rows))
    assert result.imported.rejected == 0
    assert result.as_dict()["unknown_charge_types"] == {"loyaltyBonus": 1}
    assert sorted(ChargeLine.objects.values_list("charge_type", flat=True)) == ["loyaltyBonus", "new"]


def test_a_file_without_any_valid_row_is_refused(world: dict, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as exc:
        _import(f.write(tmp_path / "inv.csv", [f.invoice_row(Subtotal="x")]))
    assert exc.value.code == "no_valid_rows" and Import.objects.count() == 0


# --- idempotency ---------------------------------------------------------------------------------------


def test_same_file_twice_is_a_no_op(world: dict, tmp_path: Path) -> None:
    path = f.write(tmp_path / "inv.csv", [f.invoice_row(), f.invoice_row(Subtotal="x")])
    first = _import(path)
    counts = (ChargeLine.objects.count(), RejectedRow.objects.count(), AuditEvent.objects.count())
    again = _import(path)
    assert again.duplicate and not first.duplicate and again.imported.pk == first.imported.pk
    assert (ChargeLine.objects.count(), RejectedRow.objects.count(), AuditEvent.objects.count()) == counts
    assert Import.objects.count() == 1


def test_another_file_for_the_same_invoice_needs_replace(world: dict, tmp_path: Path) -> None:
    old = _import(f.write(tmp_path / "a.csv", [f.invoice_row()])).imported
    newer = f.write(tmp_path / "b.csv", [f.invoice_row(), f.invoice_row(CustomerId=f.LIFFEY)])
    with pytest.raises(Conflict) as exc:
        _import(newer)
    assert exc.value.code == "already_imported" and "use --replace" in exc.value.message
    assert Import.objects.count() == 1
    new = _import(newer, replace=True).imported
    old.refresh_from_db()
    assert (old.status, old.superseded_by_id, new.status) == ("superseded", new.pk, "active")
    assert new.summary["superseded_import_id"] == old.pk
    assert ChargeLine.objects.filter(source=old).count() == 1  # kept for audit
    assert set(selectors.charge_lines_for(SYSTEM).values_list("source_id", flat=True)) == {new.pk}
    inv = MicrosoftInvoice.objects.get()
    assert (inv.source_id, inv.subtotal) == (new.pk, Decimal("40.48"))
    assert AuditEvent.objects.filter(action="recon.imported").count() == 2


def test_unbilled_usage_is_matched_by_organisation_and_period(world: dict, tmp_path: Path) -> None:
    _import(f.write(tmp_path / "a.csv", [f.usage_row(InvoiceNumber="")]))
    other = f.write(tmp_path / "b.csv", [f.usage_row(InvoiceNumber="", Quantity="48", BillingPreTaxTotal="4.40")])
    with pytest.raises(Conflict) as exc:
        _import(other)
    assert "matched by organisation, period and billing currency" in exc.value.message
    usd = f.write(tmp_path / "c.csv", [f.usage_row(InvoiceNumber="", BillingCurrency="USD")])
    assert _import(usd).imported.currency == "USD"  # another billing currency is another file
    assert _import(other, replace=True).imported.total_cost == Decimal("4.40")
    assert Import.objects.filter(status="active").count() == 2


# --- organisations and customers ------------------------------------------------------------------------


def test_unknown_customers_go_to_the_unassigned_bucket(world: dict, tmp_path: Path) -> None:
    rows = [f.invoice_row(), f.invoice_row(CustomerId=f.UNKNOWN, CustomerName="Ghost Ltd", Subtotal="7.00",
                                           TaxTotal="0", Total="7.00")]  # fmt: skip
    res = _import(f.write(tmp_path / "inv.csv", rows))
    imp = res.imported
    assert (imp.total_cost, imp.assigned_cost, imp.unassigned_cost) == (
        Decimal("27.24"),
        Decimal("20.24"),
        Decimal("7"),
    )
    assert res.as_dict()["unassigned_tenants"] == [
        {"tenant_id": f.UNKNOWN, "name": "Ghost Ltd", "reseller_mpn_id": "0", "cost": "7.00", "rows": 1}
    ]
    assert ChargeLine.objects.get(customer__isnull=True).customer_name == "Ghost Ltd"


def test_link_customers_assigns_lines_once_the_customer_exists(world: dict, tmp_path: Path) -> None:
    rows = [f.invoice_row(CustomerId=f.UNKNOWN, CustomerName="Ghost Ltd")]
    imp = _import(f.write(tmp_path / "inv.csv", rows)).imported
    assert services.link_customers(SYSTEM) == 0
    ghost = _customer(world["nuvola"], f.UNKNOWN, "Ghost Ltd")
    assert services.link_customers(SYSTEM) == 1
    imp.refresh_from_db()
    assert (imp.assigned_cost, imp.unassigned_cost, imp.customers) == (Decimal("20.24"), 0, 1)
    assert imp.summary["unassigned_tenants"] == []
    assert ChargeLine.objects.get().customer_id == ghost.pk
    assert AuditEvent.objects.filter(action="recon.customers_linked").count() == 1
    assert services.link_customers(SYSTEM) == 0


def test_indirect_provider_matches_resellers_customers_using_the_reseller_mpn_id(world: dict, tmp_path: Path) -> None:
    twin = _customer(world["atlantico"], f.ANGSTROM, "Same tenant under another reseller")
    rows = [
        f.invoice_row(PartnerId=f.NORDMOLN, CustomerId=f.ANGSTROM, Tier2MpnId="6134567", Currency="SEK"),
        f.invoice_row(PartnerId=f.NORDMOLN, CustomerId=f.ANGSTROM, Tier2MpnId="6245678", Currency="SEK",
                      SubscriptionId=f.new_guid(7)),
        f.invoice_row(PartnerId=f.NORDMOLN, CustomerId=f.ANGSTROM, Tier2MpnId="0", Currency="SEK",
                      SubscriptionId=f.new_guid(8)),
    ]  # fmt: skip
    imp = _import(f.write(tmp_path / "inv.csv", rows)).imported
    assert imp.organisation_id == world["nordmoln"].pk
    got = sorted(ChargeLine.objects.values_list("reseller_mpn_id", "customer_id"))
    assert got == [("0", None), ("6134567", world["angstrom"].pk), ("6245678", twin.pk)]


def test_a_file_of_an_unknown_partner_is_refused_unless_an_organisation_is_named(world: dict, tmp_path: Path) -> None:
    stranger = "77777777-7777-4777-8777-777777777777"
    path = f.write(tmp_path / "inv.csv", [f.invoice_row(PartnerId=stranger)])
    with pytest.raises(ValidationFailed) as exc:
        _import(path)
    assert exc.value.code == "unknown_partner" and stranger in exc.value.message
    with pytest.raises(ValidationFailed):  # nuvola has another tenant id
        _import(path, organisation_id=world["nuvola"].pk)
    fjall = world["fjall"]
    imp = _import(path, organisation_id=fjall.pk).imported
    assert imp.organisation_id == fjall.pk and str(imp.partner_tenant_id) == stranger


def test_explain_a_charge_returns_its_rows(world: dict, tmp_path: Path) -> None:
    rows = [f.usage_row(UsageDate=f"2026-10-0{d}") for d in (1, 2, 3)] + [f.usage_row(CustomerId=f.LIFFEY)]
    _import(f.write(tmp_path / "u.csv", rows))
    line = ChargeLine.objects.get(customer__tenant_id=f.BELLAVISTA)
    got = selectors.rows_of_charge_line(SYSTEM, line.pk)
    assert [(r["line_number"], r["UsageDate"]) for r in got] == [
        (2, "2026-10-01"),
        (3, "2026-10-02"),
        (4, "2026-10-03"),
    ]


def test_customers_and_other_partners_see_no_recon_data(world: dict, tmp_path: Path) -> None:
    _import(f.write(tmp_path / "inv.csv", [f.invoice_row()]))
    customer = Actor(kind=ActorKind.CUSTOMER, user_id=1, organisation_id=world["nuvola"].pk,
                     customer_id=world["bellavista"].pk, roles=frozenset({"customer_admin"}))  # fmt: skip
    other = Actor(kind=ActorKind.STAFF, user_id=2, organisation_id=world["nordmoln"].pk,
                  roles=frozenset({"billing_admin"}))  # fmt: skip
    own = Actor(kind=ActorKind.STAFF, user_id=3, organisation_id=world["nuvola"].pk, roles=frozenset({"billing_admin"}))
    for actor in (customer, other):
        assert selectors.imports_for(actor).count() == 0
        assert selectors.charge_lines_for(actor).count() == 0
        assert selectors.microsoft_invoices_for(actor).count() == 0
    assert (selectors.imports_for(own).count(), selectors.charge_lines_for(own).count()) == (1, 1)


# --- the command --------------------------------------------------------------------------------------


def test_import_json_prints_one_document(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = f.write(
        tmp_path / "inv.csv", [f.invoice_row(), f.invoice_row(CustomerId=f.UNKNOWN), f.invoice_row(Total="x")]
    )
    call_command("import", str(path), "--json")
    out, err = capsys.readouterr()
    doc = json.loads(out)
    imp = Import.objects.get()
    assert {k: doc[k] for k in ("import_id", "kind", "file_sha256", "rows", "rejected", "total_cost", "currency",
                                "invoice_number", "customers", "unassigned_cost")} == {
        "import_id": imp.pk, "kind": "invoice", "file_sha256": imp.file_sha256, "rows": 3, "rejected": 1,
        "total_cost": "40.48", "currency": "EUR", "invoice_number": "G000000001", "customers": 1,
        "unassigned_cost": "20.24",
    }  # fmt: skip
    assert "importing" in err
    call_command("import", "--show-rejects", str(imp.pk), "--json")
    rejects = json.loads(capsys.readouterr().out)
    assert [(r["line"], r["column"], r["reason"]) for r in rejects["rows"]] == [(4, "Total", "bad_decimal")]


def test_import_json_reports_a_refused_file(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = f.write(tmp_path / "x.csv", [{"Foo": "1"}])
    with pytest.raises(SystemExit):
        call_command("import", str(path), "--json")
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"]["code"] == "unknown_header"


# --- conservation, for random files ---------------------------------------------------------------------

_counter = itertools.count(1)
_cent = st.decimals(min_value=Decimal("-500"), max_value=Decimal("5000"), places=2)
_row = st.tuples(
    st.sampled_from([f.BELLAVISTA, f.LIFFEY, f.UNKNOWN, f.new_guid(99)]),
    _cent,
    st.sampled_from(["addQuantity", "removeQuantity", "convert", "weird"]),
    st.sampled_from([None, "Subtotal", "CustomerId", "Currency"]),  # which field to break, if any
    st.integers(min_value=1, max_value=3),  # subscription
)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_row, min_size=1, max_size=30))
def test_conservation_holds_for_random_files(world: dict, tmp_path: Path, spec: list) -> None:
    number = f"G{next(_counter):09d}"
    rows, good_total, bad = (
        [f.invoice_row(InvoiceNumber=number, Subtotal="0.01", Total="0.01", TaxTotal="0")],
        Decimal("0.01"),
        0,
    )
    for tenant, cost, ct, broken, sub in spec:
        row = f.invoice_row(InvoiceNumber=number, CustomerId=tenant, Subtotal=cost, TaxTotal="0", Total=cost,
                            ChargeType=ct, SubscriptionId=f.new_guid(sub))  # fmt: skip
        if broken:
            row[broken] = {"Subtotal": "1.2.3", "CustomerId": "zz", "Currency": "E"}[broken]
            bad += 1
        else:
            good_total += cost
        rows.append(row)
    imp = _import(f.write(tmp_path / f"{number}.csv", rows)).imported
    lines = ChargeLine.objects.filter(source=imp)
    assert imp.rows == len(rows) and imp.rejected == bad
    assert imp.total_cost == good_total == sum((ln.cost for ln in lines), Decimal(0))
    assert imp.assigned_cost + imp.unassigned_cost == imp.total_cost
    assert imp.unassigned_cost == sum((ln.cost for ln in lines if ln.customer_id is None), Decimal(0))
    assert sum(ln.row_count for ln in lines) == len(rows) - bad


def test_json_money_is_text(world: dict, tmp_path: Path) -> None:
    res = _import(f.write(tmp_path / "inv.csv", [f.invoice_row(Subtotal="1200", Total="1200", TaxTotal="0")]))
    assert (res.as_dict()["total_cost"], res.as_dict()["unassigned_cost"]) == ("1200.00", "0.00")


def test_explain_a_charge_leaves_out_rejected_rows_with_the_same_key(world: dict, tmp_path: Path) -> None:
    rows = [
        f.usage_row(UsageDate="2026-10-01"),
        f.usage_row(UsageDate="2026-10-02", BillingPreTaxTotal="1.0000001"),  # too precise: rejected
        f.usage_row(UsageDate="2026-10-03", PartnerId=f.NORDMOLN),  # another partner: rejected
        f.usage_row(UsageDate="2026-10-04"),
    ]
    imp = _import(f.write(tmp_path / "u.csv", rows)).imported
    assert (imp.rows, imp.rejected) == (4, 2)
    assert (services.recon_dir() / str(imp.pk) / "rejected.parquet").is_file()
    line = ChargeLine.objects.get()
    assert (line.row_count, line.first_line, line.last_line) == (2, 2, 5)
    got = selectors.rows_of_charge_line(SYSTEM, line.pk)
    assert [(r["line_number"], r["UsageDate"]) for r in got] == [(2, "2026-10-01"), (5, "2026-10-04")]
    reasons = sorted(RejectedRow.objects.filter(source=imp).values_list("line_number", "reason"))
    assert reasons == [(3, "too_precise"), (4, "partner_mismatch")]


def test_a_file_the_size_of_an_earlier_one_is_hashed_before_staging(world: dict, tmp_path: Path) -> None:
    first = f.write(tmp_path / "a.csv", [f.invoice_row(Subtotal="20.24")])
    same_size = f.write(tmp_path / "b.csv", [f.invoice_row(Subtotal="20.25", Total="24.70")])
    assert first.stat().st_size == same_size.stat().st_size
    _import(first)
    with pytest.raises(Conflict):  # a new file (another hash) for the same invoice
        _import(same_size)
    copy = tmp_path / "c.csv"
    copy.write_bytes(first.read_bytes())
    again = _import(copy)
    assert again.duplicate and Import.objects.count() == 1


def test_line_numbers_stay_true_across_blank_lines_and_values_spanning_lines(world: dict, tmp_path: Path) -> None:
    # line 2: good; 3: blank; 4: bad currency; 5-6: one record whose name holds a line break; 7: good
    text = f.csv_text([
        f.invoice_row(), f.invoice_row(Currency="XXY"),
        f.invoice_row(CustomerName="Trattoria\nBellavista", Subtotal="1.00", TaxTotal="0", Total="1.00"),
        f.invoice_row(CustomerId=f.LIFFEY),
    ])  # fmt: skip
    header, first, *rest = text.split("\r\n")
    path = tmp_path / "inv.csv"
    path.write_text("\r\n".join([header, first, "", *rest]), encoding="utf-8")
    imp = _import(path).imported
    assert (imp.rows, imp.rejected, imp.total_cost) == (4, 1, Decimal("41.48"))
    got = sorted(RejectedRow.objects.filter(source=imp).values_list("line_number", "reason"))
    assert got == [(4, "bad_currency")]
    lines = sorted(ChargeLine.objects.values_list("first_line", "last_line", "row_count"))
    assert lines == [(2, 5, 2), (7, 7, 1)]


def test_a_file_of_one_record_per_line_takes_its_line_numbers_from_the_row_order(world: dict, tmp_path: Path) -> None:
    rows = [f.usage_row(UsageDate=f"2026-10-{d:02d}") for d in range(1, 8)]
    rows[4]["BillingCurrency"] = "XXY"  # line 6
    imp = _import(f.write(tmp_path / "u.csv", rows)).imported
    parquet = services.recon_dir() / str(imp.pk) / "rows.parquet"
    names = [r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{parquet.as_posix()}')").fetchall()]
    assert names == ["line_number", "line"]  # the fast path: the raw lines, numbered by their position
    assert list(RejectedRow.objects.values_list("line_number", flat=True)) == [6]
    line = ChargeLine.objects.get()
    assert (line.first_line, line.last_line, line.row_count) == (2, 8, 6)
    got = selectors.rows_of_charge_line(SYSTEM, line.pk)
    assert [(r["line_number"], r["UsageDate"]) for r in got] == [
        (n, f"2026-10-{n - 1:02d}") for n in (2, 3, 4, 5, 7, 8)
    ]


# --- explain a charge: its exact rows, whatever the file ---------------------------------------------------------


def _explained(line: ChargeLine) -> list[tuple[int, str | None, str | None]]:
    return [
        (r["line_number"], r["UsageDate"], r["CustomerName"]) for r in selectors.rows_of_charge_line(SYSTEM, line.pk)
    ]


def test_explain_lists_the_exact_rows_of_a_file_with_bad_rows_and_a_value_spanning_lines(
    world: dict, tmp_path: Path
) -> None:
    # 2: good; 3: too precise (rejected); 4-5: one record whose name holds a line break; 6: blank; 7: another
    # partner (rejected); 8: another customer; 9: good
    rows = [
        f.usage_row(UsageDate="2026-10-01"),
        f.usage_row(UsageDate="2026-10-02", BillingPreTaxTotal="1.0000001"),
        f.usage_row(UsageDate="2026-10-03", CustomerName="Trattoria\nBellavista"),
        f.usage_row(UsageDate="2026-10-04", PartnerId=f.NORDMOLN),
        f.usage_row(UsageDate="2026-10-05", CustomerId=f.LIFFEY),
        f.usage_row(UsageDate="2026-10-06"),
    ]
    header, *lines = f.csv_text(rows).split("\r\n")
    path = tmp_path / "u.csv"
    path.write_text("\r\n".join([header, *lines[:3], "", *lines[3:]]), encoding="utf-8")
    imp = _import(path).imported
    assert (imp.rows, imp.rejected) == (6, 2)
    assert sorted(RejectedRow.objects.values_list("line_number", "reason")) == [
        (3, "too_precise"),
        (7, "partner_mismatch"),
    ]
    line = ChargeLine.objects.get(customer__tenant_id=f.BELLAVISTA)
    assert (line.first_line, line.last_line, line.row_count) == (2, 9, 3)
    assert _explained(line) == [
        (2, "2026-10-01", "Trattoria Bellavista S.r.l."),
        (4, "2026-10-03", "Trattoria\nBellavista"),
        (9, "2026-10-06", "Trattoria Bellavista S.r.l."),
    ]
    assert _explained(ChargeLine.objects.get(customer__tenant_id=f.LIFFEY)) == [
        (8, "2026-10-05", "Trattoria Bellavista S.r.l.")
    ]


def test_explain_returns_the_raw_values_of_a_file_of_one_record_per_line(world: dict, tmp_path: Path) -> None:
    rows = [
        f.usage_row(UsageDate="2026-10-01", CustomerName='Bellavista, "la Trattoria"', Tags='{"env":"prod"}'),
        f.usage_row(UsageDate="2026-10-02", Quantity="-1"),  # rejected: a negative quantity
        f.usage_row(UsageDate="2026-10-03", ResourceGroup=""),
    ]
    path = f.write(tmp_path / "u.csv", rows, bom=True)
    imp = _import(path).imported
    rows_parquet = services.recon_dir() / str(imp.pk) / "rows.parquet"
    raw = duckdb.sql(f"SELECT line FROM '{rows_parquet}' ORDER BY line_number").fetchall()
    assert [r[0] for r in raw] == path.read_bytes().decode("utf-8-sig").split("\r\n")[:-1]  # the lines as they are
    line = ChargeLine.objects.get()
    got = selectors.rows_of_charge_line(SYSTEM, line.pk)
    assert [r["line_number"] for r in got] == [2, 4]
    assert list(got[0]) == ["line_number", *USAGE_COLUMNS]
    assert (got[0]["CustomerName"], got[0]["Tags"], got[0]["ResourceGroup"]) == (
        'Bellavista, "la Trattoria"',
        '{"env":"prod"}',
        "rg-web",
    )
    assert got[1]["ResourceGroup"] is None and got[1]["SkuName"] == "Azure plan"  # an empty value reads as None
    assert {k: v for k, v in got[1].items() if k != "line_number"} == {c: (rows[2][c] or None) for c in USAGE_COLUMNS}


def test_explain_still_reads_imports_staged_before_the_index(world: dict, tmp_path: Path) -> None:
    rows = [f.usage_row(UsageDate=f"2026-10-0{d}") for d in (1, 2, 3)]
    rows[1]["BillingCurrency"] = "XXY"  # rejected
    path = f.write(tmp_path / "u.csv", rows)
    imp = _import(path).imported
    line = ChargeLine.objects.get()
    now = selectors.rows_of_charge_line(SYSTEM, line.pk)
    folder = services.recon_dir() / str(imp.pk)
    (folder / "index.parquet").unlink()  # the layout of earlier imports: every column parsed, in file order
    duckdb.sql(
        f"COPY (SELECT * FROM read_csv('{path}', all_varchar=true)) TO '{folder / 'rows.parquet'}' (FORMAT parquet)"
    )
    assert selectors.rows_of_charge_line(SYSTEM, line.pk) == now
    assert [r["line_number"] for r in now] == [2, 4]


def test_a_leftover_folder_under_the_new_imports_id_is_kept_aside_not_a_crash(world: dict, tmp_path: Path) -> None:
    """After a restore from an older backup (or an attempt rolled back after its rename) a folder can already
    carry the id the next import gets: the import goes through and the old folder is kept under another name."""
    from django.db import transaction

    path = f.write(tmp_path / "inv.csv", [f.invoice_row()])
    with transaction.atomic():
        taken = _import(path).imported.pk  # its folder stays, its row is rolled back
        transaction.set_rollback(True)
    for pk in (taken, taken + 1):  # the next id: the same one again (SQLite) or the next (PostgreSQL's sequence)
        leftover = services.recon_dir() / str(pk)
        leftover.mkdir(exist_ok=True)
        (leftover / "note.txt").write_text(f"left by {pk}")
    imp = _import(path).imported
    assert (services.recon_dir() / str(imp.pk) / "rows.parquet").is_file()
    assert not (services.recon_dir() / str(imp.pk) / "note.txt").exists()
    kept = sorted(p.read_text() for p in services.recon_dir().glob(f"orphaned-{imp.pk}-*/note.txt"))
    assert kept == [f"left by {imp.pk}"]
    assert ChargeLine.objects.filter(source=imp).count() == 1
