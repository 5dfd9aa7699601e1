"""The customer statement PDF in the customer's language; Microsoft payables: paid, reminders, cash view."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from pypdf import PdfReader

from cspdesk.audit.models import AuditEvent
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, Forbidden
from cspdesk.partnercenter.recon.models import Import, MicrosoftInvoice
from cspdesk.payments import selectors, services, statements
from cspdesk.payments.models import PayableReminder
from tests.payments.fixtures import make_credit_note, make_invoice

D = Decimal
NOW = dt.datetime(2026, 6, 15, 9, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system("test")


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        pytest.param("bellavista", ["Estratto conto", "Fattura", "Nota di credito", "Pagamento", "Saldo da pagare",
                                    "Saldo da pagare: 150,00\u00a0€", "15 giu 2026"], id="it"),
        pytest.param("gyor", ["Folyószámla-kivonat", "Befizetés", "Fizetendő egyenleg", "Győri Gépgyár Kft."],
                     id="hu"),
    ],
)  # fmt: skip
def test_statement_pdf_in_the_customers_language(demo, customer: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    c = demo.customer(customer)
    actor = demo.actor("nuvola.billing" if customer == "bellavista" else "fjall.billing")
    with clock.frozen(NOW):
        inv = make_invoice(c, "300.00", due=dt.date(2026, 6, 30), issued=dt.date(2026, 5, 31))
        make_credit_note(inv, "50.00", issued=dt.date(2026, 6, 1))
        services.record_payment(actor, amount=D("100.00"), currency=c.currency, received_on=dt.date(2026, 6, 10),
                                customer_id=c.pk, reference=inv.number)  # fmt: skip
        pdf, name = statements.statement_pdf(actor, c.pk)
    text = text_of(pdf)
    for snippet in expected:
        assert snippet.replace("\u00a0", " ") in text.replace("\u00a0", " "), snippet
    assert name == f"statement-{c.pk}-20260615.pdf"
    data = statements.statement_data(SYSTEM, c.pk, dt.date(2026, 6, 15))
    assert [line["balance"] for line in data["sections"][0]["lines"]] == [D("300.00"), D("250.00"), D("150.00")]


def test_statement_scoping(demo) -> None:  # type: ignore[no-untyped-def]
    from cspdesk.core.errors import NotFound

    own = demo.api("bellavista.contabilita").get(f"/api/v1/customers/{demo.customer('bellavista').pk}/statement.pdf")
    assert own.status_code == 200 and own["Content-Type"] == "application/pdf"
    other = demo.api("bellavista.contabilita").get(f"/api/v1/customers/{demo.customer('liffey').pk}/statement.pdf")
    assert other.status_code == 404
    with pytest.raises(NotFound):  # the provider does not read its reseller's customer ledger
        statements.statement_data(demo.actor("nordmoln.billing"), demo.customer("gyor").pk)
    with pytest.raises(Forbidden):
        statements.statement_data(demo.actor("nuvola.sales"), demo.customer("bellavista").pk)


def microsoft_invoice(org, number: str, due: dt.date, total: str = "1000.00") -> MicrosoftInvoice:  # type: ignore[no-untyped-def]
    imp = Import.objects.create(
        organisation=org, kind="invoice", file_name=f"{number}.csv", file_sha256=uuid.uuid4().hex * 2, file_size=1,
        partner_tenant_id=uuid.uuid4(), invoice_number=number, period=dt.date(2026, 5, 1), currency="EUR", rows=1,
        rejected=0, total_cost=0, assigned_cost=0, unassigned_cost=0, customers=0, raw_path="x", imported_by="t",
    )  # fmt: skip
    return MicrosoftInvoice.objects.create(organisation=org, number=number, invoice_date=due - dt.timedelta(days=60),
                                           due_date=due, currency="EUR", subtotal=D(total), tax=D(0), total=D(total),
                                           source=imp)  # fmt: skip


def test_payables_reminders_once_per_stage(demo, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    org = demo.org("nuvola")
    microsoft_invoice(org, "G0100", dt.date(2026, 6, 20))
    microsoft_invoice(org, "G0200", dt.date(2026, 7, 30))
    admins = services.billing_admin_emails(org.pk)
    assert admins == ["nuvola.billing@demo.cspdesk.localhost"]
    with clock.frozen(dt.datetime(2026, 6, 12, 6, 0, tzinfo=dt.UTC)):  # 8 days before: nothing yet
        assert services.remind_payables(SYSTEM) == []
    with clock.frozen(dt.datetime(2026, 6, 13, 6, 0, tzinfo=dt.UTC)):  # 7 days before
        out = io.StringIO()
        call_command("payables-remind", "--json", stdout=out)
        assert [(s["number"], s["stage"]) for s in json.loads(out.getvalue())["sent"]] == [("G0100", "due_soon")]
        assert services.remind_payables(SYSTEM) == []  # same stage: never twice
    with clock.frozen(dt.datetime(2026, 6, 21, 6, 0, tzinfo=dt.UTC)):
        assert [(s["number"], s["stage"]) for s in services.remind_payables(SYSTEM)] == [("G0100", "overdue")]
        assert services.remind_payables(SYSTEM) == []
    # In the organisation's language (Nuvola works in Italian), with Italian dates.
    assert [m.subject for m in mail.outbox] == [
        "La fattura Microsoft G0100 è in scadenza",
        "La fattura Microsoft G0100 è scaduta",
    ]
    assert mail.outbox[0].to == admins
    assert "di 1.000,00\u00a0€ scade tra 7 giorni, il 20 giu 2026" in mail.outbox[0].body
    assert "era in scadenza il 20 giu 2026, 1 giorno fa" in mail.outbox[1].body
    assert "cspdesk payables --mark-paid G0100" in mail.outbox[1].body
    assert PayableReminder.objects.count() == 2
    assert AuditEvent.objects.filter(action="payments.payable_reminder_sent").count() == 2


def test_mark_paid_stops_reminders_and_feeds_the_cash_view(demo, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    org = demo.org("nuvola")
    microsoft_invoice(org, "G0300", dt.date(2026, 6, 18), "400.00")
    microsoft_invoice(org, "G0400", dt.date(2026, 7, 8), "700.00")
    with clock.frozen(NOW):
        make_invoice(demo.customer("bellavista"), "250.00", due=dt.date(2026, 6, 1))  # overdue: counts this week
        make_invoice(demo.customer("bellavista"), "90.00", due=dt.date(2026, 7, 9))
        with pytest.raises(Forbidden):
            services.mark_microsoft_paid(demo.actor("nuvola.sales"), "G0300", paid_on=dt.date(2026, 6, 14))
        out = io.StringIO()
        call_command("payables", "--mark-paid", "G0300", "--date", "2026-06-14", "--json", stdout=out)
        assert json.loads(out.getvalue())["paid_on"] == "2026-06-14"
        with pytest.raises(Conflict):
            services.mark_microsoft_paid(SYSTEM, "G0300", paid_on=dt.date(2026, 6, 15))
        assert services.remind_payables(SYSTEM) == []
        listed = io.StringIO()
        call_command("payables", "--json", stdout=listed)
        rows = {r["number"]: r for r in json.loads(listed.getvalue())["payables"]}
        assert (rows["G0300"]["paid"], rows["G0300"]["paid_on"], rows["G0300"]["flags"]) == (True, "2026-06-14", [])
        assert (rows["G0400"]["paid"], rows["G0400"]["paid_on"]) == (False, None)
        weeks = selectors.cash_forecast(demo.actor("nuvola.billing"))
        api = demo.api("nuvola.billing").get("/api/v1/receivables/cash-forecast").json()
    assert len(weeks) == 8 and len(api) == 8
    assert [(w["week_start"], w["receivables_expected"], w["microsoft_payables_due"]) for w in weeks[:4]] == [
        (dt.date(2026, 6, 15), D("250.00"), D("0.00")), (dt.date(2026, 6, 22), D("0.00"), D("0.00")),
        (dt.date(2026, 6, 29), D("0.00"), D("0.00")), (dt.date(2026, 7, 6), D("90.00"), D("700.00"))]  # fmt: skip
    assert weeks[3]["net"] == D("-610.00")


def test_write_off_over_the_api_closes_the_receivable_and_shows_on_the_statement(demo) -> None:  # type: ignore[no-untyped-def]
    c = demo.customer("bellavista")
    with clock.frozen(NOW):
        inv = make_invoice(c, "300.00", due=dt.date(2026, 5, 31), issued=dt.date(2026, 5, 1))
        api = demo.api("nuvola.billing")
        url = f"/api/v1/invoices/{inv.pk}/write-off"
        assert demo.api("nuvola.sales").post(url, {"reason": "x"}, content_type="application/json").status_code == 403
        assert demo.api("fjall.billing").post(url, {"reason": "x"}, content_type="application/json").status_code == 404
        missing = api.post(url, {"reason": " "}, content_type="application/json")
        assert missing.status_code == 422 and missing.json()["field"] == "reason"
        too_much = api.post(url, {"reason": "x", "amount": "300.01"}, content_type="application/json")
        assert too_much.status_code == 409 and too_much.json()["code"] == "over_write_off"
        made = api.post(url, {"reason": "Company dissolved", "written_off_on": "2026-06-12"},
                        content_type="application/json")  # fmt: skip
        assert made.status_code == 201, made.content
        body = made.json()
        assert (D(body["amount"]), body["invoice"], body["currency"]) == (D("300.00"), inv.number, "EUR")
        assert selectors.open_balance(inv) == D("0.00")
        again = api.post(url, {"reason": "twice"}, content_type="application/json")
        assert again.status_code == 409 and again.json()["code"] == "nothing_open"
        listed = api.get(f"/api/v1/write-offs?customer_id={c.pk}").json()
        assert [w["id"] for w in listed["items"]] == [body["id"]]
        assert demo.api("bellavista.contabilita").get("/api/v1/write-offs").json()["count"] == 1  # its own
        assert demo.api("fjall.billing").get("/api/v1/write-offs").json()["count"] == 0  # another partner's
        pdf, _ = statements.statement_pdf(demo.actor("nuvola.billing"), c.pk)
    text = text_of(pdf)
    assert f"Stralcio {inv.number}" in text
    data = statements.statement_data(SYSTEM, c.pk, dt.date(2026, 6, 15))
    assert data["sections"][0]["balance"] == D("0.00")
    assert AuditEvent.objects.filter(action="payments.invoice_written_off", customer_id=c.pk).count() == 1

    with clock.frozen(NOW):
        back = api.post(f"/api/v1/write-offs/{body['id']}/reverse", {"reason": "Paid after all"},
                        content_type="application/json")  # fmt: skip
        assert back.status_code == 200 and back.json()["reversed_at"]
        assert selectors.open_balance(inv) == D("300.00")
    assert statements.statement_data(SYSTEM, c.pk, dt.date(2026, 6, 15))["sections"][0]["balance"] == D("300.00")
