"""Collections: the policy (data, not code), overdue episodes ("cases"), the stages run on them, the
subscriptions suspended for non-payment, and what holds a case back (disputes, payment plans, holds,
exemptions).

Idempotency lives in constraints: one open case per customer, each stage once per case ``(case, stage_key)``,
each subscription once per case ``(case, subscription)``, one open dispute per invoice.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cspdesk.billing.models import Invoice
from cspdesk.core import clock
from cspdesk.partnercenter.models import Subscription
from cspdesk.tenancy.models import Customer, Organisation

DEFAULT_CATEGORIES = ["azure", "microsoft365"]


def money(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=6, **kwargs)  # type: ignore[arg-type]


class StageAction(models.TextChoices):
    REMINDER = "reminder", _("Reminder e-mail")
    FINAL_NOTICE = "final_notice", _("Final notice")
    SUSPEND = "suspend", _("Suspend products")
    CANCEL_AT_RENEWAL = "cancel_at_renewal", _("Cancel at renewal")
    HAND_OVER = "hand_over", _("Hand over to a person")


class Policy(models.Model):
    """An organisation's collections policy, or (with ``customer``) one customer's own.

    ``stages`` is a list of ``{"days": N, "action": "reminder"}``, ordered by days after the due date;
    ``minimum_amounts`` maps a currency to the overdue amount below which nothing happens.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="collection_policies")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="collection_policies"
    )
    stages = models.JSONField(default=list)
    grace_days = models.PositiveSmallIntegerField(default=0)
    minimum_amounts = models.JSONField(default=dict)
    categories = models.JSONField(default=list, help_text="product categories a suspension covers")
    suspend_prepaid_licences = models.BooleanField(default=False)
    updated_by = models.CharField(max_length=150)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation"], condition=Q(customer__isnull=True), name="unique_org_collection_policy"
            ),
            models.UniqueConstraint(
                fields=["customer"], condition=Q(customer__isnull=False), name="unique_customer_collection_policy"
            ),
        ]

    def __str__(self) -> str:
        return f"collections policy of {self.customer or self.organisation}"


class CaseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class CloseReason(models.TextChoices):
    CLEARED = "cleared", _("Nothing collectible overdue any more")
    LIFTED = "lifted", _("Lifted by a billing admin")


class Case(models.Model):
    """One overdue episode of a customer: opened when an overdue balance reaches the policy's minimum,
    closed when it is cleared or lifted. Stages run at most once per case."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="collection_cases")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    opened_on = models.DateField()
    oldest_due_date = models.DateField(null=True, blank=True)
    overdue_amounts = models.JSONField(default=dict)
    last_stage_key = models.CharField(max_length=40, blank=True)
    last_stage_on = models.DateField(null=True, blank=True)
    handed_over = models.BooleanField(default=False)
    closed_on = models.DateField(null=True, blank=True)
    close_reason = models.CharField(max_length=8, choices=CloseReason.choices, blank=True)
    close_note = models.CharField(max_length=300, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)
    reactivation_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-opened_on", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["customer"], condition=Q(status="open"), name="one_open_case_per_customer")
        ]

    def __str__(self) -> str:
        return f"case {self.pk} of {self.customer_id} ({self.status})"


class ActionStatus(models.TextChoices):
    DONE = "done", _("Done")
    IN_PROGRESS = "in_progress", _("In progress")
    AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")


class CaseAction(models.Model):
    """A stage run on a case: once per ``(case, stage_key)``, whichever engine gets there first."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="actions")
    stage_key = models.CharField(max_length=40)
    action = models.CharField(max_length=20, choices=StageAction.choices)
    days = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=ActionStatus.choices, default=ActionStatus.DONE)
    run_on = models.DateField()
    details = models.JSONField(default=dict)
    approved_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["case", "run_on", "pk"]
        constraints = [models.UniqueConstraint(fields=["case", "stage_key"], name="one_action_per_case_stage")]

    def __str__(self) -> str:
        return f"{self.action} on case {self.case_id} ({self.status})"


class SuspensionState(models.TextChoices):
    PENDING = "pending", _("Waiting for Partner Center")
    SUSPENDED = "suspended", _("Suspended")
    FAILED = "failed", _("Failed, retried on the next run")
    REACTIVATING = "reactivating", _("Reactivation requested")
    REACTIVATED = "reactivated", _("Reactivated")
    CANCELLED = "cancelled", _("Not needed any more")


class Suspension(models.Model):
    """A subscription collections suspends (or suspended) on a case. ``suspended`` only once Partner Center
    confirmed it; ``claimed_at`` marks the call in flight so two engines never send it twice."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="suspensions")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="collection_suspensions")
    state = models.CharField(max_length=16, choices=SuspensionState.choices, default=SuspensionState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    reactivated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["case", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["case", "subscription"], name="one_suspension_per_case_subscription")
        ]

    def __str__(self) -> str:
        return f"suspension of {self.subscription_id} on case {self.case_id} ({self.state})"


class DisputeStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class Dispute(models.Model):
    """An invoice the customer questions: collections leaves it out until the dispute is closed."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="disputes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="disputes")
    status = models.CharField(max_length=8, choices=DisputeStatus.choices, default=DisputeStatus.OPEN)
    reason = models.CharField(max_length=500)
    source = models.CharField(max_length=32, default="manual", help_text="manual, or the ticket that opened it")
    ticket_id = models.BigIntegerField(null=True, blank=True)
    opened_by = models.CharField(max_length=150)
    opened_at = models.DateTimeField(default=clock.now)
    resolution = models.CharField(max_length=500, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["invoice"], condition=Q(status="open"), name="one_open_dispute_per_invoice")
        ]

    def __str__(self) -> str:
        return f"dispute {self.pk} on invoice {self.invoice_id} ({self.status})"


class PlanStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    COMPLETED = "completed", _("Completed")
    BROKEN = "broken", _("Broken (an instalment was missed)")
    CANCELLED = "cancelled", _("Cancelled")


class PaymentPlan(models.Model):
    """Instalments agreed for some overdue invoices. While the instalments are on time the case waits."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payment_plans")
    invoices: models.ManyToManyField[Invoice, PaymentPlanInvoice] = models.ManyToManyField(
        Invoice, through="PaymentPlanInvoice", related_name="+"
    )
    currency = models.CharField(max_length=3)
    open_at_start = money()
    status = models.CharField(max_length=10, choices=PlanStatus.choices, default=PlanStatus.ACTIVE)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"payment plan {self.pk} of {self.customer_id} ({self.status})"


class PaymentPlanInvoice(models.Model):
    plan = models.ForeignKey(PaymentPlan, on_delete=models.CASCADE, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "invoice"], name="unique_plan_invoice")]


class Instalment(models.Model):
    plan = models.ForeignKey(PaymentPlan, on_delete=models.CASCADE, related_name="instalments")
    due_date = models.DateField()
    amount = money()

    class Meta:
        ordering = ["plan", "due_date", "pk"]
        constraints = [models.CheckConstraint(name="instalment_amount_positive", condition=Q(amount__gt=0))]


class Hold(models.Model):
    """A billing admin holds a customer's collections until ``until`` (inclusive) or until released."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="collection_holds")
    reason = models.CharField(max_length=300)
    until = models.DateField()
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]


class Exemption(models.Model):
    """A customer collections never acts on (e.g. a public body paying on its own schedule)."""

    customer = models.OneToOneField(Customer, on_delete=models.PROTECT, related_name="collection_exemption")
    reason = models.CharField(max_length=300)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)
