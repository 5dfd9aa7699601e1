"""No English left behind: every portal page, read in Italian, Swedish, Portuguese and Hungarian, shows none of
the English texts the catalogues translate (the check: tests/languages.py). The data cut out of the pages before
searching: the customer's and Microsoft's (names, product and meter names, line descriptions, ticket subjects and
messages, file names, e-mail addresses).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client, override_settings
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from cspdesk.billing import services as billing
from cspdesk.billing.models import Invoice, InvoiceLine
from cspdesk.collections import services as collections
from cspdesk.core.actor import Actor
from cspdesk.partnercenter.models import Subscription, SubscriptionStatusChange
from cspdesk.partnercenter.recon.models import ChargeLine, Import
from cspdesk.support.models import Attachment, Ticket, TicketMessage
from cspdesk.tenancy.models import Customer, Organisation
from tests.languages import LANGUAGES, DataText, Page, column, english_found, get, post, report
from tests.portal.world import PortalWorld

# Rendering in five languages does not depend on the database engine: the SQLite pass covers it (`once`).
pytestmark = [pytest.mark.django_db, pytest.mark.once]

USERNAME = "bellavista.admin"  # a customer administrator: every portal page is open to the role
POLICY = {
    "stages": [{"days": 7, "action": "reminder"}, {"days": 14, "action": "final_notice"},
               {"days": 30, "action": "suspend"}, {"days": 45, "action": "cancel_at_renewal"}],
    "grace_days": 3,
    "categories": ["azure", "microsoft365"],
}  # fmt: skip


# ---------------------------------------------------------------- the data the portal shows


DATA = DataText(
    [
        *column(Customer, "name"),
        *column(Organisation, "legal_name", "bank_account_name", "bank_bic"),
        *column(get_user_model(), "username", "email"),
        *column(InvoiceLine, "description", "group"),
        *column(Invoice, "reason"),
        *column(Subscription, "offer_name", "friendly_name"),
        *column(ChargeLine, "product_name", "sku_name", "meter_name", "meter_category", "charge_type", "customer_name"),
        *column(Import, "file_name"),
        *column(Ticket, "subject"),
        *column(TicketMessage, "body", "author_email"),
        *column(Attachment, "filename"),
    ]
)
english_left = DATA.english_left


# ---------------------------------------------------------------- the pages


def portal_pages(world: PortalWorld, lang: str) -> Iterator[Page]:
    """Every portal page a customer meets, in ``lang``, including forms with their errors and the messages
    that follow an action."""
    client = world.client(USERNAME, lang)
    october, september = world.invoice("bellavista"), world.invoice("bellavista", "2026-09")
    note = Invoice.objects.filter(credited_invoice=september).first()
    yield get(client, "/portal/", "home")
    yield get(client, "/portal/invoices/", "invoices")
    yield get(client, "/portal/invoices/?kind=credit_note", "credit notes")
    yield get(client, f"/portal/invoices/{october.pk}/", "invoice with what changed")
    yield get(client, f"/portal/invoices/{september.pk}/", "first invoice")
    if note is not None:
        yield get(client, f"/portal/invoices/{note.pk}/", "credit note")
    for line in october.lines.order_by("position"):
        url = f"/portal/invoices/{october.pk}/lines/{line.position}/"
        yield get(client, url, f"explanation of line {line.position}", HX_Request="true")
    yield get(client, f"/portal/invoices/{october.pk}/lines/1/", "explanation page")
    question = f"/portal/invoices/{october.pk}/lines/1/question/"
    yield get(client, question, "billing question")
    yield post(client, question, {"subject": "", "body": ""}, "billing question with errors")
    yield get(client, "/portal/balance/", "balance")
    yield get(client, "/portal/subscriptions/", "subscriptions with a suspended one")
    for state in ("open", "done", "all"):
        yield get(client, f"/portal/tickets/?state={state}", f"tickets ({state})")
    for ticket in Ticket.objects.filter(customer=world.demo.customer("bellavista")).order_by("pk"):
        yield get(client, f"/portal/tickets/{ticket.pk}/", f"ticket {ticket.reference}")
    yield get(client, "/portal/tickets/new/", "new ticket")
    yield post(client, "/portal/tickets/new/", {"subject": ""}, "new ticket with errors")
    opened = post(client, "/portal/tickets/new/", {
        "subject": "Teams", "category": "technical", "service": "microsoft365", "severity": "normal",
        "body": "Calls drop."}, "ticket just opened")  # fmt: skip
    ticket = Ticket.objects.filter(subject="Teams").order_by("-pk").first()
    DATA.forget()  # the new ticket's subject and messages are the customer's data
    yield opened
    assert ticket is not None
    reply = post(client, f"/portal/tickets/{ticket.pk}/", {"body": "Still."}, "reply added")
    DATA.forget()
    yield reply
    yield post(client, f"/portal/tickets/{ticket.pk}/resolve/", {}, "ticket resolved")
    ticket.delete()
    customer = world.demo.customer("bellavista")
    yield get(client, f"/support/offering/{customer.organisation_id}/", "support offering")
    yield get(client, f"/collections/policy/customer/{customer.tenant_id}/", "payment and suspension policy")

    liffey = world.client("liffey.admin", lang)  # a customer with money to pay, Stripe configured
    with override_settings(CSPDESK_STRIPE={"SECRET_KEY": "sk_test_languages", "API_BASE": "http://127.0.0.1:9"}):
        yield get(liffey, "/portal/", "home with a balance")
        yield get(liffey, "/portal/balance/", "balance with open invoices")
        yield get(liffey, f"/portal/invoices/{world.invoice('liffey').pk}/", "invoice to pay")
    yield post(liffey, f"/portal/invoices/{world.invoice('liffey').pk}/pay/", {}, "card payment unavailable")

    anonymous = Client()
    anonymous.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    yield get(anonymous, "/accounts/login/", "login")
    yield post(anonymous, "/accounts/login/", {"username": USERNAME, "password": "wrong"}, "login refused")
    yield get(anonymous, "/accounts/password-reset/", "password reset")
    yield post(anonymous, "/accounts/password-reset/", {"email": "not-an-address"}, "password reset error")
    yield post(anonymous, "/accounts/password-reset/", {"email": "liffey.admin@demo.cspdesk.localhost"},
                "password reset sent")  # fmt: skip
    user = get_user_model().objects.get(username="liffey.admin")
    link = f"/accounts/password-reset/{urlsafe_base64_encode(force_bytes(user.pk))}/"
    yield get(anonymous, f"{link}{default_token_generator.make_token(user)}/", "new password")
    yield post(anonymous, f"{link}set-password/", {"new_password1": "short", "new_password2": "other"},
                "new password refused")  # fmt: skip
    yield get(anonymous, f"{link}not-a-token/", "password reset link expired")
    yield get(anonymous, "/accounts/password-reset/done/", "password changed")


@pytest.fixture
def prepared(world: PortalWorld) -> PortalWorld:
    """The world with a published collections policy and a credit note, so those pages exist, and its suspended
    subscription suspended for the reason the collections engine gives (not a person's own words)."""
    system = Actor.system("test")
    SubscriptionStatusChange.objects.filter(subscription=world.suspended).update(reason="non-payment")
    nuvola = world.demo.customer("bellavista").organisation_id
    collections.set_policy(system, POLICY, organisation_id=nuvola)
    billing.issue_credit_note(system, world.invoice("bellavista", "2026-09").pk, reason="licence returned",
                              positions=[1])  # fmt: skip
    DATA.forget()
    return world


# ---------------------------------------------------------------- the tests


_ENGLISH: dict[str, set[str]] = {}


def _english_words(world: PortalWorld) -> set[str]:
    """Every word of the English pages (the same walk, in English), once per module."""
    if "words" not in _ENGLISH:
        _ENGLISH["words"] = set().union(*(DATA.words(p.body) for p in portal_pages(world, "en")))
    return _ENGLISH["words"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_english_is_left_on_any_portal_page(prepared: PortalWorld, lang: str) -> None:
    pages, left = english_found(portal_pages(prepared, lang), DATA, lang, _english_words(prepared))
    assert pages >= 40
    assert left == {}, report(lang, left)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_password_reset_mail_is_in_the_language(world: PortalWorld, lang: str) -> None:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    client.post("/accounts/password-reset/", {"email": "liffey.admin@demo.cspdesk.localhost"})
    [message] = mail.outbox
    assert english_left(f"<pre>{message.subject}\n{message.body}</pre>", lang) == []


def test_the_check_finds_english_on_english_pages(world: PortalWorld) -> None:
    """The same check, given the English pages, finds the English: it is not blind."""
    client = world.client(USERNAME, "en")
    invoice = world.invoice("bellavista")
    found = english_left(client.get(f"/portal/invoices/{invoice.pk}/").content.decode(), "it")
    assert {"Explain this charge", "Download PDF", "What changed since last month"} <= set(found)
    subscriptions = english_left(client.get("/portal/subscriptions/").content.decode(), "hu")
    assert "Why it is suspended:" in subscriptions or "Why it is suspended" in subscriptions
    # a customer's own data is never taken for English left behind
    assert english_left(f"<p>{world.demo.customer('liffey').name}</p>", "sv") == []
