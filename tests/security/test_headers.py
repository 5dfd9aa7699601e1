"""A strict Content-Security-Policy on every page, no inline script in any template, safe cookie settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

import cspdesk
from tests.fixtures import DemoWorld

pytestmark = pytest.mark.django_db

TEMPLATE_ROOT = Path(cspdesk.__file__).parent
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def _policy(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in header.split(";")) if d}


def _assert_strict(policy: dict[str, list[str]]) -> None:
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    for sources in policy.values():
        assert "'unsafe-inline'" not in sources
        assert "'unsafe-eval'" not in sources
        assert "*" not in sources


def test_login_page_and_console_send_a_strict_policy(demo: DemoWorld) -> None:
    _assert_strict(_policy(Client().get("/accounts/login/")))
    browser = demo.browser("nuvola.admin")
    for url in ("/console/", "/console/customers/"):
        response = browser.get(url)
        assert response.status_code == 200
        _assert_strict(_policy(response))
        assert b'src="/static/cspdesk/app.js"' in response.content
    assert "Content-Security-Policy" in Client().get("/api/v1/openapi.json")


@pytest.mark.parametrize(
    "template", sorted(str(p.relative_to(TEMPLATE_ROOT)) for p in TEMPLATE_ROOT.glob("*/templates/**/*.html"))
)
def test_templates_carry_no_inline_script(template: str) -> None:
    text = (TEMPLATE_ROOT / template).read_text()
    assert not INLINE_HANDLER.search(text), "inline event handler: move it to a static .js file"
    assert not JS_URL.search(text), "javascript: URL"
    for attrs in SCRIPT_TAG.findall(text):
        assert "src=" in attrs or 'type="application/json"' in attrs, "inline <script>: move it to a static file"


def test_the_language_picker_script_is_a_static_file() -> None:
    script = TEMPLATE_ROOT / "console" / "static" / "cspdesk" / "app.js"
    assert "data-autosubmit" in script.read_text()
    assert "data-autosubmit" in (TEMPLATE_ROOT / "console" / "templates" / "console" / "base.html").read_text()


def test_session_and_csrf_cookies_are_locked_down() -> None:
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.SESSION_COOKIE_AGE <= 24 * 3600
    assert settings.CSRF_COOKIE_HTTPONLY
    assert settings.CSRF_COOKIE_SAMESITE == "Lax"
    assert settings.X_FRAME_OPTIONS == "DENY"
    assert settings.SECURE_CONTENT_TYPE_NOSNIFF
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AUTHENTICATION_BACKENDS[0] == "cspdesk.core.security.LoginThrottleBackend"


def test_session_api_calls_need_csrf(demo: DemoWorld) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(_user("nuvola.admin"))
    response = browser.post("/api/v1/tokens", data={"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


def _user(username: str):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)
