"""What the console does: each change goes through its confirmation step and the owning service, and a
refusal leaves nothing changed."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from cspdesk.audit.models import AuditEvent
from cspdesk.billing.models import BillingRun, Invoice, InvoiceStatus, RunStatus
from cspdesk.catalog.models import PriceRule, SupportPlan
from cspdesk.core import clock
from cspdesk.partnercenter.models import Subscription, SubscriptionStatus
from cspdesk.payments import services as payments
from cspdesk.support.models import MessageKind, Ticket
from cspdesk.tenancy.models import Membership, RoleGrant
from tests.fixtures import DemoWorld

from .fixtures import OCT, SYSTEM, drafted_run, open_tickets

pytestmark = pytest.mark.django_db


def test_billing_admin_reviews_anomalies_first_and_finalizes_after_confirming(demo: DemoWorld) -> None:
    run = drafted_run(demo)
    browser = demo.browser("nuvola.billing")
    page = browser.get(f"/console/billing/runs/{run.pk}/").content.decode()
    anomalies = page.index("Anomalies")
    assert anomalies < page.index("Liffey Analytics Ltd") < page.index("Trattoria Bellavista S.r.l.")
    assert "Negative margin" in page
    assert "Cost on tenants cspdesk does not know" in page
    assert re.search(r"The price €[\d,.]+ is below the cost €[\d,.]+\.", page)
    assert f'href="/console/billing/runs/{run.pk}/finalize/"' in page
    browser.cookies["django_language"] = "it"  # the details in the reader's language and its number format
    italian = browser.get(f"/console/billing/runs/{run.pk}/").content.decode()
    assert re.search(r"Il prezzo [\d.]+,\d\d\xa0€ è inferiore al costo [\d.]+,\d\d\xa0€\.", italian), italian
    assert "below the cost" not in italian
    browser.cookies["django_language"] = "en"

    confirm = browser.get(f"/console/billing/runs/{run.pk}/finalize/")
    assert confirm.status_code == 200
    assert "Yes, finalize and issue the invoices" in confirm.content.decode()
    assert BillingRun.objects.get(pk=run.pk).status == RunStatus.DRAFT  # a GET changes nothing

    done = browser.post(f"/console/billing/runs/{run.pk}/finalize/")
    assert done.status_code == 302 and done["Location"] == f"/console/billing/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.status == RunStatus.FINALIZED
    invoices = Invoice.objects.filter(run=run)
    assert invoices.count() == 2
    assert all(inv.status == InvoiceStatus.FINALIZED and inv.number.startswith("NUV-") for inv in invoices)
    assert AuditEvent.objects.filter(action="billing.run_finalized", actor_username="nuvola.billing").count() == 1


def test_a_run_with_blocking_anomalies_offers_no_finalize_and_refuses_one(demo: DemoWorld) -> None:
    run = drafted_run(demo, blocked=True)
    browser = demo.browser("nuvola.billing")
    page = browser.get(f"/console/billing/runs/{run.pk}/").content.decode()
    assert "No exchange rate" in page
    assert "blocking anomaly must be fixed" in page
    assert "/finalize/" not in page
    refused = browser.post(f"/console/billing/runs/{run.pk}/finalize/")
    assert refused.status_code == 200
    assert "blocking anomalies" in refused.content.decode()
    assert BillingRun.objects.get(pk=run.pk).status == RunStatus.DRAFT
    assert not Invoice.objects.filter(run=run, status=InvoiceStatus.FINALIZED).exists()


def test_a_role_without_invoices_change_cannot_finalize(demo: DemoWorld) -> None:
    run = drafted_run(demo)
    assert demo.browser("nuvola.helpdesk").post(f"/console/billing/runs/{run.pk}/finalize/").status_code == 403
    assert BillingRun.objects.get(pk=run.pk).status == RunStatus.DRAFT


@pytest.fixture
def partner_center(demo: DemoWorld, settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The Partner Center emulator, the client pointed at it, and the demo's subscriptions synced from it."""
    from cspdesk.demo import month

    emulator = month.start_emulator(port=0)
    try:
        month.sync()
        yield
    finally:
        emulator.stop()


def test_helpdesk_suspends_and_reactivates_a_subscription_after_confirming(demo: DemoWorld, partner_center) -> None:  # type: ignore[no-untyped-def]
    bellavista = demo.customer("bellavista")
    sub = Subscription.objects.filter(customer=bellavista, billing_type="license").first()
    assert sub is not None and sub.status == SubscriptionStatus.ACTIVE
    browser = demo.browser("nuvola.helpdesk")
    customer_page = browser.get(f"/console/customers/{bellavista.pk}/").content.decode()
    assert f"/console/subscriptions/{sub.pk}/suspend/" in customer_page

    confirm = browser.get(f"/console/subscriptions/{sub.pk}/suspend/").content.decode()
    assert "Yes, suspend it" in confirm
    assert Subscription.objects.get(pk=sub.pk).status == SubscriptionStatus.ACTIVE

    no_reason = browser.post(f"/console/subscriptions/{sub.pk}/suspend/", {"reason": ""})
    assert no_reason.status_code == 200
    assert Subscription.objects.get(pk=sub.pk).status == SubscriptionStatus.ACTIVE

    done = browser.post(f"/console/subscriptions/{sub.pk}/suspend/", {"reason": "customer asked: office closed"})
    assert done.status_code == 302
    assert Subscription.objects.get(pk=sub.pk).status == SubscriptionStatus.SUSPENDED
    again = browser.post(f"/console/subscriptions/{sub.pk}/suspend/", {"reason": "twice"})
    assert "Only an active subscription can be suspended" in again.content.decode()

    back = browser.post(f"/console/subscriptions/{sub.pk}/reactivate/", {"reason": "office open again"})
    assert back.status_code == 302
    assert Subscription.objects.get(pk=sub.pk).status == SubscriptionStatus.ACTIVE
    actions = list(AuditEvent.objects.filter(object_id=str(sub.pk), action__in=["subscription.suspended",
                   "subscription.reactivated"]).order_by("id").values_list("action", flat=True))  # fmt: skip
    assert actions == ["subscription.suspended", "subscription.reactivated"]


def test_billing_admin_cannot_suspend_and_sees_no_suspend_link(demo: DemoWorld, partner_center) -> None:  # type: ignore[no-untyped-def]
    bellavista = demo.customer("bellavista")
    sub = Subscription.objects.filter(customer=bellavista).first()
    assert sub is not None
    browser = demo.browser("nuvola.billing")
    assert "/suspend/" not in browser.get(f"/console/customers/{bellavista.pk}/").content.decode()
    assert browser.post(f"/console/subscriptions/{sub.pk}/suspend/", {"reason": "x"}).status_code == 403
    assert Subscription.objects.get(pk=sub.pk).status == sub.status


def test_a_suspense_payment_is_matched_by_hand(demo: DemoWorld) -> None:
    run = drafted_run(demo)
    from cspdesk.billing import services as billing

    billing.finalize_run(SYSTEM, run.pk)
    invoice = Invoice.objects.get(run=run, customer=demo.customer("bellavista"))
    recorded = payments.record_payment(
        SYSTEM, amount=Decimal(invoice.total), currency="EUR", received_on=clock.today(),
        organisation_id=demo.org("nuvola").pk, reference="thanks", payer_name="TRATTORIA BV",
    )  # fmt: skip
    payment = recorded.payment
    assert payment.customer_id is None
    browser = demo.browser("nuvola.billing")
    queue = browser.get("/console/payments/suspense/").content.decode()
    assert "TRATTORIA BV" in queue and f"/console/payments/{payment.pk}/match/" in queue
    assert (
        demo.browser("nuvola.helpdesk")
        .post(f"/console/payments/{payment.pk}/match/", {"customer": demo.customer("bellavista").pk})
        .status_code
        == 403
    )
    form = browser.get(f"/console/payments/{payment.pk}/match/").content.decode()
    assert invoice.number in form
    done = browser.post(f"/console/payments/{payment.pk}/match/",
                        {"customer": demo.customer("bellavista").pk, "invoice": invoice.pk})  # fmt: skip
    assert done.status_code == 302
    payment.refresh_from_db()
    assert payment.customer_id == demo.customer("bellavista").pk
    assert list(payment.allocations.values_list("invoice_id", "amount")) == [(invoice.pk, invoice.total)]
    assert "TRATTORIA BV" not in browser.get("/console/payments/suspense/").content.decode()


def test_ticket_queue_shows_sla_timers_and_an_agent_replies_and_assigns(demo: DemoWorld) -> None:
    tickets = open_tickets(demo)
    mine = next(t for t in tickets if t.customer.name == "Trattoria Bellavista S.r.l.")
    browser = demo.browser("nuvola.helpdesk")
    queue = browser.get("/console/tickets/").content.decode()
    assert mine.reference in queue and "First response" in queue
    assert 'hx-trigger="every 60s"' in queue
    partial = browser.get("/console/tickets/", HTTP_HX_REQUEST="true").content.decode()
    assert mine.reference in partial and "<html" not in partial

    assert demo.browser("nuvola.users").post(f"/console/tickets/{mine.pk}/", {"body": "hi"}).status_code == 403
    reply = browser.post(f"/console/tickets/{mine.pk}/", {"do": "reply", "body": "Stiamo controllando."})
    assert reply.status_code == 302
    ticket = Ticket.objects.get(pk=mine.pk)
    assert ticket.first_responded_at is not None
    assert ticket.messages.filter(kind=MessageKind.PUBLIC, body="Stiamo controllando.").count() == 1
    helpdesk_id = get_user_model().objects.get(username="nuvola.helpdesk").pk
    assign = browser.post(f"/console/tickets/{mine.pk}/", {"do": "assign", "assignee": helpdesk_id, "queue": "mail"})
    assert assign.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.assignee_id, ticket.queue) == (helpdesk_id, "mail")
    page = browser.get(f"/console/tickets/{mine.pk}/").content.decode()
    assert "Resolution" in page  # the clock moved on from the first response


def test_price_rules_create_conflict_and_end(demo: DemoWorld) -> None:
    browser = demo.browser("nuvola.billing")
    data = {"method": "markup", "percent": "12", "effective_from": "2026-10-01", "category": "azure"}
    assert browser.post("/console/catalog/price-rules/", data).status_code == 302
    rule = PriceRule.objects.get(organisation=demo.org("nuvola"), category="azure")
    clash = browser.post("/console/catalog/price-rules/", {**data, "percent": "15", "effective_from": "2026-11-01"})
    assert clash.status_code == 200
    html = clash.content.decode()
    assert f"Price rule {rule.pk} has the same scope and is in force on some of these days: end it first." in html
    assert 'role="alert"' in html
    assert PriceRule.objects.filter(organisation=demo.org("nuvola"), category="azure").count() == 1

    end = browser.post(f"/console/catalog/price-rules/{rule.pk}/end/", {"effective_to": "2026-10-31"})
    assert end.status_code == 302
    assert PriceRule.objects.get(pk=rule.pk).effective_to == dt.date(2026, 10, 31)
    assert browser.post("/console/catalog/price-rules/", {**data, "percent": "15",
                        "effective_from": "2026-11-01"}).status_code == 302  # fmt: skip
    sales = demo.browser("nuvola.sales")
    assert sales.get("/console/catalog/price-rules/").status_code == 200
    assert sales.post("/console/catalog/price-rules/", data).status_code == 403
    assert sales.post(f"/console/catalog/price-rules/{rule.pk}/end/", {"effective_to": "2026-10-15"}).status_code == 403
    assert PriceRule.objects.get(pk=rule.pk).effective_to == dt.date(2026, 10, 31)


def test_support_plans_are_listed_and_created(demo: DemoWorld) -> None:
    browser = demo.browser("nuvola.billing")
    bad = browser.post("/console/catalog/support-plans/", {"name": "Base", "price_model": "flat_monthly",
                       "currency": "EUR"})  # fmt: skip
    assert "needs an amount" in bad.content.decode()
    ok = browser.post("/console/catalog/support-plans/", {"name": "Base", "price_model": "flat_monthly",
                      "currency": "EUR", "amount": "150"})  # fmt: skip
    assert ok.status_code == 302
    assert SupportPlan.objects.get(organisation=demo.org("nuvola"), name="Base").amount == Decimal(150)
    assert "Base" in browser.get("/console/catalog/support-plans/").content.decode()


def test_user_management_admin_creates_grants_revokes_and_deactivates(demo: DemoWorld) -> None:
    browser = demo.browser("nuvola.users")
    created = browser.post("/console/users/", {"username": "nuvola.anna", "email": "anna@nuvola.example",
                           "password": "Tramonto-sul-Naviglio-42", "roles": ["helpdesk_agent"]})  # fmt: skip
    assert created.status_code == 302
    anna = get_user_model().objects.get(username="nuvola.anna")
    membership = Membership.objects.get(user=anna)
    assert membership.organisation_id == demo.org("nuvola").pk
    assert set(RoleGrant.objects.filter(membership=membership).values_list("role", flat=True)) == {"helpdesk_agent"}
    page = browser.get(f"/console/users/{anna.pk}/").content.decode()
    assert 'value="global_admin"' not in page  # a user management admin cannot grant global admin

    browser.post(f"/console/users/{anna.pk}/", {"do": "roles", "roles": ["billing_admin", "sales_agent"]})
    assert set(RoleGrant.objects.filter(membership=membership).values_list("role", flat=True)) == {
        "billing_admin", "sales_agent"}  # fmt: skip
    refused = browser.post(f"/console/users/{anna.pk}/", {"do": "roles", "roles": ["global_admin"]})
    assert refused.status_code == 200
    assert set(RoleGrant.objects.filter(membership=membership).values_list("role", flat=True)) == {
        "billing_admin", "sales_agent"}  # fmt: skip

    browser.post(f"/console/users/{anna.pk}/", {"do": "deactivate"})
    assert not get_user_model().objects.get(pk=anna.pk).is_active
    me = get_user_model().objects.get(username="nuvola.users")
    assert "Deactivate this user" not in browser.get(f"/console/users/{me.pk}/").content.decode()
    assert demo.browser("nuvola.billing").get(f"/console/users/{anna.pk}/").status_code == 403
    assert demo.browser("fjall.users").get(f"/console/users/{anna.pk}/").status_code == 404


def test_audit_log_filters_pages_and_shows_only_what_the_role_may_read(demo: DemoWorld) -> None:
    drafted_run(demo)
    open_tickets(demo)
    admin = demo.browser("nuvola.admin")
    page = admin.get("/console/audit/", {"action": "billing.run_drafted"}).content.decode()
    assert "Billing run drafted" in page and "Ticket opened" not in page  # events read by their labels
    users_view = demo.browser("nuvola.users").get("/console/audit/").content.decode()
    assert "Billing run drafted" not in users_view
    assert "Ticket opened" in users_view
    partial = admin.get("/console/audit/", {"action": "ticket"}, HTTP_HX_REQUEST="true").content.decode()
    assert partial.startswith('<div id="audit-results">') and "Ticket opened" in partial
    assert "Nordmoln" not in admin.get("/console/audit/", {"action": "organisation"}).content.decode()
    everything = AuditEvent.objects.count()
    assert everything > 0


@override_settings(LANGUAGE_CODE="en")
def test_dashboard_draws_accessible_charts_with_a_table(demo: DemoWorld) -> None:
    from cspdesk.billing import services as billing

    run = drafted_run(demo)
    with clock.frozen(dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)):
        billing.finalize_run(SYSTEM, run.pk)
        html = demo.browser("nuvola.billing").get("/console/").content.decode()
    assert html.count('role="img"') >= 4
    assert "Revenue, cost and margin (EUR)" in html and "Receivables aging (EUR)" in html
    assert "Dunning funnel" in html and "SLA compliance" in html
    assert "<title" in html and "Show the numbers as a table" in html
    assert "€" in html
    sales = demo.browser("nuvola.sales").get("/console/").content.decode()
    assert "Revenue, cost and margin" not in sales and "SLA compliance" in sales


def test_sales_view_lists_renewals_spend_moves_and_recurring_topics(demo: DemoWorld) -> None:
    from cspdesk.partnercenter.models import Subscription as Sub

    from .fixtures import SEP, make_import, make_line

    bellavista, liffey = demo.customer("bellavista"), demo.customer("liffey")
    today = clock.today()
    Sub.objects.create(customer=bellavista, pc_subscription_id="00000000-0000-0000-0000-000000000001",
                       offer_id="x", offer_name="Microsoft 365 Business Premium", quantity=12, status="active",
                       commitment_end_date=today + dt.timedelta(days=20))  # fmt: skip
    Sub.objects.create(customer=liffey, pc_subscription_id="00000000-0000-0000-0000-000000000002",
                       offer_id="y", offer_name="Far Away Renewal", quantity=3, status="active",
                       commitment_end_date=today + dt.timedelta(days=90))  # fmt: skip
    org = demo.org("nuvola")
    sep, octo = make_import(org, period=SEP, number="G0"), make_import(org, period=OCT, number="G1")
    make_line(sep, bellavista, "100.00")
    make_line(octo, bellavista, "180.00")
    make_line(sep, liffey, "100.00")
    make_line(octo, liffey, "105.00")
    open_tickets(demo)
    from cspdesk.support import services as support

    support.open_ticket(demo.actor("bellavista.admin"), customer_id=bellavista.pk, subject="Ancora Outlook",
                        body="Di nuovo.", category="technical", service="microsoft365")  # fmt: skip
    html = demo.browser("nuvola.sales").get("/console/sales/").content.decode()
    renewals = html.split('id="renewals-h"')[1].split("</section>")[0]
    assert "Microsoft 365 Business Premium" in renewals and "Far Away Renewal" not in renewals
    spend = html.split('id="spend-h"')[1].split("</section>")[0]
    assert "Trattoria Bellavista S.r.l." in spend and "Liffey" not in spend
    assert "80" in spend and "€" not in spend  # a sales agent sees the move, not Microsoft's cost
    assert "€" in demo.browser("nuvola.billing").get("/console/sales/").content.decode().split('id="spend-h"')[1]
    topics = html.split('id="topics-h"')[1]
    assert "Trattoria Bellavista S.r.l." in topics  # two tickets on the same topic
    assert f'href="/console/customers/{bellavista.pk}/"' in topics
