"""Fixtures for the Partner Center client, emulator and sync tests (import them into a test module)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cspdesk.demo import world
from cspdesk.partnercenter import auth
from cspdesk.partnercenter.client import PartnerCenterClient, RetryPolicy
from cspdesk.partnercenter.emulator import RunningEmulator, start_in_thread

NUVOLA = str(world.partner_tenant_id("nuvola"))
NORDMOLN = str(world.partner_tenant_id("nordmoln"))
BELLAVISTA = str(world.customer_tenant_id("bellavista"))


class SleepRecorder:
    """Stands in for ``time.sleep``: remembers the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    emu = start_in_thread("127.0.0.1", 0, seed=7)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(emulator: RunningEmulator, sleeps: SleepRecorder) -> Iterator[Callable[..., PartnerCenterClient]]:
    """``make_client(tenant=NUVOLA, app_user=False, **client_kwargs)``: a real client against the emulator."""
    made: list[PartnerCenterClient] = []

    def make(
        tenant: str = NUVOLA, *, app_user: bool = False, secret: str = "s3cret", **kwargs: Any
    ) -> PartnerCenterClient:
        creds = auth.Credentials(
            tenant_id=tenant,
            client_id="cspdesk-tests",
            client_secret=secret,
            refresh_token="rt-from-consent" if app_user else "",
        )
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("retry", RetryPolicy(max_retries=3, backoff_base=0.01))
        client = PartnerCenterClient(emulator.url, auth.token_provider(emulator.url, creds), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
