"""Collections state changes: the policy, the engine, suspensions and reactivations, disputes, holds, payment
plans and exemptions. Each operation checks its permission, works in one transaction and records one audit
event per change; Partner Center is called after the commit that decided the call, never inside it.

Exactly once: a case's stage is a ``CaseAction`` row unique on ``(case, stage_key)``; a subscription a case
suspends is a ``Suspension`` row unique on ``(case, subscription)``, claimed (``claimed_at``) before Partner
Center is called, so two engines running at once never send one change twice. The customer row is locked
(:func:`cspdesk.payments.services.lock_customer_ledger`) while a case is decided, as payments lock it while
they allocate: a payment and a stage never cross.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from cspdesk.audit import services as audit
from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.core import clock, outbox
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, NotFound, ValidationFailed
from cspdesk.core.money import quantize
from cspdesk.partnercenter import services as pc_services
from cspdesk.partnercenter.client import PartnerCenterClient
from cspdesk.partnercenter.errors import PartnerCenterError
from cspdesk.partnercenter.models import StatusChangeState, Subscription, SubscriptionStatus
from cspdesk.payments import selectors as payment_selectors
from cspdesk.payments import services as payments
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.models import Customer, Organisation, OrganisationKind
from cspdesk.tenancy.permissions import Perm

from . import evaluation, notices, selectors
from .models import (
    ActionStatus,
    Case,
    CaseAction,
    CaseStatus,
    CloseReason,
    Dispute,
    DisputeStatus,
    Exemption,
    Hold,
    Instalment,
    PaymentPlan,
    PaymentPlanInvoice,
    PlanStatus,
    Policy,
    StageAction,
    Suspension,
    SuspensionState,
)

log = logging.getLogger(__name__)
ZERO = Decimal(0)
DEFAULT_SUSPENSION_CAP = 20
CLAIM_TIMEOUT = dt.timedelta(minutes=10)
SYSTEM = Actor.system("collections")
ClientFactory = Callable[[Organisation], PartnerCenterClient]


def suspension_cap() -> int:
    return int(getattr(settings, "CSPDESK_COLLECTIONS_SUSPENSION_CAP", DEFAULT_SUSPENSION_CAP))


def default_client_factory(organisation: Organisation) -> PartnerCenterClient:
    return PartnerCenterClient.for_organisation(organisation)


def _pc_organisation(customer: Customer) -> Organisation:
    """Whose Partner Center tenant holds the customer's subscriptions: a reseller's customers sit with its
    indirect provider."""
    org = customer.organisation
    if org.kind == OrganisationKind.INDIRECT_RESELLER and org.parent is not None:
        return org.parent
    return org


# ---------------------------------------------------------------- policy


def _policy_organisation(actor: Actor, organisation_id: int | None) -> Organisation:
    if organisation_id is None:
        if actor.organisation_id is None:
            raise ValidationFailed("say which organisation the policy is for", field="organisation_id")
        organisation_id = actor.organisation_id
    if not actor.is_system and organisation_id != actor.organisation_id:
        raise NotFound(f"no organisation with id {organisation_id}")
    org = Organisation.objects.filter(pk=organisation_id).first()
    if org is None:
        raise NotFound(f"no organisation with id {organisation_id}")
    if not org.bills_customers:
        raise ValidationFailed(f"{org} bills its resellers, not customers: each reseller sets its own policy",
                               field="organisation_id")  # fmt: skip
    return org


def _rules_or_error(data: dict[str, Any]) -> evaluation.Rules:
    try:
        return evaluation.parse_rules(data)
    except evaluation.PolicyError as exc:
        raise ValidationFailed(exc.message if exc.message.startswith(exc.field) else f"{exc.field}: {exc.message}",
                               field=exc.field) from None  # fmt: skip


@transaction.atomic
def set_policy(
    actor: Actor, data: dict[str, Any], *, organisation_id: int | None = None, customer_id: int | None = None
) -> Policy:
    """Create or replace the organisation's policy, or (``customer_id``) one customer's own policy."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    rules = _rules_or_error(data)
    customer: Customer | None = None
    if customer_id is not None:
        customer = tenancy_selectors.get_or_404(
            selectors.customers_in_scope(actor, Perm.COLLECTIONS_CHANGE), customer_id, "customer"
        )
        assert customer is not None
        org = customer.organisation
    else:
        org = _policy_organisation(actor, organisation_id)
    values = {**rules.as_dict(), "updated_by": actor.username, "updated_at": clock.now()}
    existing = Policy.objects.select_for_update().filter(organisation=org, customer=customer).first()
    before = selectors.rules_of(existing).as_dict() if existing else None
    if existing is None:
        try:
            with transaction.atomic():
                policy = Policy.objects.create(organisation=org, customer=customer, **values)
        except IntegrityError:
            raise Conflict("the policy was created meanwhile; send it again", code="policy_conflict") from None
    else:
        for name, value in values.items():
            setattr(existing, name, value)
        existing.save()
        policy = existing
    audit.record(actor, "collections.policy_set", obj=policy, organisation_id=org.pk,
                 customer_id=customer.pk if customer else None, before=before, after=rules.as_dict())  # fmt: skip
    return policy


@transaction.atomic
def remove_customer_policy(actor: Actor, customer_id: int) -> None:
    """The customer follows its organisation's policy again."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    customer = tenancy_selectors.get_or_404(
        selectors.customers_in_scope(actor, Perm.COLLECTIONS_CHANGE), customer_id, "customer"
    )
    policy = Policy.objects.select_for_update().filter(customer=customer).first()
    if policy is None:
        raise NotFound(f"{customer.name} has no policy of its own")
    before = selectors.rules_of(policy).as_dict()
    audit.record(actor, "collections.policy_removed", obj=policy, organisation_id=customer.organisation_id,
                 customer_id=customer.pk, before=before)  # fmt: skip
    policy.delete()


@transaction.atomic
def exempt_customer(actor: Actor, customer_id: int, *, reason: str) -> Exemption:
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    customer = tenancy_selectors.get_or_404(
        selectors.customers_in_scope(actor, Perm.COLLECTIONS_CHANGE), customer_id, "customer"
    )
    if not reason.strip():
        raise ValidationFailed("say why the customer is exempt", field="reason")
    if Exemption.objects.filter(customer=customer).exists():
        raise Conflict(f"{customer.name} is already exempt", code="already_exempt")
    exemption = Exemption.objects.create(customer=customer, reason=reason.strip()[:300], created_by=actor.username)
    audit.record(actor, "collections.customer_exempted", obj=exemption, organisation_id=customer.organisation_id,
                 customer_id=customer.pk, after={"reason": exemption.reason})  # fmt: skip
    return exemption


@transaction.atomic
def end_exemption(actor: Actor, customer_id: int) -> None:
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    customer = tenancy_selectors.get_or_404(
        selectors.customers_in_scope(actor, Perm.COLLECTIONS_CHANGE), customer_id, "customer"
    )
    exemption = Exemption.objects.filter(customer=customer).first()
    if exemption is None:
        raise NotFound(f"{customer.name} is not exempt")
    audit.record(actor, "collections.exemption_ended", obj=exemption, organisation_id=customer.organisation_id,
                 customer_id=customer.pk, before={"reason": exemption.reason})  # fmt: skip
    exemption.delete()


# ---------------------------------------------------------------- disputes, holds, payment plans


def _invoice_for_dispute(actor: Actor, invoice_id: int) -> Invoice:
    customers = selectors.customers_in_scope(actor, Perm.DISPUTES_CHANGE)
    qs = Invoice.objects.filter(customer__in=customers, kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED)
    return tenancy_selectors.get_or_404(qs.select_related("customer"), invoice_id, "invoice")


@transaction.atomic
def open_dispute(
    actor: Actor, invoice_id: int, *, reason: str, source: str = "manual", ticket_id: int | None = None
) -> Dispute:
    """The customer questions the invoice: collections leave it out until the dispute is closed. A second
    dispute on an invoice with one open returns the open one."""
    permissions.require(actor, Perm.DISPUTES_CHANGE)
    invoice = _invoice_for_dispute(actor, invoice_id)
    if not reason.strip():
        raise ValidationFailed("say what the customer questions", field="reason")
    assert invoice.customer_id is not None
    payments.lock_customer_ledger(invoice.customer_id)
    existing = Dispute.objects.filter(invoice=invoice, status=DisputeStatus.OPEN).first()
    if existing is not None:
        return existing
    dispute = Dispute.objects.create(invoice=invoice, customer_id=invoice.customer_id, reason=reason.strip()[:500],
                                     source=source[:32] or "manual", ticket_id=ticket_id,
                                     opened_by=actor.username)  # fmt: skip
    audit.record(actor, "collections.dispute_opened", obj=dispute, organisation_id=invoice.organisation_id,
                 customer_id=invoice.customer_id, after={"invoice": invoice.number, "reason": dispute.reason,
                 "source": dispute.source, "ticket_id": ticket_id})  # fmt: skip
    refresh_case(invoice.customer_id)
    return dispute


@transaction.atomic
def close_dispute(actor: Actor, dispute_id: int, *, resolution: str) -> Dispute:
    """Answered: the invoice counts for collections again (from its own due date) if it is still open."""
    permissions.require(actor, Perm.DISPUTES_CHANGE)
    dispute = tenancy_selectors.get_or_404(selectors.disputes_for(actor), dispute_id, "dispute")
    payments.lock_customer_ledger(dispute.customer_id)
    dispute = Dispute.objects.select_for_update().select_related("invoice").get(pk=dispute.pk)
    if dispute.status == DisputeStatus.CLOSED:
        raise Conflict(f"dispute {dispute.pk} is already closed", code="already_closed")
    if not resolution.strip():
        raise ValidationFailed("say how the dispute was resolved", field="resolution")
    dispute.status, dispute.resolution = DisputeStatus.CLOSED, resolution.strip()[:500]
    dispute.closed_by, dispute.closed_at = actor.username, clock.now()
    dispute.save()
    audit.record(actor, "collections.dispute_closed", obj=dispute, organisation_id=dispute.invoice.organisation_id,
                 customer_id=dispute.customer_id, after={"invoice": dispute.invoice.number,
                 "resolution": dispute.resolution})  # fmt: skip
    return dispute


@transaction.atomic
def place_hold(actor: Actor, customer_id: int, *, reason: str, until: dt.date) -> Hold:
    """Hold the customer's collections (no new stage runs) until ``until`` inclusive."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    customer = tenancy_selectors.get_or_404(
        selectors.customers_in_scope(actor, Perm.COLLECTIONS_CHANGE), customer_id, "customer"
    )
    if not reason.strip():
        raise ValidationFailed("say why collections are held", field="reason")
    if until < clock.today():
        raise ValidationFailed(f"the hold ends on {until}, which is in the past", field="until")
    hold = Hold.objects.create(customer=customer, reason=reason.strip()[:300], until=until, created_by=actor.username)
    audit.record(actor, "collections.hold_placed", obj=hold, organisation_id=customer.organisation_id,
                 customer_id=customer.pk, after={"reason": hold.reason, "until": until})  # fmt: skip
    return hold


@transaction.atomic
def release_hold(actor: Actor, hold_id: int) -> Hold:
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    hold = tenancy_selectors.get_or_404(selectors.holds_for(actor, Perm.COLLECTIONS_CHANGE), hold_id, "hold")
    if hold.released_at is not None:
        raise Conflict(f"hold {hold.pk} was already released", code="already_released")
    hold.released_at, hold.released_by = clock.now(), actor.username
    hold.save(update_fields=["released_at", "released_by"])
    audit.record(actor, "collections.hold_released", obj=hold, organisation_id=hold.customer.organisation_id,
                 customer_id=hold.customer_id, after={"reason": hold.reason})  # fmt: skip
    return hold


def _plan_paid(plan: PaymentPlan) -> Decimal:
    """Paid towards the plan: what its invoices had open when it was agreed, less what they have open now."""
    ids = list(PaymentPlanInvoice.objects.filter(plan=plan).values_list("invoice_id", flat=True))
    now_open = sum(
        (payment_selectors.open_of(i) for i in payment_selectors.with_open_amount(Invoice.objects.filter(pk__in=ids))),
        ZERO,
    )
    return Decimal(plan.open_at_start) - max(now_open, ZERO)


@transaction.atomic
def create_payment_plan(
    actor: Actor, customer_id: int, *, invoice_ids: list[int], instalments: list[tuple[dt.date, Decimal]],
    note: str = "",
) -> PaymentPlan:  # fmt: skip
    """Agree instalments for some open invoices; they must add up to what those invoices have open."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    customer = tenancy_selectors.get_or_404(
        selectors.customers_in_scope(actor, Perm.COLLECTIONS_CHANGE), customer_id, "customer"
    )
    payments.lock_customer_ledger(customer.pk)
    if not invoice_ids:
        raise ValidationFailed("name the invoices the plan pays", field="invoice_ids")
    if not instalments:
        raise ValidationFailed("a plan has at least one instalment", field="instalments")
    open_by_id = {i.id: i for i in selectors.open_invoices(customer.pk)}
    chosen = []
    for n, pk in enumerate(invoice_ids):
        if pk not in open_by_id:
            raise ValidationFailed(f"invoice {pk} is not an open invoice of {customer.name}", field=f"invoice_ids[{n}]")
        chosen.append(open_by_id[pk])
    currencies = {i.currency for i in chosen}
    if len(currencies) != 1:
        raise ValidationFailed("a plan's invoices share one currency", field="invoice_ids")
    currency = currencies.pop()
    today = clock.today()
    dates: list[dt.date] = []
    for n, (due, amount) in enumerate(instalments):
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= ZERO:
            raise ValidationFailed("an instalment is a positive amount", field=f"instalments[{n}].amount")
        if due < today:
            raise ValidationFailed(f"instalment due {due} is in the past", field=f"instalments[{n}].due_date")
        if dates and due <= dates[-1]:
            raise ValidationFailed("instalments are in date order, one per day", field=f"instalments[{n}].due_date")
        dates.append(due)
    total = quantize(sum((i.amount for i in chosen), ZERO), currency)
    planned = quantize(sum((a for _, a in instalments), ZERO), currency)
    if planned != total:
        raise ValidationFailed(f"the instalments add up to {planned} {currency}; the invoices have {total} {currency} "
                               "open",
                               field="instalments")  # fmt: skip
    if PaymentPlan.objects.filter(customer=customer, status=PlanStatus.ACTIVE).exists():
        raise Conflict(f"{customer.name} already has an active payment plan", code="plan_exists")
    plan = PaymentPlan.objects.create(customer=customer, currency=currency, open_at_start=total, note=note[:300],
                                      created_by=actor.username)  # fmt: skip
    PaymentPlanInvoice.objects.bulk_create([PaymentPlanInvoice(plan=plan, invoice_id=i.id) for i in chosen])
    Instalment.objects.bulk_create([Instalment(plan=plan, due_date=d, amount=quantize(a, currency))
                                    for d, a in instalments])  # fmt: skip
    audit.record(actor, "collections.payment_plan_agreed", obj=plan, organisation_id=customer.organisation_id,
                 customer_id=customer.pk, after={"invoices": [i.number for i in chosen], "currency": currency,
                 "instalments": [{"due_date": d, "amount": a} for d, a in instalments]})  # fmt: skip
    return plan


@transaction.atomic
def cancel_payment_plan(actor: Actor, plan_id: int, *, reason: str) -> PaymentPlan:
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    plan = tenancy_selectors.get_or_404(selectors.plans_for(actor, Perm.COLLECTIONS_CHANGE), plan_id, "payment plan")
    if plan.status != PlanStatus.ACTIVE:
        raise Conflict(f"payment plan {plan.pk} is {plan.status}", code="plan_not_active")
    _end_plan(actor, plan, PlanStatus.CANCELLED, reason)
    return plan


def _end_plan(actor: Actor, plan: PaymentPlan, status: str, reason: str = "") -> None:
    plan.status, plan.ended_at = status, clock.now()
    plan.save(update_fields=["status", "ended_at"])
    audit.record(actor, f"collections.payment_plan_{status}", obj=plan, organisation_id=plan.customer.organisation_id,
                 customer_id=plan.customer_id, after={"status": status, "reason": reason,
                 "paid": quantize(_plan_paid(plan), plan.currency)})  # fmt: skip


def _plan_pauses(actor: Actor, customer_id: int, today: dt.date, dry_run: bool) -> PaymentPlan | None:
    """The active plan that pauses the case today; a late plan is marked broken, a paid one completed."""
    plan = PaymentPlan.objects.filter(customer_id=customer_id, status=PlanStatus.ACTIVE).first()
    if plan is None:
        return None
    schedule = [(i.due_date, Decimal(i.amount)) for i in plan.instalments.all()]
    state = evaluation.plan_state(schedule, _plan_paid(plan), today)
    if state == "on_time":
        return plan
    if not dry_run:
        _end_plan(actor, plan, PlanStatus.COMPLETED if state == "completed" else PlanStatus.BROKEN)
    return None


def _active_hold(customer_id: int, today: dt.date) -> Hold | None:
    return Hold.objects.filter(customer_id=customer_id, released_at__isnull=True, until__gte=today).first()


# ---------------------------------------------------------------- the engine


@dataclass
class RunReport:
    today: dt.date
    dry_run: bool
    cap: int
    actions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    partner_center: list[dict[str, Any]] = field(default_factory=list)
    closed: list[dict[str, Any]] = field(default_factory=list)
    suspensions_started: int = 0

    def take_suspension(self) -> bool:
        """One of the run's ``cap`` places to start suspending a customer; ``False`` when they are taken.
        (A run split over workers counts the places in the database: :mod:`cspdesk.collections.runs`.)"""
        if self.suspensions_started >= self.cap:
            return False
        self.suspensions_started += 1
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today, "dry_run": self.dry_run, "suspension_cap": self.cap, "actions": self.actions,
            "closed": self.closed, "partner_center": self.partner_center, "skipped": self.skipped,
        }  # fmt: skip


def _candidate_customers(actor: Actor, perm: Perm, today: dt.date, organisation_id: int | None) -> list[int]:
    scope = selectors.customers_in_scope(actor, perm)
    if organisation_id is not None:
        scope = scope.filter(organisation_id=organisation_id)
    overdue = Invoice.objects.filter(
        customer__in=scope, kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED, due_date__lt=today
    ).values_list("customer_id", flat=True)
    with_case = Case.objects.filter(customer__in=scope, status=CaseStatus.OPEN).values_list("customer_id", flat=True)
    return sorted(set(overdue) | set(with_case))


def run(
    actor: Actor,
    *,
    today: dt.date | None = None,
    dry_run: bool = False,
    cap: int | None = None,
    organisation_id: int | None = None,
    client_factory: ClientFactory | None = None,
) -> RunReport:
    """Work out every in-scope customer's overdue state and run each stage that is due today, once.

    ``dry_run`` reports what would happen and changes nothing (no rows, no e-mail, no Partner Center call).
    ``cap`` limits how many customers this run starts suspending; the rest wait for a billing admin's
    approval (:func:`approve_suspension`). Suspensions and reactivations that failed before are retried.
    """
    permissions.require(actor, Perm.COLLECTIONS_READ if dry_run else Perm.COLLECTIONS_CHANGE)
    today = today or clock.today()
    report = RunReport(today, dry_run, suspension_cap() if cap is None else cap)
    perm = Perm.COLLECTIONS_READ if dry_run else Perm.COLLECTIONS_CHANGE
    for customer_id in _candidate_customers(actor, perm, today, organisation_id):
        _decide(actor, customer_id, today, report)
    if not dry_run:
        factory = client_factory or default_client_factory
        for case_id in _cases_with_partner_center_work(actor, organisation_id):
            report.partner_center += process_case(case_id, client_factory=factory, today=today)
        outbox.flush()  # what the workers' tasks have not sent yet (none run, or none is running)
        audit.record(actor, "collections.run", object_type="collections.run", object_id=str(today),
                     after={"today": today, "actions": len(report.actions), "closed": len(report.closed),
                            "partner_center": len(report.partner_center)})  # fmt: skip
    return report


def _cases_with_partner_center_work(actor: Actor, organisation_id: int | None) -> list[int]:
    scope = selectors.cases_for(actor, Perm.COLLECTIONS_CHANGE)
    if organisation_id is not None:
        scope = scope.filter(organisation_id=organisation_id)
    busy = Suspension.objects.filter(
        Q(state__in=[SuspensionState.PENDING, SuspensionState.FAILED], case__status=CaseStatus.OPEN)
        | Q(state=SuspensionState.REACTIVATING)
    ).values_list("case_id", flat=True)
    renewing = CaseAction.objects.filter(
        action=StageAction.CANCEL_AT_RENEWAL, status=ActionStatus.IN_PROGRESS, case__status=CaseStatus.OPEN
    ).values_list("case_id", flat=True)
    ids = set(busy) | set(renewing)
    return sorted(scope.filter(pk__in=ids).values_list("pk", flat=True))


def _decide(actor: Actor, customer_id: int, today: dt.date, report: RunReport) -> None:
    """One customer: open, update or close its case and run the stage due today (in one transaction)."""
    with transaction.atomic():
        if report.dry_run:
            customer = Customer.objects.select_related("organisation").get(pk=customer_id)
        else:
            payments.lock_customer_ledger(customer_id)
            customer = Customer.objects.select_related("organisation").get(pk=customer_id)
        case = Case.objects.filter(customer=customer, status=CaseStatus.OPEN).first()
        policy = selectors.policy_for_customer(customer)
        rules = selectors.rules_of(policy) if policy else None
        pos = evaluation.position(selectors.open_invoices(customer.pk), today, rules.grace_days if rules else 0)
        base = {"customer_id": customer.pk, "customer": customer.name}
        if case is not None and pos.cleared:
            if not report.dry_run:
                _close_case(actor, case, CloseReason.CLEARED, "")
            report.closed.append({**base, "case_id": case.pk, "reason": CloseReason.CLEARED.value})
            return
        if rules is None:
            report.skipped.append({**base, "reason": "no_policy"})
            return
        if Exemption.objects.filter(customer=customer).exists():
            report.skipped.append({**base, "reason": "exempt"})
            return
        if pos.cleared:
            return
        if case is None:
            if not pos.meets_minimum(rules):
                report.skipped.append({**base, "reason": "below_minimum", "overdue": pos.amounts})
                return
            if not report.dry_run:
                case = _open_case(actor, customer, pos, today)
        elif not report.dry_run:
            _update_amounts(case, pos)
        hold = _active_hold(customer.pk, today)
        if hold is not None:
            report.skipped.append({**base, "reason": "on_hold", "until": hold.until})
            return
        plan = _plan_pauses(actor, customer.pk, today, report.dry_run)
        if plan is not None:
            report.skipped.append({**base, "reason": "payment_plan", "plan_id": plan.pk})
            return
        if not pos.meets_minimum(rules):
            report.skipped.append({**base, "reason": "below_minimum", "overdue": pos.amounts})
            return
        done = set(case.actions.values_list("stage_key", flat=True)) if case else set()
        stage = evaluation.next_stage(
            rules.stages, done, pos.days_past_due, case.last_stage_on if case else None, today
        )
        if stage is None:
            return
        entry = {**base, "case_id": case.pk if case else None, "stage": stage.key, "action": stage.action,
                 "days_past_due": pos.days_past_due, "overdue": pos.amounts,
                 "invoices": [i.number for i in pos.invoices]}  # fmt: skip
        if stage.action == StageAction.SUSPEND:
            covered = _covered_subscriptions(customer, rules)
            entry["subscriptions"] = [str(s.pc_subscription_id) for s in covered]
            if covered and not report.take_suspension():
                entry["status"] = ActionStatus.AWAITING_APPROVAL.value
            else:
                entry["status"] = ActionStatus.IN_PROGRESS.value if covered else ActionStatus.DONE.value
        if report.dry_run:
            report.actions.append(entry)
            return
        assert case is not None
        if _run_stage(actor, case, customer, stage, rules, pos, today, entry):
            report.actions.append(entry)


def _open_case(actor: Actor, customer: Customer, pos: evaluation.Position, today: dt.date) -> Case:
    try:
        with transaction.atomic():
            case = Case.objects.create(customer=customer, organisation=customer.organisation, opened_on=today,
                                       oldest_due_date=pos.oldest_due, overdue_amounts=_amounts_json(pos))  # fmt: skip
    except IntegrityError:  # another engine opened it first
        return Case.objects.get(customer=customer, status=CaseStatus.OPEN)
    audit.record(actor, "collections.case_opened", obj=case, organisation_id=customer.organisation_id,
                 customer_id=customer.pk, after={"overdue": pos.amounts, "oldest_due_date": pos.oldest_due,
                 "invoices": [i.number for i in pos.invoices]})  # fmt: skip
    return case


def _amounts_json(pos: evaluation.Position) -> dict[str, str]:
    return {c: str(quantize(a, c)) for c, a in sorted(pos.amounts.items())}


def _update_amounts(case: Case, pos: evaluation.Position) -> None:
    amounts = _amounts_json(pos)
    if amounts != case.overdue_amounts or pos.oldest_due != case.oldest_due_date:
        Case.objects.filter(pk=case.pk).update(overdue_amounts=amounts, oldest_due_date=pos.oldest_due)
        case.overdue_amounts, case.oldest_due_date = amounts, pos.oldest_due


def _facts(sub: Subscription) -> evaluation.SubscriptionFacts:
    return evaluation.SubscriptionFacts(sub.status, sub.product_id, sub.offer_name, sub.billing_type,
                                        sub.billing_cycle)  # fmt: skip


def _covered_subscriptions(customer: Customer, rules: evaluation.Rules) -> list[Subscription]:
    subs = Subscription.objects.filter(customer=customer).order_by("pk")
    return [s for s in subs if evaluation.coverage(_facts(s), rules) == "covered"]


def _renewing_subscriptions(customer: Customer, rules: evaluation.Rules) -> list[Subscription]:
    live = [SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED]
    subs = Subscription.objects.filter(customer=customer, auto_renew=True, status__in=live)
    return [s for s in subs.order_by("pk") if evaluation.category(_facts(s)) in rules.categories]


def _run_stage(
    actor: Actor,
    case: Case,
    customer: Customer,
    stage: evaluation.Stage,
    rules: evaluation.Rules,
    pos: evaluation.Position,
    today: dt.date,
    entry: dict[str, Any],
) -> bool:
    """Record the stage (once: the unique row decides) and act. ``False`` when another engine ran it."""
    status = entry.get("status", ActionStatus.DONE.value)
    try:
        with transaction.atomic():
            action = CaseAction.objects.create(case=case, stage_key=stage.key, action=stage.action, days=stage.days,
                                               status=status, run_on=today)  # fmt: skip
    except IntegrityError:
        return False
    details: dict[str, Any] = {"invoices": [i.number for i in pos.invoices], "overdue": _amounts_json(pos),
                               "days_past_due": pos.days_past_due}  # fmt: skip
    if stage.action in (StageAction.REMINDER, StageAction.FINAL_NOTICE):
        final = stage.action == StageAction.FINAL_NOTICE
        later = [s for s in rules.stages if s.days > stage.days]
        mail = notices.overdue_notice(customer, pos, final=final, next_step=later[0] if later else None, rules=rules)
        details.update(_send(mail, f"collections.action:{action.pk}", stage.action, customer))
    elif stage.action == StageAction.SUSPEND:
        subs = _covered_subscriptions(customer, rules)
        details["subscriptions"] = [s.pk for s in subs]
        if status != ActionStatus.AWAITING_APPROVAL:
            Suspension.objects.bulk_create([Suspension(case=case, subscription=s) for s in subs])
    elif stage.action == StageAction.CANCEL_AT_RENEWAL:
        subs = _renewing_subscriptions(customer, rules)
        details["subscriptions"] = [s.pk for s in subs]
        action.status = ActionStatus.IN_PROGRESS if subs else ActionStatus.DONE
    elif stage.action == StageAction.HAND_OVER:
        case.handed_over = True
        to = payments.billing_admin_emails(customer.organisation_id)
        if to:
            mail = notices.hand_over_notice(customer, case.pk, pos, to)
            details.update(_send(mail, f"collections.action:{action.pk}", stage.action, customer))
        else:
            details.update({"sent": False, "to": [], "why": "the organisation has no billing admin with an e-mail"})
    action.details = details
    action.save(update_fields=["details", "status"])
    case.last_stage_key, case.last_stage_on = stage.key, today
    case.save(update_fields=["last_stage_key", "last_stage_on", "handed_over"])
    entry["status"] = action.status
    audit.record(actor, f"collections.{stage.action}", obj=action, organisation_id=customer.organisation_id,
                 customer_id=customer.pk, after={"case_id": case.pk, "stage": stage.key, "status": action.status,
                 **details})  # fmt: skip
    return True


def _send(mail: notices.Mail, key: str, what: str, customer: Customer) -> dict[str, Any]:
    """Queue the e-mail in the caller's transaction: it goes out once that commits (:mod:`cspdesk.core.outbox`)."""
    if not mail.to:
        return {"sent": False, "to": [], "subject": mail.subject, "why": "no billing e-mail address"}
    queued = outbox.queue(key, subject=mail.subject, body=mail.body, to=mail.to, source=f"collections.{what}",
                          organisation_id=customer.organisation_id, customer_id=customer.pk)  # fmt: skip
    return {"sent": True, "mail_id": queued.pk, "to": mail.to, "subject": mail.subject}


def _close_case(actor: Actor, case: Case, reason: str, note: str) -> None:
    """Close the case; every subscription it suspended is queued for reactivation (after commit)."""
    case.status, case.closed_on, case.close_reason = CaseStatus.CLOSED, clock.today(), reason
    case.close_note, case.closed_by = note[:300], actor.username
    case.save(update_fields=["status", "closed_on", "close_reason", "close_note", "closed_by"])
    to_reactivate = case.suspensions.filter(state=SuspensionState.SUSPENDED).update(state=SuspensionState.REACTIVATING)
    case.suspensions.filter(state__in=[SuspensionState.PENDING, SuspensionState.FAILED]).update(
        state=SuspensionState.CANCELLED
    )
    CaseAction.objects.filter(case=case, status=ActionStatus.AWAITING_APPROVAL).update(status=ActionStatus.DONE)
    audit.record(actor, "collections.case_closed", obj=case, organisation_id=case.organisation_id,
                 customer_id=case.customer_id, after={"reason": reason, "note": note,
                 "reactivating": to_reactivate})  # fmt: skip
    if to_reactivate:
        _enqueue_processing(case.pk)


def _enqueue_processing(case_id: int) -> None:
    from . import tasks

    transaction.on_commit(lambda: tasks.process_case.enqueue(case_id))


def refresh_case(customer_id: int) -> Case | None:
    """Re-check the open case of a customer now (a money event, a dispute): update its overdue amount and close
    it when nothing collectible is overdue any more. A partial payment keeps the case at its stage. The caller
    holds the customer's ledger lock."""
    case = Case.objects.filter(customer_id=customer_id, status=CaseStatus.OPEN).first()
    if case is None:
        return None
    customer = case.customer
    policy = selectors.policy_for_customer(customer)
    grace = selectors.rules_of(policy).grace_days if policy else 0
    pos = evaluation.position(selectors.open_invoices(customer_id), clock.today(), grace)
    if pos.cleared:
        _close_case(SYSTEM, case, CloseReason.CLEARED, "")
    else:
        _update_amounts(case, pos)
    return case


def on_balance_changed(customer_id: int) -> None:
    """The payments hook: every payment, allocation, reversal, refund and credit applied lands here."""
    refresh_case(customer_id)


@transaction.atomic
def lift_case(actor: Actor, case_id: int, *, reason: str, hold_until: dt.date | None = None) -> Case:
    """A billing admin ends the case: what it suspended is reactivated. With ``hold_until`` a hold keeps the
    engine from opening a new case for the same balance before then."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    case = tenancy_selectors.get_or_404(selectors.cases_for(actor, Perm.COLLECTIONS_CHANGE), case_id, "case")
    if not reason.strip():
        raise ValidationFailed("say why the case is lifted", field="reason")
    payments.lock_customer_ledger(case.customer_id)
    case = Case.objects.select_for_update().get(pk=case.pk)
    if case.status != CaseStatus.OPEN:
        raise Conflict(f"case {case.pk} is already closed", code="case_closed")
    _close_case(actor, case, CloseReason.LIFTED, reason.strip())
    if hold_until is not None:
        place_hold(actor, case.customer_id, reason=reason, until=hold_until)
    return case


@transaction.atomic
def approve_suspension(actor: Actor, case_id: int) -> CaseAction:
    """Let a suspension that waited beyond the run's cap go ahead (Partner Center is called after commit)."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    case = tenancy_selectors.get_or_404(selectors.cases_for(actor, Perm.COLLECTIONS_CHANGE), case_id, "case")
    payments.lock_customer_ledger(case.customer_id)
    action = CaseAction.objects.select_for_update().filter(case=case, action=StageAction.SUSPEND).first()
    if action is None or action.status != ActionStatus.AWAITING_APPROVAL or case.status != CaseStatus.OPEN:
        raise Conflict(f"case {case.pk} has no suspension waiting for approval", code="nothing_to_approve")
    policy = selectors.policy_for_customer(case.customer)
    if policy is None:
        raise Conflict(f"{case.customer.name} has no collections policy any more", code="no_policy")
    subs = _covered_subscriptions(case.customer, selectors.rules_of(policy))
    Suspension.objects.bulk_create([Suspension(case=case, subscription=s) for s in subs], ignore_conflicts=True)
    action.status = ActionStatus.IN_PROGRESS if subs else ActionStatus.DONE
    action.approved_by = actor.username
    action.details = {**action.details, "subscriptions": [s.pk for s in subs]}
    action.save(update_fields=["status", "approved_by", "details"])
    audit.record(actor, "collections.suspension_approved", obj=action, organisation_id=case.organisation_id,
                 customer_id=case.customer_id, after={"case_id": case.pk,
                 "subscriptions": [s.pk for s in subs]})  # fmt: skip
    _enqueue_processing(case.pk)
    return action


@transaction.atomic
def reject_suspension(actor: Actor, case_id: int, *, reason: str) -> CaseAction:
    """A billing admin decides that a suspension waiting beyond the run's cap does not go ahead: nothing is
    suspended for this stage (it counts as run, so no later run starts it again) and the case stays open for
    its later stages."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    case = tenancy_selectors.get_or_404(selectors.cases_for(actor, Perm.COLLECTIONS_CHANGE), case_id, "case")
    if not reason.strip():
        raise ValidationFailed("say why the suspension does not go ahead", field="reason")
    payments.lock_customer_ledger(case.customer_id)
    action = CaseAction.objects.select_for_update().filter(case=case, action=StageAction.SUSPEND).first()
    if action is None or action.status != ActionStatus.AWAITING_APPROVAL or case.status != CaseStatus.OPEN:
        raise Conflict(f"case {case.pk} has no suspension waiting for approval", code="nothing_to_approve")
    action.status = ActionStatus.DONE
    action.details = {**action.details, "rejected_by": actor.username, "rejected_reason": reason.strip()[:300]}
    action.save(update_fields=["status", "details"])
    audit.record(actor, "collections.suspension_rejected", obj=action, organisation_id=case.organisation_id,
                 customer_id=case.customer_id, after={"case_id": case.pk, "reason": reason.strip()[:300],
                 "subscriptions": action.details.get("subscriptions", [])})  # fmt: skip
    return action


def approve_all(actor: Actor, organisation_id: int | None = None) -> list[int]:
    """Approve every suspension waiting in the actor's scope; returns the case ids."""
    permissions.require(actor, Perm.COLLECTIONS_CHANGE)
    qs = CaseAction.objects.filter(status=ActionStatus.AWAITING_APPROVAL, case__status=CaseStatus.OPEN,
                                   case__in=selectors.cases_for(actor, Perm.COLLECTIONS_CHANGE))  # fmt: skip
    if organisation_id is not None:
        qs = qs.filter(case__organisation_id=organisation_id)
    ids = sorted(set(qs.values_list("case_id", flat=True)))
    for case_id in ids:
        approve_suspension(actor, case_id)
    return ids


# ---------------------------------------------------------------- Partner Center work (after commit)


def _claim(suspension_id: int, states: list[str]) -> bool:
    now = clock.now()
    return bool(
        Suspension.objects.filter(pk=suspension_id, state__in=states)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT))
        .update(claimed_at=now)
    )


def process_case(
    case_id: int, *, client_factory: ClientFactory | None = None, today: dt.date | None = None
) -> list[dict[str, Any]]:
    """Send the case's pending Partner Center changes: suspensions (open case), reactivations (closed case),
    auto-renewal turned off. Safe to run twice at once and to retry."""
    case = Case.objects.select_related("customer", "customer__organisation").get(pk=case_id)
    factory = client_factory or default_client_factory
    results: list[dict[str, Any]] = []
    pending = case.suspensions.select_related("subscription")
    suspend = list(pending.filter(state__in=[SuspensionState.PENDING, SuspensionState.FAILED]))
    reactivate = list(pending.filter(state=SuspensionState.REACTIVATING))
    renewing = CaseAction.objects.filter(case=case, action=StageAction.CANCEL_AT_RENEWAL,
                                         status=ActionStatus.IN_PROGRESS).first()  # fmt: skip
    if not (suspend and case.status == CaseStatus.OPEN) and not reactivate and renewing is None:
        return results
    try:
        client = factory(_pc_organisation(case.customer))
    except PartnerCenterError as exc:
        for s in suspend + reactivate:
            results.append({"case_id": case.pk, "subscription": s.subscription_id, "ok": False, "error": str(exc)})
        return results
    with client:
        if case.status == CaseStatus.OPEN:
            for s in suspend:
                results.append(_suspend_one(case, s, client))
            _finish_suspend_action(case)
            if renewing is not None:
                results += _turn_off_renewal(case, renewing, client)
        for s in reactivate:
            results.append(_reactivate_one(case, s, client))
    _finish_reactivation(case)
    return results


def _suspend_one(case: Case, s: Suspension, client: PartnerCenterClient) -> dict[str, Any]:
    base = {"case_id": case.pk, "subscription": s.subscription_id, "change": "suspend"}
    if not _claim(s.pk, [SuspensionState.PENDING, SuspensionState.FAILED]):
        return {**base, "ok": None, "note": "claimed by another run"}
    customer = case.customer
    try:
        change = pc_services.suspend_subscription(SYSTEM, s.subscription_id, client, reason="non-payment",
                                                  idempotency_key=f"collections:{s.pk}:suspend")  # fmt: skip
        confirmed = (
            change.state == StatusChangeState.SUCCEEDED
            and Subscription.objects.get(pk=s.subscription_id).status == SubscriptionStatus.SUSPENDED
        )
        error = "" if confirmed else "Partner Center did not confirm the suspension"
    except PartnerCenterError as exc:
        confirmed, error = False, str(exc)
    with transaction.atomic():
        if confirmed:
            open_states = [SuspensionState.PENDING, SuspensionState.FAILED]
            won = Suspension.objects.filter(pk=s.pk, state__in=open_states).update(
                state=SuspensionState.SUSPENDED, suspended_at=clock.now(), claimed_at=None, last_error="",
                attempts=s.attempts + 1)  # fmt: skip
            if not won:  # the case closed while Partner Center was suspending: undo it
                Suspension.objects.filter(pk=s.pk).update(state=SuspensionState.REACTIVATING, claimed_at=None,
                                                          suspended_at=clock.now())  # fmt: skip
                _enqueue_processing(case.pk)
            audit.record(SYSTEM, "collections.subscription_suspended", obj=s, organisation_id=case.organisation_id,
                         customer_id=customer.pk, after={"case_id": case.pk, "subscription": s.subscription_id,
                         "attempt": s.attempts + 1})  # fmt: skip
        else:
            retry_states = [SuspensionState.PENDING, SuspensionState.FAILED]
            Suspension.objects.filter(pk=s.pk, state__in=retry_states).update(
                state=SuspensionState.FAILED, claimed_at=None, last_error=error[:2000],
                attempts=s.attempts + 1)  # fmt: skip
            audit.record(SYSTEM, "collections.suspension_failed", obj=s, organisation_id=case.organisation_id,
                         customer_id=customer.pk, after={"case_id": case.pk, "subscription": s.subscription_id,
                         "attempt": s.attempts + 1, "error": error, "retry": "next run"})  # fmt: skip
    return {**base, "ok": confirmed, **({"error": error} if error else {})}


def _finish_suspend_action(case: Case) -> None:
    """When every covered subscription is confirmed suspended: the stage is done and the customer is told."""
    with transaction.atomic():
        states = set(case.suspensions.values_list("state", flat=True))
        if not states or states - {SuspensionState.SUSPENDED}:
            return
        suspending = CaseAction.objects.filter(case=case, action=StageAction.SUSPEND, status=ActionStatus.IN_PROGRESS)
        done = sorted(suspending.values_list("pk", flat=True))
        if not done or not suspending.filter(pk__in=done).update(status=ActionStatus.DONE):
            return
        subs = [x.subscription for x in case.suspensions.select_related("subscription")]
        policy = selectors.policy_for_customer(case.customer)
        grace = selectors.rules_of(policy).grace_days if policy else 0
        pos = evaluation.position(selectors.open_invoices(case.customer_id), clock.today(), grace)
        sent = _send(
            notices.suspension_notice(case.customer, pos, subs),
            f"collections.action:{done[0]}:suspended",
            "suspension_notice",
            case.customer,
        )
        audit.record(SYSTEM, "collections.suspension_notice_sent", obj=case, organisation_id=case.organisation_id,
                     customer_id=case.customer_id, after={"subscriptions": [s.pk for s in subs], **sent})  # fmt: skip


def _turn_off_renewal(case: Case, action: CaseAction, client: PartnerCenterClient) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    ids = list(action.details.get("subscriptions", []))
    failed = False
    for sub in Subscription.objects.filter(pk__in=ids).select_related("customer").order_by("pk"):
        base = {"case_id": case.pk, "subscription": sub.pk, "change": "auto_renew_off"}
        if not sub.auto_renew:
            continue
        try:
            tenant = str(sub.customer.tenant_id)
            current = client.get_subscription(tenant, str(sub.pc_subscription_id))
            resource = client.update_subscription(tenant, {**current, "autoRenewEnabled": False})
            pc_services.mirror_subscription(SYSTEM, sub.customer_id, resource)
            results.append({**base, "ok": True})
        except PartnerCenterError as exc:
            failed = True
            results.append({**base, "ok": False, "error": str(exc)})
    if failed:
        return results
    with transaction.atomic():
        if CaseAction.objects.filter(pk=action.pk, status=ActionStatus.IN_PROGRESS).update(status=ActionStatus.DONE):
            subs = list(Subscription.objects.filter(pk__in=ids).order_by("pk"))
            policy = selectors.policy_for_customer(case.customer)
            grace = selectors.rules_of(policy).grace_days if policy else 0
            pos = evaluation.position(selectors.open_invoices(case.customer_id), clock.today(), grace)
            sent = _send(
                notices.renewal_notice(case.customer, pos, subs),
                f"collections.action:{action.pk}:renewal",
                "renewal_notice",
                case.customer,
            )
            audit.record(SYSTEM, "collections.renewal_turned_off", obj=action, organisation_id=case.organisation_id,
                         customer_id=case.customer_id, after={"subscriptions": ids, **sent})  # fmt: skip
    return results


def _reactivate_one(case: Case, s: Suspension, client: PartnerCenterClient) -> dict[str, Any]:
    base = {"case_id": case.pk, "subscription": s.subscription_id, "change": "reactivate"}
    if not _claim(s.pk, [SuspensionState.REACTIVATING]):
        return {**base, "ok": None, "note": "claimed by another run"}
    try:
        change = pc_services.reactivate_subscription(SYSTEM, s.subscription_id, client, reason="overdue cleared",
                                                     idempotency_key=f"collections:{s.pk}:reactivate")  # fmt: skip
        ok = change.state == StatusChangeState.SUCCEEDED
        error = "" if ok else "Partner Center did not confirm the reactivation"
    except PartnerCenterError as exc:
        ok, error = False, str(exc)
    with transaction.atomic():
        if ok:
            Suspension.objects.filter(pk=s.pk).update(state=SuspensionState.REACTIVATED, reactivated_at=clock.now(),
                                                      claimed_at=None, last_error="")  # fmt: skip
            audit.record(SYSTEM, "collections.subscription_reactivated", obj=s, organisation_id=case.organisation_id,
                         customer_id=case.customer_id, after={"case_id": case.pk,
                         "subscription": s.subscription_id})  # fmt: skip
        else:
            Suspension.objects.filter(pk=s.pk).update(claimed_at=None, last_error=error[:2000], attempts=s.attempts + 1)
            audit.record(SYSTEM, "collections.reactivation_failed", obj=s, organisation_id=case.organisation_id,
                         customer_id=case.customer_id, after={"case_id": case.pk, "subscription": s.subscription_id,
                         "error": error, "retry": "next run"})  # fmt: skip
    return {**base, "ok": ok, **({"error": error} if error else {})}


def _finish_reactivation(case: Case) -> None:
    """Once nothing is left to reactivate on a closed case, tell the customer (once)."""
    if case.status != CaseStatus.CLOSED:
        return
    with transaction.atomic():
        states = set(case.suspensions.values_list("state", flat=True))
        if SuspensionState.REACTIVATED not in states or SuspensionState.REACTIVATING in states:
            return
        if not Case.objects.filter(pk=case.pk, reactivation_notified_at__isnull=True).update(
            reactivation_notified_at=clock.now()
        ):
            return
        subs = [x.subscription for x in case.suspensions.filter(state=SuspensionState.REACTIVATED)
                .select_related("subscription")]  # fmt: skip
        mail = notices.restored_notice(case.customer, subs, lifted=case.close_reason == CloseReason.LIFTED)
        sent = _send(mail, f"collections.case:{case.pk}:restored", "restored_notice", case.customer)
        audit.record(SYSTEM, "collections.reactivation_notice_sent", obj=case, organisation_id=case.organisation_id,
                     customer_id=case.customer_id, after={"subscriptions": [s.pk for s in subs], **sent})  # fmt: skip
