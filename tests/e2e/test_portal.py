"""The customer portal in a real browser: explain a line, ask about it, the desk answers; Hungarian; isolation."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from cspdesk.core import l10n
from tests.e2e.conftest import Site


def test_customer_explains_a_line_asks_and_an_agent_answers(page: Any, site: Site, login: Any, screenshot: Any) -> None:
    login(page, "bellavista.contabilita")
    assert page.url.endswith("/portal/")
    page.select_option("#lang", "en")
    page.wait_for_selector('html[lang="en"]')
    screenshot(page, "portal-home")
    inv = site.invoice("bellavista")
    page.click("nav >> text=Invoices")
    page.wait_for_url("**/portal/invoices/")
    screenshot(page, "portal-invoices")
    page.click(f"text={inv['number']}")
    page.wait_for_url(f"**/portal/invoices/{inv['id']}/")
    assert page.locator("#h-changes").is_visible()
    assert page.locator(f"text={site.fewer_licences}: 2 licences added").is_visible()

    # the explanation of the licence line opens in place (htmx), names its Microsoft rows, and folds away
    row = page.locator("tr", has=page.locator(f"td >> text={site.fewer_licences}")).first
    position = row.locator("td").first.inner_text().strip()
    button = row.locator("a.explain")
    button.click()
    box = page.locator(f"#x-{position}")
    box.locator(".explain-body").wait_for()
    assert button.get_attribute("aria-expanded") == "true"
    text = box.inner_text()
    assert "Microsoft subscription" in text and "How it is priced" in text
    assert re.search(r"rows? \d+", text), text
    assert page.url.endswith(f"/portal/invoices/{inv['id']}/")  # no page load: htmx swapped the fragment in
    screenshot(page, "portal-invoice-explained")
    button.click()
    page.wait_for_function(f"document.getElementById('x-{position}').innerHTML === ''")
    assert button.get_attribute("aria-expanded") == "false"

    # ask about the line: a billing ticket that names it
    row.locator("text=Ask about this line").click()
    page.wait_for_url(f"**/lines/{position}/question/")
    assert page.input_value("#id_subject") == f"Question about invoice {inv['number']}, line {position}"
    page.fill("#id_body", "We added two licences: why is the price per licence different?")
    page.click("text=Send the question")
    page.wait_for_url(re.compile(r".*/portal/tickets/\d+/$"))
    ticket_id = int(page.url.rstrip("/").split("/")[-1])
    assert page.locator(f"text={inv['number']}").first.is_visible()

    # the helpdesk agent answers on the console's ticket page
    agent = page.context.browser.new_context(base_url=site.url)
    desk = agent.new_page()
    login(desk, "nuvola.helpdesk")
    desk.goto(f"/console/tickets/{ticket_id}/")
    form = desk.locator("form", has=desk.locator('input[name="do"][value="reply"]'))
    form.locator('textarea[name="body"]').fill("The two new licences were added mid-month and are prorated.")
    form.locator('button[type="submit"]').click()
    desk.wait_for_load_state("load")
    agent.close()

    page.reload()
    assert page.locator("text=The two new licences were added mid-month and are prorated.").is_visible()
    assert page.locator(".msg", has_text="Support desk").count() == 1
    screenshot(page, "portal-ticket")


def test_the_language_switch_turns_the_portal_hungarian(page: Any, site: Site, login: Any, screenshot: Any) -> None:
    login(page, "gyor.admin")
    inv = site.invoice("gyor")
    page.goto(f"/portal/invoices/{inv['id']}/")
    page.select_option("#lang", "en")
    page.wait_for_selector('html[lang="en"]')
    assert page.locator("nav >> text=Invoices").is_visible()
    total = Decimal(inv["total"])
    assert page.locator(f"text={l10n.money(total, 'HUF', 'en')}").first.is_visible()

    page.select_option("#lang", "hu")
    page.wait_for_selector('html[lang="hu"]')
    assert page.locator("nav >> text=Számlák").is_visible()
    assert page.locator("text=A díj magyarázata").first.is_visible()
    hungarian = l10n.money(total, "HUF", "hu")
    # Hungarian grouping (a no-break space per thousand), a decimal comma and the forint after the amount
    assert re.fullmatch(r"\d{1,3}(\xa0\d{3})+,\d{2}\xa0Ft", hungarian), hungarian
    assert hungarian in page.locator(".facts").inner_text()
    screenshot(page, "portal-invoice-hu")


def test_a_customer_cannot_reach_another_customers_invoice(page: Any, site: Site, login: Any) -> None:
    login(page, "bellavista.admin")
    other = site.invoice("liffey")
    for path in ("", "pdf/", "lines/1/"):
        response = page.goto(f"/portal/invoices/{other['id']}/{path}")
        assert response is not None and response.status == 404, path
        assert other["number"] not in page.content()
    own = site.invoice("bellavista")
    response = page.goto(f"/portal/invoices/{own['id']}/")
    assert response is not None and response.status == 200


def test_main_pages_screenshots_and_phone_layout(page: Any, browser: Any, site: Site, login: Any,
                                                 screenshot: Any) -> None:  # fmt: skip
    login(page, "liffey.admin")
    for path, name in (("/portal/balance/", "portal-balance"), ("/portal/tickets/", "portal-tickets")):
        response = page.goto(path)
        assert response is not None and response.status == 200
        screenshot(page, name)
    login(page, "bellavista.admin")
    page.goto("/portal/subscriptions/")
    page.select_option("#lang", "en")
    page.wait_for_selector('html[lang="en"]')
    assert page.locator("text=Why it is suspended:").is_visible()
    screenshot(page, "portal-subscriptions")

    phone = browser.new_context(base_url=site.url, viewport={"width": 390, "height": 844}, is_mobile=True,
                                has_touch=True, device_scale_factor=2)  # fmt: skip
    mobile = phone.new_page()
    login(mobile, "bellavista.admin")
    inv = site.invoice("bellavista")
    mobile.goto(f"/portal/invoices/{inv['id']}/")
    width = mobile.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px phone"
    screenshot(mobile, "portal-phone", full_page=False)
    phone.close()


def test_keyboard_reaches_the_skip_link_and_the_explain_button(page: Any, site: Site, login: Any) -> None:
    login(page, "bellavista.admin")
    inv = site.invoice("bellavista")
    page.goto(f"/portal/invoices/{inv['id']}/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    first = page.locator("a.explain").first
    first.focus()
    page.keyboard.press("Enter")
    page.locator(".explain-body").first.wait_for()
    assert first.get_attribute("aria-expanded") == "true"
    labels = page.evaluate(
        "Array.from(document.querySelectorAll('select, input:not([type=hidden]), textarea'))"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)"
    )
    assert labels == []
