"""The staff console in a real browser: a billing admin reads the dashboard's charts, reviews a billing run
(anomalies first) and finalizes it, and approves a suspension that waited beyond the collections run's cap,
which Partner Center then carries out."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.e2e.conftest import Site


def _english(page: Any) -> None:
    page.select_option("#lang", "en")
    page.wait_for_selector('html[lang="en"]')


def test_billing_admin_reads_the_dashboard_reviews_and_finalizes_a_run(
    page: Any, site: Site, login: Any, screenshot: Any
) -> None:
    login(page, "nuvola.billing")
    assert page.url.endswith("/console/")
    _english(page)
    charts = page.locator("figure.chart svg[role=img]")
    assert charts.count() >= 4
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50, i
    margin = page.locator("section.panel", has=page.locator("h2", has_text="Revenue, cost and margin (EUR)"))
    assert margin.locator("svg rect").count() >= 6  # bars for the billed months
    assert page.locator("h2", has_text="Dunning funnel").is_visible()
    screenshot(page, "console-dashboard")

    run_id = site.console["draft_run"]
    page.click("nav >> text=Billing runs")
    page.wait_for_url("**/console/billing/runs/")
    page.click(f'a[href="/console/billing/runs/{run_id}/"]')
    page.wait_for_url(f"**/console/billing/runs/{run_id}/")
    assert page.locator("h1 .status", has_text="Draft").is_visible()
    anomalies, invoices = page.locator("#anomalies-h"), page.locator("#totals-h")
    assert anomalies.bounding_box()["y"] < invoices.bounding_box()["y"]  # anomalies first
    flagged = page.locator("tr.flagged")
    assert flagged.count() == 1  # Prairie's August promotion, priced below cost; the other buyers fold away
    assert "Prairie Robotics Inc." in flagged.inner_text() and "Negative margin" in flagged.inner_text()
    assert page.locator("text=Cost on tenants cspdesk does not know").is_visible()
    screenshot(page, "console-run-review")

    page.click("text=Finalize this run…")
    page.wait_for_url(f"**/console/billing/runs/{run_id}/finalize/")
    count = site.console["draft_invoices"]
    assert page.locator(f"text=Finalizing numbers and issues {count} invoices").is_visible()
    page.click("text=Yes, finalize and issue the invoices")
    page.wait_for_url(f"**/console/billing/runs/{run_id}/")
    assert page.locator(f"text=Billing run finalized: {count} invoices numbered and issued.").is_visible()
    assert page.locator("h1 .status", has_text="Finalized").is_visible()
    assert page.locator("text=Finalize this run…").count() == 0

    # The customers' pages list the August invoices with their new numbers.
    page.click("nav >> text=Customers")
    page.click("text=Trattoria Bellavista S.r.l.")
    row = page.locator("#invoices ~ table tr", has=page.locator("td", has_text="Aug 2026")).first
    number = row.locator("td").first.inner_text().strip()
    assert re.fullmatch(r"NUV-2026-\d{6}", number), number


def test_billing_admin_approves_a_waiting_suspension_and_partner_center_suspends(
    page: Any, site: Site, login: Any, screenshot: Any
) -> None:
    customer = site.console["waiting_customer"]
    case_id = site.console["waiting_case"]
    api = site.api("nuvola.billing")
    subs = [api.get(f"/subscriptions/{pk}").json() for pk in site.console["waiting_subscriptions"]]
    assert subs and {s["status"] for s in subs} == {"active"}

    login(page, "nuvola.billing")
    _english(page)
    page.click("text=Collections: today's run, approvals and cases")  # from the dashboard's dunning funnel
    page.wait_for_url("**/console/collections/")
    waiting = page.locator("#approvals tbody tr", has_text=customer)
    assert waiting.count() == 1
    assert "89" in page.locator("#preview-actions tr", has_text=customer).inner_text()
    assert page.locator("#preview-actions tr", has_text=customer).locator("text=Hand over to a person").is_visible()
    assert page.locator("#cases tr", has_text=customer).locator("text=Suspend products, day 30").is_visible()
    screenshot(page, "console-collections")

    waiting.locator("text=Approve…").click()
    page.wait_for_url(f"**/console/collections/cases/{case_id}/approve/")
    assert page.locator("text=Partner Center will suspend these subscriptions now").is_visible()
    page.click("text=Yes, approve the suspension")
    page.wait_for_url("**/console/collections/")
    assert page.locator(f"text=Suspension of {customer} approved").is_visible()
    assert page.locator("#approvals >> text=No suspension is waiting for approval.").is_visible()

    # Partner Center was told (the emulator saw each subscription changed) and cspdesk mirrors what it confirmed.
    calls = httpx.get(f"{site.emulator}/_emulator/calls").json()["calls"]
    for sub in subs:
        assert [c for c in calls if c["method"] == "PATCH" and sub["pc_subscription_id"] in c["path"]
                and c["status"] == 200], sub  # fmt: skip
        assert api.get(f"/subscriptions/{sub['id']}").json()["status"] == "suspended"

    page.click(f"#cases >> text={customer}")
    page.wait_for_url("**/console/customers/*/")
    assert page.locator("#subscriptions ~ table .status.suspended").count() >= len(subs)
    assert page.locator("#timeline ~ ol >> text=Suspension approved").first.is_visible()
    screenshot(page, "console-customer")
