"""Fuzzing the bank-statement parsers (camt.053 XML, CSV) and the statement import: every file gives entries
plus refused places, or a ``ValidationFailed`` naming what is wrong; never an unhandled exception. Good entries
around bad ones are kept, and the XML parser expands no entity and reads no file or URL."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError, ValidationFailed
from cspdesk.payments import bank, services
from cspdesk.payments.models import BankImport, Payment
from tests.fixtures import DemoWorld

SYSTEM = Actor.system("test")
NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
GOOD = ("12.50", "EUR", "CRDT", "BOOK", "2026-06-12")  # amount, currency, indicator, status, date

# Text XML can carry (no control characters, no lone surrogates); the markup around it is what breaks.
xml_text = st.characters(blacklist_categories=("Cs", "Cc"))
amounts = st.one_of(
    st.sampled_from(["NaN", "sNaN", "Infinity", "-Infinity", "1E+999999999", "-1e999999999", "1E-999999999",
                     "99999999999999.99", "100000000000000", "0", "-0.00", "1.2.3", "", " 7 "]),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.text(xml_text, max_size=12),
)  # fmt: skip
currencies = st.one_of(st.sampled_from(["EUR", "eur", "XXX", "", "EURO", " EU"]), st.text(xml_text, max_size=4))
indicators = st.one_of(st.sampled_from(["CRDT", "DBIT", "crdt", ""]), st.text(xml_text, max_size=5))
statuses = st.sampled_from(["BOOK", "<Cd>BOOK</Cd>", "PDNG", "", "INFO"])
dates = st.one_of(st.sampled_from(["2026-06-12", "2026-02-31", "12/06/2026", "", "2026-06-12T10:00:00"]),
                  st.text(xml_text, max_size=12))  # fmt: skip
entries = st.tuples(amounts, currencies, indicators, statuses, dates)


def _ntry(amount: str, ccy: str, ind: str, status: str, date: str, *, drop: str = "") -> str:
    fields = {
        "Amt": f"<Amt Ccy={quoteattr(ccy)}>{escape(amount)}</Amt>",
        "CdtDbtInd": f"<CdtDbtInd>{escape(ind)}</CdtDbtInd>",
        "Sts": f"<Sts>{status if status.startswith('<') else escape(status)}</Sts>",
        "BookgDt": f"<BookgDt><Dt>{escape(date)}</Dt></BookgDt>",
        "NtryDtls": "<NtryDtls><TxDtls><RmtInf><Ustrd>payment</Ustrd></RmtInf></TxDtls></NtryDtls>",
    }
    return "<Ntry>" + "".join(v for k, v in fields.items() if k != drop) + "</Ntry>"


def _camt(body: str, ns: str = NS, root: str = "Document", prolog: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<{root} xmlns={quoteattr(ns)}><BkToCstmrStmt>'
            f"<Stmt><Acct><Id><IBAN>IT60X0542811101000000123456</IBAN></Id></Acct>{body}</Stmt>"
            f"</BkToCstmrStmt></{root}>").encode()  # fmt: skip


def _parse(data: bytes, layout: bank.CsvLayout | None = None) -> bank.Parsed | None:
    """The parse, or ``None`` when the file is refused with a clear error."""
    try:
        if bank.is_camt053(data):
            return bank.parse_camt053(data)
        return bank.parse_csv(data, layout or bank.CsvLayout())
    except ValidationFailed as exc:
        assert exc.message and exc.field
        return None


def _assert_entries_sound(parsed: bank.Parsed) -> None:
    for e in parsed.entries:
        assert e.amount.is_finite() and e.amount.copy_abs() < bank.MAX_AMOUNT
        assert len(e.currency) == 3
        for text in (e.text, e.payer_name, e.payer_account, e.account, e.bank_ref):
            assert "\x00" not in text
    for err in parsed.errors:
        assert err["place"] and err["message"]


@settings(max_examples=150)
@given(st.lists(entries, max_size=5), st.integers(0, 5), st.sampled_from(["", "Amt", "CdtDbtInd", "BookgDt"]),
       st.sampled_from([NS, "", "urn:wrong", "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"]))  # fmt: skip
@example(bad=[("NaN", "EUR", "CRDT", "BOOK", "2026-06-12")], at=0, drop="", ns=NS)  # passed on, then crashed `<=`
@example(bad=[("-1e999999999", "EUR", "CRDT", "BOOK", "2026-06-12")], at=0, drop="", ns=NS)  # abs() overflowed
@example(bad=[("1E+30", "EUR", "CRDT", "BOOK", "2026-06-12")], at=0, drop="", ns=NS)  # too big to quantize
def test_camt053_keeps_good_entries_around_bad_ones(bad: list, at: int, drop: str, ns: str) -> None:
    good = _ntry(*GOOD)
    broken = [_ntry(*e, drop=drop) for e in bad]
    body = [*broken[:at], good, *broken[at:], good]
    parsed = _parse(_camt("".join(body), ns))
    assert parsed is not None
    _assert_entries_sound(parsed)
    assert len(parsed.entries) + len(parsed.errors) == len(body)  # each entry is taken or refused with its place
    good_places = {f"statement 1, entry {i}" for i in (min(at, len(bad)) + 1, len(body))}
    assert good_places <= {e.place for e in parsed.entries}
    assert [e.amount for e in parsed.entries if e.place in good_places] == [Decimal("12.50")] * 2


@settings(max_examples=150)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: ("<BkToCstmrStmt>" + t).encode()))
@example(b"<Document><BkToCstmrStmt>")
@example(_camt(_ntry(*GOOD))[:-30])
def test_arbitrary_bytes_are_parsed_or_refused(data: bytes) -> None:
    parsed = _parse(data)
    if parsed is not None:
        _assert_entries_sound(parsed)


def test_external_entities_are_refused_unread() -> None:
    prolog = (
        '<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY web SYSTEM "http://127.0.0.1:9/x">]>'
    )
    data = _camt(_ntry(*GOOD).replace("<Ustrd>payment", "<Ustrd>&xxe;&web;payment"), prolog=prolog)
    with pytest.raises(ValidationFailed, match=r"DOCTYPE is not accepted") as exc:
        bank.parse_camt053(data)
    assert exc.value.field == "file" and "root:" not in exc.value.message


def test_billion_laughs_is_refused_without_expanding() -> None:
    lol = ['<!ENTITY l0 "lol">'] + [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)]
    data = _camt(_ntry(*GOOD).replace("<Ustrd>payment", "<Ustrd>&l9;payment"),
                 prolog=f"<!DOCTYPE Document [{''.join(lol)}]>")  # fmt: skip
    with pytest.raises(ValidationFailed, match=r"amplification|DOCTYPE") as exc:
        bank.parse_camt053(data)
    assert len(exc.value.message) < 500


def test_an_internal_entity_is_refused_too() -> None:
    data = _camt(_ntry(*GOOD).replace("<Ustrd>payment", "<Ustrd>&a;payment"),
                 prolog='<!DOCTYPE Document [<!ENTITY a "x">]>')  # fmt: skip
    with pytest.raises(ValidationFailed, match="DOCTYPE is not accepted"):
        bank.parse_camt053(data)


layouts = st.builds(
    bank.CsvLayout,
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8-sig", "latin-1", "utf-16", "ascii", "no-such-codec"]),
    decimal_separator=st.sampled_from([".", ","]),
    thousands_separator=st.sampled_from(["", ".", ",", "'"]),
    date_format=st.sampled_from(["%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"]),
    credit_column=st.sampled_from(["", "dc"]),
    default_currency=st.sampled_from(["", "EUR"]),
)
csv_cells = st.one_of(
    st.text(max_size=15), st.sampled_from(['"', '"x', "x\ry", "\x00", "NaN", "1e999999999", "\ufeff"])
)


@settings(max_examples=150)
@given(layouts, st.lists(st.lists(csv_cells, max_size=5), max_size=4), st.integers(0, 4), st.booleans())
@example(bank.CsvLayout(), [["\rT"]], 0, False)  # csv.Error: new-line character seen in unquoted field
@example(bank.CsvLayout(), [["x" * 200_000]], 0, False)  # csv.Error: field larger than field limit
@example(bank.CsvLayout(), [["2026-06-12", "NaN", "EUR"]], 0, False)
def test_csv_keeps_good_lines_around_bad_ones(layout: bank.CsvLayout, bad: list, at: int, bom: bool) -> None:
    d = layout.delimiter
    dated = dt.date(2026, 6, 12).strftime(layout.date_format)
    amount = "12" + layout.decimal_separator + "50"
    out = io.StringIO()
    csv.writer(out, delimiter=d, lineterminator="").writerow([dated, amount, "EUR", "CRDT", "paid"])
    good = out.getvalue()
    lines = [d.join(row) for row in bad]
    lines = [*lines[:at], good, *lines[at:], good]
    text = d.join(["date", "amount", "currency", "dc", "text"]) + "\n" + "\n".join(lines)
    codec = {"utf-8-sig": "utf-8", "no-such-codec": "utf-8"}.get(layout.encoding, layout.encoding)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode(codec, "replace")
    parsed = _parse(data, layout)
    if parsed is None:  # refused as a whole: an unknown codec, or a BOM the codec keeps in the header's first name
        assert layout.encoding == "no-such-codec" or (bom and layout.encoding != "utf-8-sig")
        return
    _assert_entries_sound(parsed)
    ended_clean = all(not set(cell) & {'"', "\r", "\n"} for row in bad for cell in row)
    if ended_clean and layout.encoding in {"utf-8-sig", "latin-1"}:  # one line, one record: the good lines stay
        good_lines = {f"line {min(at, len(bad)) + 2}", f"line {len(lines) + 1}"}
        assert good_lines <= {e.place for e in parsed.entries}


@pytest.mark.django_db
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(entries, min_size=1, max_size=4))
@example([("NaN", "EUR", "CRDT", "BOOK", "2026-06-12")])
@example([("1E+30", "EUR", "CRDT", "BOOK", "2026-06-12")])
@example([("0.001", "EUR", "CRDT", "BOOK", "2026-06-12")])
@example([("5", "XYZ", "CRDT", "BOOK", "2026-06-12")])
def test_import_statement_records_good_entries_and_reports_the_rest(
    demo: DemoWorld, tmp_path_factory: pytest.TempPathFactory, bad: list
) -> None:
    path = tmp_path_factory.mktemp("camt") / "statement.xml"
    n = BankImport.objects.count()
    marker = f"fuzz-{n}"  # a fresh bank reference per example: the good entry is new each time
    good = _ntry(*GOOD).replace("<Amt", f"<AcctSvcrRef>{marker}</AcctSvcrRef><Amt")
    path.write_bytes(_camt(good + "".join(_ntry(*e) for e in bad)))
    org = demo.org("nuvola")
    with clock.frozen(dt.datetime(2026, 6, 15, 9, 0, tzinfo=dt.UTC)):
        try:
            result = services.import_statement(SYSTEM, path, organisation_id=org.pk)
        except DomainError as exc:  # pragma: no cover - a file with one good entry is never refused whole
            pytest.fail(f"refused: {exc.message}")
    assert Payment.objects.filter(external_key__endswith=marker).count() == 1
    assert result["created"] >= 1
    assert all(e["place"] and e["message"] for e in result["errors"])
    assert BankImport.objects.count() == n + 1
