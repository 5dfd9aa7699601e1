"""Every portal page, as the customer's users see it, on the demo world with two billed months."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from lxml import etree

from cspdesk.billing.models import InvoiceKind, InvoiceLineCharge
from cspdesk.core import l10n
from cspdesk.payments import selectors as payment_selectors
from cspdesk.support import services as support
from cspdesk.support.models import Attachment, Category, MessageKind, Service, Status, Ticket, TicketMessage
from tests.portal.world import SUSPENDED_REASON, PortalWorld

pytestmark = pytest.mark.django_db


def text(response) -> str:  # type: ignore[no-untyped-def]
    return re.sub(r"\s+", " ", response.content.decode())


# ---------------------------------------------------------------- landing and login


def test_login_lands_customer_users_on_the_portal_and_staff_on_the_console(world: PortalWorld) -> None:
    for username, landing in (("bellavista.admin", "/portal/"), ("nuvola.billing", "/console/")):
        client = Client()
        resp = client.post("/accounts/login/", {"username": username,
                                                "password": world.demo.logins[username].password})  # fmt: skip
        assert resp.status_code == 302
        assert client.get(resp["Location"])["Location"] == landing


def test_anonymous_visitors_are_sent_to_log_in(world: PortalWorld) -> None:
    assert Client().get("/")["Location"] == "/accounts/login/"
    resp = Client().get("/portal/invoices/")
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/?next=/portal/invoices/")


def test_staff_are_sent_from_the_portal_to_the_console(world: PortalWorld) -> None:
    client = world.client("nuvola.helpdesk")
    resp = client.get("/portal/")
    assert resp.status_code == 302 and resp["Location"] == "/console/"
    own_customers_invoice = world.invoice("bellavista")  # Nuvola's customer: still no portal page for staff
    assert client.get(f"/portal/invoices/{own_customers_invoice.pk}/").status_code == 404


def test_password_reset_by_email_sets_a_new_password(world: PortalWorld) -> None:
    client = Client()
    assert "Forgot your password?" in text(client.get("/accounts/login/"))
    assert client.get("/accounts/password-reset/").status_code == 200
    resp = client.post("/accounts/password-reset/", {"email": "liffey.admin@demo.cspdesk.localhost"})
    assert resp.status_code == 302 and resp["Location"] == "/accounts/password-reset/sent/"
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/password-reset/\S+/)", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    form = client.get(link.group(1), follow=True)
    assert form.status_code == 200 and "new_password1" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "Quiet-harbour-2718",
                                                    "new_password2": "Quiet-harbour-2718"})  # fmt: skip
    assert done.status_code == 302 and done["Location"] == "/accounts/password-reset/done/"
    assert Client().login(username="liffey.admin", password="Quiet-harbour-2718")


def test_password_reset_page_is_translated(world: PortalWorld) -> None:
    client = Client()
    client.cookies["django_language"] = "it"
    body = text(client.get("/accounts/password-reset/"))
    assert "Reset your password" not in body and 'lang="it"' in body


# ---------------------------------------------------------------- overview, invoices, downloads


def test_overview_shows_balance_tickets_and_suspended_subscriptions(world: PortalWorld) -> None:
    body = text(world.client("liffey.admin", "en").get("/portal/"))
    liffey = world.demo.customer("liffey")
    owed = sum(
        (payment_selectors.open_balance(i) for i in liffey.invoices.filter(kind=InvoiceKind.INVOICE)), Decimal(0)
    )
    assert owed > 0
    assert l10n.money(owed, "EUR", "en") in body
    body = text(world.client("bellavista.admin", "en").get("/portal/"))
    assert "1 subscription is suspended." in body
    assert "Nothing to pay" in body  # Bellavista paid both months in full


def test_invoice_list_pages_back_from_the_newest(world: PortalWorld, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cspdesk.portal import views

    monkeypatch.setattr(views, "INVOICES_PER_PAGE", 1)
    client = world.client("bellavista.admin", "en")
    newest, older = (world.invoice("bellavista", p).number for p in ("2026-10", "2026-09"))
    first = text(client.get("/portal/invoices/?kind=invoice"))
    assert newest in first and older not in first
    assert "Page 1 of 2" in first and 'href="?kind=invoice&amp;page=2">Older</a>' in first
    second = text(client.get("/portal/invoices/?kind=invoice&page=2"))
    assert older in second and newest not in second and ">Newer</a>" in second
    assert older in text(client.get("/portal/invoices/?kind=invoice&page=99"))  # past the end: the last page


def test_invoice_list_shows_the_customers_documents_only(world: PortalWorld) -> None:
    body = text(world.client("bellavista.admin", "en").get("/portal/invoices/"))
    own = [world.invoice("bellavista", p).number for p in ("2026-09", "2026-10")]
    other = world.invoice("liffey").number
    assert all(n in body for n in own)
    assert other not in body


def test_invoice_page_has_lines_explain_buttons_and_downloads(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    body = text(world.client("bellavista.admin", "en").get(f"/portal/invoices/{inv.pk}/"))
    lines = list(inv.lines.order_by("position"))
    assert len(lines) > 3
    for ln in lines:
        assert f'hx-get="/portal/invoices/{inv.pk}/lines/{ln.position}/"' in body
        assert f'href="/portal/invoices/{inv.pk}/lines/{ln.position}/question/"' in body
    assert body.count("Explain this charge") == len(lines)
    assert f"/portal/invoices/{inv.pk}/pdf/" in body and f"/portal/invoices/{inv.pk}/ubl/" in body
    assert "Pay " not in body  # paid in full, and Stripe is not configured here


def test_pdf_and_ubl_downloads(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    client = world.client("bellavista.contabilita")
    pdf = client.get(f"/portal/invoices/{inv.pk}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and f'filename="{inv.number}.pdf"' in pdf["Content-Disposition"]
    ubl = client.get(f"/portal/invoices/{inv.pk}/ubl/")
    root = etree.fromstring(ubl.content)
    assert etree.QName(root).localname == "Invoice"
    assert root.findtext("{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}ID") == inv.number


def test_credit_notes_are_listed_and_link_their_invoice(world: PortalWorld) -> None:
    from cspdesk.billing import services as billing
    from cspdesk.core.actor import Actor

    inv = world.invoice("liffey")
    note = billing.issue_credit_note(Actor.system("test"), inv.pk, reason="duplicate licence", positions=[1])
    client = world.client("liffey.admin", "en")
    listed = text(client.get("/portal/invoices/?kind=credit_note"))
    assert note.number in listed and inv.number not in listed
    body = text(client.get(f"/portal/invoices/{note.pk}/"))
    assert f'href="/portal/invoices/{inv.pk}/"' in body and "duplicate licence" in body
    assert "What changed since last month" not in body


def test_what_changed_says_licences_and_usage_in_words(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    previous = world.invoice("bellavista", "2026-09")
    body = text(world.client("bellavista.admin", "en").get(f"/portal/invoices/{inv.pk}/"))
    assert f"Compared with invoice {previous.number}." in body
    assert f"{world.fewer_licences}: 2 licences added" in body
    assert "Azure usage for Virtual Machines:" in body
    delta = inv.net - previous.net
    assert delta > 0
    assert f"(+{l10n.money(delta, 'EUR', 'en')}" in body


def test_first_month_has_nothing_to_compare(world: PortalWorld) -> None:
    inv = world.invoice("bellavista", "2026-09")
    body = text(world.client("bellavista.admin", "en").get(f"/portal/invoices/{inv.pk}/"))
    assert "There is no invoice for the month before to compare with." in body


# ---------------------------------------------------------------- explain this charge


def test_explain_fragment_names_subscription_rows_and_rule_but_not_cost(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    line = inv.lines.filter(description__startswith=world.fewer_licences).order_by("position").first()
    assert line is not None
    client = world.client("bellavista.admin", "en")
    resp = client.get(f"/portal/invoices/{inv.pk}/lines/{line.position}/", HTTP_HX_REQUEST="true")
    body = text(resp)
    assert resp.status_code == 200 and "<html" not in body
    link = InvoiceLineCharge.objects.filter(line=line).select_related("charge_line__source").first()
    assert link is not None
    c = link.charge_line
    assert f"#{c.source_id}" in body and c.source.file_name in body
    row = f"row {c.first_line}" if c.first_line == c.last_line else f"rows {c.first_line}–{c.last_line}"
    assert row in body
    assert c.subscription_id in body and c.sku_id in body
    assert "How it is priced" in body
    assert l10n.money(line.cost, "EUR", "en") not in body  # Microsoft's cost is the partner's business
    page = text(client.get(f"/portal/invoices/{inv.pk}/lines/{line.position}/"))
    assert "<html" in page and row in page


def test_explain_shows_a_suspended_subscription_status(world: PortalWorld) -> None:
    assert world.suspended is not None
    inv = world.invoice("bellavista")
    link = InvoiceLineCharge.objects.filter(
        line__invoice=inv, charge_line__subscription_id=str(world.suspended.pc_subscription_id)
    ).first()
    assert link is not None
    body = text(world.client("bellavista.admin", "en").get(
        f"/portal/invoices/{inv.pk}/lines/{link.line.position}/", HTTP_HX_REQUEST="true"))  # fmt: skip
    assert "Suspended" in body


# ---------------------------------------------------------------- billing question → ticket


def test_billing_question_opens_a_billing_ticket_linked_to_the_line(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    azure = inv.lines.filter(description__startswith="Azure").order_by("position").first()
    assert azure is not None
    client = world.client("bellavista.contabilita", "en")
    url = f"/portal/invoices/{inv.pk}/lines/{azure.position}/question/"
    form = text(client.get(url))
    assert f"Question about invoice {inv.number}, line {azure.position}" in form
    before = Ticket.objects.count()
    resp = client.post(url, {"subject": "Why more Azure?", "body": "Usage grew; which meters?"})
    assert Ticket.objects.count() == before + 1
    ticket = Ticket.objects.order_by("-pk").first()
    assert ticket is not None
    assert resp.status_code == 302 and resp["Location"] == f"/portal/tickets/{ticket.pk}/"
    assert (ticket.category, ticket.service, ticket.invoice_number, ticket.invoice_line) == (
        Category.BILLING,
        Service.AZURE,
        inv.number,
        str(azure.position),
    )
    assert ticket.customer == world.demo.customer("bellavista")
    page = text(client.get(resp["Location"]))
    assert f'href="/portal/invoices/{inv.pk}/#line-{azure.position}"' in page and "Usage grew; which meters?" in page


def test_billing_question_needs_a_question(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    before = Ticket.objects.count()
    resp = world.client("bellavista.admin", "en").post(f"/portal/invoices/{inv.pk}/lines/1/question/",
                                                       {"subject": "x", "body": ""})  # fmt: skip
    assert resp.status_code == 200 and "This field is required." in text(resp)
    assert Ticket.objects.count() == before


# ---------------------------------------------------------------- tenant isolation


def test_another_customers_documents_are_not_found(world: PortalWorld) -> None:
    other = world.invoice("liffey")
    client = world.client("bellavista.admin")
    for path in ("", "pdf/", "ubl/", "lines/1/", "lines/1/question/"):
        assert client.get(f"/portal/invoices/{other.pk}/{path}").status_code == 404, path
    assert client.post(f"/portal/invoices/{other.pk}/pay/").status_code == 404
    assert client.get(f"/portal/invoices/{other.pk}/pay/").status_code == 404
    assert client.get(f"/portal/invoices/{world.invoice('bellavista').pk}/pay/").status_code == 405
    before = Ticket.objects.count()
    assert (
        client.post(f"/portal/invoices/{other.pk}/lines/1/question/", {"subject": "s", "body": "b"}).status_code == 404
    )
    assert Ticket.objects.count() == before


def test_another_customers_ticket_and_files_are_not_found(world: PortalWorld) -> None:
    from cspdesk.core.actor import Actor

    liffey = world.demo.customer("liffey")
    t = support.open_ticket(Actor.system("test"), customer_id=liffey.pk, subject="Private", body="secret",
                            category=Category.TECHNICAL, service=Service.AZURE,
                            attachments=[support.UploadedFile("a.txt", "text/plain", b"secret")])  # fmt: skip
    att = Attachment.objects.get(message__ticket=t)
    client = world.client("bellavista.admin")
    assert client.get(f"/portal/tickets/{t.pk}/").status_code == 404
    assert client.get(f"/portal/tickets/{t.pk}/files/{att.pk}/").status_code == 404
    assert client.post(f"/portal/tickets/{t.pk}/", {"body": "hi"}).status_code == 404
    assert client.post(f"/portal/tickets/{t.pk}/resolve/").status_code == 404
    assert t.messages.count() == 1
    own = world.client("liffey.admin")
    download = own.get(f"/portal/tickets/{t.pk}/files/{att.pk}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"secret"


def test_a_customer_user_without_invoice_rights_sees_no_invoices(world: PortalWorld) -> None:
    inv = world.invoice("angstrom")
    client = world.client("angstrom.user", "en")
    home = text(client.get("/portal/"))
    assert 'href="/portal/invoices/"' not in home and 'href="/portal/balance/"' not in home
    assert client.get("/portal/invoices/").status_code == 403
    assert client.get(f"/portal/invoices/{inv.pk}/").status_code == 404  # one object: refused looks like absent
    assert client.get("/portal/balance/").status_code == 403
    assert client.get("/portal/tickets/").status_code == 200


# ---------------------------------------------------------------- balance, statement, card payment


def test_balance_lists_open_invoices_and_the_statement_downloads(world: PortalWorld) -> None:
    liffey = world.demo.customer("liffey")
    client = world.client("liffey.admin", "en")
    body = text(client.get("/portal/balance/"))
    for inv in liffey.invoices.filter(kind=InvoiceKind.INVOICE):
        open_amount = payment_selectors.open_balance(inv)
        assert open_amount > 0
        assert inv.number in body and l10n.money(open_amount, "EUR", "en") in body
    pdf = client.get("/portal/balance/statement.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert "statement-" in pdf["Content-Disposition"]


def test_pay_by_card_appears_only_when_stripe_is_configured(world: PortalWorld, settings) -> None:  # type: ignore[no-untyped-def]
    inv = world.invoice("liffey")
    client = world.client("liffey.admin", "en")
    assert "by card" not in text(client.get(f"/portal/invoices/{inv.pk}/"))
    settings.CSPDESK_STRIPE = {"SECRET_KEY": "sk_test_portal", "API_BASE": "http://127.0.0.1:9"}
    body = text(client.get(f"/portal/invoices/{inv.pk}/"))
    amount = l10n.money(payment_selectors.open_balance(inv), "EUR", "en")
    assert f"Pay {amount} by card" in body
    resp = client.post(f"/portal/invoices/{inv.pk}/pay/", follow=True)  # Stripe unreachable: said, not a 500
    assert resp.redirect_chain[-1][0] == f"/portal/invoices/{inv.pk}/"
    assert "Card payment is not available right now. Please try again later or pay by bank transfer." in text(resp)
    assert "127.0.0.1" not in text(resp)  # what went wrong is for the logs, not the customer


# ---------------------------------------------------------------- subscriptions


def test_suspended_subscription_says_why_and_how_to_restore(world: PortalWorld) -> None:
    assert world.suspended is not None
    body = text(world.client("bellavista.admin", "en").get("/portal/subscriptions/"))
    assert world.suspended.offer_name in body and "Suspended" in body
    assert SUSPENDED_REASON in body
    assert "How to restore it:" in body and 'href="/portal/tickets/new/"' in body


def test_a_suspension_by_collections_gives_its_reason_in_words(world: PortalWorld) -> None:
    from cspdesk.partnercenter.models import SubscriptionStatusChange

    SubscriptionStatusChange.objects.filter(subscription=world.suspended).update(reason="non-payment")
    english = text(world.client("bellavista.admin", "en").get("/portal/subscriptions/"))
    assert ": an overdue balance was not paid." in english and "non-payment" not in english
    italian = text(world.client("bellavista.admin", "it").get("/portal/subscriptions/"))
    assert "non-payment" not in italian and "an overdue balance" not in italian


def test_card_payment_pages_let_the_form_go_to_stripe_checkout(world: PortalWorld, settings) -> None:  # type: ignore[no-untyped-def]
    inv = world.invoice("liffey")
    client = world.client("liffey.admin", "en")
    without = client.get(f"/portal/invoices/{inv.pk}/")["Content-Security-Policy"]
    assert "form-action 'self';" in without + ";"
    settings.CSPDESK_STRIPE = {"SECRET_KEY": "sk_test_portal", "API_BASE": "http://127.0.0.1:8917/v1"}
    for url in (f"/portal/invoices/{inv.pk}/", "/portal/balance/"):
        policy = client.get(url)["Content-Security-Policy"]
        [form_action] = [d for d in policy.split(";") if d.strip().startswith("form-action")]
        assert form_action.split()[1:] == ["'self'", "https://checkout.stripe.com", "http://127.0.0.1:8917"], url
    paid = world.invoice("bellavista")  # nothing to pay: the page keeps forms at home
    assert (
        "checkout.stripe.com"
        not in world.client("bellavista.admin").get(f"/portal/invoices/{paid.pk}/")["Content-Security-Policy"]
    )


# ---------------------------------------------------------------- tickets


def test_open_reply_attach_and_resolve_a_ticket(world: PortalWorld) -> None:
    client = world.client("bellavista.admin", "en")
    assert client.get("/portal/tickets/new/").status_code == 200
    from django.core.files.uploadedfile import SimpleUploadedFile

    resp = client.post("/portal/tickets/new/", {
        "subject": "Teams calls drop", "category": "technical", "service": "microsoft365", "severity": "high",
        "body": "Since Monday.", "attachments": [SimpleUploadedFile("log.txt", b"trace", "text/plain")],
    })  # fmt: skip
    ticket = Ticket.objects.order_by("-pk").first()
    assert ticket is not None and resp["Location"] == f"/portal/tickets/{ticket.pk}/"
    assert (ticket.subject, ticket.severity, ticket.channel) == ("Teams calls drop", "high", "portal")
    page = text(client.get(f"/portal/tickets/{ticket.pk}/"))
    assert "log.txt" in page
    assert ticket.first_response_due is not None and "due by" in page
    att = Attachment.objects.get(message__ticket=ticket)
    assert b"".join(client.get(f"/portal/tickets/{ticket.pk}/files/{att.pk}/").streaming_content) == b"trace"
    listed = text(client.get("/portal/tickets/"))
    assert ticket.reference in listed
    client.post(f"/portal/tickets/{ticket.pk}/", {"body": "It happens at 10:00."})
    assert list(ticket.messages.values_list("body", flat=True)) == ["Since Monday.", "It happens at 10:00."]
    client.post(f"/portal/tickets/{ticket.pk}/resolve/")
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED


def test_internal_notes_stay_internal(world: PortalWorld) -> None:
    from cspdesk.core.actor import Actor

    customer = world.demo.customer("bellavista")
    t = support.open_ticket(Actor.system("test"), customer_id=customer.pk, subject="Licence count",
                            body="How many?", category=Category.BILLING, service=Service.M365)  # fmt: skip
    TicketMessage.objects.create(ticket=t, kind=MessageKind.INTERNAL, body="customer is difficult")
    support.reply(Actor.system("test"), t.pk, "You have 12.")
    body = text(world.client("bellavista.admin", "en").get(f"/portal/tickets/{t.pk}/"))
    assert "You have 12." in body and "customer is difficult" not in body


# ---------------------------------------------------------------- languages and local formats


def test_hungarian_customer_gets_hungarian_number_and_date_formats(world: PortalWorld) -> None:
    inv = world.invoice("gyor")
    assert inv.currency == "HUF" and inv.total >= 1000
    body = world.client("gyor.admin", "hu").get(f"/portal/invoices/{inv.pk}/").content.decode()
    total = l10n.money(inv.total, "HUF", "hu")
    assert re.fullmatch(r"\d{1,3}(\xa0\d{3})+,\d{2}\xa0Ft", total), total  # 1 234 567,00 Ft: grouped, decimal comma
    assert total in body
    assert l10n.day(inv.issue_date, "hu") in body
    assert re.search(r"\d{4}\. [a-zé]+\. \d{1,2}\.", l10n.day(inv.issue_date, "hu"))
    assert '<html lang="hu">' in body


def test_the_customers_own_language_is_the_default(world: PortalWorld) -> None:
    body = world.client("gyor.admin").get("/portal/").content.decode()
    assert '<html lang="hu">' in body
    body = world.client("bellavista.admin").get("/portal/").content.decode()
    assert '<html lang="it">' in body


def test_language_switch_sets_the_portal_language(world: PortalWorld) -> None:
    client = world.client("liffey.admin")
    resp = client.post("/i18n/setlang/", {"language": "sv", "next": "/portal/invoices/"})
    assert resp.status_code == 302 and resp["Location"] == "/portal/invoices/"
    assert '<html lang="sv">' in client.get("/portal/invoices/").content.decode()


def test_the_collections_policy_is_linked_where_it_is_published(world: PortalWorld) -> None:
    from django.apps import apps

    customer = world.demo.customer("bellavista")
    body = text(world.client("bellavista.admin", "en").get("/portal/subscriptions/"))
    assert f'href="/support/offering/{customer.organisation_id}/"' in body
    if apps.is_installed("cspdesk.collections"):
        assert f'href="/collections/policy/customer/{customer.tenant_id}/"' in body
        assert "Read the payment and suspension policy." in body
    else:
        assert "Payment and suspension policy" not in body
