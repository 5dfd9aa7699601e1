"""Bank statements (camt.053 in two versions, CSV), replays, refused rows, and the CLI/API around them."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.payments import selectors, services
from cspdesk.payments.models import BankImport, Payment
from tests.payments.fixtures import make_invoice

D = Decimal
NOW = dt.datetime(2026, 6, 15, 9, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system("test")


def camt(version: str, entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}">
 <BkToCstmrStmt><GrpHdr><MsgId>S1</MsgId><CreDtTm>2026-06-15T08:00:00</CreDtTm></GrpHdr>
  <Stmt><Id>STMT-1</Id><Acct><Id><IBAN>IT60 X054 2811 1010 0000 0123 456</IBAN></Id></Acct>{entries}</Stmt>
 </BkToCstmrStmt></Document>""".encode()


def ntry(amount: str, ind: str, *, ref: str = "", text: str = "", name: str = "", iban: str = "",
         strd: str = "", ccy: str = "EUR", status: str = "<Sts>BOOK</Sts>") -> str:  # fmt: skip
    refs = f"<AcctSvcrRef>{ref}</AcctSvcrRef>" if ref else ""
    rmt = f"<Ustrd>{text}</Ustrd>" if text else ""
    if strd:
        rmt += f"<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>{strd}</Ref></CdtrRefInf></Strd>"
    parties = f"<RltdPties><Dbtr><Nm>{name}</Nm></Dbtr><DbtrAcct><Id><IBAN>{iban}</IBAN></Id></DbtrAcct></RltdPties>"
    return (f"<Ntry>{refs}<Amt Ccy=\"{ccy}\">{amount}</Amt><CdtDbtInd>{ind}</CdtDbtInd>{status}"
            f"<BookgDt><Dt>2026-06-12</Dt></BookgDt><ValDt><Dt>2026-06-12</Dt></ValDt>"
            f"<NtryDtls><TxDtls>{parties}<RmtInf>{rmt}</RmtInf></TxDtls></NtryDtls></Ntry>")  # fmt: skip


@pytest.fixture
def invoices(demo):  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        c = demo.customer("bellavista")
        demo.a = make_invoice(c, "122.00", due=dt.date(2026, 5, 31))
        demo.b = make_invoice(c, "300.00", due=dt.date(2026, 6, 30))
        demo.l1 = make_invoice(demo.customer("liffey"), "55.50", due=dt.date(2026, 6, 30))
    return demo


@pytest.mark.parametrize("version", ["02", "08"])
def test_camt053_several_entries_and_replay(invoices, tmp_path: Path, version: str) -> None:  # type: ignore[no-untyped-def]
    from cspdesk.payments.allocation import rf_reference

    entries = "".join([
        ntry("122.00", "CRDT", ref="BK-001", text=f"Fattura {invoices.a.number}", name="Trattoria Bellavista",
             iban="IT02A0301503200000003517230"),
        ntry("55.50", "CRDT", ref="BK-002", strd=rf_reference(invoices.l1.number), name="Liffey Analytics"),
        ntry("999.00", "DBIT", ref="BK-003", text="Microsoft payment"),
        ntry("70.00", "CRDT", text="gift from nobody", name="Mystery SpA"),
        ntry("70.00", "CRDT", text="gift from nobody", name="Mystery SpA"),
        ntry("1.00", "CRDT", ref="BK-006", status="<Sts>PDNG</Sts>"),
    ])  # fmt: skip
    path = tmp_path / f"camt053-{version}.xml"
    path.write_bytes(camt(version, entries))
    with clock.frozen(NOW):
        first = services.import_statement(SYSTEM, path, organisation_id=invoices.org("nuvola").pk)
        second = services.import_statement(SYSTEM, path, organisation_id=invoices.org("nuvola").pk)
    assert (first["entries"], first["created"], first["duplicates"], first["debits_skipped"]) == (5, 4, 0, 1)
    assert first["in_suspense"] == 2  # the two identical entries without a bank reference: both kept
    assert first["errors"] == [{"place": "statement 1, entry 6", "message": "Sts: only booked entries are taken, "
                                "got 'PDNG'"}]  # fmt: skip
    assert (second["created"], second["duplicates"]) == (0, 4)
    assert Payment.objects.count() == 4
    assert selectors.open_balance(invoices.a) == D("0.00")
    assert selectors.open_balance(invoices.l1) == D("0.00")
    assert Payment.objects.get(external_key__endswith="BK-001").payer_account == "IT02A0301503200000003517230"
    assert BankImport.objects.count() == 2


def test_csv_layout_with_comma_decimals(invoices, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "estratto.csv"
    path.write_text(
        "Data;Importo;Divisa;Causale;Ordinante\n"
        f"12/06/2026;1.122,00;EUR;saldo {invoices.b.number};Trattoria Bellavista S.r.l.\n"
        "12/06/2026;-50,00;EUR;commissioni;Banca\n"
        "13/06/2026;dodici;EUR;?;X\n"
        "31/02/2026;5,00;EUR;bad date;X\n",
        encoding="utf-8",
    )
    layout = {"date": "Data", "amount": "Importo", "currency": "Divisa", "text": "Causale",
              "payer_name": "Ordinante", "date_format": "%d/%m/%Y", "decimal_separator": ",",
              "thousands_separator": ".", "delimiter": ";"}  # fmt: skip
    with clock.frozen(NOW):
        r = services.import_statement(SYSTEM, path, organisation_id=invoices.org("nuvola").pk, layout=layout)
        again = services.import_statement(SYSTEM, path, organisation_id=invoices.org("nuvola").pk, layout=layout)
    assert (r["entries"], r["created"], r["debits_skipped"]) == (2, 1, 1)
    assert [e["place"] for e in r["errors"]] == ["line 4", "line 5"]
    assert "column 'Importo'" in r["errors"][0]["message"]
    assert "expected a date as %d/%m/%Y" in r["errors"][1]["message"]
    assert (again["created"], again["duplicates"]) == (0, 1)
    p = Payment.objects.get()
    assert (p.amount, p.customer, p.match_rule) == (D("1122"), invoices.customer("bellavista"), "reference")
    assert selectors.open_balance(invoices.b) == D("0.00")
    assert selectors.customer_credit(p.customer_id) == D("700.00")  # 1122 − 300 − 122


def test_not_a_statement(invoices, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cspdesk.core.errors import ValidationFailed

    path = tmp_path / "x.xml"
    path.write_bytes(b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'><BkToCstmrStmt>")
    with pytest.raises(ValidationFailed, match="not well-formed XML"):
        services.import_statement(SYSTEM, path, organisation_id=invoices.org("nuvola").pk)


def test_cli_import_and_ar_json(invoices, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.xml"
    path.write_bytes(camt("05", ntry("100.00", "CRDT", ref="R1", text=invoices.b.number)))
    out = io.StringIO()
    with clock.frozen(NOW):
        call_command("payments", "import", str(path), "--org", "NUV", "--json", stdout=out)
        result = json.loads(out.getvalue())
        assert (result["created"], result["format"]) == (1, "camt053")
        out = io.StringIO()
        call_command("ar", "--json", "--balances", stdout=out)
    report = json.loads(out.getvalue())
    nuvola = next(r for r in report["organisations"] if r["organisation"] == invoices.org("nuvola").legal_name)
    # a (122, due 31 May) is 15 days late; b (300−100) and l1 (55.50) are due 30 June
    assert nuvola["buckets"] == {"current": "255.50", "1_30": "122.00", "31_60": "0.00", "61_90": "0.00",
                                 "over_90": "0.00", "total": "377.50"}  # fmt: skip
    bella = next(c for c in report["customers"] if c["customer"] == invoices.customer("bellavista").name)
    assert (bella["open"], bella["overdue"], bella["balance"]) == ("322.00", "122.00", "322.00")


def test_api_record_and_permissions(invoices) -> None:  # type: ignore[no-untyped-def]
    body = {"amount": "122.00", "currency": "EUR", "received_on": "2026-06-14",
            "customer_id": invoices.customer("bellavista").pk, "reference": invoices.a.number}  # fmt: skip
    with clock.frozen(NOW):
        denied = invoices.api("nuvola.sales").post("/api/v1/payments", body, content_type="application/json")
        assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
        ok = invoices.api("nuvola.billing").post("/api/v1/payments", body, content_type="application/json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["allocations"][0]["invoice"] == invoices.a.number
    own = invoices.api("bellavista.contabilita").get("/api/v1/payments").json()
    assert [p["id"] for p in own] == [ok.json()["id"]]
    assert invoices.api("liffey.admin").get("/api/v1/payments").json() == []
    assert invoices.api("bellavista.contabilita").get("/api/v1/payments/suspense").json() == []
    assert invoices.api("fjall.billing").get(f"/api/v1/payments/{ok.json()['id']}").status_code == 404
    aging = invoices.api("nuvola.billing").get("/api/v1/receivables/aging").json()
    assert [r["organisation_id"] for r in aging["organisations"]] == [invoices.org("nuvola").pk]
    assert invoices.api("fjall.billing").get("/api/v1/receivables/aging").json()["organisations"] == []
