"""The streaming recon-file engine: CSV → Parquet → validated, aggregated charge lines, all in DuckDB.

No database access here; :mod:`.services` turns what this module yields into rows. Memory is bounded by
DuckDB's ``memory_limit`` (it spills to ``<workdir>/tmp``), whatever the file size.

The CSV is parsed once: its raw rows go straight to ``rows.parquet``, in parallel and in file order, so a
row's line number is its position in the Parquet (see :func:`rows_sql`). Everything after that reads only
the columns it needs from the Parquet, which costs little next to parsing CSV: one scan finds the bad rows
with a vectorised yes/no per row (the reasons are spelt out later, for those rows only), one aggregates the
good rows into charge lines. The rejected line numbers are kept beside the rows in ``rejected.parquet``.

Line numbers count physical lines with the header as line 1. A file whose records are not exactly one per
line (a blank line, a quoted value holding a line break), or that DuckDB cannot parse structurally (a row
with the wrong number of fields, a broken quote, bad UTF-8), is cleaned by a streaming pass in Python first:
the broken rows become ``malformed_row`` rejects and every other row keeps its true line number, which is
then written beside it in the Parquet.
"""

# ruff: noqa: S608 - SQL here is built from the layouts' fixed column names and values passed through _lit().
from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import re
import shutil
import threading
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from babel.numbers import list_currencies
from django.conf import settings

from cspdesk.core.errors import ValidationFailed

from .layouts import INVOICE, KNOWN_CHARGE_TYPES, USAGE, Detected, Kind, Layout, detect

MONEY_PLACES = 6
_CURRENCIES = sorted(c for c in list_currencies() if len(c) == 3 and c.isalpha() and c.isupper())

MESSAGES = {
    "missing_value": "a value is required",
    "bad_guid": "expected a GUID (8-4-4-4-12 hex digits)",
    "bad_date": "expected a date as M/D/YYYY or YYYY-MM-DD (optionally with a time)",
    "bad_decimal": "expected a decimal number such as 12.34",
    "too_precise": f"a cost may have at most {MONEY_PLACES} decimal places",
    "bad_currency": "expected an ISO 4217 currency code such as EUR",
    "negative_quantity": "a quantity must not be negative",
    "sign": "the sign does not fit the charge type",
    "not_positive": "must be greater than zero",
    "out_of_range": "expected a percentage between 0 and 100",
    "date_order": "the charge period ends before it starts",
    "total_mismatch": "Total must equal Subtotal + TaxTotal",
    "partner_mismatch": "the row names another partner than the rest of the file",
    "invoice_mismatch": "the row names another invoice than the rest of the file",
    "currency_mismatch": "the row has another billing currency than the rest of the file",
    "malformed_row": "the row does not have the header's number of fields, or is not valid CSV/UTF-8",
}
REASONS = tuple(MESSAGES)
MESSAGE_VALUE_CHARS = 200  # a message quotes at most this much of the value (RejectedRow.message holds 500)


class FileRefused(ValidationFailed):
    code = "file_refused"


def sha256_of(path: Path, stop: threading.Event | None = None) -> str:
    """The file's SHA-256 (``""`` when ``stop`` is set before the end)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            if stop is not None and stop.is_set():
                return ""
            digest.update(chunk)
    return digest.hexdigest()


class BackgroundSha256:
    """SHA-256 of a file computed in a thread (hashlib releases the GIL, as DuckDB does while it reads)."""

    def __init__(self, path: Path) -> None:
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recon-sha256")
        self._future = self._pool.submit(sha256_of, path, self._stop)

    def result(self) -> str:
        try:
            return self._future.result()
        finally:
            self._pool.shutdown()

    def cancel(self) -> None:
        self._stop.set()
        self._pool.shutdown()


def db_text(value: Any) -> Any:
    """``value`` with NUL characters replaced by U+FFFD: PostgreSQL text and jsonb cannot hold NUL.

    Only what goes to the database is changed; the raw copy in Parquet keeps the file's bytes.
    """
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def connect(workdir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with bounded memory that spills under ``workdir``."""
    cfg = getattr(settings, "RECON_DUCKDB", {})
    con = duckdb.connect(config={"allow_unsigned_extensions": False})
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET memory_limit = '{cfg.get('MEMORY_LIMIT', '1GB')}'")
    con.execute(f"SET threads = {int(cfg.get('THREADS', 2))}")
    con.execute(f"SET temp_directory = {_lit(tmp.as_posix())}")
    con.execute("SET preserve_insertion_order = true")
    con.execute(
        """
        CREATE MACRO pdate(s) AS CASE
            WHEN s IS NULL THEN NULL
            WHEN s[5] = '-' AND (length(s) = 10 OR s[11] IN ('T', ' ')) THEN TRY_CAST(s[1:10] AS DATE)
            ELSE CAST(TRY_STRPTIME(split_part(s, ' ', 1), '%m/%d/%Y') AS DATE) END
        """
    )
    con.execute("CREATE MACRO num(s) AS TRY_CAST(s AS DECIMAL(38,10))")
    con.execute("CREATE MACRO isguid(s) AS length(s) = 36 AND TRY_CAST(s AS UUID) IS NOT NULL")
    con.execute(f"CREATE TYPE iso4217 AS ENUM ({', '.join(_lit(c) for c in _CURRENCIES)})")
    con.execute("CREATE MACRO iscur(s) AS TRY_CAST(s AS iso4217) IS NOT NULL")
    return con


# --- opening the file ------------------------------------------------------------------------------------


@dataclass
class Source:
    """The CSV DuckDB will read: the file itself, or the CSV extracted from a zip."""

    csv_path: Path
    compression: str  # "none" or "gzip"
    header: list[str]


def _text(path: Path, compression: str) -> io.TextIOWrapper:
    raw: Any = gzip.open(path, "rb") if compression == "gzip" else path.open("rb")  # noqa: SIM115 (wrapped)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def open_source(path: Path, workdir: Path) -> Source:
    """Find the CSV (plain, gzip or zip, by content) and read its header."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    compression = "none"
    csv_path = path
    if magic[:2] == b"\x1f\x8b":
        compression = "gzip"
    elif magic == b"PK\x03\x04":
        csv_path = _unzip(path, workdir)
    try:
        with _text(csv_path, compression) as fh:
            header = next(csv.reader(fh), None)
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRefused(f"{path.name}: cannot be read ({exc})") from exc
    except csv.Error as exc:
        raise FileRefused(f"{path.name}: line 1 (the header) is not valid CSV ({exc})", field="header") from exc
    if not header:
        raise FileRefused(f"{path.name}: the file is empty")
    return Source(csv_path, compression, header)


def _unzip(path: Path, workdir: Path) -> Path:
    """Extract the one .csv of a zip archive; a damaged, encrypted or otherwise unreadable archive is refused."""
    csv_path = workdir / "source.csv"
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(".csv")]
            if len(members) != 1:
                raise FileRefused(f"{path.name}: a zip must hold exactly one .csv file, it holds {len(members)}")
            with zf.open(members[0]) as src, csv_path.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        # BadZipFile: no archive or a bad CRC; zlib.error, EOFError: damaged data; NotImplementedError: an
        # unsupported compression method; RuntimeError: an encrypted member.
        csv_path.unlink(missing_ok=True)
        raise FileRefused(f"{path.name}: not a readable zip archive ({exc})") from exc
    return csv_path


# --- staging: CSV to Parquet, then validation ---------------------------------------------------------------


def _row_checks(layout: Layout, present: set[str]) -> list[str]:
    """One SQL expression per check: a 'Column|reason' string when the row fails it, else NULL."""
    checks: list[str] = []

    def col(c: str) -> str:
        return _q(c)

    for c in layout.guid:
        checks.append(
            f"CASE WHEN {col(c)} IS NULL THEN '{c}|missing_value' WHEN NOT isguid({col(c)}) THEN '{c}|bad_guid' END"
        )
    for c in layout.optional_guid:
        if c in present:
            checks.append(f"CASE WHEN {col(c)} IS NOT NULL AND NOT isguid({col(c)}) THEN '{c}|bad_guid' END")
    for c in layout.dates:
        checks.append(
            f"CASE WHEN {col(c)} IS NULL THEN '{c}|missing_value' WHEN pdate({col(c)}) IS NULL THEN '{c}|bad_date' END"
        )
    for c in layout.optional_dates:
        if c in present:
            checks.append(f"CASE WHEN {col(c)} IS NOT NULL AND pdate({col(c)}) IS NULL THEN '{c}|bad_date' END")
    for c in layout.decimals:
        checks.append(
            f"CASE WHEN {col(c)} IS NULL THEN '{c}|missing_value' WHEN num({col(c)}) IS NULL THEN '{c}|bad_decimal' END"
        )
    for c in layout.optional_decimals:
        checks.append(f"CASE WHEN {col(c)} IS NOT NULL AND num({col(c)}) IS NULL THEN '{c}|bad_decimal' END")
    cost, qty, cur, pcur = layout.cost, layout.quantity, layout.currency, layout.pricing_currency
    checks += [
        f"CASE WHEN num({col(cost)}) <> round(num({col(cost)}), {MONEY_PLACES}) THEN '{cost}|too_precise' END",
        f"CASE WHEN {col(cur)} IS NULL THEN '{cur}|missing_value' "
        f"WHEN NOT iscur({col(cur)}) THEN '{cur}|bad_currency' END",
        f"CASE WHEN {col(pcur)} IS NOT NULL AND NOT iscur({col(pcur)}) THEN '{pcur}|bad_currency' END",
        "CASE WHEN \"ChargeType\" IS NULL THEN 'ChargeType|missing_value' END",
        "CASE WHEN \"ProductId\" IS NULL THEN 'ProductId|missing_value' END",
        "CASE WHEN num(\"PCToBCExchangeRate\") <= 0 THEN 'PCToBCExchangeRate|not_positive' END",
        'CASE WHEN pdate("ChargeEndDate") < pdate("ChargeStartDate") THEN \'ChargeEndDate|date_order\' END',
    ]
    if layout is USAGE:
        checks += [
            f"CASE WHEN num({col(qty)}) < 0 THEN '{qty}|negative_quantity' END",
            "CASE WHEN lower(\"ChargeType\") IN ('new', 'usage') AND num(\"BillingPreTaxTotal\") < 0 "
            "THEN 'BillingPreTaxTotal|sign' END",
        ]
        for c in ("PartnerEarnedCreditPercentage", "CreditPercentage"):
            checks.append(f"CASE WHEN num({col(c)}) NOT BETWEEN 0 AND 100 THEN '{c}|out_of_range' END")
    else:
        checks += [
            "CASE WHEN lower(\"ChargeType\") IN ('new', 'renew', 'cyclecharge') AND "
            '(num("Subtotal") < 0 OR num("BillableQuantity") < 0) THEN \'Subtotal|sign\' END',
            "CASE WHEN lower(\"ChargeType\") IN ('cancel', 'cancelimmediate') AND num(\"Subtotal\") > 0 "
            "THEN 'Subtotal|sign' END",
            'CASE WHEN num("Total") IS NOT NULL AND num("Subtotal") IS NOT NULL AND '
            'num("Total") <> num("Subtotal") + coalesce(num("TaxTotal"), 0) THEN \'Total|total_mismatch\' END',
        ]
    return checks


def _file_checks(s: Staging) -> list[str]:
    """The checks against the rest of the file: one partner, one invoice, one billing currency."""
    cur = s.layout.currency
    return [
        f"CASE WHEN lower(\"PartnerId\") <> {_lit(s.partner_id)} THEN 'PartnerId|partner_mismatch' END",
        f"CASE WHEN coalesce(\"InvoiceNumber\", '') <> {_lit(s.invoice_number)} "
        "THEN 'InvoiceNumber|invoice_mismatch' END",
        f"CASE WHEN {_q(cur)} <> {_lit(s.currency)} THEN '{cur}|currency_mismatch' END",
    ]


def _problems_sql(checks: list[str]) -> str:
    """A SQL list of every problem found on the row (only ever evaluated for rejected rows)."""
    return "list_filter([" + ",\n".join(checks) + "], lambda x: x IS NOT NULL)"


def _failed_sql(checks: list[str]) -> str:
    """A SQL condition true when any check fails: the cheap test every row goes through."""
    return "(" + "\n OR ".join(f"({c}) IS NOT NULL" for c in checks) + ")"


@dataclass
class Staging:
    """A file copied into Parquet, with facts about it and everything needed to aggregate it."""

    workdir: Path
    detected: Detected
    con: duckdb.DuckDBPyConnection
    parquet: Path
    malformed: Path | None
    kind: Kind = Kind.INVOICE
    partner_id: str = ""
    invoice_number: str = ""
    currency: str = ""
    period: dt.date | None = None
    rows: int = 0
    rejected: int = 0
    checks: list[str] = field(default_factory=list)  # SQL, see _row_checks
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return self.detected.layout

    @property
    def rejected_parquet(self) -> Path:
        return self.parquet.with_name(REJECTED_PARQUET)

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.workdir / "tmp", ignore_errors=True)


REJECTED_PARQUET = "rejected.parquet"


def _read_csv_sql(source: Source, columns: list[str]) -> str:
    cols = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in columns) + "}"
    return (
        f"read_csv({_lit(source.csv_path.as_posix())}, header=false, skip=1, columns={cols}, auto_detect=false, "
        f"delim=',', quote='\"', escape='\"', strict_mode=true, compression='{source.compression}', "
        "max_line_size=10000000)"
    )


def _clean_copy(source: Source, workdir: Path, width: int) -> tuple[Source, Path]:
    """Stream the file through Python's csv: good rows (with their line) to a clean CSV, bad ones aside."""
    clean = workdir / "clean.csv"
    malformed = workdir / "malformed.csv"
    with (
        _text(source.csv_path, source.compression) as fh,
        clean.open("w", encoding="utf-8", newline="") as out,
        malformed.open("w", encoding="utf-8", newline="") as bad,
    ):
        reader = csv.reader(fh, strict=True)
        good_w, bad_w = csv.writer(out), csv.writer(bad)
        good_w.writerow(["__line", *source.header])
        bad_w.writerow(["line_number", "raw"])
        next(reader)
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                bad_w.writerow([start, f"not valid CSV: {exc}"])
                start = reader.line_num + 1
                continue
            if row and (len(row) != width or any("\ufffd" in v for v in row)):
                bad_w.writerow([start, ",".join(row)])
            elif row:
                good_w.writerow([start, *row])
            start = reader.line_num + 1
    return Source(clean, "none", ["__line", *source.header]), malformed


# Dictionaries do most of the compressing of raw text. Measured on 200k usage rows, the codec hardly changes
# the cost of the copy (snappy, lz4, zstd and none within 5%); zstd makes the smallest file.
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"


def rows_sql(parquet: Path) -> str:
    """The staged rows of ``parquet`` with their ``line_number``, as SQL.

    A file whose records are its lines 2, 3, … in order (no blank line, no value spanning lines: the usual
    case) is staged without a line-number column: its rows are in file order, so a row's line is its
    position in the Parquet + 2. Any other file went through :func:`_clean_copy`, which wrote each row's
    line beside it.
    """
    path = _lit(parquet.as_posix())
    con = duckdb.connect()
    try:
        names = {r[0] for r in con.execute(f"SELECT name FROM parquet_schema({path})").fetchall()}
    finally:
        con.close()
    if "line_number" in names:
        return f"read_parquet({path})"
    return (
        "(SELECT CAST(file_row_number + 2 AS INTEGER) AS line_number, * EXCLUDE (file_row_number) "
        f"FROM read_parquet({path}, file_row_number = true))"
    )


class _NotLineAligned(Exception):
    """The file's records are not exactly its lines 2, 3, …: line numbers need the exact (Python) pass."""


_NO_FIELDS = "\x01"  # the delimiter of the line count: a control byte that CSV text does not hold


def _lines_sql(source: Source) -> str:
    """The file's physical lines, one row each (a blank line is a NULL row), header included."""
    return (
        f"read_csv({_lit(source.csv_path.as_posix())}, header=false, columns={{'line': 'VARCHAR'}}, "
        f"auto_detect=false, delim={_lit(_NO_FIELDS)}, quote='', escape='', strict_mode=true, "
        f"compression='{source.compression}', max_line_size=10000000)"
    )


def _check_line_aligned(con: duckdb.DuckDBPyConnection, source: Source, parquet: Path) -> None:
    """Raise :class:`_NotLineAligned` unless record n of the staged rows is line n + 1 of the file.

    DuckDB counts the physical lines (in parallel, without parsing fields): every line but the header must
    be one record. A blank line, a quoted value holding a line break, a lone CR or a line holding the byte
    :data:`_NO_FIELDS` makes the counts differ or the count fail, and the caller takes the exact path.
    """
    try:
        found = con.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE line IS NULL) FROM {_lines_sql(source)}"""
        ).fetchone()
    except (duckdb.InvalidInputException, duckdb.ConversionException) as exc:
        raise _NotLineAligned from exc
    records = con.execute(f"SELECT count(*) FROM read_parquet({_lit(parquet.as_posix())})").fetchone()
    assert found is not None and records is not None
    lines, blank = found
    if blank or lines != records[0] + 1:
        raise _NotLineAligned


def stage(path: Path, workdir: Path) -> Staging:
    """Detect the layout, copy every row to Parquet in file order, validate and read the facts.

    The copy runs in parallel and keeps the file's order (``preserve_insertion_order``), so a row's line
    number is its position (see :func:`rows_sql`); only a file whose records are not one per line is
    copied through :func:`_clean_copy`, with each row's line written beside it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    source = open_source(path, workdir)
    detected = detect(source.header)
    layout = detected.layout
    con = connect(workdir)
    names = list(detected.columns)
    absent = [f"NULL::VARCHAR AS {_q(c)}" for c in detected.missing_optional]
    parquet = workdir / "rows.parquet"
    select_cols = ", ".join(_q(c) for c in layout.columns if c in names)
    extra = (", " + ", ".join(absent)) if absent else ""
    malformed: Path | None = None

    def copy(src: Source, line_expr: str | None, columns: list[str]) -> None:
        line = f"{line_expr} AS line_number, " if line_expr else ""
        con.execute(
            f"""COPY (SELECT {line}{select_cols}{extra}
                FROM {_read_csv_sql(src, columns)}) TO {_lit(parquet.as_posix())} ({PARQUET_OPTIONS})"""
        )

    try:
        try:
            copy(source, None, names)
            _check_line_aligned(con, source, parquet)
        except (duckdb.InvalidInputException, duckdb.ConversionException, _NotLineAligned):
            clean, malformed = _clean_copy(source, workdir, len(names))
            copy(clean, 'CAST("__line" AS INTEGER)', ["__line", *names])
            clean.csv_path.unlink()
    except (duckdb.IOException, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # A gzip stream that ends early or is corrupt past the header: DuckDB or Python's gzip says so.
        con.close()
        if source.compression != "gzip":  # an I/O error on a plain file is the machine's, not the file's
            raise
        raise FileRefused(f"{path.name}: cannot be read to the end, the compressed data is damaged ({exc})") from exc
    if source.csv_path != path:
        source.csv_path.unlink()
    staging = Staging(workdir, detected, con, parquet, malformed)
    _validate(staging)
    return staging


def _columns_of(check: str) -> tuple[str, ...]:
    return tuple(sorted(set(re.findall(r'"((?:[^"]|"")+)"', check))))


def _reject_failing(con: duckdb.DuckDBPyConnection, checks: list[str], amounts: frozenset[str]) -> None:
    """Add to ``bad_lines`` the rows that fail any of ``checks``.

    A check depends on a few columns only, and a recon file repeats the same values on many rows (dates,
    GUIDs, currencies). So each check runs once per distinct combination of its columns, not once per row;
    only when some combination fails are the rows that carry it looked up. Checks of ``amounts`` alone (columns
    whose values hardly repeat) run per row.
    """
    by_columns: dict[tuple[str, ...], list[str]] = {}
    per_row: list[str] = []
    for check in checks:
        columns = _columns_of(check)
        if set(columns) <= amounts:  # nearly every row has its own amount: checking per row is cheaper
            per_row.append(check)
        else:
            by_columns.setdefault(columns, []).append(check)
    if per_row:
        con.execute(f"INSERT INTO bad_lines SELECT line_number FROM raw WHERE {_failed_sql(per_row)}")
    for columns, group in by_columns.items():
        cols = ", ".join(_q(c) for c in columns)
        failing = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT {cols} FROM raw) WHERE {_failed_sql(group)}"
        ).fetchone()
        if failing and failing[0]:
            same = " AND ".join(f"r.{_q(c)} IS NOT DISTINCT FROM f.{_q(c)}" for c in columns)
            con.execute(
                f"""INSERT INTO bad_lines SELECT r.line_number FROM raw r SEMI JOIN (
                      SELECT * FROM (SELECT DISTINCT {cols} FROM raw) WHERE {_failed_sql(group)}) f ON {same}"""
            )


def _validate(s: Staging) -> None:
    """Find the rejected rows (kept in ``bad``), then read the facts of the file from the good ones."""
    con, layout = s.con, s.layout
    con.execute(f"CREATE VIEW raw AS SELECT * FROM {rows_sql(s.parquet)}")
    con.execute("CREATE TABLE bad_lines (line_number INTEGER)")
    s.checks = _row_checks(layout, set(s.detected.columns))
    amounts = frozenset(layout.decimals + layout.optional_decimals) - {"PCToBCExchangeRate"}
    _reject_failing(con, s.checks, amounts)
    cur = _q(layout.currency)
    row = con.execute(
        f"""SELECT (SELECT count(*) FROM raw), mode(lower("PartnerId")), mode("InvoiceNumber"), mode({cur})
            FROM raw ANTI JOIN bad_lines USING (line_number)"""
    ).fetchone()
    assert row is not None
    rows, partner, invoice, currency = row
    s.partner_id, s.invoice_number, s.currency = partner or "", invoice or "", currency or ""
    _reject_failing(con, _file_checks(s), amounts)
    cost = _q(layout.cost)
    con.execute(
        f"""CREATE TABLE bad AS SELECT line_number, num({cost}) AS cost
            FROM raw SEMI JOIN bad_lines USING (line_number)"""
    )
    con.execute("DROP TABLE bad_lines")
    con.execute(
        f"COPY (SELECT line_number FROM bad ORDER BY line_number) TO {_lit(s.rejected_parquet.as_posix())} "
        f"({PARQUET_OPTIONS})"
    )
    con.execute("CREATE VIEW good AS SELECT * FROM raw ANTI JOIN bad USING (line_number)")
    bad = con.execute("SELECT count(*), coalesce(sum(cost), 0) FROM bad").fetchone()
    assert bad is not None
    s.rows, s.rejected = rows, bad[0]
    s.facts["rejected_cost"] = Decimal(bad[1])
    if s.malformed is not None:
        more = con.execute(
            f"SELECT count(*) FROM read_csv({_lit(s.malformed.as_posix())}, all_varchar=true)"
        ).fetchone()
        assert more is not None
        s.rows += more[0]
        s.rejected += more[0]
    con.execute(f"CREATE TABLE lines AS {_group_sql(layout)}")
    facts = con.execute("SELECT min(cs), max(order_date) FROM lines").fetchone()
    assert facts is not None
    accepted = con.execute(f"SELECT coalesce(sum(num({cost})), 0) FROM good").fetchone()  # from the rows themselves
    assert accepted is not None
    s.facts["accepted_cost"] = Decimal(accepted[0])
    if layout is INVOICE:
        s.kind = Kind.INVOICE
        day = facts[1]
    else:
        s.kind = Kind.USAGE_BILLED if s.invoice_number else Kind.USAGE_UNBILLED
        day = facts[0]
    s.period = day.replace(day=1) if day else None
    unknown = con.execute(
        f"""SELECT "ChargeType", count(*) FROM good
            WHERE lower("ChargeType") NOT IN ({", ".join(repr(k) for k in KNOWN_CHARGE_TYPES)})
            GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    s.facts["unknown_charge_types"] = {db_text(k): n for k, n in unknown}


# --- reading the staged rows ---------------------------------------------------------------------------


def file_cost(s: Staging) -> tuple[Decimal, Decimal]:
    """Sum of cost over accepted rows, and over rejected rows whose cost parses."""
    return s.facts["accepted_cost"], s.facts["rejected_cost"]


def invoice_totals(s: Staging) -> tuple[Decimal, Decimal, Decimal]:
    """Subtotal, tax and total of the accepted rows of an invoice file."""
    row = s.con.execute(
        """SELECT coalesce(sum(num("Subtotal")), 0), coalesce(sum(num("TaxTotal")), 0),
                  coalesce(sum(coalesce(num("Total"), num("Subtotal") + coalesce(num("TaxTotal"), 0))), 0)
           FROM good"""
    ).fetchone()
    assert row is not None
    return Decimal(row[0]), Decimal(row[1]), Decimal(row[2])


def tenants(s: Staging) -> list[tuple[str, str, str, Decimal, int]]:
    """Each (customer tenant id, reseller MPN id) in the accepted rows: name, cost, rows."""
    rows = s.con.execute(
        """SELECT tenant, reseller, coalesce(max(nullif(customer_name, '')), ''), sum(cost), sum(row_count)::BIGINT
           FROM lines GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    return [(db_text(t), db_text(r), db_text(n), c, k) for t, r, n, c, k in rows]


CHARGE_FIELDS = (
    "customer_tenant_id", "reseller_mpn_id", "subscription_id", "product_id", "sku_id", "meter_id",
    "charge_start", "charge_end", "charge_type", "customer_name", "product_name", "sku_name", "meter_name",
    "meter_category", "quantity", "cost", "pricing_cost", "pricing_currency", "exchange_rate", "tax", "credit",
    "credit_percentage", "credit_type", "row_count", "first_line", "last_line",
)  # fmt: skip


def _group_sql(layout: Layout) -> str:
    usage = layout is USAGE
    meter = "coalesce(lower(\"MeterId\"), '')" if usage else "''"
    if usage:
        measures = """
            sum(num("Quantity")) AS quantity, sum(num("BillingPreTaxTotal")) AS cost,
            round(sum(coalesce(num("PricingPreTaxTotal"), 0)), 6) AS pricing_cost,
            coalesce(max("PricingCurrency"), '') AS pricing_currency, max(num("PCToBCExchangeRate")) AS rate,
            0 AS tax,
            coalesce(sum(round(round((coalesce(num("UnitPrice"), 0) - coalesce(num("EffectiveUnitPrice"), 0))
                * num("Quantity"), 10) * coalesce(num("PCToBCExchangeRate"), 1), 6))
                FILTER (WHERE num("PartnerEarnedCreditPercentage") > 0 OR num("CreditPercentage") > 0), 0) AS credit,
            coalesce(max(num("PartnerEarnedCreditPercentage")), 0) AS credit_percentage,
            coalesce(max(CASE WHEN num("PartnerEarnedCreditPercentage") > 0 THEN 'Partner earned credit'
                              ELSE "CreditType" END), '') AS credit_type"""
        names = """coalesce(max("MeterName"), '') AS meter_name, coalesce(max("MeterCategory"), '') AS meter_category"""
        order_date = "NULL::DATE"
    else:
        measures = """
            sum(num("BillableQuantity")) AS quantity, sum(num("Subtotal")) AS cost,
            round(sum(coalesce(num("EffectiveUnitPrice"), 0) * num("BillableQuantity")), 6) AS pricing_cost,
            coalesce(max("PricingCurrency"), '') AS pricing_currency, max(num("PCToBCExchangeRate")) AS rate,
            coalesce(sum(num("TaxTotal")), 0) AS tax,
            coalesce(sum(num("Subtotal")) FILTER (WHERE "CreditReasonCode" IS NOT NULL), 0) AS credit,
            0 AS credit_percentage, coalesce(max("CreditReasonCode"), '') AS credit_type"""
        names = "coalesce(max(\"MeterDescription\"), '') AS meter_name, '' AS meter_category"
        order_date = 'max(pdate("OrderDate"))'
    return f"""
        SELECT lower("CustomerId") AS tenant, coalesce("Tier2MpnId", '') AS reseller,
               lower("SubscriptionId") AS subscription, "ProductId" AS product, coalesce("SkuId", '') AS sku,
               {meter} AS meter, pdate("ChargeStartDate") AS cs, pdate("ChargeEndDate") AS ce,
               min("ChargeType") AS charge_type,
               coalesce(max("CustomerName"), '') AS customer_name, coalesce(max("ProductName"), '') AS product_name,
               coalesce(max("SkuName"), '') AS sku_name, {names}, {measures},
               count(*) AS row_count, min(line_number) AS first_line, max(line_number) AS last_line,
               {order_date} AS order_date
        FROM good
        GROUP BY tenant, reseller, subscription, product, sku, meter, lower("ChargeType"), cs, ce"""


_LINE_COLUMNS = (
    "tenant, reseller, subscription, product, sku, meter, cs, ce, charge_type, customer_name, product_name, "
    "sku_name, meter_name, meter_category, quantity, cost, pricing_cost, pricing_currency, rate, tax, credit, "
    "credit_percentage, credit_type, row_count, first_line, last_line"
)


def charge_groups(s: Staging, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Aggregated charge lines, in batches from DuckDB (never the whole result in memory)."""
    cur = s.con.cursor()
    cur.execute(f"SELECT {_LINE_COLUMNS} FROM lines ORDER BY first_line")
    while rows := cur.fetchmany(batch):
        for r in rows:
            yield {k: db_text(v) for k, v in zip(CHARGE_FIELDS, r, strict=True)}
    cur.close()


def rejects(s: Staging, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every rejected row: line, column, reason, message, all problems and the raw values."""
    cols = list(s.layout.columns)
    problems = _problems_sql(s.checks + _file_checks(s))
    cur = s.con.cursor()
    cur.execute(
        f"SELECT line_number, {problems} AS problems, {', '.join(_q(c) for c in cols)} "
        "FROM raw SEMI JOIN bad USING (line_number) ORDER BY line_number"
    )
    while rows := cur.fetchmany(batch):
        for r in rows:
            raw = {c: db_text(v) for c, v in zip(cols, r[2:], strict=True) if c in s.detected.columns}
            found = []
            for p in r[1]:
                column, reason = p.split("|", 1)
                found.append({"column": column, "reason": reason, "value": raw.get(column)})
            first = found[0]
            yield {
                "line_number": r[0],
                "column": first["column"],
                "reason": first["reason"],
                "message": _message(first),
                "problems": found,
                "raw": {k: v or "" for k, v in raw.items()},
            }
    cur.close()
    if s.malformed is not None:
        with s.malformed.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            for line, text in reader:
                problem = {"column": "", "reason": "malformed_row", "value": None}
                yield {
                    "line_number": int(line), "column": "", "reason": "malformed_row",
                    "message": MESSAGES["malformed_row"], "problems": [problem], "raw": {"line": db_text(text)},
                }  # fmt: skip


def _message(problem: dict[str, Any]) -> str:
    text = MESSAGES.get(problem["reason"], problem["reason"])
    value = problem.get("value")
    if value is None:
        return f"{problem['column']}: {text}"
    shown = repr(value)
    if len(shown) > MESSAGE_VALUE_CHARS:  # the whole value is in ``problems`` and ``raw``
        shown = shown[: MESSAGE_VALUE_CHARS - 1] + "…"
    return f"{problem['column']}: {text}, got {shown}"


def rows_of(parquet: Path, layout: Layout, line: dict[str, Any], limit: int = 10_000) -> list[dict[str, Any]]:
    """The raw rows a charge line came from ("explain this charge")."""
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1; SET memory_limit = '256MB'")
        con.execute(
            "CREATE MACRO pdate(s) AS CASE WHEN s IS NULL THEN NULL WHEN s[5] = '-' THEN TRY_CAST(s[1:10] AS DATE) "
            "ELSE CAST(TRY_STRPTIME(split_part(s, ' ', 1), '%m/%d/%Y') AS DATE) END"
        )
        meter = "AND coalesce(lower(\"MeterId\"), '') = $meter" if layout is USAGE else ""
        rows = rows_sql(parquet)
        rejected = parquet.with_name(REJECTED_PARQUET)
        if rejected.is_file():
            source = (
                f"(SELECT * FROM {rows} WHERE line_number NOT IN "
                f"(SELECT line_number FROM read_parquet({_lit(rejected.as_posix())})))"
            )
        else:  # imported before rejected.parquet: each row carries its problems in the Parquet
            source = f"(SELECT * EXCLUDE (_problems) FROM {rows} WHERE len(_problems) = 0)"
        cur = con.execute(
            f"""SELECT * FROM {source}
                WHERE lower("CustomerId") = $tenant AND coalesce("Tier2MpnId", '') = $reseller
                  AND lower("SubscriptionId") = $sub AND "ProductId" = $product AND coalesce("SkuId", '') = $sku
                  AND lower("ChargeType") = lower($ct) AND pdate("ChargeStartDate") = $cs
                  AND pdate("ChargeEndDate") = $ce {meter}
                ORDER BY line_number LIMIT {int(limit)}""",
            {
                "tenant": str(line["customer_tenant_id"]),
                "reseller": line["reseller_mpn_id"],
                "sub": line["subscription_id"],
                "product": line["product_id"],
                "sku": line["sku_id"],
                "ct": line["charge_type"],
                "cs": line["charge_start"],
                "ce": line["charge_end"],
                **({"meter": line["meter_id"]} if layout is USAGE else {}),
            },
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def layout_for(kind: str) -> Layout:
    return INVOICE if kind == Kind.INVOICE else USAGE
