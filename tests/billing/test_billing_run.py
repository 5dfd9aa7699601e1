"""Billing runs on hand-made charge lines: VAT cases, FX, conflicts, credit notes, immutability, scoping, e-mail."""

from __future__ import annotations

import datetime as dt
import io
import threading
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from lxml import etree
from pypdf import PdfReader

from cspdesk.billing import delivery, services
from cspdesk.billing.documents import rules
from cspdesk.billing.documents.build import render_pdf, render_ubl
from cspdesk.billing.models import ExchangeRate, ImmutableInvoice, Invoice, InvoiceStatus
from cspdesk.catalog import services as catalog
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict
from cspdesk.partnercenter.recon.models import ChargeLine, Import

D = Decimal
OCT = dt.date(2026, 10, 1)
SYSTEM = Actor.system("test")


def make_import(org, currency: str = "EUR", kind: str = "invoice", number: str = "G1") -> Import:  # type: ignore[no-untyped-def]
    return Import.objects.create(
        organisation=org, kind=kind, file_name=f"{kind}-{number}-{currency}.csv", file_sha256=uuid.uuid4().hex * 2,
        file_size=1, partner_tenant_id=uuid.uuid4(), invoice_number=number, period=OCT, currency=currency, rows=1,
        rejected=0, total_cost=0, assigned_cost=0, unassigned_cost=0, customers=1, raw_path="x", imported_by="t",
    )  # fmt: skip


def make_line(imp: Import, customer, cost: str, **kw) -> ChargeLine:  # type: ignore[no-untyped-def]
    base = dict(
        source=imp, organisation=imp.organisation, customer=customer,
        customer_tenant_id=customer.tenant_id if customer else uuid.uuid4(), subscription_id="sub-1",
        product_id="CFQ7TTC0LFLX", sku_id="0001", product_name="Microsoft 365 E3", sku_name="Microsoft 365 E3",
        charge_type="cycleCharge", charge_start=OCT, charge_end=dt.date(2026, 10, 31), quantity=D(10), cost=D(cost),
        currency=imp.currency, pricing_cost=D(cost), pricing_currency=imp.currency, exchange_rate=D(1),
        row_count=1, first_line=2, last_line=2,
    )  # fmt: skip
    base.update(kw)
    return ChargeLine.objects.create(**base)


def copy_draft(draft: Invoice) -> Invoice:
    """Another draft of the same run with the same lines (a run drafts one invoice per buyer and currency)."""
    copy = Invoice.objects.get(pk=draft.pk)
    lines = list(copy.lines.all())
    copy.pk = None
    copy._state.adding = True
    copy.save()
    for ln in lines:
        ln.pk = None
        ln.invoice = copy
        ln.save()
    return copy


def invoice_of(run, customer) -> Invoice:  # type: ignore[no-untyped-def]
    return Invoice.objects.get(run=run, customer=customer)


def check_ubl(inv: Invoice, schemas) -> etree._Element:  # type: ignore[no-untyped-def]
    root = etree.fromstring(render_ubl(inv))
    name = etree.QName(root).localname
    assert schemas[name].validate(root), schemas[name].error_log
    assert rules.check(root) == []
    return root


@pytest.fixture
def nuvola(demo):  # type: ignore[no-untyped-def]
    org = demo.org("nuvola")
    catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(10), effective_from=OCT)
    imp = make_import(org)
    for key in ("bellavista", "liffey"):
        make_line(imp, demo.customer(key), "100.00")
    return demo


def test_vat_domestic_and_reverse_charge_and_prices(nuvola, ubl_schemas) -> None:  # type: ignore[no-untyped-def]
    run = services.bill(SYSTEM, OCT)
    it = invoice_of(run, nuvola.customer("bellavista"))
    ie = invoice_of(run, nuvola.customer("liffey"))
    assert (it.net, it.tax, it.total) == (D("110.00"), D("24.20"), D("134.20"))  # IT 22 %
    assert it.lines.get().vat_category == "S"
    assert (ie.net, ie.tax, ie.total) == (D("110.00"), D("0.00"), D("110.00"))
    assert ie.lines.get().vat_category == "AE"
    services.finalize_run(SYSTEM, run.pk)
    for inv in (it, ie):
        inv.refresh_from_db()
        check_ubl(inv, ubl_schemas)
    assert "Inversione contabile" not in render_pdf(it).decode("latin-1")  # domestic: no reverse-charge note
    org = nuvola.org("nuvola")  # the seller's own bank account, as configured on the organisation
    assert "IT61 X030 6909 6061 0000 0012 345" in "".join(
        p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(it))).pages
    )
    assert org.bank_iban.encode() in render_ubl(it) and b"BCITITMM" in render_ubl(it)


def test_the_invoice_links_the_collections_policy_once_the_seller_has_one(nuvola) -> None:  # type: ignore[no-untyped-def]
    from cspdesk.collections import services as collections
    from tests.collections.fixtures import POLICY

    run = services.bill(SYSTEM, OCT)
    services.finalize_run(SYSTEM, run.pk)
    it = invoice_of(run, nuvola.customer("bellavista"))

    def text() -> str:
        return "".join(p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(it))).pages).replace("\n", "")

    assert "Condizioni di pagamento e sospensione" not in text()  # no policy yet: nothing to point to
    collections.set_policy(SYSTEM, POLICY, organisation_id=nuvola.org("nuvola").pk)
    tenant = nuvola.customer("bellavista").tenant_id
    assert "Condizioni di pagamento e sospensione" in text()
    assert f"/collections/policy/customer/{tenant}/?lang=it" in text()


def test_outside_eu_with_fx_from_the_rate_table_printed_on_the_invoice(nuvola, ubl_schemas) -> None:  # type: ignore[no-untyped-def]
    org = nuvola.org("nuvola")
    prairie = nuvola.customer("prairie")  # USD customer, Microsoft billed EUR
    make_line(make_import(org, number="G2"), prairie, "200.00")
    ExchangeRate.objects.create(organisation=org, source_currency="EUR", target_currency="USD", rate=D("1.0850"),
                                rate_date=dt.date(2026, 10, 30), provider="ECB")  # fmt: skip
    run = services.bill(SYSTEM, OCT)
    inv = invoice_of(run, prairie)
    assert (
        inv.currency == "USD" and inv.exchange_rate == D("1.0850") and inv.exchange_rate_date == dt.date(2026, 10, 30)
    )
    assert inv.net == D("238.70")  # 200 × 1.10 × 1.085
    assert inv.lines.get().vat_category == "O" and inv.tax == 0
    services.finalize_run(SYSTEM, run.pk)
    inv.refresh_from_db()
    check_ubl(inv, ubl_schemas)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(inv))).pages)
    assert "1.085" in text and "ECB" in text and inv.number in text


def test_missing_rate_blocks_finalization(nuvola) -> None:  # type: ignore[no-untyped-def]
    make_line(make_import(nuvola.org("nuvola"), number="G2"), nuvola.customer("prairie"), "200.00")
    run = services.bill(SYSTEM, OCT)
    assert not Invoice.objects.filter(run=run, customer=nuvola.customer("prairie")).exists()
    codes = [a["code"] for c in run.review["customers"] for a in c["anomalies"]]
    assert "no_exchange_rate" in codes
    with pytest.raises(Conflict):
        services.finalize_run(SYSTEM, run.pk)
    assert not Invoice.objects.filter(status=InvoiceStatus.FINALIZED).exists()


def test_conflicting_rules_are_refused_when_created_and_reported_by_the_run(nuvola) -> None:  # type: ignore[no-untyped-def]
    org = nuvola.org("nuvola")
    with pytest.raises(Conflict):
        catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(5), effective_from=OCT)
    # different scopes of equal specificity that both match: SKU 0001 of any product, and of this product
    a = catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(5), sku_id="0001",
                                  effective_from=OCT)  # fmt: skip
    b = catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(7), sku_id="0001",
                                  product_id="CFQ7TTC0LFLX", effective_from=OCT)  # fmt: skip
    run = services.bill(SYSTEM, OCT)
    conflicts = [a_ for c in run.review["customers"] for a_ in c["anomalies"] if a_["code"] == "price_rule_conflict"]
    assert conflicts and conflicts[0]["rule_ids"] == [a.pk, b.pk]
    with pytest.raises(Conflict):
        services.finalize_run(SYSTEM, run.pk)


def test_rerun_replaces_drafts_and_never_touches_finalized(nuvola) -> None:  # type: ignore[no-untyped-def]
    first = services.bill(SYSTEM, OCT)
    second = services.bill(SYSTEM, OCT)
    assert Invoice.objects.count() == 2 and set(Invoice.objects.values_list("run", flat=True)) == {second.pk}
    assert second.review["totals"] == first.review["totals"]
    services.finalize_run(SYSTEM, second.pk)
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == ["NUV-2026-000001", "NUV-2026-000002"]
    third = services.bill(SYSTEM, OCT)
    assert third.review["invoices"] == 0 and Invoice.objects.count() == 2
    inv = Invoice.objects.first()
    assert inv is not None
    inv.total = D(1)
    with pytest.raises(ImmutableInvoice):
        inv.save()
    with pytest.raises(Conflict):
        services.update_draft_line(SYSTEM, inv.pk, 1, description="x")


def test_no_rule_and_negative_margin_and_unassigned_are_flagged(demo) -> None:  # type: ignore[no-untyped-def]
    org = demo.org("nuvola")
    imp = make_import(org)
    make_line(imp, demo.customer("bellavista"), "50.00")
    make_line(imp, None, "7.00")
    catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="list_adjust", percent=D(-20),
                              customer_id=demo.customer("liffey").pk, effective_from=OCT)  # fmt: skip
    make_line(imp, demo.customer("liffey"), "50.00")
    run = services.bill(SYSTEM, OCT)
    by = {c["buyer_name"]: {a["code"] for a in c["anomalies"]} for c in run.review["customers"]}
    assert by["Trattoria Bellavista S.r.l."] == {"no_price_rule"}
    assert by["Liffey Analytics Ltd"] == {"negative_margin"}
    assert [(a["code"], a["cost"]) for a in run.review["anomalies"]] == [("unassigned_cost", "7.000000")]


def test_credit_note_references_the_invoice_and_is_gapless_in_its_series(nuvola, ubl_schemas) -> None:  # type: ignore[no-untyped-def]
    run = services.finalize_run(SYSTEM, services.bill(SYSTEM, OCT).pk)
    inv = invoice_of(run, nuvola.customer("bellavista"))
    note = services.issue_credit_note(SYSTEM, inv.pk, reason="seat count disputed")
    assert (note.number, note.credited_invoice_id, note.total) == ("NUV-CN-2026-000001", inv.pk, inv.total)
    assert services.balance(inv) == 0
    with pytest.raises(Conflict):
        services.issue_credit_note(SYSTEM, inv.pk, reason="again")
    root = check_ubl(note, ubl_schemas)
    assert etree.QName(root).localname == "CreditNote"


def test_scoping_a_customer_sees_only_its_finalized_invoices(nuvola) -> None:  # type: ignore[no-untyped-def]
    run = services.bill(SYSTEM, OCT)
    client = nuvola.api("bellavista.admin")
    assert client.get("/api/v1/invoices").json() == []  # drafts are not the customer's business
    services.finalize_run(SYSTEM, run.pk)
    own = invoice_of(run, nuvola.customer("bellavista"))
    other = invoice_of(run, nuvola.customer("liffey"))
    assert [i["id"] for i in client.get("/api/v1/invoices").json()] == [own.pk]
    assert client.get(f"/api/v1/invoices/{own.pk}/pdf").content.startswith(b"%PDF")
    assert client.get(f"/api/v1/invoices/{other.pk}/ubl").status_code == 404
    assert nuvola.api("fjall.billing").get(f"/api/v1/invoices/{own.pk}").status_code == 404
    assert nuvola.api("nuvola.sales").get("/api/v1/invoices").status_code == 403
    explain = nuvola.api("nuvola.billing").get(f"/api/v1/invoices/{own.pk}/lines/1/charges").json()
    assert [r["cost"] for r in explain] == ["100.000000"]


def test_send_through_a_real_smtp_server_once_unless_forced(nuvola, settings) -> None:  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Keep(Message):
        def handle_message(self, message) -> None:  # type: ignore[no-untyped-def]
            received.append(message)

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        run = services.finalize_run(SYSTEM, services.bill(SYSTEM, OCT).pk)
        inv = invoice_of(run, nuvola.customer("bellavista"))
        delivery.send_invoice(SYSTEM, inv.pk)
        with pytest.raises(Conflict):
            delivery.send_invoice(SYSTEM, inv.pk)
        delivery.send_invoice(SYSTEM, inv.pk, force=True)
    finally:
        controller.stop()
    assert len(received) == 2
    msg = received[0]
    assert msg["To"] == "amministrazione@bellavista.example"
    assert msg["Subject"] == f"Fattura {inv.number} da Nuvola Informatica S.r.l."
    names = sorted(p.get_filename() for p in msg.walk() if p.get_filename())
    assert names == [f"{inv.number}.pdf", f"{inv.number}.xml"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_finalization_is_gapless(demo) -> None:  # type: ignore[no-untyped-def]
    org = demo.org("nuvola")
    catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(10), effective_from=OCT)
    imp = make_import(org)
    customers = [demo.customer(k) for k in ("bellavista", "liffey")]
    for n in range(20):
        make_line(imp, customers[n % 2], "10.00", subscription_id=f"s{n}", currency="EUR")
    run = services.bill(SYSTEM, OCT)
    ids = list(Invoice.objects.filter(run=run).values_list("pk", flat=True))
    # more drafts: one per customer per currency is the rule, so add drafts of other periods' style by copying
    extra = [copy_draft(inv).pk for inv in Invoice.objects.filter(pk__in=ids) for _ in range(9)]
    all_ids = ids + extra
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(part: list[int]) -> None:
        try:
            barrier.wait()
            for pk in part:
                services.finalize_invoice(SYSTEM, pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(all_ids[i::2],)) for i in range(2)]
    with clock.frozen(dt.datetime(2026, 11, 3, 9, tzinfo=dt.UTC)):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    seqs = sorted(Invoice.objects.filter(pk__in=all_ids).values_list("sequence", flat=True))
    assert seqs == list(range(1, len(all_ids) + 1))


def test_a_customer_credit_pays_the_next_invoice_when_it_is_finalized(nuvola) -> None:  # type: ignore[no-untyped-def]
    from cspdesk.payments import selectors as payment_selectors
    from cspdesk.payments import services as payments

    bellavista = nuvola.customer("bellavista")
    overpaid = payments.record_payment(
        SYSTEM, amount=D("200.00"), currency="EUR", received_on=dt.date(2026, 10, 20), customer_id=bellavista.pk
    ).payment
    assert payment_selectors.unallocated(overpaid) == D("200.00")  # nothing open yet: all of it is credit
    run = services.finalize_run(SYSTEM, services.bill(SYSTEM, OCT).pk)
    invoice = invoice_of(run, bellavista)
    assert invoice.total == D("134.20")
    overpaid.refresh_from_db()
    assert payment_selectors.unallocated(overpaid) == D("65.80")
    assert payment_selectors.open_balance(invoice) == D("0.00")
    liffey = invoice_of(run, nuvola.customer("liffey"))  # no credit: left open in full
    assert payment_selectors.open_balance(liffey) == D("110.00")
