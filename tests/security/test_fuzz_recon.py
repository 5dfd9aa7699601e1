"""Fuzzing the recon-file importer: random bytes, damaged gzip and zip containers, other encodings, BOMs, huge
fields, missing and extra columns, and good rows around mutated ones. Every file is staged (bad rows become
rejects with their line) or refused with a ``DomainError`` naming the file or header; never an unhandled
exception, and a good row is never lost because of a bad neighbour."""

from __future__ import annotations

import gzip
import io
import itertools
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.partnercenter.recon import importer, services
from cspdesk.partnercenter.recon.layouts import INVOICE_COLUMNS
from cspdesk.partnercenter.recon.models import ChargeLine, RejectedRow
from cspdesk.tenancy.models import Organisation, OrganisationKind
from tests.partnercenter import recon_fixtures as f

SYSTEM = Actor.system("test")
_n = itertools.count(1)
GOOD_FILE = f.csv_text([f.invoice_row(), f.invoice_row(CustomerId=f.LIFFEY)]).encode()


@dataclass
class Staged:
    rows: int
    rejected: int
    rejects: list[dict[str, Any]]
    lines: list[dict[str, Any]]


def _stage(tmp: Path, data: bytes, name: str = "recon.csv") -> Staged | None:
    """Stage ``data``; ``None`` when the file is refused with a clear error. The staging is read to the end."""
    work = tmp / f"case-{next(_n)}"
    work.mkdir()
    path = work / name
    path.write_bytes(data)
    try:
        staging = importer.stage(path, work / "staging")
    except DomainError as exc:
        assert exc.message
        assert path.name in exc.message or exc.field == "header", exc.message
        shutil.rmtree(work)
        return None
    try:
        importer.tenants(staging)
        return Staged(staging.rows, staging.rejected, list(importer.rejects(staging)),
                      list(importer.charge_groups(staging)))  # fmt: skip
    finally:
        staging.close()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _zip(data: bytes, name: str = "recon.csv", method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-recon")


# --- containers and bytes --------------------------------------------------------------------------------


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([b"", b"\x1f\x8b", b"\x1f\x8b\x08\x00", b"PK\x03\x04", b"\xef\xbb\xbf", b"\xff\xfe"]),
       st.binary(max_size=300))  # fmt: skip
@example(b"PK\x03\x04", b"")  # zipfile.BadZipFile escaped open_source
@example(b"", _zip(GOOD_FILE)[:-10])  # a zip without its central directory
def test_random_bytes_are_staged_or_refused(tmp: Path, magic: bytes, data: bytes) -> None:
    _stage(tmp, magic + data)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["gz", "zip", "zip-stored"]), st.integers(min_value=0, max_value=2000), st.binary(max_size=8))
@example("gz", len(_gzip(GOOD_FILE)) - 12, b"")  # duckdb.IOException: unexpected end of the gzip stream
@example("zip", 60, b"\x00\x00\x00")  # damaged deflate data inside a zip
def test_damaged_compression_is_refused_naming_the_file(tmp: Path, fmt: str, cut: int, garbage: bytes) -> None:
    if fmt == "gz":
        packed = _gzip(GOOD_FILE)
    else:
        packed = _zip(GOOD_FILE, method=zipfile.ZIP_STORED if fmt == "zip-stored" else zipfile.ZIP_DEFLATED)
    cut %= len(packed) + 1
    damaged = packed[:cut] + garbage + packed[cut + len(garbage) :]
    staging = _stage(tmp, damaged)
    if staging is not None and damaged == packed:
        assert staging.rows == 2 and staging.rejected == 0


def test_a_zip_without_a_csv_and_an_encrypted_looking_zip_are_refused(tmp: Path) -> None:
    with pytest.raises(DomainError, match=r"exactly one \.csv file, it holds 0"):
        importer.stage(_write(tmp, _zip(GOOD_FILE, name="recon.txt")), tmp / "w1")
    data = bytearray(_zip(GOOD_FILE))
    data[6] |= 0x01  # the general-purpose flag of the local header: "encrypted"
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 0x01
    with pytest.raises(DomainError, match="not a readable zip archive"):
        importer.stage(_write(tmp, bytes(data)), tmp / "w2")


def test_a_truncated_gzip_is_refused_naming_the_file(tmp: Path) -> None:
    with pytest.raises(DomainError, match=r"recon.csv: cannot be read to the end, the compressed data is damaged"):
        importer.stage(_write(tmp, _gzip(GOOD_FILE)[:-12]), tmp / "w")


def _write(tmp: Path, data: bytes) -> Path:
    path = tmp / f"{next(_n)}" / "recon.csv"
    path.parent.mkdir()
    path.write_bytes(data)
    return path


# --- a valid header, mutated rows --------------------------------------------------------------------------

# Mutations that stay on one physical line: no quote, CR or LF. Each is a whole line's text.
# (A blank line is no row at all: DuckDB and the csv module both skip it.)
line_text = st.text(st.characters(blacklist_characters='"\r\n', blacklist_categories=("Cs",)), min_size=1, max_size=80)
field_text = st.text(st.characters(blacklist_characters='",\r\n', blacklist_categories=("Cs",)), max_size=40)


@st.composite
def mutated_row(draw: st.DrawFn) -> bytes:
    row = [f.invoice_row()[c] for c in INVOICE_COLUMNS]
    how = draw(st.sampled_from(["field", "drop", "extra", "line", "latin-1", "huge", "nul"]))
    if how == "field":
        row[draw(st.integers(0, len(row) - 1))] = draw(field_text)
    elif how == "drop":
        del row[draw(st.integers(0, len(row) - 1))]
    elif how == "extra":
        row.append(draw(field_text))
    elif how == "huge":
        row[draw(st.integers(0, len(row) - 1))] = "9" * draw(st.sampled_from([1000, 140_000]))
    elif how == "nul":
        row[draw(st.integers(0, len(row) - 1))] = "a\x00b"
    if how == "line":
        return draw(line_text).encode()
    text = ",".join(row)
    if how == "latin-1":  # a row in another encoding: not valid UTF-8
        return text.replace("Trattoria", "Trattoria Società").encode("latin-1")
    return text.encode()


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(mutated_row(), min_size=1, max_size=4), st.integers(0, 4), st.sampled_from(["csv", "gz", "zip"]),
       st.booleans())  # fmt: skip
def test_good_rows_around_bad_ones_are_kept(tmp: Path, bad: list[bytes], at: int, fmt: str, bom: bool) -> None:
    header, first, second = GOOD_FILE.rstrip(b"\r\n").split(b"\r\n")
    lines = [first, *bad[:at], second, *bad[at:]]
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\r\n".join([header, *lines]) + b"\r\n"
    data = {"csv": data, "gz": _gzip(data), "zip": _zip(data)}[fmt]
    staging = _stage(tmp, data)
    assert staging is not None
    good_lines = {2, 2 + 1 + min(at, len(bad))}
    rejected = {r["line_number"] for r in staging.rejects}
    assert staging.rows == len(lines)
    assert not rejected & good_lines
    assert rejected <= set(range(2, len(lines) + 2)) - good_lines
    assert staging.rejected == len(staging.rejects)
    for r in staging.rejects:
        assert r["reason"] and r["message"]
    kept = sum(g["row_count"] for g in staging.lines)
    assert kept == len(lines) - len(rejected) >= 2


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(INVOICE_COLUMNS), max_size=3, unique=True), st.lists(field_text, max_size=2),
       st.sampled_from(["", "\ufeff", '"', " "]), st.integers(0, 1))  # fmt: skip
@example([], ["x" * 200_000], "", 0)  # a header field over the csv module's limit: csv.Error
@example([], [], '"', 1)
def test_a_changed_header_is_detected_or_refused(
    tmp: Path, dropped: list[str], added: list[str], decoration: str, where: int
) -> None:
    columns = [c for c in INVOICE_COLUMNS if c not in dropped] + added
    if columns:
        columns[where % len(columns)] = decoration + columns[where % len(columns)]
    header = ",".join(columns)
    body = f.csv_text([f.invoice_row()], INVOICE_COLUMNS).split("\r\n", 1)[1]
    staging = _stage(tmp, (header + "\r\n" + body).encode())
    if staging is None:
        return
    assert staging.rows == 1


# --- through the import service (database) ------------------------------------------------------------------


@pytest.mark.django_db
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(mutated_row(), min_size=1, max_size=3), st.sampled_from(["csv", "gz"]))
@example([b"\x00"], "csv")
def test_import_file_keeps_good_rows_and_files_bad_ones(
    settings: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, bad: list[bytes], fmt: str
) -> None:
    tmp = tmp_path_factory.mktemp("import")
    settings.VAR_DIR = tmp / "var"  # type: ignore[attr-defined]
    if not Organisation.objects.filter(pc_tenant_id=f.NUVOLA).exists():
        Organisation.objects.create(
            kind=OrganisationKind.DIRECT_BILL_PARTNER, legal_name="Nuvola", address_line1="x", city="x",
            country="IT", pc_tenant_id=f.NUVOLA, mpn_id="5012345", billing_currency="EUR", invoice_series="NUV",
        )  # fmt: skip
    number = f"G{next(_n):09d}"
    rows = [f.invoice_row(InvoiceNumber=number), f.invoice_row(InvoiceNumber=number, CustomerId=f.LIFFEY)]
    header, first, second = f.csv_text(rows).encode().rstrip(b"\r\n").split(b"\r\n")
    lines = [first, *[b.replace(b"G000000001", number.encode()) for b in bad], second]
    data = b"\r\n".join([header, *lines]) + b"\r\n"
    path = tmp / ("recon.csv.gz" if fmt == "gz" else "recon.csv")
    path.write_bytes(_gzip(data) if fmt == "gz" else data)
    imp = services.import_file(SYSTEM, path).imported
    rejected = set(RejectedRow.objects.filter(source=imp).values_list("line_number", flat=True))
    assert imp.rows == len(lines) and imp.rejected == len(rejected)
    assert not rejected & {2, len(lines) + 1}
    assert sum(ChargeLine.objects.filter(source=imp).values_list("row_count", flat=True)) == len(lines) - len(rejected)
