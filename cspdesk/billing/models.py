"""Billing runs, invoices and credit notes, their lines, number series and exchange rates."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cspdesk.catalog.models import PriceRule
from cspdesk.core import clock
from cspdesk.partnercenter.recon.models import ChargeLine
from cspdesk.tenancy.models import Customer, Organisation


def money(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=6, **kwargs)


class ImmutableInvoice(Exception):
    """Raised on any attempt to change a finalized invoice or credit note."""


class ExchangeRate(models.Model):
    """A partner-configured rate: 1 ``source_currency`` = ``rate`` ``target_currency`` from ``rate_date``."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="exchange_rates")
    source_currency = models.CharField(max_length=3)
    target_currency = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=24, decimal_places=10)
    rate_date = models.DateField()
    provider = models.CharField(max_length=100, blank=True, help_text="e.g. ECB")

    class Meta:
        ordering = ["-rate_date"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "source_currency", "target_currency", "rate_date"], name="unique_fx_rate"
            ),
            models.CheckConstraint(name="fx_rate_positive", condition=Q(rate__gt=0)),
        ]

    def __str__(self) -> str:
        return f"1 {self.source_currency} = {self.rate} {self.target_currency} ({self.rate_date})"


class RunStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    FINALIZING = "finalizing", _("Finalizing")
    FINALIZED = "finalized", _("Finalized")
    REPLACED = "replaced", _("Replaced by a later run")


class BillingRun(models.Model):
    """One rating of a period for the organisations in the runner's scope: draft → finalizing → finalized."""

    period = models.DateField(help_text="first day of the billed month")
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="the runner's organisation; empty: every organisation (the system)",
    )  # fmt: skip
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.DRAFT)
    review = models.JSONField(default=dict)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"run {self.pk} {self.period:%Y-%m} {self.status}"


class InvoiceKind(models.TextChoices):
    INVOICE = "invoice", _("Invoice")
    CREDIT_NOTE = "credit_note", _("Credit note")


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    FINALIZED = "finalized", _("Finalized")


class Invoice(models.Model):
    """An invoice or credit note of one seller to one buyer (a customer, or a provider's reseller).

    Finalized documents are immutable: :meth:`save` refuses any change except recording delivery
    (``sent_at``, ``sent_to``), and the services refuse too. Corrections are credit notes.
    """

    DELIVERY_FIELDS = frozenset({"sent_at", "sent_to"})

    run = models.ForeignKey(BillingRun, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices")
    kind = models.CharField(max_length=12, choices=InvoiceKind.choices, default=InvoiceKind.INVOICE)
    status = models.CharField(max_length=12, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="invoices")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices")
    buyer_organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices_received"
    )
    period = models.DateField()
    currency = models.CharField(max_length=3)
    source_currency = models.CharField(max_length=3, help_text="currency of Microsoft's charges")
    exchange_rate = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    exchange_rate_date = models.DateField(null=True, blank=True)
    exchange_rate_provider = models.CharField(max_length=100, blank=True)
    language = models.CharField(max_length=8)
    series = models.CharField(max_length=20, blank=True)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    number = models.CharField(max_length=40, blank=True)
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    net = money(default=0)
    tax = money(default=0)
    total = money(default=0)
    cost = money(default=0, help_text="Microsoft's cost of the lines, invoice currency")
    credited_invoice = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes"
    )
    reason = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_to = models.JSONField(default=list)
    created_at = models.DateTimeField(default=clock.now)
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["period", "organisation", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "number"], condition=~Q(number=""),
                                    name="unique_invoice_number"),
            models.UniqueConstraint(fields=["organisation", "series", "year", "sequence"],
                                    condition=Q(sequence__isnull=False), name="unique_invoice_sequence"),
            models.CheckConstraint(name="invoice_one_buyer",
                                   condition=Q(customer__isnull=False) ^ Q(buyer_organisation__isnull=False)),
            models.CheckConstraint(name="finalized_has_number",
                                   condition=Q(status="draft") | (~Q(number="") & Q(issue_date__isnull=False))),
            models.CheckConstraint(name="credit_note_references_invoice",
                                   condition=Q(kind="invoice") | Q(credited_invoice__isnull=False)),
        ]  # fmt: skip
        indexes = [models.Index(fields=["period", "status"], name="billing_inv_period_idx")]

    def __str__(self) -> str:
        return self.number or f"draft {self.pk}"

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Invoice:
        obj = super().from_db(db, field_names, values)
        obj._stored_status = obj.status
        return obj

    @property
    def is_finalized(self) -> bool:
        return getattr(self, "_stored_status", None) == InvoiceStatus.FINALIZED

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.is_finalized:
            fields = kwargs.get("update_fields")
            if fields is None or not set(fields) <= self.DELIVERY_FIELDS:
                raise ImmutableInvoice(f"{self} is finalized: it cannot change; issue a credit note")
        super().save(*args, **kwargs)
        self._stored_status = self.status

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if self.is_finalized:
            raise ImmutableInvoice(f"{self} is finalized: it cannot be deleted")
        return super().delete(*args, **kwargs)

    @property
    def buyer_name(self) -> str:
        if self.customer_id is not None:
            return self.customer.name  # type: ignore[union-attr]
        return self.buyer_organisation.legal_name  # type: ignore[union-attr]


class LineKind(models.TextChoices):
    MICROSOFT = "microsoft", _("Microsoft charge")
    SUPPORT = "support", _("Support fee")


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=LineKind.choices, default=LineKind.MICROSOFT)
    description = models.CharField(max_length=400)
    group = models.CharField(max_length=400)
    item_id = models.CharField(max_length=100, blank=True)
    quantity = models.DecimalField(max_digits=28, decimal_places=10)
    unit_price = models.DecimalField(max_digits=24, decimal_places=6)
    net_amount = money()
    cost = money(default=0)
    vat_category = models.CharField(max_length=2)
    vat_rate = models.DecimalField(max_digits=6, decimal_places=3)
    vat_exemption_code = models.CharField(max_length=30, blank=True)
    vat_exemption_reason = models.CharField(max_length=300, blank=True)
    period_start = models.DateField()
    period_end = models.DateField()
    price_rule = models.ForeignKey(PriceRule, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=16)
    charge_lines: models.ManyToManyField[ChargeLine, InvoiceLineCharge] = models.ManyToManyField(
        ChargeLine, through="InvoiceLineCharge", related_name="invoice_lines"
    )

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="unique_line_position")]

    def __str__(self) -> str:
        return f"{self.invoice_id}#{self.position} {self.description} {self.net_amount}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if Invoice.objects.filter(pk=self.invoice_id, status=InvoiceStatus.FINALIZED).exists():
            raise ImmutableInvoice("the lines of a finalized invoice cannot change")
        super().save(*args, **kwargs)


class InvoiceLineCharge(models.Model):
    """Explain this charge: which Microsoft charge lines an invoice line holds, with cost and price."""

    line = models.ForeignKey(InvoiceLine, on_delete=models.CASCADE, related_name="sources")
    charge_line = models.ForeignKey(ChargeLine, on_delete=models.PROTECT, related_name="+")
    cost = money()
    price = money()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["line", "charge_line"], name="unique_line_charge")]


class NumberSeries(models.Model):
    """The last number issued per organisation, series and year. Locked by ``services.lock_number_series``."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    series = models.CharField(max_length=20)
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "series", "year"], name="unique_number_series")]

    def __str__(self) -> str:
        return f"{self.series}-{self.year}: {self.last}"


class DocumentFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    UBL = "ubl", "UBL 2.1 XML"


class IssuedDocument(models.Model):
    """A finalized invoice's PDF or UBL as it was issued: rendered once, stored under ``MEDIA_ROOT`` with its
    SHA-256, and served from then on byte for byte (a later change to wording, fonts or layout leaves it as the
    customer received it)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="documents")
    format = models.CharField(max_length=3, choices=DocumentFormat.choices)
    path = models.CharField(max_length=300, help_text="relative to MEDIA_ROOT")
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["invoice", "format"], name="billing_issued_document_once")]

    def __str__(self) -> str:
        return f"{self.invoice_id} {self.format}"
