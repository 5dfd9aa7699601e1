"""Price rules and support plans: what the partner charges for Microsoft's products and for its own support."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cspdesk.core import clock
from cspdesk.tenancy.models import Customer, Organisation


def money_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=6, **kwargs)  # type: ignore[arg-type]


class ProductCategory(models.TextChoices):
    AZURE = "azure", _("Azure")
    MICROSOFT_365 = "microsoft365", _("Microsoft 365")
    DYNAMICS_365 = "dynamics365", _("Dynamics 365")
    OTHER = "other", _("Other")


class PriceMethod(models.TextChoices):
    MARKUP = "markup", _("Markup % on Microsoft's cost")
    LIST_ADJUST = "list_adjust", _("Discount (−) or uplift (+) % on Microsoft's list price")
    FIXED_UNIT = "fixed_unit", _("Fixed unit price")
    PASS_THROUGH = "pass_through", _("Pass-through at cost")


class PriceRule(models.Model):
    """How an organisation prices a charge, from general to specific.

    Party scope: the organisation's default (no reseller, no customer) → one reseller (an indirect provider's
    rule for what it invoices that reseller) → one customer. Product scope: any → category → product → SKU →
    Azure meter category. The most specific rule in force on the charge date wins; two rules of equal
    specificity in force together are a conflict (refused when created, reported by the billing run).
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="price_rules")
    reseller = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="price_rules_as_reseller"
    )
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=16, choices=ProductCategory.choices, blank=True)
    product_id = models.CharField(max_length=40, blank=True)
    sku_id = models.CharField(max_length=40, blank=True)
    meter_category = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=16, choices=PriceMethod.choices)
    percent = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True)
    unit_price = money_field(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, help_text="the fixed unit price's currency")
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True, help_text="last day in force; empty: open-ended")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["organisation", "effective_from", "pk"]
        constraints = [
            models.CheckConstraint(
                name="price_rule_one_party_scope", condition=Q(reseller__isnull=True) | Q(customer__isnull=True)
            ),
            models.CheckConstraint(
                name="price_rule_dates",
                condition=Q(effective_to__isnull=True) | Q(effective_to__gte=models.F("effective_from")),
            ),
        ]

    def __str__(self) -> str:
        return f"rule {self.pk}: {self.method} {self.percent or self.unit_price or ''}"


class SupportPriceModel(models.TextChoices):
    FLAT_MONTHLY = "flat_monthly", _("Flat monthly fee")
    PERCENT_OF_SPEND = "percent_of_spend", _("% of Microsoft spend, with a minimum and a maximum")
    PER_INCIDENT = "per_incident", _("Per incident")
    PER_HOUR = "per_hour", _("Per hour")


class SupportPlan(models.Model):
    """The partner's published support offering and its price."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="support_plans")
    name = models.CharField(max_length=100)
    price_model = models.CharField(max_length=20, choices=SupportPriceModel.choices)
    currency = models.CharField(max_length=3)
    amount = money_field(null=True, blank=True, help_text="flat monthly fee, or the price per incident / hour")
    percent = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True)
    minimum = money_field(null=True, blank=True)
    maximum = money_field(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["organisation", "name"]
        constraints = [models.UniqueConstraint(fields=["organisation", "name"], name="unique_support_plan_name")]

    def __str__(self) -> str:
        return self.name


class SupportAssignment(models.Model):
    """Which customer has which plan, from when."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="support_assignments")
    plan = models.ForeignKey(SupportPlan, on_delete=models.PROTECT, related_name="assignments")
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["customer", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "plan", "effective_from"], name="unique_support_assignment")
        ]

    def __str__(self) -> str:
        return f"{self.customer} → {self.plan}"


class SupportChargeKind(models.TextChoices):
    INCIDENT = "incident", _("Incident")
    HOURS = "hours", _("Time entry (hours)")


class SupportCharge(models.Model):
    """An incident or a time entry the support desk hands over for billing."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="support_charges")
    plan = models.ForeignKey(SupportPlan, on_delete=models.PROTECT, related_name="charges")
    kind = models.CharField(max_length=10, choices=SupportChargeKind.choices)
    quantity = models.DecimalField(max_digits=12, decimal_places=4)
    description = models.CharField(max_length=200)
    occurred_on = models.DateField()
    reference = models.CharField(max_length=64, help_text="the ticket or time entry; unique per customer")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["occurred_on", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "kind", "reference"], name="unique_support_charge_reference")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference} {self.quantity}"
