"""Fixtures for collections tests: the demo world synced from the Partner Center emulator, a policy, invoices,
and a real Partner Center client against the emulator (no waiting between retries)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cspdesk.collections import services
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.demo import world
from cspdesk.partnercenter import sync
from cspdesk.partnercenter.client import PartnerCenterClient, RetryPolicy
from cspdesk.partnercenter.emulator import RunningEmulator, start_in_thread
from cspdesk.partnercenter.models import Subscription
from cspdesk.tenancy.models import Customer, Organisation
from tests.fixtures import DemoWorld

SYSTEM = Actor.system("tests")
POLICY: dict[str, Any] = {
    "stages": [
        {"days": 7, "action": "reminder"},
        {"days": 14, "action": "final_notice"},
        {"days": 30, "action": "suspend"},
    ],
    "grace_days": 3,
    "minimum_amounts": {},
    "categories": ["azure", "microsoft365"],
}


def at(day: dt.date) -> Any:
    return clock.frozen(dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC))


@dataclass
class World:
    demo: DemoWorld
    emulator: RunningEmulator

    def customer(self, key: str) -> Customer:
        return self.demo.customer(key)

    def org(self, key: str) -> Organisation:
        return self.demo.org(key)

    def client_factory(self, retries: int = 0) -> Callable[[Organisation], PartnerCenterClient]:
        def make(org: Organisation) -> PartnerCenterClient:
            return PartnerCenterClient.for_organisation(
                org, retry=RetryPolicy(max_retries=retries, backoff_base=0.0), sleep=lambda _s: None
            )

        return make

    def pc_status(self, sub: Subscription) -> str:
        customer = sub.customer
        org = customer.organisation
        partner_key = next(s.key for s in world.ORGANISATIONS if s.invoice_series == (org.parent or org).invoice_series)
        resource = self.emulator.state.subscription(
            str(world.partner_tenant_id(partner_key)), str(customer.tenant_id), str(sub.pc_subscription_id)
        )
        return str(resource["status"])

    def run(self, day: dt.date, **kwargs: Any) -> services.RunReport:
        kwargs.setdefault("client_factory", self.client_factory())
        with at(day):
            return services.run(SYSTEM, today=day, **kwargs)


@pytest.fixture
def pc(settings: Any) -> Iterator[RunningEmulator]:
    emu = start_in_thread("127.0.0.1", 0, seed=7)
    settings.PARTNER_CENTER = {"BASE_URL": emu.url, "AUTHORITY": emu.url, "AUTHORITY_USGOV": emu.url,
                               "CLIENT_ID": "", "CLIENT_SECRET": "", "REFRESH_TOKEN": ""}  # fmt: skip
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def cw(demo: DemoWorld, pc: RunningEmulator) -> World:
    """The demo world with its subscriptions synced from the emulator and a policy for Nuvola and Fjällsystem."""
    report = sync.sync(SYSTEM)
    assert report.as_dict()["ok"] is True
    for key in ("nuvola", "fjall", "atlantico"):
        services.set_policy(SYSTEM, POLICY, organisation_id=demo.org(key).pk)
    return World(demo, pc)
