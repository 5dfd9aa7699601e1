from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cspdesk.core import clock


class OrganisationKind(models.TextChoices):
    DIRECT_BILL_PARTNER = "direct_bill_partner", _("Direct-bill partner")
    INDIRECT_PROVIDER = "indirect_provider", _("Indirect provider")
    INDIRECT_RESELLER = "indirect_reseller", _("Indirect reseller")


class Cloud(models.TextChoices):
    COMMERCIAL = "commercial", _("Commercial cloud")
    USGOV = "usgov", _("US Government cloud")


class Locale(models.TextChoices):
    EN = "en", "English"
    IT = "it", "Italiano"
    SV = "sv", "Svenska"
    PT_PT = "pt-pt", "Português (Portugal)"
    HU = "hu", "Magyar"


class SupportVehicle(models.TextChoices):
    """How a partner escalates to Microsoft. Commercial support is every CSP partner's."""

    COMMERCIAL = "commercial", _("Commercial support (billing, subscriptions, Partner Center)")
    UNIFIED = "unified", _("Premier / Unified Support for Partners")
    ADVANCED = "advanced", _("Advanced Support for Partners")
    SIGNATURE = "signature", _("Signature Cloud Support")


class Address(models.Model):
    address_line1 = models.CharField(_("address"), max_length=200)
    address_line2 = models.CharField(_("address (line 2)"), max_length=200, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20, blank=True)
    city = models.CharField(_("city"), max_length=100)
    region = models.CharField(_("region"), max_length=100, blank=True)
    country = models.CharField(_("country"), max_length=2, help_text="ISO 3166-1 alpha-2")

    class Meta:
        abstract = True


class Organisation(Address):
    kind = models.CharField(max_length=32, choices=OrganisationKind.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="resellers")
    legal_name = models.CharField(_("legal name"), max_length=200)
    vat_id = models.CharField(_("VAT id"), max_length=32, blank=True)
    pc_tenant_id = models.UUIDField(_("Partner Center tenant id"), null=True, blank=True, unique=True)
    mpn_id = models.CharField(_("partner location id (MPN id)"), max_length=20, blank=True)
    pc_cloud = models.CharField(max_length=16, choices=Cloud.choices, default=Cloud.COMMERCIAL)
    billing_currency = models.CharField(max_length=3)
    default_locale = models.CharField(max_length=8, choices=Locale.choices, default=Locale.EN)
    invoice_series = models.CharField(max_length=12)
    payment_terms_days = models.PositiveSmallIntegerField(default=30)
    microsoft_payment_terms_days = models.PositiveSmallIntegerField(default=60)
    has_unified_support = models.BooleanField(_("Premier / Unified Support for Partners"), default=False)
    has_advanced_support = models.BooleanField(_("Advanced Support for Partners"), default=False)
    has_signature_support = models.BooleanField(_("Signature Cloud Support"), default=False)
    # Where customers pay: printed on invoices and statements and carried in the UBL PaymentMeans.
    bank_iban = models.CharField(_("IBAN"), max_length=34, blank=True)
    bank_bic = models.CharField(_("BIC"), max_length=11, blank=True)
    bank_account_name = models.CharField(_("account holder"), max_length=200, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["legal_name"]
        constraints = [
            models.CheckConstraint(
                name="reseller_has_parent",
                condition=(Q(kind=OrganisationKind.INDIRECT_RESELLER) & Q(parent__isnull=False))
                | (~Q(kind=OrganisationKind.INDIRECT_RESELLER) & Q(parent__isnull=True)),
            ),
            models.UniqueConstraint(fields=["invoice_series"], name="unique_invoice_series"),
        ]

    def __str__(self) -> str:
        return self.legal_name

    @property
    def bills_customers(self) -> bool:
        return self.kind != OrganisationKind.INDIRECT_PROVIDER

    def support_vehicles(self) -> list[str]:
        vehicles = [SupportVehicle.COMMERCIAL.value]
        if self.has_unified_support:
            vehicles.append(SupportVehicle.UNIFIED.value)
        if self.has_advanced_support:
            vehicles.append(SupportVehicle.ADVANCED.value)
        if self.has_signature_support:
            vehicles.append(SupportVehicle.SIGNATURE.value)
        return vehicles


class CustomerStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    INACTIVE = "inactive", _("Inactive")
    CLOSED = "closed", _("Closed")


class Customer(Address):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="customers")
    tenant_id = models.UUIDField(_("Partner Center customer tenant id"))
    default_domain = models.CharField(_("default domain"), max_length=253)
    name = models.CharField(_("name"), max_length=200)
    locale = models.CharField(max_length=8, choices=Locale.choices, default=Locale.EN)
    currency = models.CharField(max_length=3)
    vat_id = models.CharField(_("VAT id"), max_length=32, blank=True)
    billing_emails = models.JSONField(_("billing contacts"), default=list)
    payment_terms_days = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=CustomerStatus.choices, default=CustomerStatus.ACTIVE)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "tenant_id"], name="unique_customer_tenant_per_org"),
        ]

    def __str__(self) -> str:
        return self.name

    def effective_payment_terms_days(self) -> int:
        if self.payment_terms_days is not None:
            return self.payment_terms_days
        return self.organisation.payment_terms_days


class StaffRole(models.TextChoices):
    GLOBAL_ADMIN = "global_admin", _("Global admin")
    USER_MANAGEMENT_ADMIN = "user_management_admin", _("User management admin")
    HELPDESK_AGENT = "helpdesk_agent", _("Helpdesk agent")
    BILLING_ADMIN = "billing_admin", _("Billing admin")
    SALES_AGENT = "sales_agent", _("Sales agent")


class CustomerRole(models.TextChoices):
    CUSTOMER_ADMIN = "customer_admin", _("Customer admin")
    CUSTOMER_BILLING = "customer_billing", _("Customer billing contact")
    CUSTOMER_USER = "customer_user", _("Customer user")


ALL_ROLES = {c.value for c in StaffRole} | {c.value for c in CustomerRole}


class Membership(models.Model):
    """Where a user belongs: staff of one organisation, or a user of one customer."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="staff"
    )
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="users")
    locale = models.CharField(max_length=8, choices=Locale.choices, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="membership_one_home",
                condition=(Q(organisation__isnull=False) & Q(customer__isnull=True))
                | (Q(organisation__isnull=True) & Q(customer__isnull=False)),
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organisation or self.customer}"

    @property
    def is_staff_member(self) -> bool:
        return self.organisation_id is not None


class RoleGrant(models.Model):
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="grants")
    role = models.CharField(max_length=32, choices=StaffRole.choices + CustomerRole.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["membership", "role"], name="unique_role_grant")]

    def __str__(self) -> str:
        return self.role


class ApiToken(models.Model):
    """A per-user API token. Only its SHA-256 digest is stored; the secret is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=clock.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
