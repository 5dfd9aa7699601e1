"""Partner Center data mirrored in cspdesk: subscriptions, and the status changes cspdesk asked for."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from cspdesk.core import clock


class SubscriptionStatus(models.TextChoices):
    """Partner Center's subscription statuses."""

    NONE = "none", _("None")
    ACTIVE = "active", _("Active")
    PENDING = "pending", _("Pending")
    SUSPENDED = "suspended", _("Suspended")
    EXPIRED = "expired", _("Expired")
    DELETED = "deleted", _("Deleted")


class BillingType(models.TextChoices):
    NONE = "none", _("None")
    USAGE = "usage", _("Usage")
    LICENSE = "license", _("License")


class Subscription(models.Model):
    """A customer's subscription as Partner Center last reported it (``cspdesk pc sync``)."""

    customer = models.ForeignKey("tenancy.Customer", on_delete=models.PROTECT, related_name="pc_subscriptions")
    pc_subscription_id = models.UUIDField(_("Partner Center subscription id"), unique=True)
    offer_id = models.CharField(_("offer id"), max_length=100)
    offer_name = models.CharField(_("offer"), max_length=200)
    friendly_name = models.CharField(_("name"), max_length=200, blank=True)
    product_id = models.CharField(_("product id"), max_length=40, blank=True)
    sku_id = models.CharField(_("SKU id"), max_length=20, blank=True)
    quantity = models.PositiveIntegerField(_("quantity"), default=0)
    unit_type = models.CharField(_("unit"), max_length=40, blank=True)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices)
    billing_type = models.CharField(max_length=16, choices=BillingType.choices, default=BillingType.NONE)
    billing_cycle = models.CharField(_("billing cycle"), max_length=24, blank=True)
    term_duration = models.CharField(_("term"), max_length=8, blank=True, help_text="ISO 8601, e.g. P1M, P1Y")
    effective_start_date = models.DateField(_("term start"), null=True, blank=True)
    commitment_end_date = models.DateField(_("renewal date"), null=True, blank=True)
    auto_renew = models.BooleanField(_("auto-renew"), default=False)
    reseller_mpn_id = models.CharField(_("reseller partner id"), max_length=20, blank=True)
    etag = models.CharField(max_length=128, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["customer_id", "offer_name", "pc_subscription_id"]

    def __str__(self) -> str:
        return f"{self.friendly_name or self.offer_name} × {self.quantity}"


class StatusChangeAction(models.TextChoices):
    SUSPEND = "suspend", _("Suspend")
    REACTIVATE = "reactivate", _("Reactivate")


class StatusChangeState(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class SubscriptionStatusChange(models.Model):
    """One suspension or reactivation cspdesk asked Partner Center for.

    ``idempotency_key`` is the caller's (e.g. collections' ``case:12:suspend:<sub>``): asking twice has one
    effect. The row is written *pending* before the call; ``ms_request_id`` is the PATCH's ``MS-RequestId``,
    reused if the call is repeated after a crash.
    """

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="status_changes")
    action = models.CharField(max_length=16, choices=StatusChangeAction.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    reason = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=StatusChangeState.choices, default=StatusChangeState.PENDING)
    ms_request_id = models.UUIDField()
    ms_correlation_id = models.CharField(max_length=64, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField(default=clock.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.subscription_id} ({self.state})"
