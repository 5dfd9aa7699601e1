"""``cspdesk backup`` then ``cspdesk restore``: the restored database and files equal what was backed up."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import tarfile
from collections.abc import Iterator
from contextlib import closing
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from cspdesk.ops import backup
from cspdesk.tenancy.models import Customer
from tests.fixtures import DemoWorld

# An invoice stored as issued and a file attached to a ticket: both must come back with the database.
FILES = {"files/invoices/3/2026/NUV-2026-000001-0123456789abcdef.pdf": b"%PDF-1.7 issued",
         "attachments/12/1-screenshot.png": b"\x89PNG screenshot"}  # fmt: skip
KEY_TABLES = ("tenancy_organisation", "tenancy_customer", "tenancy_membership", "auth_user", "audit_auditevent")


def _rows(cursor: Any, table: str) -> list[Any]:
    cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
    return cursor.fetchall()


def snapshot(database: dict[str, Any] | None = None) -> dict[str, tuple[int, str]]:
    """Row count and a SHA-256 over every row (in primary-key order) of each key table."""
    out = {}
    if database is None:
        with connections["default"].cursor() as cursor:
            tables = {t: _rows(cursor, t) for t in KEY_TABLES}
    elif database["ENGINE"].endswith("sqlite3"):
        with closing(sqlite3.connect(database["NAME"])) as con:
            tables = {t: _rows(con.cursor(), t) for t in KEY_TABLES}
    else:
        import psycopg

        with psycopg.connect(dbname=database["NAME"], host=database["HOST"], user=database["USER"]) as con:
            tables = {t: _rows(con.cursor(), t) for t in KEY_TABLES}
    for table, rows in tables.items():
        normal = [tuple(_normal(v) for v in row) for row in rows]
        out[table] = (len(rows), hashlib.sha256(repr(normal).encode()).hexdigest())
    return out


def _normal(value: Any) -> str:
    """One text form per value whichever driver read it (Django's cursor converts, the raw ones may not)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


@pytest.fixture
def var_dir(tmp_path: Path, settings: Any) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    staged = settings.VAR_DIR / "recon" / "7" / "rows.parquet"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"PAR1 staged rows PAR1")
    for name, data in FILES.items():
        (settings.VAR_DIR / name).parent.mkdir(parents=True)
        (settings.VAR_DIR / name).write_bytes(data)
    return Path(settings.VAR_DIR)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A second, empty database of the same vendor to restore into (settings dict, not a Django alias)."""
    default = connections["default"]
    if default.vendor == "sqlite":
        yield {**default.settings_dict, "NAME": str(tmp_path / "scratch.sqlite3")}
        return
    import psycopg

    name = "cspdesk_backup_test"
    db = default.settings_dict
    with psycopg.connect(dbname="postgres", host=db["HOST"], user=db["USER"], autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name}")
        con.execute(f"CREATE DATABASE {name}")
    yield {**db, "NAME": name}
    with psycopg.connect(dbname="postgres", host=db["HOST"], user=db["USER"], autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _backup_change_restore(demo: DemoWorld, var_dir: Path, scratch: dict[str, Any], tmp_path: Path) -> None:
    # On PostgreSQL the data is committed (transaction=True): read both sides with the same driver.
    live = None if connections["default"].vendor == "sqlite" else connections["default"].settings_dict
    before = snapshot(live)
    archive = tmp_path / "out" / "cspdesk.tar.gz"
    out = StringIO()
    call_command("backup", out=str(archive), json=True, stdout=out)
    manifest = json.loads(out.getvalue())
    assert manifest["format_version"] == backup.FORMAT_VERSION
    assert manifest["vendor"] == connections["default"].vendor
    names = [p["name"] for p in manifest["parts"]]
    assert names[0] in ("db.sqlite3", "db.dump")
    assert "var/recon/7/rows.parquet" in names
    assert {f"var/{name}" for name in FILES} <= set(names)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted(["manifest.json", *names])

    # Change data and files after the backup.
    customer = demo.customer("padaria")
    Customer.objects.filter(pk=customer.pk).update(name="Changed after the backup")
    (var_dir / "recon" / "7" / "rows.parquet").write_bytes(b"changed")
    for name in FILES:
        (var_dir / name).unlink()
    assert snapshot(live) != before

    restored = backup.restore(archive, database=scratch)
    assert restored["restored_files"] == 1 + len(FILES)
    assert snapshot(scratch) == before
    assert (var_dir / "recon" / "7" / "rows.parquet").read_bytes() == b"PAR1 staged rows PAR1"
    assert {name: (var_dir / name).read_bytes() for name in FILES} == FILES
    # A second restore into a database that now holds data needs --force.
    with pytest.raises(backup.Conflict):
        backup.restore(archive, database=scratch)
    backup.restore(archive, database=scratch, force=True)
    assert snapshot(scratch) == before


@pytest.mark.django_db
def test_backup_and_restore_on_sqlite(demo: DemoWorld, var_dir: Path, scratch: dict[str, Any], tmp_path: Path) -> None:
    if connections["default"].vendor != "sqlite":
        pytest.skip("the SQLite pass covers the online backup API")
    _backup_change_restore(demo, var_dir, scratch, tmp_path)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_backup_and_restore_on_postgresql(
    demo: DemoWorld, var_dir: Path, scratch: dict[str, Any], tmp_path: Path
) -> None:
    _backup_change_restore(demo, var_dir, scratch, tmp_path)


@pytest.mark.django_db
def test_a_tampered_archive_is_refused(var_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    backup.create(archive)
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            content = data.read() if data else b""
            if member.name.endswith("rows.parquet"):
                content = b"PAR1 tampered!!! rows PAR1"
            member.size = len(content)
            dst.addfile(member, __import__("io").BytesIO(content))
    with pytest.raises(CommandError, match="does not match its SHA-256"):
        call_command("restore", str(bad), force=True, stdout=StringIO())
    with pytest.raises(CommandError, match="not a cspdesk backup"):
        (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
        call_command("restore", str(tmp_path / "junk.tar.gz"), stdout=StringIO())


def test_missing_postgres_tools_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup.shutil, "which", lambda name: None)
    with pytest.raises(backup.BackupError, match="pg_dump not found on PATH"):
        backup._tool("pg_dump")
