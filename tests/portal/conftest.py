"""The portal's demo world (tests/portal/world.py), loaded once per test module.

Loading takes seconds, so a module-scoped fixture loads it inside a transaction that is rolled back when the
module ends; each test's own ``db`` transaction nests inside it (a savepoint), as Django's TestCase does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction
from django.test import override_settings

from tests.portal.world import PortalWorld, load


@pytest.fixture(scope="module")
def portal_world(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> Iterator[PortalWorld]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        override_settings(VAR_DIR=Path(tmp)),
        django_db_blocker.unblock(),  # type: ignore[attr-defined]
        transaction.atomic(),
    ):
        yield load(Path(tmp))
        transaction.set_rollback(True)


@pytest.fixture
def world(portal_world: PortalWorld, db: None) -> PortalWorld:
    return portal_world
