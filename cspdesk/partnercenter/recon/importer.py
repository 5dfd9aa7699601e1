"""The streaming recon-file engine: CSV → raw rows in Parquet + validated, aggregated charge lines, in DuckDB.

No database access here; :mod:`.services` turns what this module yields into rows. Memory is bounded by
DuckDB's ``memory_limit`` (it spills to ``<workdir>/tmp``), whatever the file size.

The usual file has one record per line. Two passes over it run side by side (DuckDB releases the GIL, so each
gets a core): one copies its physical lines as they are to ``rows.parquet``, each with its number (the header
is line 1); the other parses only the columns it needs, numbers each row by its position, and groups the rows by
everything but their amounts (see :func:`_aggregate`), so that the checks of the repeated values run once per
group and the charge lines are the groups that pass, grouped again. Parsing CSV is cheap next to writing
Parquet, and one narrow column of raw lines is cheap to write next to fifty parsed ones.

Line numbers count physical lines with the header as line 1. A file whose records are not exactly one per
line (a blank line, a quoted value holding a line break), or that DuckDB cannot parse structurally (a row
with the wrong number of fields, a broken quote, bad UTF-8), is cleaned by a streaming pass in Python first:
the broken rows become ``malformed_row`` rejects and every other row keeps its true line number, which is
then written beside it in ``rows.parquet``, one column per CSV column.

Beside the rows: ``rejected.parquet`` (the rejected line numbers) and ``index.parquet`` (each charge line's
lines, by its first line), from which :func:`rows_of` reads the rows of one charge without scanning the file.
Imports made before ``index.parquet`` existed are read by the charge line's key.
"""

# ruff: noqa: S608 - SQL here is built from the layouts' fixed column names and values passed through _lit().
from __future__ import annotations

import csv
import datetime as dt
import errno
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
    except OSError as exc:
        csv_path.unlink(missing_ok=True)
        if exc.errno != errno.EINVAL:  # the machine's error, not the file's
            raise
        # a member offset that points before the start of the file: zipfile seeks there
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
            "CASE WHEN num(\"BillingPreTaxTotal\") < 0 AND lower(\"ChargeType\") IN ('new', 'usage') "
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
    """A staged file: its raw rows in Parquet, its rows validated and aggregated in DuckDB, facts about it."""

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

    @property
    def index_parquet(self) -> Path:
        return self.parquet.with_name(INDEX_PARQUET)

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.workdir / "tmp", ignore_errors=True)


ROWS_PARQUET = "rows.parquet"
REJECTED_PARQUET = "rejected.parquet"
INDEX_PARQUET = "index.parquet"  # (grp, line_number): the lines of each charge line, grp being its first_line

# Dictionaries do most of the compressing of parsed columns; zstd makes the smallest file.
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"
# The raw lines. Every line is its own value, so no dictionary; snappy, and no dictionary attempt, cut the cost
# of the copy by ~40% against the zstd default (measured on 250k usage rows), for a file ~3x larger. Small row
# groups, so that reading the lines of one charge reads only the row groups that hold them (see rows_of).
RAW_PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 16384, DICTIONARY_SIZE_LIMIT 1"
INDEX_PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 65536"


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


def rows_sql(parquet: Path) -> str:
    """The rows of a ``rows.parquet`` holding parsed columns, with their ``line_number``, as SQL.

    Files staged before the raw lines were kept (see :func:`stage`) hold one column per CSV column. A file whose
    records were its lines 2, 3, … in order was staged without a line-number column: its rows are in file order,
    so a row's line is its position in the Parquet + 2. Any other file went through :func:`_clean_copy`, which
    wrote each row's line beside it (as it still does).
    """
    path = _lit(parquet.as_posix())
    names = _parquet_columns(parquet)
    if "line_number" in names:
        return f"read_parquet({path})"
    return (
        "(SELECT CAST(file_row_number + 2 AS INTEGER) AS line_number, * EXCLUDE (file_row_number) "
        f"FROM read_parquet({path}, file_row_number = true))"
    )


def _parquet_columns(parquet: Path) -> list[str]:
    con = duckdb.connect()
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(parquet.as_posix())})").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


RAW_COLUMNS = ["line_number", "line"]  # a rows.parquet of raw lines, the header (line 1) first
RAW_LINE_COLUMN = "line"
RAW_COPY_MEMORY = "512MB"  # the raw copy streams: its CSV buffer (16 x max_line_size) and a row group


class _NotLineAligned(Exception):
    """The file's records are not exactly its lines 2, 3, …: line numbers need the exact (Python) pass."""


_NO_FIELDS = "\x01"  # the delimiter of the line reader: a control byte that CSV text does not hold


def _lines_sql(source: Source) -> str:
    """The file's physical lines, one row each (a blank line is a NULL row), header included."""
    return (
        f"read_csv({_lit(source.csv_path.as_posix())}, header=false, columns={{'{RAW_LINE_COLUMN}': 'VARCHAR'}}, "
        f"auto_detect=false, delim={_lit(_NO_FIELDS)}, quote='', escape='', strict_mode=true, "
        f"compression='{source.compression}', max_line_size=10000000)"
    )


# --- validation and aggregation, in one pass over the rows ---------------------------------------------------
#
# Most columns of a recon file repeat the same few values on many rows (GUIDs, dates, names, prices, currencies);
# only the amounts are the row's own. So the pass over the rows groups them by everything but the amounts (and by
# whether the row's own checks fail): 909 "fine groups" for the million usage rows of the benchmark, each
# holding its row count, its lines and the sums of its amounts. The checks of the repeated columns then run once
# per fine group, and the charge lines are the fine groups that pass, grouped again by the charge-line key.

# The columns whose values are the row's own (nearly every row has its own amount; a usage row its day, which
# would multiply the fine groups by the days of the month): checks involving them run on every row.
_AMOUNTS: dict[str, tuple[str, ...]] = {
    "usage": ("BillingPreTaxTotal", "Quantity", "PricingPreTaxTotal"),
    "invoice": ("Subtotal", "BillableQuantity", "TaxTotal", "Total"),
}
_OWN: dict[str, tuple[str, ...]] = {"usage": ("UsageDate",), "invoice": ()}


# Columns only ever shown (the charge line takes their greatest value): a fine group keeps their greatest value
# rather than being split by them.
_NAMES: dict[str, tuple[str, ...]] = {
    "usage": ("CustomerName", "ProductName", "SkuName", "MeterName", "MeterCategory", "CreditType"),
    "invoice": ("CustomerName", "ProductName", "SkuName", "MeterDescription"),
}


def _fine_measures(layout: Layout) -> str:
    """The sums of a fine group's amounts (per row, as the charge lines need them).

    ``s_credit`` sums the rows that may earn a credit (a cheap test on the text); the fine group's percentages,
    the same on all its rows, decide in :func:`_group_sql` whether they do.
    """
    if layout is USAGE:
        return """
            sum(num("Quantity")) AS s_qty, sum(num("BillingPreTaxTotal")) AS s_cost,
            sum(coalesce(num("PricingPreTaxTotal"), 0)) AS s_pricing,
            sum(CASE WHEN "PartnerEarnedCreditPercentage" <> '0' OR "CreditPercentage" <> '0' THEN
                round(round((coalesce(num("UnitPrice"), 0) - coalesce(num("EffectiveUnitPrice"), 0))
                    * num("Quantity"), 10) * coalesce(num("PCToBCExchangeRate"), 1), 6) END) AS s_credit"""
    return """
        sum(num("BillableQuantity")) AS s_qty, sum(num("Subtotal")) AS s_cost,
        sum(coalesce(num("EffectiveUnitPrice"), 0) * num("BillableQuantity")) AS s_pricing,
        sum(num("TaxTotal")) AS s_tax,
        sum(coalesce(num("Total"), num("Subtotal") + coalesce(num("TaxTotal"), 0))) AS s_total"""


def _group_sql(layout: Layout) -> str:
    """The charge lines: the good fine groups grouped by customer × subscription × product/SKU (× meter) ×
    charge type × charge period."""
    usage = layout is USAGE
    meter = "coalesce(lower(\"MeterId\"), '')" if usage else "''"
    if usage:
        measures = """
            sum(s_qty) AS quantity, sum(s_cost) AS cost, round(sum(s_pricing), 6) AS pricing_cost,
            coalesce(max("PricingCurrency"), '') AS pricing_currency, max(num("PCToBCExchangeRate")) AS rate,
            0 AS tax,
            coalesce(sum(s_credit) FILTER (WHERE num("PartnerEarnedCreditPercentage") > 0
                                           OR num("CreditPercentage") > 0), 0) AS credit,
            coalesce(max(num("PartnerEarnedCreditPercentage")), 0) AS credit_percentage,
            coalesce(max(CASE WHEN num("PartnerEarnedCreditPercentage") > 0 THEN 'Partner earned credit'
                              ELSE "CreditType" END), '') AS credit_type"""
        names = """coalesce(max("MeterName"), '') AS meter_name, coalesce(max("MeterCategory"), '') AS meter_category"""
        order_date = "NULL::DATE"
    else:
        measures = """
            sum(s_qty) AS quantity, sum(s_cost) AS cost, round(sum(s_pricing), 6) AS pricing_cost,
            coalesce(max("PricingCurrency"), '') AS pricing_currency, max(num("PCToBCExchangeRate")) AS rate,
            coalesce(sum(s_tax), 0) AS tax,
            coalesce(sum(s_cost) FILTER (WHERE "CreditReasonCode" IS NOT NULL), 0) AS credit,
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
               CAST(sum(n) AS BIGINT) AS row_count, min(first_line) AS first_line, max(last_line) AS last_line,
               {order_date} AS order_date, flatten(list(lines)) AS lines
        FROM fine WHERE NOT fail
        GROUP BY tenant, reseller, subscription, product, sku, meter, lower("ChargeType"), cs, ce"""


def _columns_of(sql: str) -> set[str]:
    return set(re.findall(r'"((?:[^"]|"")+)"', sql))


@dataclass(frozen=True)
class _Plan:
    """What the pass over the rows reads and computes, for one layout and header."""

    checks: list[str]  # every row check (see _row_checks)
    per_row: list[str]  # the checks involving an amount: evaluated on every row
    per_group: list[str]  # the others: evaluated once per fine group
    dims: list[str]  # the fine group's columns
    names: list[str]
    amounts: list[str]  # parsed once per row
    own: list[str]  # the other columns checked on every row

    @property
    def needed(self) -> list[str]:
        return self.dims + self.names + self.amounts + self.own


def _plan(detected: Detected) -> _Plan:
    layout = detected.layout
    checks = _row_checks(layout, set(detected.columns))
    amounts = [c for c in layout.columns if c in _AMOUNTS[layout.name]]
    file_columns = {"PartnerId", "InvoiceNumber", layout.currency}
    used = set().union(
        *(_columns_of(c) for c in checks),
        _columns_of(_group_sql(layout)),
        _columns_of(_fine_measures(layout)),
        file_columns,
    )
    names = [c for c in layout.columns if c in _NAMES[layout.name]]
    own = [c for c in layout.columns if c in _OWN[layout.name]]
    dims = [c for c in layout.columns if c in used and c not in amounts and c not in names and c not in own]
    per_row = [c for c in checks if _columns_of(c) & {*amounts, *own}]
    per_group = [c for c in checks if c not in per_row]
    assert not set(names) & set().union(*(_columns_of(c) for c in checks)), "a checked column is not a name"
    assert not set(own) & _columns_of(_group_sql(layout) + _fine_measures(layout)), "a grouped column is not own"
    return _Plan(checks, per_row, per_group, dims, names, amounts, own)


def _aggregate(cur: duckdb.DuckDBPyConnection, layout: Layout, plan: _Plan, rows: str) -> None:
    """The pass over the rows: ``rows`` (SQL: ``ln`` and the needed columns) into the fine groups.

    Each amount is parsed once per row (``num(x)`` in the checks and sums reads the parsed value).
    """

    def parsed(sql: str) -> str:
        for c in plan.amounts:
            sql = sql.replace(f"num({_q(c)})", _q(f"__num_{c}"))
        return sql

    dims = ", ".join(_q(c) for c in plan.dims)
    names = ", ".join(_q(c) for c in plan.names)
    greatest = ", ".join(f"max({_q(c)}) AS {_q(c)}" for c in plan.names)
    amounts = ", ".join(f"{_q(c)}, num({_q(c)}) AS {_q(f'__num_{c}')}" for c in plan.amounts)
    cur.execute(
        f"""CREATE TABLE fine AS
            SELECT {dims}, {parsed(_failed_sql(plan.per_row))} AS bad, count(*) AS n, min(ln) AS first_line,
                   max(ln) AS last_line, list(ln) AS lines, {greatest}, {parsed(_fine_measures(layout))}
            FROM (SELECT ln, {dims}, {names}, {amounts}{"".join(f", {_q(c)}" for c in plan.own)} FROM {rows})
            GROUP BY ALL"""
    )


def _needed_sql(detected: Detected, columns: list[str]) -> str:
    """``columns`` as read from the file; a column the file lacks (an optional one) is NULL."""
    present = set(detected.columns)
    return ", ".join(_q(c) if c in present else f"NULL::VARCHAR AS {_q(c)}" for c in columns)


def _stage_lines(
    con: duckdb.DuckDBPyConnection, source: Source, detected: Detected, plan: _Plan, parquet: Path
) -> None:
    """The usual case, a file whose records are its lines: its raw lines go to ``parquet`` while its rows are
    validated and aggregated, each numbered by its position (the two passes run side by side, a core each:
    DuckDB releases the GIL). Raises :class:`_NotLineAligned` when the records turn out not to be the lines.

    The copy runs in a DuckDB of its own, without ``preserve_insertion_order`` (an ordered Parquet write costs
    ~40% more CPU, measured on 1M usage rows): each line carries its number, from ``row_number()`` over the
    line reader, which DuckDB evaluates in one thread in file order (as it does for the rows in ``_aggregate``).
    """
    copy = duckdb.connect(config={"allow_unsigned_extensions": False})
    tmp = parquet.parent / "tmp"
    copy.execute(
        f"SET threads = 1; SET memory_limit = '{RAW_COPY_MEMORY}'; SET temp_directory = {_lit(tmp.as_posix())}"
    )
    copy.execute("SET preserve_insertion_order = false")

    def copy_lines() -> tuple[int, int]:
        written = copy.execute(
            f"""COPY (SELECT CAST(row_number() OVER () AS INTEGER) AS line_number, {RAW_LINE_COLUMN}
                FROM {_lines_sql(source)}) TO {_lit(parquet.as_posix())} ({RAW_PARQUET_OPTIONS})"""
        ).fetchone()
        blank = copy.execute(
            f"SELECT coalesce(sum(stats_null_count), 0) FROM parquet_metadata({_lit(parquet.as_posix())})"
        ).fetchone()
        assert written is not None and blank is not None
        return int(written[0]), int(blank[0])

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recon-raw")
    copied = pool.submit(copy_lines)
    try:
        rows = (
            f"(SELECT CAST(row_number() OVER () + 1 AS INTEGER) AS ln, {_needed_sql(detected, plan.needed)} "
            f"FROM {_read_csv_sql(source, list(detected.columns))})"
        )
        _aggregate(con, detected.layout, plan, rows)
    except BaseException:
        copy.interrupt()  # the file is not what the fast path needs, or cannot be read: stop the copy
        raise
    finally:
        pool.shutdown(wait=True)
        copy.close()
    try:
        lines, blank = copied.result()
    except (duckdb.InvalidInputException, duckdb.ConversionException) as exc:  # e.g. a line holding _NO_FIELDS
        raise _NotLineAligned from exc
    records = con.execute("SELECT coalesce(sum(n), 0) FROM fine").fetchone()
    assert records is not None
    if blank or lines != records[0] + 1:
        raise _NotLineAligned


def stage(path: Path, workdir: Path) -> Staging:
    """Detect the layout, keep the raw rows in Parquet, validate and aggregate the rows, read the facts.

    A file whose records are its lines (the usual case) is read twice side by side: its physical lines go as
    they are to ``rows.parquet`` (each with its number, the header first), while its fields are validated and
    aggregated, each row numbered by its position. Any other file is first cleaned by :func:`_clean_copy`; its
    rows go to ``rows.parquet`` parsed, each with its line, and are validated and aggregated from there.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    source = open_source(path, workdir)
    detected = detect(source.header)
    layout = detected.layout
    plan = _plan(detected)
    con = connect(workdir)
    names = list(detected.columns)
    parquet = workdir / ROWS_PARQUET
    malformed: Path | None = None
    all_columns = _needed_sql(detected, list(layout.columns))
    try:
        try:
            _stage_lines(con, source, detected, plan, parquet)
            raw_rows = (
                f"(SELECT CAST(row_number() OVER () + 1 AS INTEGER) AS line_number, {all_columns} "
                f"FROM {_read_csv_sql(source, names)})"
            )
        except (duckdb.InvalidInputException, duckdb.ConversionException, _NotLineAligned):
            con.execute("DROP TABLE IF EXISTS fine")
            clean, malformed = _clean_copy(source, workdir, len(names))
            con.execute(
                f"""COPY (SELECT CAST("__line" AS INTEGER) AS line_number, {all_columns}
                    FROM {_read_csv_sql(clean, ["__line", *names])})
                    TO {_lit(parquet.as_posix())} ({PARQUET_OPTIONS})"""
            )
            clean.csv_path.unlink()
            raw_rows = f"read_parquet({_lit(parquet.as_posix())})"
            rows = f"(SELECT line_number AS ln, {', '.join(_q(c) for c in plan.needed)} FROM {raw_rows})"
            _aggregate(con, layout, plan, rows)
        staging = Staging(workdir, detected, con, parquet, malformed, checks=plan.checks)
        _validate(staging, plan, raw_rows)
    except (duckdb.IOException, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # A gzip stream that ends early or is corrupt past the header: DuckDB or Python's gzip says so.
        con.close()
        if source.compression != "gzip":  # an I/O error on a plain file is the machine's, not the file's
            raise
        raise FileRefused(f"{path.name}: cannot be read to the end, the compressed data is damaged ({exc})") from exc
    finally:
        if source.csv_path != path:
            source.csv_path.unlink(missing_ok=True)
    return staging


def _validate(s: Staging, plan: _Plan, raw_rows: str) -> None:
    """Reject the fine groups that fail a check, read the facts of the file, aggregate the charge lines.

    ``raw_rows`` (SQL: ``line_number`` and every column) is read again only when some row is rejected, for the
    rejected rows' values.
    """
    con, layout = s.con, s.layout
    con.execute("ALTER TABLE fine ADD COLUMN fail BOOLEAN")
    con.execute(f"UPDATE fine SET fail = bad OR {_failed_sql(plan.per_group)}")
    cur = _q(layout.currency)

    def mode(expr: str) -> str:  # the most frequent value among the good rows; on a tie, the first in the file
        return f"""(SELECT v FROM (SELECT {expr} AS v, sum(n) AS k, min(first_line) AS f FROM fine
                    WHERE NOT fail AND v IS NOT NULL GROUP BY v) ORDER BY k DESC, f LIMIT 1)"""

    partner_sql = mode('lower("PartnerId")')
    row = con.execute(f"SELECT {partner_sql}, {mode(_q('InvoiceNumber'))}, {mode(cur)}").fetchone()
    assert row is not None
    partner, invoice, currency = row
    s.partner_id, s.invoice_number, s.currency = partner or "", invoice or "", currency or ""
    con.execute(f"UPDATE fine SET fail = true WHERE NOT fail AND {_failed_sql(_file_checks(s))}")
    found = con.execute(
        """SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE fail), 0),
                  coalesce(sum(s_cost) FILTER (WHERE NOT fail), 0), coalesce(sum(s_cost) FILTER (WHERE fail), 0)
           FROM fine"""
    ).fetchone()
    assert found is not None
    s.rows, s.rejected = int(found[0]), int(found[1])
    s.facts["accepted_cost"], s.facts["rejected_cost"] = Decimal(found[2]), Decimal(found[3])
    con.execute("CREATE TABLE bad AS SELECT unnest(lines) AS line_number FROM fine WHERE fail")
    con.execute(
        f"COPY (SELECT line_number FROM bad ORDER BY line_number) TO {_lit(s.rejected_parquet.as_posix())} "
        f"({PARQUET_OPTIONS})"
    )
    if s.rejected:  # their values, for the rejects table
        con.execute(f"CREATE TABLE bad_raw AS SELECT * FROM {raw_rows} SEMI JOIN bad USING (line_number)")
    if s.malformed is not None:
        more = con.execute(
            f"SELECT count(*) FROM read_csv({_lit(s.malformed.as_posix())}, all_varchar=true)"
        ).fetchone()
        assert more is not None
        s.rows += more[0]
        s.rejected += more[0]
        s.facts["malformed"] = more[0]
    con.execute(f"CREATE TABLE lines AS {_group_sql(layout)}")
    con.execute(
        f"""COPY (SELECT first_line AS grp, unnest(lines) AS line_number FROM lines ORDER BY grp, line_number)
            TO {_lit(s.index_parquet.as_posix())} ({INDEX_PARQUET_OPTIONS})"""
    )
    con.execute("ALTER TABLE lines DROP COLUMN lines")
    facts = con.execute("SELECT min(cs), max(order_date) FROM lines").fetchone()
    assert facts is not None
    if layout is INVOICE:
        s.kind = Kind.INVOICE
        day = facts[1]
        totals = con.execute(
            "SELECT coalesce(sum(s_cost), 0), coalesce(sum(s_tax), 0), coalesce(sum(s_total), 0) FROM fine "
            "WHERE NOT fail"
        ).fetchone()
        assert totals is not None
        s.facts["invoice_totals"] = tuple(Decimal(t) for t in totals)
    else:
        s.kind = Kind.USAGE_BILLED if s.invoice_number else Kind.USAGE_UNBILLED
        day = facts[0]
    s.period = day.replace(day=1) if day else None
    unknown = con.execute(
        f"""SELECT "ChargeType", CAST(sum(n) AS BIGINT) FROM fine
            WHERE NOT fail AND lower("ChargeType") NOT IN ({", ".join(repr(k) for k in KNOWN_CHARGE_TYPES)})
            GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    s.facts["unknown_charge_types"] = {db_text(k): n for k, n in unknown}
    con.execute("DROP TABLE fine")


# --- reading the staged rows ---------------------------------------------------------------------------


def file_cost(s: Staging) -> tuple[Decimal, Decimal]:
    """Sum of cost over accepted rows, and over rejected rows whose cost parses."""
    return s.facts["accepted_cost"], s.facts["rejected_cost"]


def invoice_totals(s: Staging) -> tuple[Decimal, Decimal, Decimal]:
    """Subtotal, tax and total of the accepted rows of an invoice file."""
    subtotal, tax, total = s.facts["invoice_totals"]
    return subtotal, tax, total


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

_LINE_COLUMNS = (
    "tenant, reseller, subscription, product, sku, meter, cs, ce, charge_type, customer_name, product_name, "
    "sku_name, meter_name, meter_category, quantity, cost, pricing_cost, pricing_currency, rate, tax, credit, "
    "credit_percentage, credit_type, row_count, first_line, last_line"
)


def charge_rows(s: Staging, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
    """Aggregated charge lines as DuckDB gives them, values in :data:`CHARGE_FIELDS` order, in batches
    (never the whole result in memory). Text is as in the file: see :func:`db_text`."""
    cur = s.con.cursor()
    cur.execute(f"SELECT {_LINE_COLUMNS} FROM lines ORDER BY first_line")
    while rows := cur.fetchmany(batch):
        yield from rows
    cur.close()


def charge_groups(s: Staging, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Aggregated charge lines by field name, text made fit for the database."""
    for r in charge_rows(s, batch):
        yield {k: db_text(v) for k, v in zip(CHARGE_FIELDS, r, strict=True)}


def rejects(s: Staging, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every rejected row: line, column, reason, message, all problems and the raw values."""
    cols = list(s.layout.columns)
    problems = _problems_sql(s.checks + _file_checks(s))
    if s.rejected - _malformed_count(s):
        cur = s.con.cursor()
        cur.execute(
            f"SELECT line_number, {problems} AS problems, {', '.join(_q(c) for c in cols)} "
            "FROM bad_raw ORDER BY line_number"
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


def _malformed_count(s: Staging) -> int:
    return int(s.facts.get("malformed", 0))


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
    """The raw rows a charge line came from ("explain this charge"), each with its ``line_number``.

    An import with an ``index.parquet`` finds the charge line's rows there by its ``first_line``, then reads
    only those rows: raw lines (parsed here, with the file's header) or parsed rows. Older imports filter the
    rows by the charge line's key.
    """
    index = parquet.with_name(INDEX_PARQUET)
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1; SET memory_limit = '256MB'")
        if line.get("first_line") is not None and index.is_file():
            return _indexed_rows(con, parquet, index, layout, int(line["first_line"]), limit)
        return _rows_by_key(con, parquet, layout, line, limit)
    finally:
        con.close()


def _indexed_rows(
    con: duckdb.DuckDBPyConnection, parquet: Path, index: Path, layout: Layout, first_line: int, limit: int
) -> list[dict[str, Any]]:
    numbers = [
        int(r[0])
        for r in con.execute(
            f"SELECT line_number FROM read_parquet({_lit(index.as_posix())}) WHERE grp = $grp "
            f"ORDER BY line_number LIMIT {int(limit)}",
            {"grp": first_line},
        ).fetchall()
    ]
    if not numbers:
        return []
    path = _lit(parquet.as_posix())
    if _parquet_columns(parquet) == RAW_COLUMNS:  # the header is line 1
        wanted = ", ".join(str(n) for n in [1, *numbers])
        found = con.execute(
            f"""SELECT line_number, {RAW_LINE_COLUMN} FROM read_parquet({path})
                WHERE line_number BETWEEN 1 AND {numbers[-1]} AND line_number IN ({wanted})
                ORDER BY 1"""
        ).fetchall()
        header = next(csv.reader([found[0][1]]))
        columns = detect(header).columns
        rows = []
        for number, text in found[1:]:
            values = dict(zip(columns, next(csv.reader([text])), strict=False))
            rows.append({"line_number": number, **{c: values.get(c) or None for c in layout.columns}})
        return rows
    wanted = ", ".join(str(n) for n in numbers)
    cur = con.execute(
        f"""SELECT * FROM read_parquet({path})
            WHERE line_number BETWEEN {numbers[0]} AND {numbers[-1]} AND line_number IN ({wanted})
            ORDER BY line_number"""
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _rows_by_key(
    con: duckdb.DuckDBPyConnection, parquet: Path, layout: Layout, line: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """Imports made before ``index.parquet``: the rows whose key is the charge line's, less the rejected ones."""
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


def layout_for(kind: str) -> Layout:
    return INVOICE if kind == Kind.INVOICE else USAGE
