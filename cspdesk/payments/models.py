"""Payments received, their allocations to invoices, refunds, Stripe events and Microsoft payables paid."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cspdesk.billing.models import Invoice
from cspdesk.core import clock
from cspdesk.partnercenter.recon.models import MicrosoftInvoice
from cspdesk.tenancy.models import Customer, Organisation


def money(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=6, **kwargs)  # type: ignore[arg-type]


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "bank_transfer", _("Bank transfer")
    CARD = "card", _("Card (Stripe)")
    CASH = "cash", _("Cash")
    CHEQUE = "cheque", _("Cheque")
    OTHER = "other", _("Other")


class PaymentSource(models.TextChoices):
    MANUAL = "manual", _("Recorded by hand")
    CAMT053 = "camt053", _("Bank statement (camt.053)")
    CSV = "csv", _("Bank statement (CSV)")
    STRIPE = "stripe", _("Stripe")
    DEMO = "demo", _("Demo")


class Payment(models.Model):
    """Money received by an organisation. Without a customer it waits in the suspense queue."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="payments")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="payments")
    amount = money()
    currency = models.CharField(max_length=3)
    received_on = models.DateField()
    method = models.CharField(max_length=16, choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER)
    source = models.CharField(max_length=16, choices=PaymentSource.choices, default=PaymentSource.MANUAL)
    reference = models.CharField(_("remittance text / reference"), max_length=500, blank=True)
    payer_name = models.CharField(max_length=200, blank=True)
    payer_account = models.CharField(max_length=64, blank=True)
    external_key = models.CharField(
        max_length=200, blank=True, help_text="idempotency key: bank entry reference, entry hash or Stripe id"
    )
    match_rule = models.CharField(max_length=32, blank=True)
    refunded = money(default=0)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["received_on", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "external_key"], condition=~Q(external_key=""), name="unique_payment_key"
            ),
            models.CheckConstraint(name="payment_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="payment_refund_within_amount", condition=Q(refunded__gte=0) & Q(refunded__lte=models.F("amount"))
            ),
        ]

    def __str__(self) -> str:
        return f"payment {self.pk} {self.amount} {self.currency} {self.received_on}"


class Reversible(models.Model):
    """A money record that is never deleted: one made in error is marked reversed, with who and why."""

    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.CharField(max_length=150, blank=True)
    reversal_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        abstract = True

    def mark_reversed(self, username: str, reason: str) -> None:
        self.reversed_at = clock.now()
        self.reversed_by = username
        self.reversal_reason = reason[:300]
        self.save(update_fields=["reversed_at", "reversed_by", "reversal_reason"])


class Allocation(Reversible):
    """Part of a payment applied to one invoice. A wrong one is reversed (kept, with ``reversed_at``)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = money()
    rule = models.CharField(max_length=32)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.CheckConstraint(name="allocation_amount_positive", condition=Q(amount__gt=0))]

    def __str__(self) -> str:
        return f"{self.amount} of payment {self.payment_id} → invoice {self.invoice_id}"


class Refund(models.Model):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = money()
    refunded_on = models.DateField()
    reason = models.CharField(max_length=300, blank=True)
    external_key = models.CharField(max_length=200, blank=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["refunded_on", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["external_key"], condition=~Q(external_key=""), name="unique_refund_key"),
            models.CheckConstraint(name="refund_amount_positive", condition=Q(amount__gt=0)),
        ]


class WriteOff(Reversible):
    """An invoice's open amount given up as uncollectable (bad debt). Not a credit note: the invoice and its tax
    stand; the receivable is closed. A write-off made in error is reversed (kept, with ``reversed_at``)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="write_offs")
    amount = money()
    written_off_on = models.DateField()
    reason = models.CharField(max_length=300)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["written_off_on", "pk"]
        constraints = [models.CheckConstraint(name="write_off_amount_positive", condition=Q(amount__gt=0))]

    def __str__(self) -> str:
        return f"{self.amount} of invoice {self.invoice_id} written off"


class BankImport(models.Model):
    """One bank statement file read: what it created, what it had seen already, and rows it refused."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64)
    format = models.CharField(max_length=16)
    entries = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list)
    imported_by = models.CharField(max_length=150)
    imported_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-imported_at", "-pk"]


class StripeEvent(models.Model):
    """A Stripe webhook event applied once (the event id is the idempotency key)."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField(default=clock.now)
    result = models.JSONField(default=dict)


class CheckoutSession(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+")
    session_id = models.CharField(max_length=200, unique=True)
    url = models.URLField(max_length=2000)
    amount = money()
    currency = models.CharField(max_length=3)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)


class CustomerOverdueState(models.Model):
    """The customer's overdue position, refreshed on every allocation change (collections reads it)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="overdue_state")
    overdue_amount = money(default=0)
    open_amount = money(default=0)
    oldest_due_date = models.DateField(null=True, blank=True)
    evaluated_at = models.DateTimeField(default=clock.now)

    @property
    def is_overdue(self) -> bool:
        return self.overdue_amount > 0


class MicrosoftPayment(models.Model):
    """The partner paid a Microsoft invoice."""

    microsoft_invoice = models.OneToOneField(MicrosoftInvoice, on_delete=models.PROTECT, related_name="payment")
    paid_on = models.DateField()
    amount = money()
    reference = models.CharField(max_length=200, blank=True)
    recorded_by = models.CharField(max_length=150)
    recorded_at = models.DateTimeField(default=clock.now)


class ReminderStage(models.TextChoices):
    DUE_SOON = "due_soon", _("Due soon")
    OVERDUE = "overdue", _("Overdue")


class PayableReminder(models.Model):
    """One reminder e-mail per Microsoft invoice and stage."""

    microsoft_invoice = models.ForeignKey(MicrosoftInvoice, on_delete=models.CASCADE, related_name="reminders")
    stage = models.CharField(max_length=16, choices=ReminderStage.choices)
    sent_to = models.JSONField(default=list)
    sent_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["microsoft_invoice", "stage"], name="unique_payable_reminder_stage")
        ]
