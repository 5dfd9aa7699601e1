"""The console's collections page: today's run previewed (and nothing changed by looking), the suspensions that
waited beyond the run's cap approved or rejected after a confirmation, open cases by stage, holds, disputes and
payment plans; each role sees and does exactly what the permission matrix allows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from cspdesk.audit.models import AuditEvent
from cspdesk.collections import services
from cspdesk.collections.models import ActionStatus, Case, CaseAction, CaseStatus, Suspension
from cspdesk.partnercenter.models import Subscription, SubscriptionStatus
from tests.collections.fixtures import SYSTEM, World, at, cw, pc  # noqa: F401
from tests.payments.fixtures import make_invoice

pytestmark = pytest.mark.django_db

DUE = dt.date(2026, 10, 1)
PAGE = "/console/collections/"


def day(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


def waiting_suspension(cw: World) -> CaseAction:  # noqa: F811
    """Bellavista 500 EUR overdue, reminded, warned, and its suspension held back by a run with a cap of 0."""
    make_invoice(cw.customer("bellavista"), "500.00", due=DUE, number="NUV-2026-000900")
    cw.run(day(7))
    cw.run(day(14))
    report = cw.run(day(30), cap=0)
    assert [a["status"] for a in report.actions] == ["awaiting_approval"]
    return CaseAction.objects.get(status=ActionStatus.AWAITING_APPROVAL)


def section(html: str, heading_id: str) -> str:
    return html.split(f'id="{heading_id}"')[1].split("</section>")[0]


def get(browser: Any, url: str, on: dt.date) -> Any:
    with at(on):
        return browser.get(url)


def test_billing_admin_sees_the_waiting_suspension_with_its_subscriptions(cw: World) -> None:  # noqa: F811
    action = waiting_suspension(cw)
    bellavista = cw.customer("bellavista")
    subs = list(Subscription.objects.filter(pk__in=action.details["subscriptions"]))
    assert subs
    html = get(cw.demo.browser("nuvola.billing"), PAGE, day(31)).content.decode()
    approvals = section(html, "approvals-h")
    assert bellavista.name in approvals and "€500.00" in approvals
    assert all((s.friendly_name or s.offer_name) in approvals for s in subs)
    assert f'href="/console/collections/cases/{action.case_id}/approve/"' in approvals
    assert f'href="/console/collections/cases/{action.case_id}/reject/"' in approvals
    cases = section(html, "cases-h")
    assert "Suspend products, day 30: 1 case" in " ".join(cases.split()).replace("</strong>", "")
    assert "No step is due today." in section(html, "preview-h")  # every stage has run; it only waits


def test_the_preview_is_the_engines_dry_run_and_changes_nothing(cw: World) -> None:  # noqa: F811
    bellavista, liffey = cw.customer("bellavista"), cw.customer("liffey")
    make_invoice(bellavista, "500.00", due=DUE, number="NUV-2026-000901")
    make_invoice(liffey, "80.00", due=DUE, number="NUV-2026-000902")
    with at(day(2)):
        services.place_hold(SYSTEM, liffey.pk, reason="director on holiday", until=day(20))
    events = AuditEvent.objects.count()
    html = get(cw.demo.browser("nuvola.billing"), PAGE, day(7)).content.decode()
    preview = section(html, "preview-h")
    steps = preview.split('id="preview-actions"')[1].split("</table>")[0]
    assert bellavista.name in steps and "Reminder e-mail" in steps and "NUV-2026-000901" in steps
    assert liffey.name not in steps
    skipped = preview.split('id="preview-skipped"')[1].split("</table>")[0]
    assert liffey.name in skipped and "Collections on hold" in skipped
    assert not Case.objects.exists() and AuditEvent.objects.count() == events
    brakes = section(html, "brakes-h")
    assert "director on holiday" in brakes and liffey.name in brakes
    assert "No open dispute." in brakes and "No active payment plan." in brakes


def test_disputes_and_payment_plans_are_listed_while_they_hold_collections_back(cw: World) -> None:  # noqa: F811
    bellavista, liffey = cw.customer("bellavista"), cw.customer("liffey")
    disputed = make_invoice(bellavista, "500.00", due=DUE, number="NUV-2026-000903")
    planned = make_invoice(liffey, "90.00", due=DUE, number="NUV-2026-000904")
    with at(day(2)):
        services.open_dispute(SYSTEM, disputed.pk, reason="seats counted twice")
        services.create_payment_plan(SYSTEM, liffey.pk, invoice_ids=[planned.pk], note="three months",
                                     instalments=[(day(10), Decimal("30")), (day(40), Decimal("60"))])  # fmt: skip
    brakes = section(get(cw.demo.browser("nuvola.helpdesk"), PAGE, day(8)).content.decode(), "brakes-h")
    assert "NUV-2026-000903" in brakes and "seats counted twice" in brakes
    assert liffey.name in brakes and "three months" in brakes and "€30.00" in brakes and "€60.00" in brakes


def test_approving_after_confirming_suspends_the_subscriptions_at_partner_center(
    cw: World,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    action = waiting_suspension(cw)
    subs = list(Subscription.objects.filter(pk__in=action.details["subscriptions"]))
    browser = cw.demo.browser("nuvola.billing")
    url = f"/console/collections/cases/{action.case_id}/approve/"
    confirm = get(browser, url, day(31)).content.decode()
    assert "Yes, approve the suspension" in confirm and 'name="csrfmiddlewaretoken"' in confirm
    assert CaseAction.objects.get(pk=action.pk).status == ActionStatus.AWAITING_APPROVAL  # a GET changes nothing

    with at(day(31)), django_capture_on_commit_callbacks(execute=True):
        done = browser.post(url)
    assert done.status_code == 302 and done["Location"] == PAGE
    action.refresh_from_db()
    assert action.approved_by == "nuvola.billing" and action.status == ActionStatus.DONE
    assert {cw.pc_status(s) for s in subs} == {"suspended"}
    assert set(Subscription.objects.filter(pk__in=[s.pk for s in subs]).values_list("status", flat=True)) == {
        SubscriptionStatus.SUSPENDED}  # fmt: skip
    assert AuditEvent.objects.filter(action="collections.suspension_approved", actor_username="nuvola.billing",
                                     customer_id=action.case.customer_id).count() == 1  # fmt: skip
    after = get(browser, PAGE, day(31)).content.decode()
    assert "No suspension is waiting for approval." in section(after, "approvals-h")
    again = get(browser, url, day(31)).content.decode()
    assert "No suspension waits for approval on this case any more." in again and '<form method="post">' not in again


def test_rejecting_needs_a_reason_and_leaves_the_subscriptions_active(cw: World) -> None:  # noqa: F811
    action = waiting_suspension(cw)
    browser = cw.demo.browser("nuvola.billing")
    url = f"/console/collections/cases/{action.case_id}/reject/"
    with at(day(31)):
        no_reason = browser.post(url, {"reason": ""})
    assert no_reason.status_code == 200 and "This field is required." in no_reason.content.decode()
    assert CaseAction.objects.get(pk=action.pk).status == ActionStatus.AWAITING_APPROVAL

    with at(day(31)):
        done = browser.post(url, {"reason": "pays every quarter; called the CFO"})
    assert done.status_code == 302
    action.refresh_from_db()
    assert action.status == ActionStatus.DONE and action.approved_by == ""
    assert action.details["rejected_by"] == "nuvola.billing"
    assert not Suspension.objects.filter(case_id=action.case_id).exists()
    assert Case.objects.get(pk=action.case_id).status == CaseStatus.OPEN
    event = AuditEvent.objects.get(action="collections.suspension_rejected")
    assert event.actor_username == "nuvola.billing" and event.after["reason"] == "pays every quarter; called the CFO"
    assert cw.run(day(32)).actions == []  # a later run does not start the rejected suspension again
    assert not Suspension.objects.filter(case_id=action.case_id).exists()


@pytest.mark.parametrize(
    ("username", "page", "decide"),
    [
        ("nuvola.admin", 200, 200),
        ("nuvola.billing", 200, 200),
        ("nuvola.helpdesk", 200, 403),  # collections.read without collections.change
        ("nuvola.sales", 403, 403),
        ("nuvola.users", 403, 403),
        ("fjall.billing", 200, 404),  # another partner's case
        ("bellavista.admin", 403, 403),  # the customer itself: the staff console is for staff
    ],
)
def test_each_role_sees_and_decides_as_the_matrix_says(cw: World, username: str, page: int, decide: int) -> None:  # noqa: F811
    action = waiting_suspension(cw)
    browser = cw.demo.browser(username)
    html = get(browser, PAGE, day(31))
    assert html.status_code == page
    if page == 200:
        shows = "Trattoria Bellavista" in section(html.content.decode(), "approvals-h")
        assert shows == username.startswith("nuvola.")
        assert ("/approve/" in html.content.decode()) == (decide == 200)
    for kind in ("approve", "reject"):
        url = f"/console/collections/cases/{action.case_id}/{kind}/"
        assert get(browser, url, day(31)).status_code == decide, kind
        with at(day(31)):
            assert browser.post(url, {"reason": "x"}).status_code in ((302,) if decide == 200 else (decide,)), kind
        if decide == 200:
            break  # approved: nothing is left to reject
    action.refresh_from_db()
    assert (action.status == ActionStatus.AWAITING_APPROVAL) == (decide != 200)


def test_the_dashboards_dunning_funnel_links_to_the_collections_page(cw: World) -> None:  # noqa: F811
    html = cw.demo.browser("nuvola.billing").get("/console/").content.decode()
    funnel = html.split('id="dunning-h"')[1].split("</section>")[0]
    assert f'href="{PAGE}"' in funnel
    sales = cw.demo.browser("nuvola.sales").get("/console/").content.decode()
    assert f'href="{PAGE}"' not in sales
