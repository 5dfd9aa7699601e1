"""Brute force: a (username, IP) pair is locked out after N failed logins; API tokens are throttled per IP."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

PASSWORD = "Correct-horse-battery-9"


@pytest.fixture
def user() -> object:
    return get_user_model().objects.create_user("ada", "ada@example.test", PASSWORD)


def _login(client: Client, password: str, ip: str = "10.0.0.1", **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/accounts/login/", {"username": "ada", "password": password}, REMOTE_ADDR=ip, **headers)


def test_failed_logins_lock_the_username_and_address_pair(user: object) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong-password").status_code == 200  # the form again, with the error
    locked = _login(client, "wrong-password")
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert b"Too many failed logins" in locked.content
    # Locked out: even the right password is refused, and no session is created.
    right = _login(client, PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    # The same user from another address is not locked (no one can lock another out from afar) …
    other = Client()
    assert _login(other, PASSWORD, ip="10.0.0.2").status_code == 302
    assert AccessAttempt.objects.filter(username="ada", ip_address="10.0.0.1").count() == 1


def test_lockout_is_json_for_json_clients(user: object) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = _login(client, "wrong-password", HTTP_ACCEPT="application/json")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "locked_out"
    assert body["field"] is None
    assert "Retry-After" in response


def test_the_lockout_ends_after_the_cool_off(user: object) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "wrong-password")
    assert _login(client, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(hours=1))
    assert _login(client, PASSWORD).status_code == 302


def test_a_success_resets_the_failure_count(user: object) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "wrong-password")
    assert _login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong-password").status_code == 200


def test_bad_api_tokens_are_logged_without_the_secret_and_throttled_per_address(
    user: object, caplog: pytest.LogCaptureFixture
) -> None:
    from cspdesk.core.actor import Actor, ActorKind
    from cspdesk.tenancy import services

    ada = get_user_model().objects.get(username="ada")
    _, good = services.issue_api_token(Actor(kind=ActorKind.STAFF, user_id=ada.pk, username="ada"), "cli")
    bad = good[:-4] + "AAAA"
    with override_settings(CSPDESK_TOKEN_FAILURE_LIMIT=3), caplog.at_level(logging.WARNING, "cspdesk.api"):
        for _ in range(3):
            response = Client(HTTP_AUTHORIZATION=f"Bearer {bad}").get("/api/v1/me", REMOTE_ADDR="10.0.0.9")
            assert response.status_code == 401
        throttled = Client(HTTP_AUTHORIZATION=f"Bearer {good}").get("/api/v1/me", REMOTE_ADDR="10.0.0.9")
        assert throttled.status_code == 429
        assert throttled.json()["code"] == "throttled"
        # Another address, and the account itself, are unaffected: the token still works.
        ok = Client(HTTP_AUTHORIZATION=f"Bearer {good}").get("/api/v1/me", REMOTE_ADDR="10.0.0.10")
        assert ok.status_code == 200
    assert len([r for r in caplog.records if "API token refused" in r.getMessage()]) == 3
    assert all(bad not in r.getMessage() and good not in r.getMessage() for r in caplog.records)
    assert not AccessAttempt.objects.exists()  # token failures never lock an account
