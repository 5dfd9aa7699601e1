"""Server time of the staff console's and the customer portal's main pages on the demo data, against a 300 ms
budget per page.

A child process loads the demo world (``cspdesk demo --no-serve``) into its own SQLite file under
var/bench/pages, then requests each page through Django's full request stack in process (no network, no
browser): the median of several requests after a warm-up is the page's server time. The ratio printed is
time / budget; every ratio must be at most 1. The portal is measured as a customer's administrator
(Bellavista: the demo's customer with a suspended subscription, several months of invoices and open tickets),
each page in the customer's own language, an invoice's "explain this charge" fragment as htmx asks for it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_MS = 300.0
REPEAT = int(os.environ.get("CSPDESK_BENCH_PAGE_REPEAT", "7"))


def _setup(workdir: Path) -> None:
    os.environ["CSPDESK_VAR_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{workdir / 'pages.sqlite3'}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "cspdesk.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _pages() -> list[tuple[str, str]]:
    """(login, url) for each main console page, with the demo's own objects for the detail pages."""
    from cspdesk.billing.models import BillingRun
    from cspdesk.demo import world
    from cspdesk.support.models import Ticket
    from cspdesk.tenancy.models import Customer, Organisation

    nuvola = Organisation.objects.get(
        invoice_series=next(o for o in world.ORGANISATIONS if o.key == "nuvola").invoice_series
    )
    customer = Customer.objects.get(tenant_id=world.customer_tenant_id("bellavista"))
    run = BillingRun.objects.filter(organisation__isnull=True).order_by("-pk").first() or BillingRun.objects.first()
    ticket = Ticket.objects.filter(organisation=nuvola).order_by("pk").first()
    pages = [
        ("nuvola.admin", "/console/"),
        ("nuvola.billing", "/console/"),
        ("nuvola.admin", "/console/customers/"),
        ("nuvola.admin", f"/console/customers/{customer.pk}/"),
        ("nuvola.billing", "/console/payments/suspense/"),
        ("nuvola.helpdesk", "/console/tickets/"),
        ("nuvola.billing", "/console/catalog/price-rules/"),
        ("nuvola.billing", "/console/catalog/support-plans/"),
        ("nuvola.sales", "/console/sales/"),
        ("nuvola.users", "/console/users/"),
        ("nuvola.admin", "/console/audit/"),
    ]
    if ticket is not None:
        pages.append(("nuvola.helpdesk", f"/console/tickets/{ticket.pk}/"))
    if run is not None:
        # The demo bills as the system: its runs are the platform operator's to review.
        pages += [("bench.root", "/console/billing/runs/"), ("bench.root", f"/console/billing/runs/{run.pk}/")]
    return pages + _portal_pages()


# A customer's administrator: every portal page is open to the role.
PORTAL_LOGIN = "bellavista.admin"


def _portal_pages() -> list[tuple[str, str]]:
    """(login, url) for each portal page of the customer user, with the customer's own latest invoice and
    ticket for the detail pages (the largest invoice of the latest period: the page with the most lines)."""
    from django.db.models import Count

    from cspdesk.billing.models import Invoice, InvoiceKind
    from cspdesk.demo import world
    from cspdesk.support.models import Ticket
    from cspdesk.tenancy.models import Customer

    customer = Customer.objects.get(tenant_id=world.customer_tenant_id("bellavista"))
    invoice = (
        Invoice.objects.filter(customer=customer, kind=InvoiceKind.INVOICE, number__gt="")
        .annotate(n=Count("lines"))
        .order_by("-period", "-n", "-pk")
        .first()
    )
    ticket = Ticket.objects.filter(customer=customer).order_by("pk").first()
    pages = [
        (PORTAL_LOGIN, "/portal/"),
        (PORTAL_LOGIN, "/portal/invoices/"),
        (PORTAL_LOGIN, "/portal/balance/"),
        (PORTAL_LOGIN, "/portal/subscriptions/"),
        (PORTAL_LOGIN, "/portal/tickets/"),
        (PORTAL_LOGIN, "/portal/tickets/?state=all"),
        (PORTAL_LOGIN, "/portal/tickets/new/"),
    ]
    if invoice is not None:
        line = invoice.lines.order_by("-net_amount", "position").first()
        pages.append((PORTAL_LOGIN, f"/portal/invoices/{invoice.pk}/"))
        if line is not None:
            pages += [
                (PORTAL_LOGIN, f"/portal/invoices/{invoice.pk}/lines/{line.position}/#htmx"),
                (PORTAL_LOGIN, f"/portal/invoices/{invoice.pk}/lines/{line.position}/question/"),
            ]
    if ticket is not None:
        pages.append((PORTAL_LOGIN, f"/portal/tickets/{ticket.pk}/"))
    return pages


def _child(workdir: Path) -> dict[str, object]:
    _setup(workdir)
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    call_command("demo", "--no-serve", "--json", stdout=io.StringIO(), stderr=io.StringIO())
    setup_test_environment()
    users = get_user_model()
    if not users.objects.filter(username="bench.root").exists():
        users.objects.create_superuser("bench.root", "root@bench.localhost", None)
    results = []
    clients: dict[str, Client] = {}
    for login, url in _pages():
        if login not in clients:
            clients[login] = Client()
            clients[login].force_login(users.objects.get(username=login))
        client = clients[login]
        path, _, fragment = url.partition("#")
        headers = {"HX-Request": "true"} if fragment == "htmx" else {}
        status = client.get(path, headers=headers).status_code  # warm-up: template compilation, first queries
        times = []
        for _ in range(REPEAT):
            began = time.perf_counter()
            client.get(path, headers=headers)
            times.append((time.perf_counter() - began) * 1000)
        results.append({"login": login, "url": url, "status": status, "ms": statistics.median(times)})
    return {"pages": results}


def run() -> bool:
    workdir = ROOT / "var" / "bench" / "pages"
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "bench.pages", "--child", str(workdir)], cwd=ROOT, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"demo loaded and {len(result['pages'])} pages measured in {time.perf_counter() - began:.1f} s "
          f"(median of {REPEAT} requests each, budget {BUDGET_MS:.0f} ms)")  # fmt: skip
    print(f"{'page':<48} {'login':<17} {'status':>6} {'ms':>8} {'ratio':>6}")
    ok = True
    for page in result["pages"]:
        ratio = page["ms"] / BUDGET_MS
        good = page["status"] == 200 and ratio <= 1
        ok = ok and good
        flag = "" if good else "  ✗"
        print(f"{page['url']:<48} {page['login']:<17} {page['status']:>6} {page['ms']:>8.1f} {ratio:>6.2f}{flag}")
    for area, prefix in (("console", "/console/"), ("portal", "/portal/")):
        pages = [p for p in result["pages"] if p["url"].startswith(prefix)]
        if pages:
            slowest = max(pages, key=lambda p: p["ms"])
            print(f"slowest {area} page: {slowest['url']} {slowest['ms']:.1f} ms ({slowest['ms'] / BUDGET_MS:.2f}x)")
    worst = max(p["ms"] for p in result["pages"]) / BUDGET_MS
    print(f"slowest page / budget: {worst:.2f}x (target ≤ 1)")
    return ok


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(Path(sys.argv[2]))))
    else:
        sys.exit(0 if run() else 1)
