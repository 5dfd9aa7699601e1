"""No English left behind in the staff console: every console page, and the public pages outside the portal
(log in, password reset, the published collections policy, the support offering), read in Italian, Swedish,
Portuguese and Hungarian, shows none of the English texts the catalogues translate and no word the English page
shows that the language never uses (the check: tests/languages.py).

The world has data on every page: two billed months synced from the Partner Center emulator (tests/portal/world.py),
a drafted run with anomalies, a payment in suspense, suspensions waiting for approval, a hold, a dispute, a
payment plan, the demo's tickets, price rules and support plans, and every audit event those leave. Each page is
read by a role that sees it: the global admin, the billing admin, the helpdesk agent, the sales agent and the user
management admin, with forms shown empty, refused with their errors and accepted with their messages.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client, override_settings

from cspdesk.audit.models import AuditEvent
from cspdesk.billing import services as billing
from cspdesk.billing.models import BillingRun, Invoice, InvoiceLine, RunStatus
from cspdesk.catalog.models import PriceRule, SupportPlan
from cspdesk.collections import services as collections
from cspdesk.collections.models import Case, Dispute, Hold, PaymentPlan
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.demo import desk
from cspdesk.partnercenter import sync as pc_sync
from cspdesk.partnercenter.models import Subscription
from cspdesk.partnercenter.recon.models import ChargeLine, Import
from cspdesk.payments import services as payments
from cspdesk.payments.models import Payment
from cspdesk.support.models import Ticket, TicketMessage
from cspdesk.tenancy.models import Customer, Organisation
from tests import languages
from tests.fixtures import DemoWorld, load_demo_world
from tests.languages import LANGUAGES, DataText, Page, column, english_found, get, report
from tests.payments.fixtures import make_invoice
from tests.portal.world import bill_months, partner_center

from .fixtures import make_import, make_line

# Rendering in five languages does not depend on the database engine: the SQLite pass covers it (`once`).
pytestmark = [pytest.mark.django_db, pytest.mark.once]

SYSTEM = Actor.system("test")
DUE = dt.date(2026, 10, 1)
TODAY = dt.date(2026, 11, 2)  # the walk's day: a step due today (Liffey's reminder), suspensions waiting
NOV = dt.date(2026, 11, 1)
EARLIER = dt.date(2025, 12, 1)  # issue date of the invoices made for collections: a year of their own numbers
POLICY = {
    "stages": [{"days": 7, "action": "reminder"}, {"days": 14, "action": "final_notice"},
               {"days": 30, "action": "suspend"}],
    "grace_days": 3,
    "categories": ["azure", "microsoft365"],
}  # fmt: skip


def at(day: dt.date) -> object:
    return clock.frozen(dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC))


def _billing_emails() -> Iterator[str]:
    for emails in Customer.objects.values_list("billing_emails", flat=True):
        yield from emails or []


def _audit_strings() -> Iterator[str]:
    """Free text people and Microsoft wrote that audit events keep (reasons, names, notes, messages)."""
    free = {"reason", "note", "name", "subject", "body", "legal_name", "offer_name", "friendly_name", "username",
            "email", "resolution", "payer_name", "reference", "file_name", "sender", "provider",
            "description"}  # fmt: skip
    for before, after in AuditEvent.objects.values_list("before", "after"):
        for data in (before, after):
            if isinstance(data, dict):
                yield from (v for k, v in data.items() if k in free and isinstance(v, str))


DATA = DataText([
    *column(Customer, "name", "address_line1", "address_line2", "city", "default_domain", "vat_id"),
    _billing_emails,
    *column(Organisation, "legal_name", "bank_account_name", "bank_bic"),
    *column(get_user_model(), "username", "email"),
    *column(InvoiceLine, "description", "group"),
    *column(Invoice, "reason"),
    *column(Subscription, "offer_name", "friendly_name"),
    *column(ChargeLine, "product_name", "sku_name", "meter_name", "meter_category", "charge_type", "customer_name"),
    *column(Import, "file_name"),
    *column(Ticket, "subject", "queue"),
    *column(TicketMessage, "body", "author_email"),
    *column(Payment, "payer_name", "payer_account", "reference"),
    *column(Hold, "reason", "created_by"),
    *column(Dispute, "reason", "opened_by"),
    *column(PaymentPlan, "note"),
    *column(PriceRule, "note", "product_id", "sku_id"),
    *column(SupportPlan, "name"),
    *column(BillingRun, "created_by"),
    *column(AuditEvent, "actor_username"),
    _audit_strings,
])  # fmt: skip


@dataclass
class ConsoleWorld:
    demo: DemoWorld
    run: BillingRun  # a draft with anomalies that do not block it
    suspense: Payment
    cases: list[Case]  # suspensions waiting for approval

    def client(self, username: str, language: str) -> Client:
        client = self.demo.browser(username)
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        return client


def _load() -> ConsoleWorld:
    demo = load_demo_world()
    pc_sync.sync(SYSTEM)
    bill_months()
    desk.load_desks()
    desk.load_tickets()
    nuvola = demo.org("nuvola")
    bellavista, liffey = demo.customer("bellavista"), demo.customer("liffey")
    collections.set_policy(SYSTEM, POLICY, organisation_id=nuvola.pk)
    make_invoice(bellavista, "500.00", due=DUE, issued=EARLIER, number="NUV-2025-000900")
    disputed = make_invoice(liffey, "120.00", due=DUE, issued=EARLIER, number="NUV-2025-000901")
    planned = make_invoice(demo.customer("prairie"), "300.00", due=DUE, issued=EARLIER, number="NUV-2025-000902")
    make_invoice(liffey, "80.00", due=TODAY - dt.timedelta(days=7), issued=EARLIER, number="NUV-2025-000903")
    with at(DUE + dt.timedelta(days=2)):
        collections.open_dispute(SYSTEM, disputed.pk, reason="Licences were cancelled in August")
        halves = [(NOV, Decimal(150)), (NOV + dt.timedelta(days=30), Decimal(150))]
        collections.create_payment_plan(SYSTEM, planned.customer_id, invoice_ids=[planned.pk], instalments=halves,
                                        note="Two halves")  # fmt: skip
    for days, cap in ((7, None), (14, None), (30, 0)):
        with at(DUE + dt.timedelta(days=days)):
            collections.run(SYSTEM, today=DUE + dt.timedelta(days=days), cap=cap)
    with at(TODAY):
        collections.place_hold(SYSTEM, demo.customer("prairie").pk, reason="Director on holiday",
                               until=TODAY + dt.timedelta(days=14))  # fmt: skip
        imp = make_import(nuvola, period=NOV, number="G9")
        make_line(imp, bellavista, "100.00")
        make_line(imp, liffey, "50.00")
        make_line(imp, None, "7.00")
        PriceRule.objects.filter(organisation=nuvola, customer=liffey).delete()
        run = billing.bill(demo.actor("nuvola.billing"), NOV)
        suspense = payments.record_payment(
            SYSTEM, amount=Decimal("61.00"), currency="EUR", received_on=TODAY, organisation_id=nuvola.pk,
            reference="Invoice October", payer_name="TRATTORIA BV",
        ).payment  # fmt: skip
    cases = list(Case.objects.filter(actions__status="awaiting_approval").distinct().order_by("pk"))
    assert run.status == RunStatus.DRAFT and cases, "the world has a draft run and suspensions waiting"
    return ConsoleWorld(demo, run, suspense, cases)


@pytest.fixture(scope="module")
def console_world(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> Iterator[ConsoleWorld]:
    """Loaded once per module inside a transaction rolled back at the end; each test nests in a savepoint."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        override_settings(VAR_DIR=Path(tmp)),
        django_db_blocker.unblock(),  # type: ignore[attr-defined]
        transaction.atomic(),
        partner_center(),
    ):
        yield _load()
        transaction.set_rollback(True)


@pytest.fixture
def world(console_world: ConsoleWorld, db: None) -> Iterator[ConsoleWorld]:
    with at(TODAY):
        yield console_world


# ---------------------------------------------------------------- the pages


def post(client: Client, url: str, data: dict[str, object], name: str) -> Page:
    """A form sent: what it wrote (a reply, a user, a reason) is data from then on."""
    page = languages.post(client, url, data, name)
    DATA.forget()
    return page


def console_pages(w: ConsoleWorld, lang: str) -> Iterator[Page]:
    """Every console page in ``lang``, each read by a role that sees it, with forms empty, refused and accepted."""
    demo = w.demo
    bellavista = demo.customer("bellavista")
    for role in ("admin", "billing", "helpdesk", "sales", "users"):
        yield get(w.client(f"nuvola.{role}", lang), "/console/", f"dashboard ({role})")

    billing_admin = w.client("nuvola.billing", lang)
    yield get(billing_admin, "/console/billing/runs/", "billing runs")
    for run in BillingRun.objects.filter(organisation=demo.org("nuvola")).exclude(status=RunStatus.REPLACED):
        yield get(billing_admin, f"/console/billing/runs/{run.pk}/", f"billing run {run.period:%Y-%m} {run.status}")
    yield get(billing_admin, f"/console/billing/runs/{w.run.pk}/finalize/", "finalize a run")
    yield post(billing_admin, f"/console/billing/runs/{w.run.pk}/finalize/", {}, "run finalized")
    yield get(billing_admin, "/console/payments/suspense/", "payment suspense")
    match = f"/console/payments/{w.suspense.pk}/match/"
    yield get(billing_admin, match, "match a payment")
    yield post(billing_admin, match, {"customer": "x"}, "match a payment with errors")
    yield post(billing_admin, match, {"customer": bellavista.pk}, "payment matched")
    yield get(billing_admin, "/console/collections/", "collections")
    approve, reject = w.cases[0], w.cases[-1]
    yield get(billing_admin, f"/console/collections/cases/{approve.pk}/approve/", "approve a suspension")
    yield get(billing_admin, f"/console/collections/cases/{reject.pk}/reject/", "reject a suspension")
    yield post(billing_admin, f"/console/collections/cases/{reject.pk}/reject/", {"reason": ""},
               "reject a suspension without a reason")  # fmt: skip
    yield post(billing_admin, f"/console/collections/cases/{reject.pk}/reject/", {"reason": "Paying next week"},
               "suspension rejected")  # fmt: skip
    if approve != reject:
        yield post(billing_admin, f"/console/collections/cases/{approve.pk}/approve/", {}, "suspension approved")
    yield get(billing_admin, f"/console/collections/cases/{reject.pk}/approve/", "nothing waits any more")
    yield get(billing_admin, "/console/catalog/price-rules/", "price rules")
    yield post(billing_admin, "/console/catalog/price-rules/", {"method": "markup", "percent": "x"},
               "price rule with errors")  # fmt: skip
    yield post(billing_admin, "/console/catalog/price-rules/", {"method": "markup", "percent": "10",
               "effective_from": "2026-01-01"}, "price rule in conflict")  # fmt: skip
    yield post(billing_admin, "/console/catalog/price-rules/", {"method": "markup", "percent": "12",
               "category": "azure", "effective_from": "2027-01-01", "note": "Azure from January"},
               "price rule created")  # fmt: skip
    rule = PriceRule.objects.filter(organisation=demo.org("nuvola")).order_by("-pk").first()
    assert rule is not None
    yield get(billing_admin, f"/console/catalog/price-rules/{rule.pk}/end/", "end a price rule")
    yield post(billing_admin, f"/console/catalog/price-rules/{rule.pk}/end/", {"effective_to": "2020-01-01"},
               "end a price rule refused")  # fmt: skip
    yield post(billing_admin, f"/console/catalog/price-rules/{rule.pk}/end/", {"effective_to": "2027-06-30"},
               "price rule ended")  # fmt: skip
    yield get(billing_admin, "/console/catalog/support-plans/", "support plans")
    yield post(billing_admin, "/console/catalog/support-plans/", {"price_model": "flat_monthly"},
               "support plan with errors")  # fmt: skip
    plan = {"name": "Premium care", "price_model": "percent_of_spend", "currency": "EUR", "percent": "8",
            "minimum": "50"}  # fmt: skip
    yield post(billing_admin, "/console/catalog/support-plans/", plan, "support plan created")

    admin = w.client("nuvola.admin", lang)
    yield get(admin, "/console/customers/", "customers")
    yield get(admin, "/console/customers/?q=zzz", "customers, none found")
    for customer in Customer.objects.filter(organisation=demo.org("nuvola")).order_by("pk"):
        yield get(admin, f"/console/customers/{customer.pk}/", f"customer {customer.name}")
    helpdesk = w.client("nuvola.helpdesk", lang)
    sub = Subscription.objects.filter(customer=bellavista, status="active").order_by("pk").first()
    suspended = Subscription.objects.filter(customer=bellavista, status="suspended").order_by("pk").first()
    assert sub is not None
    yield get(helpdesk, f"/console/subscriptions/{sub.pk}/suspend/", "suspend a subscription")
    yield post(helpdesk, f"/console/subscriptions/{sub.pk}/suspend/", {"reason": ""}, "suspend without a reason")
    yield post(helpdesk, f"/console/subscriptions/{sub.pk}/suspend/", {"reason": "Asked by the customer"},
               "subscription suspended")  # fmt: skip
    yield get(helpdesk, f"/console/subscriptions/{sub.pk}/suspend/", "suspend a suspended subscription")
    if suspended is not None:
        yield get(helpdesk, f"/console/subscriptions/{suspended.pk}/reactivate/", "reactivate a subscription")

    for query in ("", "?state=all", "?mine=1"):
        yield get(helpdesk, f"/console/tickets/{query}", f"tickets {query}")
    yield get(helpdesk, "/console/tickets/", "ticket rows", HX_Request="true")
    tickets = list(Ticket.objects.filter(organisation=demo.org("nuvola")).order_by("pk"))
    for ticket in tickets:
        yield get(helpdesk, f"/console/tickets/{ticket.pk}/", f"ticket {ticket.reference}")
    ticket = tickets[0].pk
    yield post(helpdesk, f"/console/tickets/{ticket}/", {"do": "reply", "body": ""}, "reply with errors")
    yield post(helpdesk, f"/console/tickets/{ticket}/", {"do": "reply", "body": "Looking at it."}, "reply sent")
    yield post(helpdesk, f"/console/tickets/{ticket}/", {"do": "reply", "body": "Check the logs.", "internal": "on"},
               "internal note")  # fmt: skip
    yield post(helpdesk, f"/console/tickets/{ticket}/", {"do": "assign", "assignee": "x"}, "assign with errors")
    agent = get_user_model().objects.get(username="nuvola.helpdesk")
    yield post(helpdesk, f"/console/tickets/{ticket}/", {"do": "assign", "assignee": agent.pk, "queue": "billing"},
               "ticket assigned")  # fmt: skip

    yield get(w.client("nuvola.sales", lang), "/console/sales/", "sales")

    users = w.client("nuvola.users", lang)
    yield get(users, "/console/users/", "users")
    yield post(users, "/console/users/", {"username": "", "email": "not-an-address"}, "new user with errors")
    yield post(users, "/console/users/", {"username": "nuvola.newcomer", "password": "long enough password 1",
               "roles": ["helpdesk_agent"]}, "user created")  # fmt: skip
    newcomer = get_user_model().objects.get(username="nuvola.newcomer")
    yield get(users, f"/console/users/{newcomer.pk}/", "a user")
    yield post(users, f"/console/users/{newcomer.pk}/", {"do": "roles", "roles": ["sales_agent"]}, "roles saved")
    yield post(users, f"/console/users/{newcomer.pk}/", {"do": "deactivate"}, "user deactivated")
    yield get(users, f"/console/users/{agent.pk}/", "another user")
    yield get(users, f"/console/users/{get_user_model().objects.get(username='nuvola.users').pk}/", "oneself")

    yield get(admin, "/console/audit/", "audit log")
    yield get(admin, "/console/audit/?page=2", "audit log, page 2", HX_Request="true")
    yield get(admin, "/console/audit/?action=zzz&since=x", "audit log, no events and an error")
    for action in _actions(AuditEvent.objects.values_list("action", flat=True)):
        yield get(admin, f"/console/audit/?action={action}", f"audit log of {action}")

    nuvola = demo.org("nuvola").pk
    anonymous = Client()
    anonymous.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    yield get(anonymous, f"/collections/policy/{nuvola}/", "the published collections policy")
    yield get(anonymous, f"/collections/policy/customer/{bellavista.tenant_id}/", "a customer's collections policy")
    yield get(anonymous, f"/support/offering/{nuvola}/", "the support offering")
    yield get(anonymous, "/accounts/login/", "login")
    yield post(anonymous, "/accounts/login/", {"username": "nuvola.admin", "password": "wrong"}, "login refused")
    yield get(anonymous, "/accounts/password-reset/", "password reset")
    yield post(anonymous, "/accounts/password-reset/", {"email": "nuvola.admin@demo.cspdesk.localhost"},
               "password reset sent")  # fmt: skip
    yield post(anonymous, "/accounts/login/", {"username": "nuvola.admin",
               "password": demo.logins["nuvola.admin"].password}, "logged in")  # fmt: skip


def _actions(codes: Iterable[str]) -> list[str]:
    return sorted(set(codes))


# ---------------------------------------------------------------- the tests


_ENGLISH: dict[str, set[str]] = {}


def _english_words(world: ConsoleWorld) -> set[str]:
    """Every word of the English pages (the same walk, in English), once per module; the walk's changes are
    rolled back with the savepoint of the test that made it."""
    if "words" not in _ENGLISH:
        sid = transaction.savepoint()
        _ENGLISH["words"] = set().union(*(DATA.words(p.body) for p in console_pages(world, "en")))
        transaction.savepoint_rollback(sid)
        DATA.forget()
    return _ENGLISH["words"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_english_is_left_on_any_console_page(world: ConsoleWorld, lang: str) -> None:
    english = _english_words(world)
    pages, left = english_found(console_pages(world, lang), DATA, lang, english)
    DATA.forget()
    assert pages >= 80
    assert left == {}, report(lang, left)


def test_the_check_finds_english_on_english_pages(world: ConsoleWorld) -> None:
    """The same check, given the English pages, finds the English: it is not blind."""
    admin = world.client("nuvola.admin", "en")
    found = DATA.english_left(admin.get("/console/collections/").content.decode(), "sv")
    assert {"Waiting for approval", "Open cases", "Holds in force"} <= set(found)
    # data is never taken for English left behind
    assert DATA.english_left(f"<p>{world.demo.customer('liffey').name}</p>", "hu") == []
