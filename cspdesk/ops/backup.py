"""Back up and restore the database and the files under VAR_DIR that matter, as one tar archive.

The archive holds ``manifest.json`` (format version, database vendor, created at, SHA-256 and size of every
part), the database (``db.sqlite3`` from SQLite's online backup API, or ``db.dump`` from ``pg_dump
--format=custom``) and the files under ``VAR_DIR/recon`` (Parquet staging of recon files), ``VAR_DIR/files``
(stored documents: invoices as issued) and ``VAR_DIR/attachments`` (files attached to tickets). SECRET_KEY and
other secrets are not in it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from cspdesk.core import clock
from cspdesk.core.errors import Conflict, DomainError, ValidationFailed

__all__ = ["BackupError", "Conflict", "create", "read_manifest", "restore"]

FORMAT_VERSION = 1
FILE_DIRS = ("recon", "files", "attachments")  # under VAR_DIR


class BackupError(DomainError):
    code = "backup_failed"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found on PATH: install the PostgreSQL client tools (Debian: postgresql-client)")
    return found


def _pg_env(db: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for the PostgreSQL tools; the password goes in the environment, never argv."""
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    args = []
    if db.get("HOST"):
        args += ["--host", str(db["HOST"])]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    return args, env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _vendor(alias: str = "default") -> str:
    return connections[alias].vendor


def create(out: Path, alias: str = "default") -> dict[str, Any]:
    """Write the archive to ``out``; returns the manifest."""
    out = Path(out)
    vendor = _vendor(alias)
    db = connections[alias].settings_dict
    with tempfile.TemporaryDirectory(prefix="cspdesk-backup-") as tmp:
        work = Path(tmp)
        parts: list[tuple[str, Path]] = []
        if vendor == "sqlite":
            target = work / "db.sqlite3"
            connection = connections[alias]
            connection.ensure_connection()
            if connection.in_atomic_block:
                # Inside the caller's open transaction the backup API cannot take its read lock; the
                # connection's own image of the database is just as consistent.
                target.write_bytes(connection.connection.serialize())
            else:
                dest = sqlite3.connect(target)
                try:
                    connection.connection.backup(dest)  # consistent while others keep writing
                finally:
                    dest.close()
            parts.append(("db.sqlite3", target))
        elif vendor == "postgresql":
            target = work / "db.dump"
            args, env = _pg_env(db)
            _run([_tool("pg_dump"), *args, "--format=custom", "--no-owner", "--no-privileges",
                  "--file", str(target), str(db["NAME"])], env)  # fmt: skip
            parts.append(("db.dump", target))
        else:
            raise BackupError(f"backup of a {vendor} database is not supported")
        var_dir = Path(settings.VAR_DIR)
        for sub in FILE_DIRS:
            root = var_dir / sub
            if root.is_dir():
                for path in sorted(p for p in root.rglob("*") if p.is_file()):
                    parts.append((f"var/{path.relative_to(var_dir).as_posix()}", path))
        manifest = {
            "format_version": FORMAT_VERSION,
            "vendor": vendor,
            "created_at": clock.now().isoformat(),
            "database": str(db["NAME"]) if vendor == "postgresql" else Path(str(db["NAME"])).name,
            "parts": [{"name": name, "sha256": _sha256(path), "size": path.stat().st_size} for name, path in parts],
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            info.mtime = int(clock.now().timestamp())
            tar.addfile(info, io.BytesIO(data))
            for name, path in parts:
                tar.add(path, arcname=name, recursive=False)
        partial.replace(out)
    return {**manifest, "archive": str(out), "archive_sha256": _sha256(out)}


def read_manifest(archive: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            manifest: dict[str, Any] = json.loads(member.read())
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise ValidationFailed(f"{archive}: not a cspdesk backup ({exc})", field="file") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValidationFailed(
            f"{archive}: backup format {manifest.get('format_version')!r}, this cspdesk reads {FORMAT_VERSION}",
            field="file",
        )
    return manifest


def _extract_verified(archive: Path, manifest: dict[str, Any], into: Path) -> None:
    wanted = {p["name"]: p for p in manifest["parts"]}
    with tarfile.open(archive, "r:*") as tar:
        for name, part in wanted.items():
            if name.startswith("/") or ".." in Path(name).parts:
                raise ValidationFailed(f"{archive}: unsafe path {name!r} in the manifest", field="file")
            member = tar.extractfile(name)
            if member is None:
                raise ValidationFailed(f"{archive}: part {name} is missing", field="file")
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as fh:
                shutil.copyfileobj(member, fh)
            if _sha256(target) != part["sha256"]:
                raise ValidationFailed(f"{archive}: part {name} does not match its SHA-256", field="file")


def _has_data(vendor: str, db: dict[str, Any]) -> bool:
    query = "SELECT COUNT(*) FROM tenancy_organisation"
    try:
        if vendor == "sqlite":
            with closing(sqlite3.connect(str(db["NAME"]))) as con:
                row = con.execute(query).fetchone()
        else:
            import psycopg

            args = {k: db[v] for k, v in (("host", "HOST"), ("port", "PORT"), ("user", "USER")) if db.get(v)}
            with psycopg.connect(dbname=db["NAME"], password=db.get("PASSWORD") or None, **args) as con:
                row = con.execute(query).fetchone()
    except (sqlite3.Error, ImportError, Exception) as exc:  # no such table: an empty database
        if "tenancy_organisation" in str(exc) or "does not exist" in str(exc):
            return False
        raise
    return bool(row and row[0])


def restore(archive: Path, *, force: bool = False, database: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replace the database (default: Django's ``default``; or the given settings dict) and the files under
    VAR_DIR with the archive's. Refuses a database that holds data unless ``force``."""
    archive = Path(archive)
    manifest = read_manifest(archive)
    if database is None:
        if not connections["default"].in_atomic_block:
            connections["default"].close()  # let pg_restore take its locks; SQLite is written beside it
        database = connections["default"].settings_dict
    vendor = {"django.db.backends.sqlite3": "sqlite"}.get(database["ENGINE"], "postgresql")
    if manifest["vendor"] != vendor:
        raise ValidationFailed(f"{archive}: a {manifest['vendor']} backup cannot go into a {vendor} database")
    if not force and _has_data(vendor, database):
        raise Conflict("the database already holds data: restore replaces it all, so pass --force", code="not_empty")
    with tempfile.TemporaryDirectory(prefix="cspdesk-restore-") as tmp:
        work = Path(tmp)
        _extract_verified(archive, manifest, work)
        if vendor == "sqlite":
            with (
                closing(sqlite3.connect(work / "db.sqlite3")) as source,
                closing(sqlite3.connect(str(database["NAME"]))) as target,
            ):
                source.backup(target)
        else:
            args, env = _pg_env(database)
            _run([_tool("pg_restore"), *args, "--clean", "--if-exists", "--no-owner", "--no-privileges",
                  "--single-transaction", "--exit-on-error", "--dbname", str(database["NAME"]),
                  str(work / "db.dump")], env)  # fmt: skip
        var_dir = Path(settings.VAR_DIR)
        restored_files = 0
        for part in manifest["parts"]:
            if part["name"].startswith("var/"):
                target_file = var_dir / part["name"][len("var/") :]
                target_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(work / part["name"], target_file)
                restored_files += 1
    return {**manifest, "archive": str(archive), "restored_files": restored_files}
