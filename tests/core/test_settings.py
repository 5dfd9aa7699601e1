"""Production refuses unsafe settings; development works out of the box."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STRONG = "k3Jx9-vQ2mZp8LwR5tY7uB1nC4dF6gH0jK2lM5nP8qS1tV4wX7yZ0aB3cD6eF9gH2"


def _start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CSPDESK_", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"))
    }
    clean.update({"CSPDESK_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "cspdesk.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"CSPDESK_DEBUG": "1", "SECRET_KEY": STRONG}, "DEBUG is on"),
        ({}, "SECRET_KEY is missing"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is weak"),
        ({"SECRET_KEY": "django-insecure-" + STRONG}, "SECRET_KEY is weak"),
        ({"SECRET_KEY": STRONG, "ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must name the hosts"),
    ],
    ids=["debug", "missing-key", "short-key", "insecure-key", "any-host"],
)
def test_production_refuses_unsafe_settings(tmp_path: Path, env: dict[str, str], complaint: str) -> None:
    result = _start(tmp_path, CSPDESK_ENV="production", **env)
    assert result.returncode != 0
    assert "refuses to start in production" in result.stderr
    assert complaint in result.stderr


def test_production_starts_with_safe_settings(tmp_path: Path) -> None:
    result = _start(tmp_path, CSPDESK_ENV="production", SECRET_KEY=STRONG, ALLOWED_HOSTS="billing.example.com")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_development_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    assert _start(tmp_path).returncode == 0
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    assert _start(tmp_path).returncode == 0
    assert (tmp_path / "secret_key").read_text() == key


def test_settings_facts() -> None:
    from django.conf import settings

    assert [code for code, _ in settings.LANGUAGES] == ["en", "it", "sv", "pt-pt", "hu"]
    assert settings.USE_TZ and settings.TIME_ZONE == "UTC"
    assert "django.middleware.locale.LocaleMiddleware" in settings.MIDDLEWARE


@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    result = _start(tmp_path)
    assert result.returncode == 0
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.db import connection; "
            "c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])",
        ],
        env={**os.environ, "CSPDESK_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "cspdesk.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "wal", probe.stderr
