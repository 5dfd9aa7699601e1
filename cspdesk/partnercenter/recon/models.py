"""Imports, charge lines, rejected rows and Microsoft invoices (payables)."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cspdesk.core import clock
from cspdesk.tenancy.models import Customer, Organisation


def money(**kwargs: Any) -> models.DecimalField:
    """An amount as Microsoft gives it: up to 6 decimal places."""
    return models.DecimalField(max_digits=20, decimal_places=6, **kwargs)


def quantity(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=28, decimal_places=10, **kwargs)


class ImportKind(models.TextChoices):
    INVOICE = "invoice", _("Invoice reconciliation (new commerce)")
    USAGE_BILLED = "usage_billed", _("Daily rated usage, billed")
    USAGE_UNBILLED = "usage_unbilled", _("Daily rated usage, unbilled")


class ImportStatus(models.TextChoices):
    IMPORTING = "importing", _("Importing (split over the workers, not billable yet)")
    ACTIVE = "active", _("Active")
    SUPERSEDED = "superseded", _("Superseded by a later import")


class Import(models.Model):
    """One recon file, imported once (its SHA-256 is unique). Raw rows are under VAR_DIR/recon/<id>/."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="recon_imports")
    kind = models.CharField(max_length=16, choices=ImportKind.choices)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.ACTIVE)
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64, unique=True)
    file_size = models.BigIntegerField()
    partner_tenant_id = models.UUIDField()
    invoice_number = models.CharField(max_length=40, blank=True)
    period = models.DateField(help_text="first day of the billing month the file covers")
    currency = models.CharField(max_length=3)
    rows = models.PositiveIntegerField()
    rejected = models.PositiveIntegerField()
    total_cost = money()
    assigned_cost = money()
    unassigned_cost = money()
    customers = models.PositiveIntegerField(help_text="known customers with charges")
    summary = models.JSONField(default=dict, help_text="unassigned tenants, unknown charge types, reject reasons")
    raw_path = models.CharField(max_length=500, help_text="Parquet of the raw rows, relative to VAR_DIR")
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    imported_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "kind", "invoice_number"],
                condition=Q(status="active") & ~Q(invoice_number=""),
                name="recon_one_active_import_per_invoice",
            ),
            models.UniqueConstraint(
                fields=["organisation", "kind", "period", "currency"],
                condition=Q(status="active") & Q(invoice_number=""),
                name="recon_one_active_unbilled_per_period",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.invoice_number or self.period:%Y-%m} ({self.file_name})"


class ChargeLine(models.Model):
    """Microsoft's cost for one customer × subscription × product/SKU (× meter) × charge type × period."""

    source = models.ForeignKey(Import, on_delete=models.PROTECT, related_name="charge_lines")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="charge_lines",
        help_text="empty: the unassigned bucket (a tenant cspdesk does not know)",
    )  # fmt: skip
    customer_tenant_id = models.UUIDField()
    customer_name = models.CharField(max_length=200, blank=True)
    reseller_mpn_id = models.CharField(max_length=20, blank=True)
    subscription_id = models.CharField(max_length=64)
    product_id = models.CharField(max_length=40)
    sku_id = models.CharField(max_length=40)
    product_name = models.CharField(max_length=300, blank=True)
    sku_name = models.CharField(max_length=300, blank=True)
    meter_id = models.CharField(max_length=64, blank=True)
    meter_name = models.CharField(max_length=300, blank=True)
    meter_category = models.CharField(max_length=200, blank=True)
    charge_type = models.CharField(max_length=64)
    charge_start = models.DateField()
    charge_end = models.DateField()
    quantity = quantity()
    cost = money(help_text="pre-tax, billing currency")
    currency = models.CharField(max_length=3)
    pricing_cost = money(help_text="pre-tax, pricing currency")
    pricing_currency = models.CharField(max_length=3, blank=True)
    exchange_rate = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    tax = money(default=0)
    credit = money(default=0, help_text="partner-earned or other credit, billing currency")
    credit_percentage = models.DecimalField(max_digits=9, decimal_places=4, default=0)
    credit_type = models.CharField(max_length=200, blank=True)
    row_count = models.PositiveIntegerField()
    first_line = models.PositiveIntegerField()
    last_line = models.PositiveIntegerField()

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["customer", "charge_start"], name="recon_line_customer_idx"),
            models.Index(fields=["source", "customer_tenant_id"], name="recon_line_tenant_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_name} {self.product_id}:{self.sku_id} {self.charge_type} {self.cost} {self.currency}"

    @property
    def is_unassigned(self) -> bool:
        return self.customer_id is None


class RejectedRow(models.Model):
    """A row that failed validation: kept, raw, with where and why."""

    source = models.ForeignKey(Import, on_delete=models.PROTECT, related_name="rejected_rows")
    file_name = models.CharField(max_length=255)
    line_number = models.PositiveIntegerField()
    column = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=40)
    message = models.CharField(max_length=500)
    problems = models.JSONField(default=list, help_text="every problem found on the row")
    raw = models.JSONField(default=dict)

    class Meta:
        ordering = ["source", "line_number"]

    def __str__(self) -> str:
        return f"{self.file_name}:{self.line_number} {self.column} {self.reason}"


class MicrosoftInvoice(models.Model):
    """What the partner owes Microsoft for one invoice: the payable, due after the Microsoft terms."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="microsoft_invoices")
    number = models.CharField(max_length=40)
    invoice_date = models.DateField()
    due_date = models.DateField()
    currency = models.CharField(max_length=3)
    subtotal = money()
    tax = money()
    total = money()
    source = models.ForeignKey(Import, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["due_date", "number"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "number"], name="recon_unique_microsoft_invoice"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.total} {self.currency} due {self.due_date}"
