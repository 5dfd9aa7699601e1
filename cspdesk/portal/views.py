"""The customer portal. Thin: resolve the customer's actor, call one selector or service, render.

Every read goes through a selector scoped by the actor, so another customer's invoice, ticket or file is a
404 whatever the URL says. Pages are in the customer's language (the switcher's choice, else the user's or
the customer's locale), with local number, money and date formats.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from cspdesk.billing import archive
from cspdesk.billing import changes as billing_changes
from cspdesk.billing import explain as billing_explain
from cspdesk.billing import selectors as billing_selectors
from cspdesk.billing.models import Invoice, InvoiceKind
from cspdesk.catalog.resolution import category_of
from cspdesk.core import clock
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import DomainError, Forbidden, NotFound
from cspdesk.partnercenter import selectors as pc_selectors
from cspdesk.partnercenter.models import StatusChangeAction, StatusChangeState, SubscriptionStatus
from cspdesk.payments import selectors as payment_selectors
from cspdesk.payments import statements, stripe_gateway
from cspdesk.support import selectors as support_selectors
from cspdesk.support import services as support
from cspdesk.support.models import Attachment, Category, Service, Status
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy
from cspdesk.tenancy.models import Customer, Membership
from cspdesk.tenancy.permissions import Perm

from . import forms
from .templatetags.portal import language

# Where a customer's SLA times are shown: the zone of its country (UTC for countries not listed).
COUNTRY_ZONES = {
    "IT": "Europe/Rome", "SE": "Europe/Stockholm", "PT": "Europe/Lisbon", "HU": "Europe/Budapest",
    "IE": "Europe/Dublin", "GB": "Europe/London", "DE": "Europe/Berlin", "FR": "Europe/Paris",
    "ES": "Europe/Madrid", "AT": "Europe/Vienna", "NL": "Europe/Amsterdam", "US": "America/New_York",
}  # fmt: skip
log = logging.getLogger(__name__)
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"
# The reasons cspdesk's own services give Partner Center for a suspension, in the customer's words; a reason a
# person typed is shown as it was written.
SUSPENSION_REASONS = {"non-payment": gettext_lazy("an overdue balance was not paid")}
OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING_CUSTOMER, Status.ESCALATED)

View = Callable[..., HttpResponseBase]


# ---------------------------------------------------------------- the frame of every page


def _customer_language(user_id: int, customer: Customer) -> str:
    own = Membership.objects.filter(user_id=user_id).values_list("locale", flat=True).first()
    return own or customer.locale or "en"


def portal_page(perm: Perm | None = None) -> Callable[[View], View]:
    """A portal page: logged in as a customer user (staff go to the console), with ``perm`` if given.

    The view is called as ``view(request, actor, customer, ...)``. ``NotFound`` is a 404, ``Forbidden`` a 403;
    a page about one object (an id in the URL) answers 404 to anyone it is not for, whatever the reason.
    """

    def wrap(view: View) -> View:
        @functools.wraps(view)
        @login_required
        def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            actor = tenancy.actor_for_user(request.user, getattr(request, "request_id", None))
            if actor.kind is not ActorKind.CUSTOMER:
                if args or kwargs:  # a customer's object: staff have none here (absent and foreign look alike)
                    raise Http404(_("Not found."))
                return redirect("console:home")
            if perm is not None and not permissions.has(actor, perm):
                if args or kwargs:  # one object: refused looks like absent, as everywhere in cspdesk
                    raise Http404(_("Not found."))
                raise PermissionDenied(_("Your role does not allow this page."))
            customer = tenancy.customers_for(actor).get(pk=actor.customer_pk)
            if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
                code = _customer_language(actor.user_pk, customer)
                translation.activate(code)
                request.LANGUAGE_CODE = translation.get_language()
            try:
                return view(request, actor, customer, *args, **kwargs)
            except NotFound:
                raise Http404(_("Not found.")) from None
            except Forbidden:
                raise PermissionDenied(_("Your role does not allow this.")) from None

        return page

    return wrap


def _context(actor: Actor, customer: Customer, **extra: Any) -> dict[str, Any]:
    granted = permissions.permissions_of(actor)
    return {
        "actor": actor,
        "customer": customer,
        "can": {p.name.lower(): p in granted for p in Perm},
        "zone": COUNTRY_ZONES.get(customer.country.upper(), "UTC"),
        "offering_url": reverse("support:offering", args=[customer.organisation_id]),
        "policy_url": _policy_url(customer),
        **extra,
    }


def _policy_url(customer: Customer) -> str:
    """The collections policy that applies to the customer, as the collections app publishes it ('' when the
    collections app is not installed)."""
    for name, args in (("collections:customer_policy", [customer.tenant_id]),
                       ("collections:organisation_policy", [customer.organisation_id])):  # fmt: skip
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            continue
    return ""


def landing(request: HttpRequest) -> HttpResponse:
    """Where ``/`` and a login land: customer users on the portal, staff on the console."""
    if not request.user.is_authenticated:
        return redirect("login")
    actor = tenancy.actor_for_user(request.user)
    return redirect("portal:home" if actor.kind is ActorKind.CUSTOMER else "console:home")


# ---------------------------------------------------------------- overview


def _open_of(inv: Invoice) -> Decimal:
    """An invoice annotated by ``payments.selectors.with_open_amount``: what is still to pay."""
    return payment_selectors.open_of(inv)


def _open_invoices(actor: Actor) -> list[Invoice]:
    if not permissions.has(actor, Perm.PAYMENTS_READ):
        return []
    rows = payment_selectors.receivables_for(actor)
    out = []
    for inv in rows:
        inv.open_amount = _open_of(inv)  # type: ignore[attr-defined]
        if inv.open_amount > 0:  # type: ignore[attr-defined]
            out.append(inv)
    return out


def _balances(open_invoices: list[Invoice]) -> list[dict[str, Any]]:
    today = clock.today()
    sums: dict[str, dict[str, Any]] = {}
    for inv in open_invoices:
        row = sums.setdefault(inv.currency, {"currency": inv.currency, "open": Decimal(0), "overdue": Decimal(0)})
        row["open"] += inv.open_amount  # type: ignore[attr-defined]
        if inv.due_date and inv.due_date < today:
            row["overdue"] += inv.open_amount  # type: ignore[attr-defined]
    return sorted(sums.values(), key=lambda r: r["currency"])


@portal_page()
def home(request: HttpRequest, actor: Actor, customer: Customer) -> HttpResponse:
    invoices = billing_selectors.invoices_for(actor).order_by("-issue_date", "-pk")[:5]
    open_invoices = _open_invoices(actor)
    tickets = support_selectors.tickets_for(actor).filter(status__in=OPEN_STATUSES)
    suspended = pc_selectors.subscriptions_for(actor).filter(status=SubscriptionStatus.SUSPENDED)
    return render(request, "portal/home.html", _context(
        actor, customer, invoices=invoices, balances=_balances(open_invoices), open_tickets=tickets[:5],
        open_ticket_count=tickets.count(), suspended=suspended,
    ))  # fmt: skip


# ---------------------------------------------------------------- invoices


def _invoice(actor: Actor, invoice_id: int) -> Invoice:
    permissions.require(actor, Perm.INVOICES_READ)
    invoice: Invoice = tenancy.get_or_404(billing_selectors.invoices_for(actor), invoice_id, "invoice")
    return invoice


INVOICES_PER_PAGE = 25  # newest first; a customer of many years pages back through the older ones


@portal_page(Perm.INVOICES_READ)
def invoices(request: HttpRequest, actor: Actor, customer: Customer) -> HttpResponse:
    qs = billing_selectors.invoices_for(actor).order_by("-issue_date", "-pk")
    kind = request.GET.get("kind", "")
    if kind in InvoiceKind.values:
        qs = qs.filter(kind=kind)
    page = Paginator(payment_selectors.with_open_amount(qs), INVOICES_PER_PAGE).get_page(request.GET.get("page"))
    rows: list[Invoice] = list(page.object_list)
    for inv in rows:
        inv.open_amount = (  # type: ignore[attr-defined]
            _open_of(inv) if inv.kind == InvoiceKind.INVOICE else None
        )
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "portal/invoices.html", _context(actor, customer, invoices=rows, kind=kind, page=page,
                                                            query=query.urlencode()))  # fmt: skip


def _lines(invoice: Invoice) -> list[Any]:
    return list(invoice.lines.order_by("position"))


@portal_page(Perm.INVOICES_READ)
def invoice(request: HttpRequest, actor: Actor, customer: Customer, invoice_id: int) -> HttpResponse:
    inv = _invoice(actor, invoice_id)
    changed = billing_changes.changes_of(inv) if inv.kind == InvoiceKind.INVOICE else None
    lang = language()
    open_amount = payment_selectors.open_balance(inv) if permissions.has(actor, Perm.PAYMENTS_READ) else None
    can_pay = bool(open_amount and open_amount > 0 and stripe_gateway.is_configured())
    response = render(request, "portal/invoice.html", _context(
        actor, customer, invoice=inv, lines=_lines(inv), changes=changed,
        change_sentences=billing_changes.sentences(changed, lang) if changed else [],
        change_summary=billing_changes.summary(changed, lang) if changed else "",
        credit_notes=billing_selectors.invoices_for(actor).filter(credited_invoice=inv),
        open_amount=open_amount, can_pay=can_pay,
    ))  # fmt: skip
    return _card_checkout_allowed(response) if can_pay else response


def _download(invoice: Invoice, body: bytes, content_type: str, suffix: str) -> HttpResponse:
    resp = HttpResponse(body, content_type=content_type)
    resp["Content-Disposition"] = f'attachment; filename="{invoice.number or invoice.pk}.{suffix}"'
    return resp


def _issued(request: HttpRequest, invoice: Invoice, fmt: str, content_type: str, suffix: str) -> HttpResponseBase:
    """The invoice's document as issued; when the stored copy fails its check (cspdesk.billing.archive), the
    customer is sent back to the invoice with a word on it, and the partner's log names the file."""
    try:
        return _download(invoice, archive.document(invoice, fmt), content_type, suffix)
    except archive.DocumentDamaged as exc:
        log.error("portal: %s", exc)
        messages.error(request, _("The issued copy of %(number)s cannot be downloaded right now: it failed its "
                                  "integrity check. Please try again later or ask your supplier for a copy.")
                       % {"number": invoice.number})  # fmt: skip
        return redirect("portal:invoice", invoice_id=invoice.pk)


@portal_page(Perm.INVOICES_READ)
def invoice_pdf(request: HttpRequest, actor: Actor, customer: Customer, invoice_id: int) -> HttpResponseBase:
    return _issued(request, _invoice(actor, invoice_id), "pdf", "application/pdf", "pdf")


@portal_page(Perm.INVOICES_READ)
def invoice_ubl(request: HttpRequest, actor: Actor, customer: Customer, invoice_id: int) -> HttpResponseBase:
    return _issued(request, _invoice(actor, invoice_id), "ubl", "application/xml", "xml")


def rule_words(explanation: billing_explain.Explanation) -> str:
    """How the line was priced, in the customer's words (Microsoft's cost and the margin stay private)."""
    from .templatetags.portal import percent, unit_price

    rule, method = explanation.rule, explanation.method
    if method == "support":
        return _("The monthly fee or the usage of your support plan.")
    if rule is None or method in ("no_rule", "pass_through"):
        return _("Microsoft's price, passed on without a margin.")
    if rule.method == "markup":
        return _("Microsoft's price plus our service margin.")
    if rule.method == "list_adjust" and rule.percent is not None:
        if rule.percent < 0:
            return _("Microsoft's list price less a discount of %(percent)s.") % {"percent": percent(-rule.percent)}
        return _("Microsoft's list price plus %(percent)s.") % {"percent": percent(rule.percent)}
    if rule.method == "fixed_unit" and rule.unit_price is not None:
        return _("A fixed price of %(price)s per unit, prorated for part of a period as Microsoft prorates.") % {
            "price": unit_price(rule.unit_price, rule.currency or explanation.currency)
        }
    return str(rule.method_label)


@portal_page(Perm.INVOICES_READ)
def explain(request: HttpRequest, actor: Actor, customer: Customer, invoice_id: int, position: int) -> HttpResponse:
    """Explain this charge: a fragment for htmx, a whole page without JavaScript."""
    inv = _invoice(actor, invoice_id)
    explanation = billing_explain.explain(actor, inv.pk, position)
    context = _context(actor, customer, invoice=inv, x=explanation, rule_text=rule_words(explanation))
    if request.headers.get("HX-Request") == "true":
        return render(request, "portal/_explain.html", context)
    return render(request, "portal/explain.html", context)


def _service_of(invoice: Invoice, position: int) -> str:
    line = invoice.lines.filter(position=position).first()
    if line is None:
        raise NotFound(f"invoice {invoice.number} has no line {position}")
    source = line.sources.select_related("charge_line").order_by("charge_line_id").first()
    if source is None:
        return Service.OTHER
    c = source.charge_line
    category = category_of(c.product_id, c.product_name, c.meter_category, c.meter_id)
    return {"azure": Service.AZURE, "microsoft365": Service.M365, "dynamics365": Service.D365}.get(
        category, Service.OTHER
    )


def _uploads(files: list[Any]) -> list[support.UploadedFile]:
    return [
        support.UploadedFile(filename=f.name, content_type=f.content_type or "application/octet-stream", data=f.read())
        for f in files
    ]


@require_http_methods(["GET", "POST"])
@portal_page(Perm.INVOICES_READ)
def billing_question(
    request: HttpRequest, actor: Actor, customer: Customer, invoice_id: int, position: int
) -> HttpResponse:
    """Ask about one invoice line: a billing ticket that names the invoice and the line."""
    inv = _invoice(actor, invoice_id)
    line = inv.lines.filter(position=position).first()
    if line is None:
        raise Http404(_("Not found."))
    if not permissions.has(actor, Perm.TICKETS_CHANGE):
        raise PermissionDenied(_("Your role does not allow this."))
    initial = {"subject": _("Question about invoice %(number)s, line %(position)s") % {
        "number": inv.number, "position": position}}  # fmt: skip
    form = forms.BillingQuestionForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            ticket = support.open_ticket(
                actor, customer_id=customer.pk, subject=form.cleaned_data["subject"], body=form.cleaned_data["body"],
                category=Category.BILLING, service=_service_of(inv, position),
                requester_email=getattr(request.user, "email", ""),
                invoice_number=inv.number, invoice_line=str(position),
                attachments=_uploads(form.cleaned_data["attachments"]),
            )  # fmt: skip
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Your question was sent as ticket %(reference)s.") % {
                "reference": ticket.reference})  # fmt: skip
            return redirect("portal:ticket", ticket_id=ticket.pk)
    return render(request, "portal/question.html", _context(actor, customer, invoice=inv, line=line, form=form))


@portal_page(Perm.INVOICES_READ)
def pay(request: HttpRequest, actor: Actor, customer: Customer, invoice_id: int) -> HttpResponse:
    """Pay by card (POST): a Stripe Checkout session for what is still open, then Stripe's page."""
    inv = _invoice(actor, invoice_id)  # first: another customer's invoice is a 404 whatever the method
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        session = stripe_gateway.create_checkout(actor, inv.pk)
    except DomainError as exc:  # the reason is for the logs; the customer reads what to do, in their language
        log.warning("card payment for invoice %s not started: %s", inv.pk, exc.message)
        if getattr(exc, "code", "") == "nothing_to_pay":
            messages.info(request, _("This invoice has nothing left to pay."))
        else:
            messages.error(request, _("Card payment is not available right now. Please try again later or pay by "
                                      "bank transfer."))  # fmt: skip
        return redirect("portal:invoice", invoice_id=inv.pk)
    return redirect(session.url)


def _card_checkout_allowed(response: HttpResponse) -> HttpResponse:
    """A page with a "pay by card" form: the form's POST answers with a redirect to Stripe's hosted checkout page,
    and a browser follows it only when the page's Content-Security-Policy lets forms go there (``form-action``
    also governs the redirects after a form is sent). Stripe Checkout's origin, and that of a configured
    ``STRIPE_API_BASE`` (a stand-in or proxy serves its checkout pages too)."""
    origins = [STRIPE_CHECKOUT_ORIGIN]
    base = urlsplit(stripe_gateway.config()["API_BASE"])
    if base.scheme in ("http", "https") and base.netloc:
        origins.append(f"{base.scheme}://{base.netloc}")
    response._csp_update = {"form-action": origins}  # type: ignore[attr-defined]  # django-csp reads it
    return response


# ---------------------------------------------------------------- balance and statement


@portal_page(Perm.PAYMENTS_READ)
def balance(request: HttpRequest, actor: Actor, customer: Customer) -> HttpResponse:
    open_invoices = _open_invoices(actor)
    payments = payment_selectors.payments_for(actor).order_by("-received_on", "-pk")[:20]
    stripe = stripe_gateway.is_configured()
    response = render(request, "portal/balance.html", _context(
        actor, customer, open_invoices=open_invoices, balances=_balances(open_invoices), payments=payments,
        today=clock.today(), stripe=stripe,
    ))  # fmt: skip
    return _card_checkout_allowed(response) if stripe and open_invoices else response


@portal_page(Perm.PAYMENTS_READ)
def statement(request: HttpRequest, actor: Actor, customer: Customer) -> HttpResponse:
    body, filename = statements.statement_pdf(actor, customer.pk)
    resp = HttpResponse(body, content_type="application/pdf")
    resp["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


# ---------------------------------------------------------------- subscriptions


@portal_page(Perm.SUBSCRIPTIONS_READ)
def subscriptions(request: HttpRequest, actor: Actor, customer: Customer) -> HttpResponse:
    subs = list(pc_selectors.subscriptions_for(actor).order_by("status", "offer_name"))
    reasons: dict[int, Any] = {}
    suspensions = (
        pc_selectors.status_changes_for(actor)
        .filter(action=StatusChangeAction.SUSPEND, state=StatusChangeState.SUCCEEDED)
        .order_by("-requested_at", "-pk")
    )
    for change in suspensions:
        reasons.setdefault(change.subscription_id, change)
    for s in subs:
        why = reasons.get(s.pk) if s.status == SubscriptionStatus.SUSPENDED else None
        s.suspension = why  # type: ignore[attr-defined]
        s.suspension_reason = SUSPENSION_REASONS.get(why.reason, why.reason) if why else ""  # type: ignore[attr-defined]
    overdue = [b for b in _balances(_open_invoices(actor)) if b["overdue"] > 0]
    return render(request, "portal/subscriptions.html", _context(
        actor, customer, subscriptions=subs, overdue=overdue,
        any_suspended=any(s.status == SubscriptionStatus.SUSPENDED for s in subs),
    ))  # fmt: skip


# ---------------------------------------------------------------- tickets


@portal_page(Perm.TICKETS_READ)
def tickets(request: HttpRequest, actor: Actor, customer: Customer) -> HttpResponse:
    qs = support_selectors.tickets_for(actor)
    state = request.GET.get("state", "open")
    if state == "open":
        qs = qs.filter(status__in=OPEN_STATUSES)
    elif state == "done":
        qs = qs.exclude(status__in=OPEN_STATUSES)
    return render(request, "portal/tickets.html", _context(actor, customer, tickets=qs, state=state))


@require_http_methods(["GET", "POST"])
@portal_page(Perm.TICKETS_CHANGE)
def ticket_new(request: HttpRequest, actor: Actor, customer: Customer) -> HttpResponse:
    form = forms.TicketForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ticket = support.open_ticket(
                actor, customer_id=customer.pk, subject=data["subject"], body=data["body"],
                category=data["category"], service=data["service"], severity=data["severity"],
                requester_email=getattr(request.user, "email", ""), attachments=_uploads(data["attachments"]),
            )  # fmt: skip
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Ticket %(reference)s is open.") % {"reference": ticket.reference})
            return redirect("portal:ticket", ticket_id=ticket.pk)
    return render(request, "portal/ticket_new.html", _context(actor, customer, form=form))


@require_http_methods(["GET", "POST"])
@portal_page(Perm.TICKETS_READ)
def ticket(request: HttpRequest, actor: Actor, customer: Customer, ticket_id: int) -> HttpResponse:
    t = support.require_ticket(actor, ticket_id)
    form = forms.ReplyForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        permissions.require(actor, Perm.TICKETS_CHANGE)
        if form.is_valid():
            try:
                support.reply(actor, t.pk, form.cleaned_data["body"],
                              attachments=_uploads(form.cleaned_data["attachments"]))  # fmt: skip
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, _("Your reply was added."))
                return redirect("portal:ticket", ticket_id=t.pk)
    invoice_link = None
    if t.invoice_number and permissions.has(actor, Perm.INVOICES_READ):
        invoice_link = billing_selectors.invoices_for(actor).filter(number=t.invoice_number).first()
    return render(request, "portal/ticket.html", _context(
        actor, customer, ticket=t, messages_list=support_selectors.messages_for(actor, t), form=form,
        sla=support.sla_state(t), invoice_link=invoice_link, is_open=t.status in OPEN_STATUSES,
        can_close=t.status not in (Status.CLOSED,),
    ))  # fmt: skip


@portal_page(Perm.TICKETS_CHANGE)
def ticket_resolve(request: HttpRequest, actor: Actor, customer: Customer, ticket_id: int) -> HttpResponse:
    t = support.require_ticket(actor, ticket_id)  # first: another customer's ticket is a 404 whatever the method
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    target = Status.CLOSED if t.status == Status.RESOLVED else Status.RESOLVED
    try:
        support.change_status(actor, t.pk, target)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Ticket %(reference)s is marked resolved.") % {"reference": t.reference}
                         if target == Status.RESOLVED else
                         _("Ticket %(reference)s is closed.") % {"reference": t.reference})  # fmt: skip
    return redirect("portal:ticket", ticket_id=t.pk)


@portal_page(Perm.TICKETS_READ)
def attachment(
    request: HttpRequest, actor: Actor, customer: Customer, ticket_id: int, attachment_id: int
) -> FileResponse:
    t = support.require_ticket(actor, ticket_id)
    visible = support_selectors.messages_for(actor, t)
    att = Attachment.objects.filter(Q(message__in=visible), pk=attachment_id).first()
    if att is None:
        raise Http404(_("Not found."))
    path = Path(settings.VAR_DIR) / att.path
    if not path.is_file():
        raise Http404(_("Not found."))
    return FileResponse(path.open("rb"), as_attachment=True, filename=att.filename, content_type=att.content_type)
