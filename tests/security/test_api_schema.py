"""Schemathesis against /api/v1/openapi.json, in process (WSGI): no 5xx, every response matches the schema.

The schema is read from the running app, so operations added by any app are covered without editing this
file. Each run covers every operation as a subtest; examples per operation are kept small for CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cspdesk.wsgi import application
from tests.fixtures import DemoWorld

MAX_EXAMPLES = 20
# Schema-valid bodies may still break business rules the schema cannot say (a VAT id, a currency, "either
# organisation_id or customer_id"): those get 422 with the field named, which the other checks verify.
EXCLUDED = [positive_data_acceptance]
FUZZ_USER = "nuvola.admin"


schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)

_settings = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    """Calls go straight to the WSGI handler, which closes the database connection after each request; inside
    the test's transaction that would lose it (Django's own test client disconnects the same signal)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _no_token_throttle(settings: Any) -> None:
    """Schemathesis sends bogus tokens on purpose (auth checks); the per-address throttle is tested elsewhere."""
    settings.CSPDESK_TOKEN_FAILURE_LIMIT = 10**9


@pytest.fixture
def token(demo: DemoWorld) -> str:
    return demo.logins[FUZZ_USER].api_token


@schema.parametrize()
@_settings
def test_api_as_an_authenticated_user(case: Any, token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=EXCLUDED)


@pytest.mark.django_db
@schema.parametrize()
@_settings
def test_api_anonymously(case: Any) -> None:
    response = case.call_and_validate(excluded_checks=EXCLUDED)
    if not case.operation.definition.raw.get("security"):
        return  # a public operation (a signed webhook): the checks above are all it owes
    # No session, no token: 401; an unsafe method without a session fails CSRF first (403).
    assert response.status_code in (401, 403, 404, 405), response.status_code
    if response.status_code == 403:
        assert response.json()["code"] == "csrf_failed"
