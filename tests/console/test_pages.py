"""Every console page for every staff role: the page answers as the permission matrix says (200 or 403),
the navigation offers exactly the pages the role may open, and another tenant's object is 404."""

from __future__ import annotations

import pytest

from cspdesk.tenancy.models import StaffRole
from cspdesk.tenancy.permissions import MATRIX, Perm
from tests.fixtures import DemoWorld

from .fixtures import drafted_run, open_tickets

pytestmark = pytest.mark.django_db

STAFF = {
    StaffRole.GLOBAL_ADMIN: "admin",
    StaffRole.USER_MANAGEMENT_ADMIN: "users",
    StaffRole.HELPDESK_AGENT: "helpdesk",
    StaffRole.BILLING_ADMIN: "billing",
    StaffRole.SALES_AGENT: "sales",
}

# (url, permission it needs; None: every staff role)
PAGES: list[tuple[str, Perm | None]] = [
    ("/console/", None),
    ("/console/customers/", Perm.CUSTOMERS_READ),
    ("/console/billing/runs/", Perm.INVOICES_READ),
    ("/console/payments/suspense/", Perm.PAYMENTS_READ),
    ("/console/collections/", Perm.COLLECTIONS_READ),
    ("/console/tickets/", Perm.TICKETS_READ),
    ("/console/catalog/price-rules/", Perm.PRICE_RULES_READ),
    ("/console/catalog/support-plans/", Perm.PRICE_RULES_READ),
    ("/console/sales/", Perm.INSIGHTS_READ),
    ("/console/users/", Perm.USERS_READ),
    ("/console/audit/", Perm.AUDIT_READ),
]


@pytest.mark.parametrize("role", list(STAFF), ids=[r.value for r in STAFF])
def test_each_page_answers_as_the_matrix_says_and_the_nav_matches(demo: DemoWorld, role: StaffRole) -> None:
    browser = demo.browser(f"nuvola.{STAFF[role]}")
    home = browser.get("/console/").content.decode()
    for url, perm in PAGES:
        allowed = perm is None or perm in MATRIX[role]
        response = browser.get(url)
        assert response.status_code == (200 if allowed else 403), (role, url)
        assert (f'href="{url}"' in home) == allowed, (role, url, "nav")


@pytest.mark.parametrize("url", [url for url, _perm in PAGES[1:]])
def test_customer_users_get_no_staff_page(demo: DemoWorld, url: str) -> None:
    browser = demo.browser("bellavista.admin")
    expected = 200 if url == "/console/customers/" else 403
    assert browser.get(url).status_code == expected


def test_anonymous_visitors_are_sent_to_log_in(demo: DemoWorld) -> None:
    from django.test import Client

    for url, _perm in PAGES:
        response = Client().get(url)
        assert response.status_code == 302
        assert "/login/" in response["Location"]


def test_object_pages_404_out_of_scope_and_403_without_the_permission(demo: DemoWorld) -> None:
    run = drafted_run(demo)
    tickets = {t.customer.name: t for t in open_tickets(demo)}
    bellavista_ticket = tickets["Trattoria Bellavista S.r.l."]
    # In scope but the role lacks the permission: 403.
    assert demo.browser("nuvola.sales").get(f"/console/billing/runs/{run.pk}/").status_code == 403
    assert demo.browser("nuvola.helpdesk").get(f"/console/billing/runs/{run.pk}/finalize/").status_code == 403
    assert demo.browser("nuvola.users").get(f"/console/tickets/{bellavista_ticket.pk}/").status_code == 200
    # Another tenant's run and ticket: 404 for every role there, whatever its permissions.
    for suffix in STAFF.values():
        browser = demo.browser(f"fjall.{suffix}")
        assert browser.get(f"/console/billing/runs/{run.pk}/").status_code == 404, suffix
        assert browser.get(f"/console/billing/runs/{run.pk}/finalize/").status_code == 404, suffix
        assert browser.get(f"/console/tickets/{bellavista_ticket.pk}/").status_code == 404, suffix
    # A run is the partner's, not a customer's: outside a customer user's scope.
    assert demo.browser("bellavista.admin").get(f"/console/billing/runs/{run.pk}/").status_code == 404
    assert demo.browser("liffey.admin").get(f"/console/tickets/{bellavista_ticket.pk}/").status_code == 404


def test_pages_carry_no_inline_script_or_style(demo: DemoWorld) -> None:
    drafted_run(demo)
    open_tickets(demo)
    browser = demo.browser("nuvola.admin")
    for url, _perm in PAGES:
        html = browser.get(url).content.decode()
        assert " style=" not in html, url
        assert "<script>" not in html, url
        assert " onclick=" not in html and " onchange=" not in html, url
