"""Tickets, their messages and attachments, SLA policies and service hours, e-mail held for review,
and escalations (to Microsoft, or from a reseller to its indirect provider)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from cspdesk.core import clock

from .sla import BusinessCalendar


class Category(models.TextChoices):
    BILLING = "billing", _("Billing")
    SUBSCRIPTION = "subscription_management", _("Subscription management")
    TECHNICAL = "technical", _("Technical")
    COMMERCIAL = "commercial", _("Commercial")


class Service(models.TextChoices):
    AZURE = "azure", _("Azure")
    M365 = "microsoft365", _("Microsoft 365")
    D365 = "dynamics365", _("Dynamics 365")
    OTHER = "other", _("Other")


class Severity(models.TextChoices):
    CRITICAL = "critical", _("Critical")
    HIGH = "high", _("High")
    NORMAL = "normal", _("Normal")


SEVERITY_DEFINITIONS = {
    Severity.CRITICAL: _(
        "Critical business impact: a service is down or badly degraded for many users, with no workaround."
    ),
    Severity.HIGH: _(
        "Significant impact: a service is degraded or a key function fails; work goes on with difficulty."
    ),
    Severity.NORMAL: _("Limited impact: a question, a request, or a problem with a workaround."),
}


class Status(models.TextChoices):
    NEW = "new", _("New")
    OPEN = "open", _("Open")
    PENDING_CUSTOMER = "pending_customer", _("Pending customer")
    ESCALATED = "escalated", _("Escalated")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


class Channel(models.TextChoices):
    PORTAL = "portal", _("Portal")
    API = "api", _("API")
    EMAIL = "email", _("E-mail")
    PHONE = "phone", _("Phone")


class Turn(models.TextChoices):
    """Whose move it is."""

    PARTNER = "partner", _("Partner")
    CUSTOMER = "customer", _("Customer")
    MICROSOFT = "microsoft", _("Microsoft")
    PROVIDER = "provider", _("Indirect provider")


class Scope(models.TextChoices):
    UNKNOWN = "unknown", _("No plan terms")
    IN_SCOPE = "in_scope", _("In scope")
    OUT_OF_SCOPE = "out_of_scope", _("Out of scope")
    QUOTED = "quoted", _("Out of scope: quoted")
    ESCALATED = "escalated", _("Out of scope: escalated")
    DECLINED = "declined", _("Out of scope: declined")


class ServiceHours(models.Model):
    """When an organisation's desk is open: a weekly schedule in its own zone, a country's holidays."""

    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.PROTECT, related_name="service_hours")
    name = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64)
    # {"1": [["09:00", "18:00"]], ...}: ISO weekday → list of local [start, end]; "24:00" ends at midnight.
    weekly = models.JSONField()
    holiday_country = models.CharField(max_length=2, blank=True)
    holiday_subdivision = models.CharField(max_length=10, blank=True)
    closed_days = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "name"], name="unique_service_hours_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.timezone})"

    def calendar(self) -> BusinessCalendar:
        def t(text: str) -> dt.time | None:
            return None if text == "24:00" else dt.time.fromisoformat(text)

        weekly = {
            int(day): tuple((dt.time.fromisoformat(a), t(b)) for a, b in windows)
            for day, windows in self.weekly.items()
        }
        return BusinessCalendar(
            self.timezone,
            weekly,
            holiday_country=self.holiday_country or None,
            holiday_subdivision=self.holiday_subdivision or None,
            closed_days=frozenset(dt.date.fromisoformat(d) for d in self.closed_days),
        )


class SlaPolicy(models.Model):
    """Targets per severity for an organisation's desk."""

    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.PROTECT, related_name="sla_policies")
    severity = models.CharField(max_length=16, choices=Severity.choices)
    service_hours = models.ForeignKey(ServiceHours, on_delete=models.PROTECT)
    first_response_minutes = models.PositiveIntegerField()
    resolution_minutes = models.PositiveIntegerField()
    pause_while_vendor = models.BooleanField(
        default=False, help_text=_("stop the clock while the ticket waits on Microsoft or the provider")
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "severity"], name="unique_sla_per_severity")]

    def __str__(self) -> str:
        return f"{self.organisation} {self.severity}"


class Ticket(models.Model):
    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.PROTECT, related_name="tickets")
    customer = models.ForeignKey("tenancy.Customer", on_delete=models.PROTECT, related_name="tickets")
    reference = models.CharField(max_length=20, unique=True)
    subject = models.CharField(max_length=250)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requester_email = models.EmailField(blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    category = models.CharField(max_length=32, choices=Category.choices)
    service = models.CharField(max_length=16, choices=Service.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.NORMAL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    turn = models.CharField(max_length=16, choices=Turn.choices, default=Turn.PARTNER)
    queue = models.CharField(max_length=50, default="general")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets"
    )
    invoice_number = models.CharField(max_length=40, blank=True)
    invoice_line = models.CharField(max_length=40, blank=True)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.UNKNOWN)
    scope_note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now)
    first_responded_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    first_response_due = models.DateTimeField(null=True, blank=True)
    resolution_due = models.DateTimeField(null=True, blank=True)
    first_response_warned = models.BooleanField(default=False)
    first_response_breached = models.BooleanField(default=False)
    resolution_warned = models.BooleanField(default=False)
    resolution_breached = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organisation", "status"]), models.Index(fields=["customer", "status"])]

    def __str__(self) -> str:
        return f"{self.reference} {self.subject}"


class MessageKind(models.TextChoices):
    PUBLIC = "public", _("Public reply")
    INTERNAL = "internal", _("Internal note")
    SYSTEM = "system", _("System")


class TicketMessage(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=16, choices=MessageKind.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author_email = models.EmailField(blank=True)
    from_customer = models.BooleanField(default=False)
    body = models.TextField()
    email_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["email_message_id"], condition=~models.Q(email_message_id=""), name="unique_email_message_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ticket.reference} {self.kind} {self.created_at:%Y-%m-%d %H:%M}"


class Attachment(models.Model):
    message = models.ForeignKey(TicketMessage, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    path = models.CharField(max_length=500, help_text="relative to VAR_DIR/attachments (outside the web root)")

    def __str__(self) -> str:
        return self.filename


class Pause(models.Model):
    """An interval during which the SLA clock does not run (pending the customer, or a vendor)."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="pauses")
    reason = models.CharField(max_length=16, choices=Turn.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"{self.ticket.reference} paused for {self.reason}"


class HeldEmail(models.Model):
    """An inbound e-mail that could not be placed (unknown sender): kept whole for a person to review."""

    received_at = models.DateTimeField(default=clock.now)
    sender = models.CharField(max_length=320)
    subject = models.CharField(max_length=500)
    message_id = models.CharField(max_length=255, blank=True)
    reason = models.CharField(max_length=200)
    raw = models.BinaryField()
    released_to = models.ForeignKey(Ticket, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.sender}: {self.subject}"


class Vehicle(models.TextChoices):
    COMMERCIAL = "commercial", _("Commercial support")
    UNIFIED = "unified", _("Premier / Unified Support for Partners")
    ADVANCED = "advanced", _("Advanced Support for Partners")
    SIGNATURE = "signature", _("Signature Cloud Support")
    PROVIDER = "provider", _("Indirect provider")


class Escalation(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="escalations")
    vehicle = models.CharField(max_length=16, choices=Vehicle.choices)
    escalated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    escalated_to = models.ForeignKey("tenancy.Organisation", null=True, blank=True, on_delete=models.PROTECT)
    ms_request_id = models.CharField(max_length=40, blank=True, db_index=True)
    ms_call_id = models.CharField(max_length=64, blank=True, help_text="MS-RequestId reused if the call is retried")
    ms_status = models.CharField(max_length=32, blank=True)
    ms_support_topic = models.CharField(max_length=100, blank=True)
    notes_seen = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.ticket.reference} → {self.vehicle} {self.ms_request_id}"


class RouteMethod(models.TextChoices):
    EMAIL = "email", _("E-mail")
    WEBHOOK = "webhook", _("Signed webhook")


class RoutingRule(models.Model):
    """Send chosen categories/services to an outside provider (outsourced or resold support)."""

    organisation = models.ForeignKey("tenancy.Organisation", on_delete=models.PROTECT, related_name="routing_rules")
    category = models.CharField(max_length=32, choices=Category.choices, blank=True, help_text="blank: any")
    service = models.CharField(max_length=16, choices=Service.choices, blank=True, help_text="blank: any")
    provider_name = models.CharField(max_length=200)
    method = models.CharField(max_length=16, choices=RouteMethod.choices)
    address = models.CharField(max_length=500, help_text="e-mail address or https URL")
    secret = models.CharField(max_length=200, blank=True, help_text="HMAC key for webhooks (both directions)")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["organisation", "pk"]

    def __str__(self) -> str:
        return f"{self.provider_name} ({self.category or 'any'}/{self.service or 'any'})"


class Outsourcing(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="outsourcings")
    rule = models.ForeignKey(RoutingRule, on_delete=models.PROTECT)
    external_reference = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ticket", "rule"], name="unique_outsourcing")]

    def __str__(self) -> str:
        return f"{self.ticket.reference} → {self.rule.provider_name}"


class ProviderEvent(models.Model):
    """An inbound event from an outside provider, kept by its id so a retried delivery has one effect."""

    rule = models.ForeignKey(RoutingRule, on_delete=models.PROTECT)
    event_id = models.CharField(max_length=200)
    received_at = models.DateTimeField(default=clock.now)
    payload = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "event_id"], name="unique_provider_event")]

    def __str__(self) -> str:
        return f"{self.rule.provider_name} {self.event_id}"


class TimeEntry(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="time_entries")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    minutes = models.PositiveIntegerField()
    note = models.CharField(max_length=200)
    billable = models.BooleanField(default=True)
    worked_on = models.DateField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["worked_on", "pk"]

    def __str__(self) -> str:
        return f"{self.ticket.reference} {self.minutes} min"


class PlanTerms(models.Model):
    """What a support plan promises, beside its price (which lives in the catalog): the types of support it
    covers (category × service), its service hours and SLA targets, and how customers reach the desk."""

    plan = models.OneToOneField("catalog.SupportPlan", on_delete=models.CASCADE, related_name="terms")
    # [["billing", "*"], ["technical", "azure"], ...]; "*" matches any service.
    in_scope = models.JSONField(default=list)
    service_hours = models.ForeignKey(ServiceHours, on_delete=models.PROTECT)
    # {"critical": [60, 480], ...}: minutes to first response and to resolution, per severity.
    targets = models.JSONField(default=dict)
    # [{"kind": "phone", "value": "+39 02 1234 5678", "hours": "Mon–Fri 09–18"}, {"kind": "email", ...}]
    contact_methods = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"terms of {self.plan}"

    def covers(self, category: str, service: str) -> bool:
        return any(c in (category, "*") and s in (service, "*") for c, s in self.in_scope)
