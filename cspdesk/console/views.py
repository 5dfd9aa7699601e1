"""Staff console pages (and, for customer users, their own customer). Thin: actor → selector or service →
template.

Every page names the permission it needs. A page about one object first finds the object in the actor's
tenant scope (outside it: 404, exactly like an id that does not exist), then checks the permission (403),
then reads it through the owning app's scoped selector. Changes are POSTs to a page that first shows what
will happen (a confirmation step), and go through the owning app's service function.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from cspdesk.billing import selectors as billing_selectors
from cspdesk.billing import services as billing_services
from cspdesk.billing.models import BillingRun, RunStatus
from cspdesk.catalog import selectors as catalog_selectors
from cspdesk.catalog import services as catalog_services
from cspdesk.catalog.models import PriceRule
from cspdesk.collections import selectors as collection_selectors
from cspdesk.collections import services as collections_services
from cspdesk.collections.models import Case as CollectionCase
from cspdesk.core import clock
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import Conflict, DomainError, Forbidden, NotFound
from cspdesk.partnercenter import selectors as pc_selectors
from cspdesk.partnercenter import services as pc_services
from cspdesk.partnercenter.models import Subscription, SubscriptionStatus
from cspdesk.payments import selectors as payment_selectors
from cspdesk.payments import services as payment_services
from cspdesk.payments.models import Payment
from cspdesk.support import selectors as support_selectors
from cspdesk.support import services as support_services
from cspdesk.support.models import Status as TicketStatus
from cspdesk.support.models import Ticket
from cspdesk.tenancy import permissions, selectors
from cspdesk.tenancy import services as tenancy_services
from cspdesk.tenancy.models import CustomerRole, Membership, Organisation, StaffRole
from cspdesk.tenancy.permissions import Perm

from . import dashboard, forms
from . import selectors as console

F = TypeVar("F", bound=Callable[..., HttpResponse])
User = get_user_model()


def _actor(request: HttpRequest) -> Actor:
    return selectors.actor_for_user(request.user, getattr(request, "request_id", None))


def _refuse_unless_allowed(actor: Actor, perm: Perm | None, staff_only: bool) -> None:
    if staff_only and actor.kind is ActorKind.CUSTOMER:
        raise PermissionDenied("the staff console is for staff")
    if perm is not None and not permissions.has(actor, perm):
        raise PermissionDenied(f"your role does not allow {perm.value}")


def _call(view: Callable[..., HttpResponse], *args: Any, **kwargs: Any) -> HttpResponse:
    """Run the view; a domain refusal becomes 404 (not found / out of scope) or 403 (forbidden)."""
    try:
        return view(*args, **kwargs)
    except NotFound:
        raise Http404("not found") from None
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None


def page(perm: Perm | None = None, *, staff_only: bool = True) -> Callable[[F], F]:
    """A console page: logged in, the actor resolved, ``perm`` required (403 without it)."""

    def decorate(view: F) -> F:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            actor = _actor(request)
            _refuse_unless_allowed(actor, perm, staff_only)
            return _call(view, request, actor, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def scoped_page(
    model: type[Model],
    param: str,
    perm: Perm,
    owner: Callable[[Any], tuple[int, int | None]],
    *,
    staff_only: bool = True,
) -> Callable[[F], F]:
    """A page about one object: 404 unless the object lies in the actor's tenant scope (``owner`` gives its
    organisation and customer ids), then 403 without ``perm``. The view gets the object."""

    def decorate(view: F) -> F:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            actor = _actor(request)
            obj = model._default_manager.filter(pk=kwargs.pop(param)).first()
            if obj is None or not _reachable(actor, *owner(obj)):
                raise Http404("not found")
            _refuse_unless_allowed(actor, perm, staff_only)
            return _call(view, request, actor, obj, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _reachable(actor: Actor, organisation_id: int | None, customer_id: int | None) -> bool:
    """Whether the object of this organisation (and customer) lies in the actor's tenant scope at all."""
    if actor.is_system:
        return True
    if actor.kind is ActorKind.CUSTOMER:
        return customer_id is not None and customer_id == actor.customer_id
    return organisation_id in (selectors.readable_organisation_ids(actor) or set())


def _nav(actor: Actor) -> list[tuple[str, str]]:
    entries: list[tuple[str, Any, Perm | None]] = [
        ("console:home", gettext_lazy("Dashboard"), None),
        ("console:customers", gettext_lazy("Customers"), Perm.CUSTOMERS_READ),
        ("console:runs", gettext_lazy("Billing runs"), Perm.INVOICES_READ),
        ("console:suspense", gettext_lazy("Payment suspense"), Perm.PAYMENTS_READ),
        ("console:collections", gettext_lazy("Collections"), Perm.COLLECTIONS_READ),
        ("console:tickets", gettext_lazy("Tickets"), Perm.TICKETS_READ),
        ("console:price_rules", gettext_lazy("Price rules"), Perm.PRICE_RULES_READ),
        ("console:support_plans", gettext_lazy("Support plans"), Perm.PRICE_RULES_READ),
        ("console:sales", gettext_lazy("Sales"), Perm.INSIGHTS_READ),
        ("console:users", gettext_lazy("Users"), Perm.USERS_READ),
        ("console:audit", gettext_lazy("Audit log"), Perm.AUDIT_READ),
    ]
    if actor.kind is ActorKind.CUSTOMER:
        entries = entries[:2]
    return [
        (reverse(name), str(label)) for name, label, perm in entries if perm is None or permissions.has(actor, perm)
    ]


def _render(request: HttpRequest, actor: Actor, template: str, context: dict[str, Any]) -> HttpResponse:
    return render(request, template, {"actor": actor, "nav": _nav(actor), **context})


def _fmt(currency: str) -> Callable[[Decimal], str]:
    from .templatetags.console_format import money

    return lambda v: money(v, currency)


# ---------------------------------------------------------------- dashboard


@login_required
def home(request: HttpRequest) -> HttpResponse:
    actor = _actor(request)
    context: dict[str, Any] = {
        "customer_count": selectors.customers_for(actor).count(),
        "organisations": selectors.organisations_for(actor),
    }
    if actor.kind is ActorKind.CUSTOMER:
        context["customers"] = selectors.customers_for(actor)
    else:
        context["panels"] = dashboard.panels(actor)
    return _render(request, actor, "console/home.html", context)


# ---------------------------------------------------------------- customers


@login_required
def customer_list(request: HttpRequest) -> HttpResponse:
    actor = _actor(request)
    q = request.GET.get("q", "").strip()
    customers = selectors.customers_for(actor)
    if q:
        customers = customers.filter(name__icontains=q)
    return _render(request, actor, "console/customers.html", {"customers": customers, "q": q})


@login_required
def customer_detail(request: HttpRequest, customer_id: int) -> HttpResponse:
    actor = _actor(request)
    try:
        customer = selectors.get_or_404(selectors.customers_for(actor), customer_id, "customer")
    except NotFound:
        raise Http404("no such customer") from None
    can_change = selectors.customers_for(actor, Perm.CUSTOMERS_CHANGE).filter(pk=customer.pk).exists()
    staff = actor.kind is not ActorKind.CUSTOMER
    subscriptions = pc_selectors.subscriptions_for(actor).filter(customer=customer).order_by("offer_name", "pk")
    invoices = payment_selectors.receivables_for(actor).filter(customer=customer).order_by("-period", "-pk")[:24]
    payments = payment_selectors.payments_with_unallocated(
        payment_selectors.payments_for(actor).filter(customer=customer)
    ).order_by("-received_on", "-pk")[:24]
    tickets = support_selectors.tickets_for(actor).filter(customer=customer).order_by("-created_at")[:24]
    changeable = set(
        pc_selectors.subscriptions_for(actor, Perm.SUBSCRIPTIONS_CHANGE)
        .filter(customer=customer)
        .values_list("pk", flat=True)
    )
    context = {
        "customer": customer,
        "can_change": can_change,
        "users": selectors.memberships_for(actor).filter(customer=customer),
        "subscriptions": [(s, s.pk in changeable) for s in subscriptions],
        "show_subscriptions": permissions.has(actor, Perm.SUBSCRIPTIONS_READ),
        "invoices": [(inv, console.open_amount(inv)) for inv in invoices],
        "show_invoices": permissions.has(actor, Perm.INVOICES_READ),
        "payments": [(p, Decimal(p.amount) - Decimal(p.refunded) - p.used) for p in payments],  # type: ignore[attr-defined]
        "show_payments": permissions.has(actor, Perm.PAYMENTS_READ),
        "tickets": tickets,
        "show_tickets": permissions.has(actor, Perm.TICKETS_READ),
        "timeline": console.timeline_for(actor, customer.pk) if staff else [],
        "staff": staff,
    }
    return _render(request, actor, "console/customer.html", context)


def _subscription_owner(sub: Subscription) -> tuple[int, int | None]:
    return sub.customer.organisation_id, sub.customer_id


def partner_center_client(customer: Any) -> Any:
    """The Partner Center client of the partner that transacts the customer's subscriptions: its own
    organisation, or for a reseller's customer the indirect provider."""
    from cspdesk.partnercenter.client import PartnerCenterClient

    org: Organisation = customer.organisation
    if org.parent_id is not None:
        org = Organisation.objects.get(pk=org.parent_id)
    return PartnerCenterClient.for_organisation(org)


@scoped_page(Subscription, "subscription_id", Perm.SUBSCRIPTIONS_CHANGE, _subscription_owner)
def subscription_status(request: HttpRequest, actor: Actor, sub: Subscription, action: str) -> HttpResponse:
    """Suspend or reactivate, after a confirmation, through the Partner Center service."""
    sub = selectors.get_or_404(pc_selectors.subscriptions_for(actor, Perm.SUBSCRIPTIONS_CHANGE), sub.pk,
                               "subscription")  # fmt: skip
    expected = SubscriptionStatus.ACTIVE if action == "suspend" else SubscriptionStatus.SUSPENDED
    form = forms.ReasonForm(request.POST or None)
    error = ""
    if sub.status != expected:
        if action == "suspend":
            error = _("Only an active subscription can be suspended; this one is %(status)s.")
        else:
            error = _("Only a suspended subscription can be reactivated; this one is %(status)s.")
        error = error % {"status": sub.get_status_display()}
    elif request.method == "POST" and form.is_valid():
        change = pc_services.suspend_subscription if action == "suspend" else pc_services.reactivate_subscription
        try:
            with partner_center_client(sub.customer) as client:
                change(actor, sub.pk, client, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            error = exc.message
        else:
            done = _("Subscription suspended.") if action == "suspend" else _("Subscription reactivated.")
            messages.success(request, done)
            return redirect("console:customer", sub.customer_id)
    return _render(request, actor, "console/subscription_status.html",
                   {"sub": sub, "action": action, "form": form, "error": error})  # fmt: skip


# ---------------------------------------------------------------- billing runs


def _run_owner(run: BillingRun) -> tuple[int, int | None]:
    return run.organisation_id or 0, None


@page(Perm.INVOICES_READ)
def run_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    runs = billing_selectors.runs_for(actor).exclude(status=RunStatus.REPLACED).order_by("-period", "-pk")[:36]
    return _render(request, actor, "console/runs.html", {"runs": runs})


@scoped_page(BillingRun, "run_id", Perm.INVOICES_READ, _run_owner)
def run_detail(request: HttpRequest, actor: Actor, run: BillingRun) -> HttpResponse:
    run = selectors.get_or_404(billing_selectors.runs_for(actor), run.pk, "billing run")
    review = console.review_of(run.review, billing_services.BLOCKING)
    return _render(request, actor, "console/run.html", {
        "run": run, "review": review, "can_finalize": permissions.has(actor, Perm.INVOICES_CHANGE),
        "finalizable": run.status in (RunStatus.DRAFT, RunStatus.FINALIZING) and not review.blocking,
        "blocking_codes": sorted(billing_services.BLOCKING),
    })  # fmt: skip


@scoped_page(BillingRun, "run_id", Perm.INVOICES_CHANGE, _run_owner)
def run_finalize(request: HttpRequest, actor: Actor, run: BillingRun) -> HttpResponse:
    run = selectors.get_or_404(billing_selectors.runs_for(actor), run.pk, "billing run")
    review = console.review_of(run.review, billing_services.BLOCKING)
    error = ""
    if request.method == "POST":
        try:
            run = billing_services.finalize_run(actor, run.pk)
        except (Conflict, DomainError) as exc:
            error = exc.message
        else:
            count = run.invoices.count()
            text = ngettext("Billing run finalized: %(count)s invoice numbered and issued.",
                            "Billing run finalized: %(count)s invoices numbered and issued.", count)  # fmt: skip
            messages.success(request, text % {"count": count})
            return redirect("console:run", run.pk)
    return _render(request, actor, "console/run_finalize.html", {"run": run, "review": review, "error": error})


# ---------------------------------------------------------------- payments


def _payment_owner(p: Payment) -> tuple[int, int | None]:
    return p.organisation_id, p.customer_id


@page(Perm.PAYMENTS_READ)
def suspense(request: HttpRequest, actor: Actor) -> HttpResponse:
    queue = payment_selectors.payments_with_unallocated(payment_selectors.suspense_for(actor)).order_by(
        "received_on", "pk"
    )
    return _render(request, actor, "console/suspense.html", {
        "payments": queue, "can_match": permissions.has(actor, Perm.PAYMENTS_CHANGE),
    })  # fmt: skip


@scoped_page(Payment, "payment_id", Perm.PAYMENTS_CHANGE, _payment_owner)
def payment_match(request: HttpRequest, actor: Actor, payment: Payment) -> HttpResponse:
    payment = selectors.get_or_404(payment_selectors.payments_for(actor, Perm.PAYMENTS_CHANGE), payment.pk, "payment")
    if payment.customer_id is not None:
        messages.info(request, _("This payment is already matched to %(customer)s.")
                      % {"customer": payment.customer.name})  # type: ignore[union-attr]  # fmt: skip
        return redirect("console:suspense")
    customers = selectors.customers_for(actor).filter(organisation_id=payment.organisation_id)
    open_invoices = [
        (inv.pk, f"{inv.number} · {inv.customer.name} · {inv.currency} {console.open_amount(inv)}")  # type: ignore[union-attr]
        for inv in payment_selectors.receivables_for(actor)
        .filter(organisation_id=payment.organisation_id, currency=payment.currency)
        .select_related("customer")
        if console.open_amount(inv) > 0
    ]
    form = forms.MatchPaymentForm(request.POST or None, customers=[(c.pk, c.name) for c in customers],
                                  invoices=open_invoices)  # fmt: skip
    if request.method == "POST" and form.is_valid():
        try:
            payment_services.assign_customer(actor, payment.pk, form.cleaned_data["customer"],
                                             form.cleaned_data["invoice"])  # fmt: skip
        except DomainError as exc:
            forms.add_domain_error(form, exc)
        else:
            messages.success(request, _("Payment matched and allocated."))
            return redirect("console:suspense")
    return _render(request, actor, "console/payment_match.html", {"payment": payment, "form": form})


# ---------------------------------------------------------------- collections


@page(Perm.COLLECTIONS_READ)
def collections(request: HttpRequest, actor: Actor) -> HttpResponse:
    """What a collections run would do today (the engine's dry run), the suspensions waiting for approval, open
    cases by stage, and what holds collections back."""
    today = clock.today()
    preview = collections_services.run(actor, today=today, dry_run=True)
    return _render(request, actor, "console/collections.html", {
        "today": today, "preview": preview, "approvals": console.pending_approvals(actor),
        "stages": console.open_cases_by_stage(actor), "brakes": console.collections_brakes(actor, today),
        "can_change": permissions.has(actor, Perm.COLLECTIONS_CHANGE),
    })  # fmt: skip


def _case_owner(case: CollectionCase) -> tuple[int, int | None]:
    return case.organisation_id, case.customer_id


@scoped_page(CollectionCase, "case_id", Perm.COLLECTIONS_CHANGE, _case_owner)
def collections_decide(request: HttpRequest, actor: Actor, case: CollectionCase, decision: str) -> HttpResponse:
    """Approve or reject a suspension that waited beyond the run's cap, after a confirmation."""
    case = selectors.get_or_404(collection_selectors.cases_for(actor, Perm.COLLECTIONS_CHANGE), case.pk, "case")
    approval = next((p for p in console.pending_approvals(actor) if p.case.pk == case.pk), None)
    form = forms.ReasonForm(request.POST or None) if decision == "reject" else None
    error = ""
    if request.method == "POST" and approval is not None and (form is None or form.is_valid()):
        try:
            if decision == "approve":
                collections_services.approve_suspension(actor, case.pk)
            else:
                assert form is not None
                collections_services.reject_suspension(actor, case.pk, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            error = exc.message
        else:
            if decision == "approve":
                done = _("Suspension of %(customer)s approved: Partner Center is asked to suspend its subscriptions.")
            else:
                done = _("Suspension of %(customer)s rejected: the case stays open for its later steps.")
            messages.success(request, done % {"customer": case.customer.name})
            return redirect("console:collections")
    return _render(request, actor, "console/collections_decide.html",
                   {"case": case, "approval": approval, "decision": decision, "form": form,
                    "error": error})  # fmt: skip


# ---------------------------------------------------------------- tickets


def _ticket_owner(t: Ticket) -> tuple[int, int | None]:
    return t.customer.organisation_id, t.customer_id


def _staff_choices(actor: Actor, ticket: Ticket | None = None) -> list[tuple[int, str]]:
    orgs = {ticket.organisation_id} if ticket else set()
    if actor.organisation_id:
        orgs.add(actor.organisation_id)
    members = Membership.objects.filter(organisation_id__in=orgs, user__is_active=True).select_related("user")
    return [(m.user_id, m.user.get_username()) for m in members.order_by("user__username")]


@page(Perm.TICKETS_READ)
def ticket_queue(request: HttpRequest, actor: Actor) -> HttpResponse:
    now = clock.now()
    qs = support_selectors.tickets_for(actor)
    state = request.GET.get("state", "open")
    if state == "open":
        qs = qs.filter(status__in=console.OPEN_TICKET_STATES)
    queue = request.GET.get("queue", "")
    if queue:
        qs = qs.filter(queue=queue)
    mine = request.GET.get("mine") == "1"
    if mine:
        qs = qs.filter(assignee_id=actor.user_id)
    queues = sorted(set(support_selectors.tickets_for(actor).values_list("queue", flat=True)))
    rows = [(t, console.sla_timer(t, now)) for t in qs.order_by("resolution_due", "created_at")[:200]]
    rows.sort(key=lambda r: r[1].sort_key)
    template = "console/_ticket_rows.html" if request.headers.get("HX-Request") else "console/tickets.html"
    return _render(request, actor, template, {
        "rows": rows, "queues": queues, "queue": queue, "state": state, "mine": mine, "now": now,
    })  # fmt: skip


@scoped_page(Ticket, "ticket_id", Perm.TICKETS_READ, _ticket_owner)
def ticket_detail(request: HttpRequest, actor: Actor, ticket: Ticket) -> HttpResponse:
    ticket = selectors.get_or_404(support_selectors.tickets_for(actor), ticket.pk, "ticket")
    can_change = permissions.has(actor, Perm.TICKETS_CHANGE)
    reply_form = forms.ReplyForm()
    assign_form = forms.AssignForm(initial={"assignee": ticket.assignee_id, "queue": ticket.queue},
                                   staff=_staff_choices(actor, ticket))  # fmt: skip
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("your role does not allow tickets.change")
        if request.POST.get("do") == "assign":
            assign_form = forms.AssignForm(request.POST, staff=_staff_choices(actor, ticket))
            if assign_form.is_valid():
                try:
                    support_services.assign(actor, ticket.pk, assign_form.cleaned_data["assignee"],
                                            assign_form.cleaned_data["queue"] or None)  # fmt: skip
                except DomainError as exc:
                    forms.add_domain_error(assign_form, exc)
                else:
                    messages.success(request, _("Ticket assigned."))
                    return redirect("console:ticket", ticket.pk)
        else:
            reply_form = forms.ReplyForm(request.POST)
            if reply_form.is_valid():
                try:
                    support_services.reply(actor, ticket.pk, reply_form.cleaned_data["body"],
                                           internal=reply_form.cleaned_data["internal"])  # fmt: skip
                except DomainError as exc:
                    forms.add_domain_error(reply_form, exc)
                else:
                    messages.success(request, _("Reply sent.") if not reply_form.cleaned_data["internal"]
                                     else _("Internal note added."))  # fmt: skip
                    return redirect("console:ticket", ticket.pk)
    return _render(request, actor, "console/ticket.html", {
        "ticket": ticket, "timer": console.sla_timer(ticket, clock.now()),
        "messages_list": support_selectors.messages_for(actor, ticket), "can_change": can_change,
        "reply_form": reply_form, "assign_form": assign_form,
        "closed": ticket.status == TicketStatus.CLOSED,
    })  # fmt: skip


# ---------------------------------------------------------------- price rules and support plans


def _own_org_choices(actor: Actor) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Customers and resellers a rule of the actor's organisation may name."""
    if actor.organisation_id is None:
        return [], []
    customers = selectors.customers_for(actor).order_by("name")
    resellers = Organisation.objects.filter(parent_id=actor.organisation_id).order_by("legal_name")
    return [(c.pk, c.name) for c in customers], [(o.pk, o.legal_name) for o in resellers]


@page(Perm.PRICE_RULES_READ)
def price_rules(request: HttpRequest, actor: Actor) -> HttpResponse:
    can_change = permissions.has(actor, Perm.PRICE_RULES_CHANGE) and actor.organisation_id is not None
    customers, resellers = _own_org_choices(actor)
    form = forms.PriceRuleForm(request.POST or None, customers=customers, resellers=resellers)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("your role does not allow price_rules.change")
        if form.is_valid():
            data = form.cleaned_data
            try:
                catalog_services.create_price_rule(
                    actor, organisation_id=actor.organisation_pk, method=data["method"],
                    effective_from=data["effective_from"], effective_to=data["effective_to"],
                    reseller_id=data.get("reseller"), customer_id=data["customer"], category=data["category"],
                    product_id=data["product_id"], sku_id=data["sku_id"], meter_category=data["meter_category"],
                    percent=data["percent"], unit_price=data["unit_price"], currency=data["currency"] or "",
                    note=data["note"],
                )  # fmt: skip
            except DomainError as exc:
                forms.add_domain_error(form, exc, prominent=exc.code == "rule_conflict")
            else:
                messages.success(request, _("Price rule created."))
                return redirect("console:price_rules")
    today = clock.today()
    rules = catalog_selectors.price_rules_for(actor).order_by("organisation__legal_name", "-effective_from", "pk")
    return _render(request, actor, "console/price_rules.html", {
        "rules": rules, "form": form, "can_change": can_change, "today": today,
        "own_org": actor.organisation_id,
    })  # fmt: skip


def _rule_owner(rule: PriceRule) -> tuple[int, int | None]:
    return rule.organisation_id, None


@scoped_page(PriceRule, "rule_id", Perm.PRICE_RULES_CHANGE, _rule_owner)
def price_rule_end(request: HttpRequest, actor: Actor, rule: PriceRule) -> HttpResponse:
    rule = selectors.get_or_404(catalog_selectors.price_rules_for(actor), rule.pk, "price rule")
    form = forms.EndRuleForm(request.POST or None, initial={"effective_to": clock.today()})
    if request.method == "POST" and form.is_valid():
        try:
            catalog_services.end_price_rule(actor, rule.pk, form.cleaned_data["effective_to"])
        except DomainError as exc:
            forms.add_domain_error(form, exc)
        else:
            messages.success(request, _("Price rule end date set."))
            return redirect("console:price_rules")
    return _render(request, actor, "console/price_rule_end.html", {"rule": rule, "form": form})


@page(Perm.PRICE_RULES_READ)
def support_plans(request: HttpRequest, actor: Actor) -> HttpResponse:
    can_change = permissions.has(actor, Perm.PRICE_RULES_CHANGE) and actor.organisation_id is not None
    form = forms.SupportPlanForm(request.POST or None)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("your role does not allow price_rules.change")
        if form.is_valid():
            try:
                catalog_services.create_support_plan(actor, organisation_id=actor.organisation_pk, **form.cleaned_data)
            except DomainError as exc:
                forms.add_domain_error(form, exc)
            else:
                messages.success(request, _("Support plan created."))
                return redirect("console:support_plans")
    plans = catalog_selectors.support_plans_for(actor).prefetch_related("assignments__customer")
    return _render(request, actor, "console/support_plans.html",
                   {"plans": plans, "form": form, "can_change": can_change})  # fmt: skip


# ---------------------------------------------------------------- users and roles


def _role_choices(actor: Actor, staff: bool | None) -> list[tuple[str, str]]:
    grantable = permissions.grantable_roles(actor)
    roles = list(StaffRole) if staff else list(CustomerRole) if staff is False else [*StaffRole, *CustomerRole]
    return [(r.value, str(r.label)) for r in roles if r.value in grantable]


@page(Perm.USERS_READ)
def users(request: HttpRequest, actor: Actor) -> HttpResponse:
    can_change = permissions.has(actor, Perm.USERS_CHANGE)
    own = selectors.customers_for(actor).filter(organisation_id=actor.organisation_id or 0)
    customers = [(c.pk, c.name) for c in own]
    form = forms.UserCreateForm(request.POST or None, roles=_role_choices(actor, None), customers=customers)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("your role does not allow users.change")
        if form.is_valid():
            data = form.cleaned_data
            try:
                tenancy_services.create_user(
                    actor, username=data["username"], email=data["email"], password=data["password"],
                    roles=data["roles"], customer_id=data["customer"],
                    organisation_id=None if data["customer"] else actor.organisation_id,
                )  # fmt: skip
            except DomainError as exc:
                forms.add_domain_error(form, exc)
            else:
                messages.success(request, _("User %(name)s created.") % {"name": data["username"]})
                return redirect("console:users")
    members = selectors.memberships_for(actor).order_by("organisation__legal_name", "customer__name", "user__username")
    return _render(request, actor, "console/users.html", {"members": members, "form": form, "can_change": can_change})


def _user_owner(user: Any) -> tuple[int, int | None]:
    m = Membership.objects.filter(user=user).select_related("customer").first()
    if m is None:
        return 0, None
    if m.customer is not None:
        return m.customer.organisation_id, m.customer_id
    return m.organisation_id or 0, None


@scoped_page(User, "user_id", Perm.USERS_READ, _user_owner)
def user_detail(request: HttpRequest, actor: Actor, user: Any) -> HttpResponse:
    m = selectors.memberships_for(actor).filter(user_id=user.pk).first()
    if m is None:
        raise Http404("no such user")
    can_change = selectors.memberships_for(actor, Perm.USERS_CHANGE).filter(pk=m.pk).exists()
    current = sorted(g.role for g in m.grants.all())
    form = forms.RolesForm(initial={"roles": current}, roles=_role_choices(actor, m.organisation_id is not None))
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("you may read this user but not change them")
        change: dict[str, Any] = {}
        if request.POST.get("do") == "roles":
            form = forms.RolesForm(request.POST, roles=_role_choices(actor, m.organisation_id is not None))
            if form.is_valid():
                change = {"roles": form.cleaned_data["roles"]}
        elif request.POST.get("do") in ("deactivate", "activate"):
            change = {"is_active": request.POST["do"] == "activate"}
        if change:
            try:
                tenancy_services.update_user(actor, user.pk, **change)
            except DomainError as exc:
                forms.add_domain_error(form, exc, prominent=True)
            else:
                messages.success(request, _("User %(name)s updated.") % {"name": user.get_username()})
                return redirect("console:user", user.pk)
    return _render(request, actor, "console/user.html", {
        "member": m, "roles": current, "form": form, "can_change": can_change,
        "is_self": user.pk == actor.user_id,
    })  # fmt: skip


# ---------------------------------------------------------------- audit log


@page(Perm.AUDIT_READ)
def audit_log(request: HttpRequest, actor: Actor) -> HttpResponse:
    customers = [(c.pk, c.name) for c in selectors.customers_for(actor)]
    form = forms.AuditFilterForm(request.GET or None, customers=customers)
    events = console.events_for(actor)
    if form.is_valid():
        data = form.cleaned_data
        if data["action"]:
            events = events.filter(action__icontains=data["action"])
        if data["actor"]:
            events = events.filter(actor_username__icontains=data["actor"])
        if data["customer"]:
            events = events.filter(customer_id=data["customer"])
        if data["since"]:
            events = events.filter(created_at__gte=dt.datetime.combine(data["since"], dt.time.min, tzinfo=dt.UTC))
        if data["until"]:
            end = dt.datetime.combine(data["until"] + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
            events = events.filter(created_at__lt=end)
    paginator = Paginator(events.order_by("-created_at", "-id"), 50)
    page_obj = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    template = "console/_audit_rows.html" if request.headers.get("HX-Request") else "console/audit.html"
    return _render(request, actor, template, {"form": form, "page": page_obj, "query": query.urlencode()})


# ---------------------------------------------------------------- the sales view


@page(Perm.INSIGHTS_READ)
def sales(request: HttpRequest, actor: Actor) -> HttpResponse:
    return _render(request, actor, "console/sales.html", {
        "renewals": console.renewals_due(actor),
        "spend": console.spend_changes(actor),
        "threshold": Decimal(25),
        "show_amounts": permissions.has(actor, Perm.INVOICES_READ),
        "topics": console.recurring_topics(actor),
    })  # fmt: skip
