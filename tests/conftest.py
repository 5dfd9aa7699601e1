from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from django.db import connection
from hypothesis import settings as hypothesis_settings

# Shared CI machines are noisy: a property test judges results, never wall-clock time per example.
hypothesis_settings.register_profile("cspdesk", deadline=None, print_blob=True)
hypothesis_settings.load_profile("cspdesk")

if TYPE_CHECKING:
    from tests.fixtures import DemoWorld


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres`` run only on PostgreSQL; on SQLite they are skipped with the reason."""
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run by `make test` in its PostgreSQL pass (DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _postgres_required_under_ci(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> None:
    if os.environ.get("CSPDESK_REQUIRE_POSTGRES") == "1":
        with django_db_blocker.unblock():  # type: ignore[attr-defined]
            assert connection.vendor == "postgresql", "this pass must run on PostgreSQL"


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # Password hashing at production strength makes every test user cost ~0.3 s; tests need no such cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def demo(db: None) -> DemoWorld:
    from tests.fixtures import load_demo_world

    return load_demo_world()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Throttle counters live in the cache; each test starts with none."""
    from django.core.cache import cache

    cache.clear()
