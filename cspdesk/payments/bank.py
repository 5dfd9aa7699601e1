"""Bank statement parsers: ISO 20022 camt.053 (any version .001.02 … .001.08) and a configurable CSV layout.

Parsers return :class:`Entry` values and the places they refused; they never touch the database. A file
that cannot be read at all is refused with :class:`ValidationFailed`; one bad entry or line is reported with
its place and the others are kept. XML is parsed without entity expansion, DTD loading or network access.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lxml import etree

from cspdesk.core.errors import ValidationFailed

# Payments hold 20 digits with 6 after the point: an amount must stay below 10^14.
MAX_AMOUNT = Decimal(10) ** 14


def _checked(amount: Decimal, text: str) -> Decimal:
    """``amount`` when it is a finite amount a payment can hold, else :class:`ValueError`."""
    if not amount.is_finite():
        raise ValueError(f"expected an amount, got {text!r}")
    if amount.copy_abs() >= MAX_AMOUNT:  # copy_abs: abs() would overflow the context on 1E+999999999
        raise ValueError(f"expected an amount below {MAX_AMOUNT:,}, got {text!r}")
    return amount


def _clean(text: str) -> str:
    """Text without NUL characters, which no database text column takes."""
    return text.replace("\x00", "")


@dataclass(frozen=True)
class Entry:
    """One booked statement entry."""

    place: str  # where in the file: "entry 3" / "line 7"
    booked_on: dt.date
    amount: Decimal
    currency: str
    credit: bool
    text: str
    payer_name: str
    payer_account: str
    account: str
    bank_ref: str

    @property
    def key(self) -> str:
        """The idempotency key: the bank's entry reference, else a hash of account, date, amount and text."""
        if self.bank_ref:
            return f"bank:{self.account}:{self.bank_ref}"
        digest = hashlib.sha256(
            "|".join([self.account, self.booked_on.isoformat(), str(self.amount), self.currency, self.text,
                      self.payer_account]).encode()
        ).hexdigest()  # fmt: skip
        return f"hash:{digest}"


@dataclass
class Parsed:
    format: str
    entries: list[Entry] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------- camt.053


def _children(el: Any, name: str) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == name]


def _path(el: Any, *names: str) -> Any:
    """The first element down the path of local names (namespace-agnostic), or ``None``."""
    for name in names:
        if el is None:
            return None
        found = _children(el, name)
        el = found[0] if found else None
    return el


def _text(el: Any, *names: str) -> str:
    found = _path(el, *names)
    return (found.text or "").strip() if found is not None and found.text else ""


def _date(el: Any, *names: str) -> str:
    return _text(el, *names, "Dt") or _text(el, *names, "DtTm")[:10]


def is_camt053(data: bytes) -> bool:
    head = data[:4096]
    return b"BkToCstmrStmt" in head or b"camt.053" in head


def parse_camt053(data: bytes) -> Parsed:
    """Every entry of every statement; credit entries are kept with ``credit=True``."""
    parsed = Parsed("camt053")
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError as exc:
        raise ValidationFailed(f"not well-formed XML: {exc}", field="file", code="bad_file") from None
    if root.getroottree().docinfo.doctype:  # no bank sends one; entity tricks need one
        raise ValidationFailed("a DOCTYPE is not accepted in a bank statement", field="file", code="bad_file")
    statement_root = _path(root, "BkToCstmrStmt")
    if statement_root is None:
        raise ValidationFailed("no BkToCstmrStmt element: not a camt.053 statement", field="file", code="bad_file")
    n = 0
    for s_index, stmt in enumerate(_children(statement_root, "Stmt"), start=1):
        account = _text(stmt, "Acct", "Id", "IBAN") or _text(stmt, "Acct", "Id", "Othr", "Id")
        for ntry in _children(stmt, "Ntry"):
            n += 1
            place = f"statement {s_index}, entry {n}"
            try:
                parsed.entries.append(_entry(ntry, account, place))
            except ValueError as exc:
                parsed.errors.append({"place": place, "message": str(exc)})
    return parsed


def _entry(ntry: Any, account: str, place: str) -> Entry:
    amt = _path(ntry, "Amt")
    if amt is None or not (amt.text or "").strip():
        raise ValueError("Amt: expected the entry amount")
    try:
        amount = _checked(Decimal(amt.text.strip()), amt.text.strip())
    except decimal.InvalidOperation:
        raise ValueError(f"Amt: expected a decimal amount, got {amt.text.strip()!r}") from None
    except ValueError as exc:
        raise ValueError(f"Amt: {exc}") from None
    currency = (amt.get("Ccy") or "").strip().upper()
    if len(currency) != 3:
        raise ValueError("Amt/@Ccy: expected an ISO 4217 currency code")
    indicator = _text(ntry, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise ValueError(f"CdtDbtInd: expected CRDT or DBIT, got {indicator!r}")
    status = _text(ntry, "Sts") or _text(ntry, "Sts", "Cd")
    if status and status not in ("BOOK", "BOOKED"):
        raise ValueError(f"Sts: only booked entries are taken, got {status!r}")
    booked = _date(ntry, "BookgDt") or _date(ntry, "ValDt")
    try:
        booked_on = dt.date.fromisoformat(booked)
    except ValueError:
        raise ValueError(f"BookgDt: expected a date (YYYY-MM-DD), got {booked!r}") from None
    tx = _path(ntry, "NtryDtls", "TxDtls")
    texts: list[str] = []
    payer_name = payer_account = ""
    if tx is not None:
        rmt = _path(tx, "RmtInf")
        if rmt is not None:
            texts += [(u.text or "").strip() for u in _children(rmt, "Ustrd") if (u.text or "").strip()]
            for strd in _children(rmt, "Strd"):
                ref = _text(strd, "CdtrRefInf", "Ref")
                if ref:
                    texts.append(ref)
                texts += [(r.text or "").strip() for r in _children(strd, "AddtlRmtInf") if r.text]
        party = "Dbtr"
        payer_name = _text(tx, "RltdPties", party, "Nm") or _text(tx, "RltdPties", party, "Pty", "Nm")
        payer_account = _text(tx, "RltdPties", f"{party}Acct", "Id", "IBAN") or _text(
            tx, "RltdPties", f"{party}Acct", "Id", "Othr", "Id"
        )
    addtl = _text(ntry, "AddtlNtryInf")
    if addtl:
        texts.append(addtl)
    bank_ref = _text(ntry, "AcctSvcrRef") or _text(ntry, "NtryRef")
    return Entry(place, booked_on, amount, currency, indicator == "CRDT", " ".join(texts)[:500], payer_name[:200],
                 payer_account.replace(" ", "")[:64], account.replace(" ", ""), bank_ref)  # fmt: skip


# ---------------------------------------------------------------- CSV


@dataclass(frozen=True)
class CsvLayout:
    """Which columns hold what. ``amount`` is signed (credits positive) unless ``credit_column`` says which
    rows are credits (its value equals ``credit_value``)."""

    date: str = "date"
    amount: str = "amount"
    currency: str = "currency"
    text: str = "text"
    payer_name: str = "payer"
    payer_account: str = "payer_account"
    reference: str = "reference"
    account: str = "account"
    entry_reference: str = ""
    credit_column: str = ""
    credit_value: str = "CRDT"
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    thousands_separator: str = ""
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    default_currency: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CsvLayout:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValidationFailed(f"unknown CSV layout keys: {', '.join(sorted(unknown))}", field="layout")
        return cls(**{k: str(v) for k, v in data.items()})


def parse_amount(text: str, layout: CsvLayout) -> Decimal:
    value = text.strip().replace("\u00a0", "").replace(" ", "")
    if layout.thousands_separator:
        value = value.replace(layout.thousands_separator, "")
    if layout.decimal_separator != ".":
        if "." in value and layout.thousands_separator != ".":
            raise ValueError(f"expected {layout.decimal_separator!r} as the decimal separator, got {text!r}")
        value = value.replace(layout.decimal_separator, ".")
    try:
        amount = Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError(f"expected an amount, got {text!r}") from None
    return _checked(amount, text)


def parse_csv(data: bytes, layout: CsvLayout) -> Parsed:
    parsed = Parsed("csv")
    try:
        text = data.decode(layout.encoding)
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"not {layout.encoding} text: {exc}", field="file", code="bad_file") from None
    except LookupError:
        raise ValidationFailed(f"unknown text encoding {layout.encoding!r}", field="encoding") from None
    if not layout.delimiter or len(layout.delimiter) != 1:
        raise ValidationFailed(f"the CSV delimiter must be one character, got {layout.delimiter!r}",
                               field="delimiter")  # fmt: skip
    reader = csv.DictReader(io.StringIO(_clean(text), newline=""), delimiter=layout.delimiter)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise ValidationFailed(f"line 1 (the header) is not valid CSV: {exc}", field="file", code="bad_file") from None
    for needed in (layout.date, layout.amount):
        if needed not in header:
            raise ValidationFailed(
                f"CSV header has no column {needed!r} (columns: {', '.join(header)})", field=needed, code="bad_file"
            )
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a field over the csv module's size limit, a NUL byte, a broken quote
            parsed.errors.append({"place": f"line {start}", "message": f"not valid CSV: {exc}"})
            continue
        place = f"line {reader.line_num}"

        def col(name: str, row: dict[str, Any] = row) -> str:
            return (row.get(name) or "").strip() if name else ""

        try:
            try:
                booked_on = dt.datetime.strptime(col(layout.date), layout.date_format).date()  # noqa: DTZ007
            except ValueError:
                raise ValueError(f"column {layout.date!r}: expected a date as {layout.date_format}, "
                                 f"got {col(layout.date)!r}") from None  # fmt: skip
            try:
                amount = parse_amount(col(layout.amount), layout)
            except ValueError as exc:
                raise ValueError(f"column {layout.amount!r}: {exc}") from None
            credit = amount > 0
            if layout.credit_column:
                credit = col(layout.credit_column).upper() == layout.credit_value.upper()
                amount = abs(amount)
            currency = (col(layout.currency) or layout.default_currency).upper()
            if len(currency) != 3:
                raise ValueError(f"column {layout.currency!r}: expected an ISO 4217 currency code")
            texts = [t for t in (col(layout.reference), col(layout.text)) if t]
            parsed.entries.append(Entry(place, booked_on, abs(amount), currency, credit, " ".join(texts)[:500],
                                        col(layout.payer_name)[:200], col(layout.payer_account).replace(" ", "")[:64],
                                        col(layout.account).replace(" ", ""),
                                        col(layout.entry_reference)))  # fmt: skip
        except ValueError as exc:
            parsed.errors.append({"place": place, "message": str(exc)})
    return parsed
