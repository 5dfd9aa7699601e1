"""Secrets never reach a log: Authorization headers, API tokens, passwords and SECRET_KEY are redacted."""

from __future__ import annotations

import io
import logging

import pytest
from django.conf import settings

from cspdesk.core.logsafe import REDACTED, RedactSecrets, redact

TOKEN = "csp_0a1b2c3d4e5f_Zx9-Yw8_Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param(f"Authorization: Bearer {TOKEN}", TOKEN, id="authorization-header"),
        pytest.param(f"{{'HTTP_AUTHORIZATION': 'Bearer {TOKEN}'}}", TOKEN, id="wsgi-meta"),
        pytest.param("authorization=Basic YWRhOmh1bnRlcjI=", "YWRhOmh1bnRlcjI=", id="basic-auth"),
        pytest.param(f"token {TOKEN} refused", TOKEN, id="bare-api-token"),
        pytest.param("login failed: password=hunter2hunter2", "hunter2hunter2", id="password-form"),
        pytest.param('{"username": "ada", "password": "s3cr3t-P4ss"}', "s3cr3t-P4ss", id="password-json"),
        pytest.param("refresh_token=0.AXkA-abcdef123", "0.AXkA-abcdef123", id="refresh-token"),
        pytest.param("client_secret: Qw~8Q~abcdEFG", "Qw~8Q~abcdEFG", id="client-secret"),
        pytest.param("GET /?code=1 Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9.e30.sig", id="jwt"),
    ],
)
def test_redact(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


def test_redact_keeps_ordinary_text() -> None:
    text = "invoice 2025-0001 for customer_id=12 token_id=5 totals 12.50 EUR"
    assert redact(text) == text


def test_secret_key_is_redacted_by_value() -> None:
    assert settings.SECRET_KEY not in redact(f"config dump: {settings.SECRET_KEY!r}")


def _handler() -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler, stream


def test_the_filter_redacts_arguments_and_tracebacks() -> None:
    handler, stream = _handler()
    log = logging.getLogger("tests.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("request headers %s", {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})
        try:
            raise ValueError(f"password={TOKEN}")
        except ValueError:
            log.exception("failed with %s", settings.SECRET_KEY)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    out = stream.getvalue()
    assert TOKEN not in out
    assert settings.SECRET_KEY not in out
    assert "ValueError" in out  # the traceback is kept, only the secret goes
    assert out.count(REDACTED) >= 3


def test_the_configured_console_handler_redacts() -> None:
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["redact"]
    root_filters = [f for h in logging.getLogger().handlers for f in h.filters]
    assert any(isinstance(f, RedactSecrets) for f in root_filters)
