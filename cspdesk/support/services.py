"""Support desk operations: open, reply, change status, take e-mail in, escalate, keep SLA clocks.

Each operation checks the permission and the tenant scope, writes, and records one audit event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from cspdesk.audit import services as audit
from cspdesk.core import clock
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import Conflict, DomainError, Forbidden, ValidationFailed
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy
from cspdesk.tenancy.models import Customer, Membership, Organisation, OrganisationKind
from cspdesk.tenancy.permissions import Perm

from . import billing_questions, mail, selectors
from .models import (
    Attachment,
    Category,
    Channel,
    Escalation,
    HeldEmail,
    MessageKind,
    Pause,
    PlanTerms,
    Scope,
    Service,
    ServiceHours,
    Severity,
    SlaPolicy,
    Status,
    Ticket,
    TicketMessage,
    TimeEntry,
    Turn,
    Vehicle,
)

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
ALLOWED_TYPES = frozenset(
    {
        "application/pdf", "image/png", "image/jpeg", "image/gif", "text/plain", "text/csv", "application/zip",
        "application/json", "application/xml", "text/xml", "message/rfc822",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)  # fmt: skip
WARN_AT = 0.75  # share of the target after which a warning event is raised


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


# --- SLA ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """The SLA that applies to a ticket: its plan's terms where the customer has a plan with terms, else the
    handling organisation's policy for the severity."""

    service_hours: ServiceHours
    first_response_minutes: int
    resolution_minutes: int
    pause_while_vendor: bool


def plan_terms_for(customer: Customer, on: dt.date) -> PlanTerms | None:
    from cspdesk.catalog import selectors as catalog

    for assignment in catalog.support_assignments(customer.organisation_id, on, on, customer_ids=[customer.pk]):
        return PlanTerms.objects.select_related("service_hours", "plan").filter(plan=assignment.plan).first()
    return None


def _policy(ticket: Ticket) -> Targets | None:
    org_policy = (
        SlaPolicy.objects.select_related("service_hours")
        .filter(organisation_id=ticket.organisation_id, severity=ticket.severity)
        .first()
    )
    terms = plan_terms_for(ticket.customer, ticket.created_at.date())
    if terms is not None and ticket.severity in terms.targets:
        first, resolve = terms.targets[ticket.severity]
        vendor = org_policy.pause_while_vendor if org_policy else False
        return Targets(terms.service_hours, int(first), int(resolve), vendor)
    if org_policy is None:
        return None
    return Targets(org_policy.service_hours, org_policy.first_response_minutes, org_policy.resolution_minutes,
                   org_policy.pause_while_vendor)  # fmt: skip


def _pauses(ticket: Ticket, policy: Targets) -> list[tuple[dt.datetime, dt.datetime]]:
    """Intervals the clock stood still; an open pause counts up to now, so a paused ticket's due time reads
    "due if the clock restarted now" and moves on each time it is recomputed."""
    now = clock.now()
    out = []
    for p in ticket.pauses.all():
        if p.reason == Turn.CUSTOMER or policy.pause_while_vendor:
            out.append((p.started_at, p.ended_at or max(now, p.started_at)))
    return out


def recompute_sla(ticket: Ticket) -> None:
    """Due times from the organisation's policy for the ticket's severity, skipping pauses."""
    policy = _policy(ticket)
    if policy is None:
        ticket.first_response_due = ticket.resolution_due = None
        return
    calendar = policy.service_hours.calendar()
    pauses = _pauses(ticket, policy)
    ticket.first_response_due = calendar.add(
        ticket.created_at, dt.timedelta(minutes=policy.first_response_minutes), pauses
    )
    ticket.resolution_due = calendar.add(ticket.created_at, dt.timedelta(minutes=policy.resolution_minutes), pauses)


def sla_state(ticket: Ticket, now: dt.datetime | None = None) -> dict[str, Any]:
    """Due times, share of each target used, and breach state, as the console and ``tickets`` show them."""
    now = now or clock.now()
    policy = _policy(ticket)
    state: dict[str, Any] = {
        "first_response_due": ticket.first_response_due,
        "resolution_due": ticket.resolution_due,
        "first_response_breached": ticket.first_response_breached,
        "resolution_breached": ticket.resolution_breached,
        "paused": ticket.pauses.filter(ended_at__isnull=True).exists(),
        "turn": ticket.turn,
    }
    if policy is not None:
        calendar = policy.service_hours.calendar()
        pauses = _pauses(ticket, policy)
        until = ticket.resolved_at or now
        used = calendar.elapsed(ticket.created_at, until, pauses)
        state["resolution_used"] = round(used / dt.timedelta(minutes=policy.resolution_minutes), 3)
    return state


def sla_sweep(actor: Actor, now: dt.datetime | None = None) -> dict[str, int]:
    """Raise warning and breach events for tickets whose clocks passed 75 % or 100 % of a target."""
    now = now or clock.now()
    counts = {"warned": 0, "breached": 0}
    open_states = [Status.NEW, Status.OPEN, Status.PENDING_CUSTOMER, Status.ESCALATED]
    for ticket in Ticket.objects.filter(status__in=open_states).exclude(resolution_due__isnull=True):
        with transaction.atomic():
            t = Ticket.objects.select_for_update().get(pk=ticket.pk)
            policy = _policy(t)
            if policy is None:
                continue
            calendar = policy.service_hours.calendar()
            used = calendar.elapsed(t.created_at, now, _pauses(t, policy))
            targets = {"first_response": policy.first_response_minutes, "resolution": policy.resolution_minutes}
            for name, minutes in targets.items():
                if name == "first_response" and t.first_responded_at is not None:
                    continue
                share = used / dt.timedelta(minutes=minutes)
                if share >= 1 and not getattr(t, f"{name}_breached"):
                    setattr(t, f"{name}_breached", True)
                    counts["breached"] += 1
                    _event(actor, t, f"ticket.sla_{name}_breached", {"due": getattr(t, f"{name}_due")})
                elif WARN_AT <= share < 1 and not getattr(t, f"{name}_warned"):
                    setattr(t, f"{name}_warned", True)
                    counts["warned"] += 1
                    _event(actor, t, f"ticket.sla_{name}_warning", {"due": getattr(t, f"{name}_due")})
            t.save()
    return counts


# --- helpers ---------------------------------------------------------------------------------------


def _event(actor: Actor, ticket: Ticket, action: str, after: dict[str, Any] | None = None,
           before: dict[str, Any] | None = None) -> None:  # fmt: skip
    audit.record(actor, action, obj=ticket, before=before, after=after, organisation_id=ticket.organisation_id,
                 customer_id=ticket.customer_id)  # fmt: skip


def _choice(value: str, choices: Any, field: str) -> str:
    if value not in choices.values:
        raise ValidationFailed(f"{field} must be one of {', '.join(choices.values)}", field=field)
    return value


def _ticket_for_change(actor: Actor, ticket_id: int) -> Ticket:
    permissions.require(actor, Perm.TICKETS_CHANGE)
    visible = tenancy.get_or_404(selectors.tickets_for(actor), ticket_id, "ticket")
    return Ticket.objects.select_for_update().get(pk=visible.pk)


def _store_attachments(actor: Actor, message: TicketMessage, files: Iterable[UploadedFile]) -> list[str]:
    """Keep the acceptable files; return a clear sentence for each refused one."""
    refused = []
    root = Path(settings.VAR_DIR) / "attachments" / str(message.ticket_id)
    for f in files:
        if len(f.data) > MAX_ATTACHMENT_BYTES:
            refused.append(f"{f.filename}: {len(f.data):,} bytes is over the {MAX_ATTACHMENT_BYTES:,}-byte limit")
            continue
        if f.content_type not in ALLOWED_TYPES:
            refused.append(f"{f.filename}: files of type {f.content_type} are not accepted")
            continue
        digest = hashlib.sha256(f.data).hexdigest()
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{digest}.bin"
        path.write_bytes(f.data)
        Attachment.objects.create(
            message=message, filename=Path(f.filename).name[:255], content_type=f.content_type, size=len(f.data),
            sha256=digest, path=str(path.relative_to(Path(settings.VAR_DIR))),
        )  # fmt: skip
    if refused:
        TicketMessage.objects.create(
            ticket=message.ticket, kind=MessageKind.SYSTEM,
            body="Some attachments were not accepted:\n" + "\n".join(f"- {r}" for r in refused),
        )  # fmt: skip
    return refused


def _pause(ticket: Ticket, reason: str) -> None:
    if not ticket.pauses.filter(ended_at__isnull=True, reason=reason).exists():
        Pause.objects.create(ticket=ticket, reason=reason, started_at=clock.now())


def _unpause(ticket: Ticket, reason: str | None = None) -> None:
    qs = ticket.pauses.filter(ended_at__isnull=True)
    if reason:
        qs = qs.filter(reason=reason)
    qs.update(ended_at=clock.now())


# --- tickets ---------------------------------------------------------------------------------------


@transaction.atomic
def open_ticket(
    actor: Actor,
    *,
    customer_id: int,
    subject: str,
    body: str,
    category: str,
    service: str,
    severity: str = Severity.NORMAL,
    channel: str = Channel.PORTAL,
    requester_email: str = "",
    invoice_number: str = "",
    invoice_line: str = "",
    attachments: Iterable[UploadedFile] = (),
    email_message_id: str = "",
) -> Ticket:
    permissions.require(actor, Perm.TICKETS_CHANGE)
    customer = tenancy.get_or_404(tenancy.customers_for(actor, Perm.TICKETS_CHANGE), customer_id, "customer")
    if not subject.strip():
        raise ValidationFailed("a ticket needs a subject", field="subject")
    if not body.strip():
        raise ValidationFailed("describe the request", field="body")
    billing_questions.invoice_in_question(customer, invoice_number, invoice_line)
    now = clock.now()
    ticket = Ticket.objects.create(
        organisation_id=customer.organisation_id, customer=customer, reference=f"tmp-{uuid.uuid4().hex[:12]}",
        subject=subject.strip()[:250], channel=_choice(channel, Channel, "channel"),
        category=_choice(category, Category, "category"), service=_choice(service, Service, "service"),
        severity=_choice(severity, Severity, "severity"), requester_id=actor.user_id,
        requester_email=requester_email, invoice_number=invoice_number, invoice_line=invoice_line,
        created_at=now, updated_at=now,
    )  # fmt: skip
    ticket.reference = f"{customer.organisation.invoice_series}-{ticket.pk}"
    _check_scope(ticket)
    recompute_sla(ticket)
    ticket.save()
    billing_questions.sync_dispute(actor, ticket)
    from_customer = actor.kind is ActorKind.CUSTOMER or channel == Channel.EMAIL
    message = TicketMessage.objects.create(
        ticket=ticket, kind=MessageKind.PUBLIC, author_id=actor.user_id, author_email=requester_email,
        from_customer=from_customer, body=body.strip(), email_message_id=email_message_id, created_at=now,
    )  # fmt: skip
    refused = _store_attachments(actor, message, attachments)
    ticket_pk = ticket.pk
    transaction.on_commit(lambda: _route_after_commit(actor, ticket_pk))
    _event(actor, ticket, "ticket.opened", {
        "reference": ticket.reference, "category": ticket.category, "service": ticket.service,
        "severity": ticket.severity, "channel": ticket.channel, "refused_attachments": refused,
    })  # fmt: skip
    return ticket


def _check_scope(ticket: Ticket) -> None:
    terms = plan_terms_for(ticket.customer, ticket.created_at.date())
    if terms is None:
        ticket.scope = Scope.UNKNOWN
        return
    if terms.covers(ticket.category, ticket.service):
        ticket.scope = Scope.IN_SCOPE
        return
    ticket.scope = Scope.OUT_OF_SCOPE
    ticket.scope_note = (
        f"Outside the baseline of plan {terms.plan.name}: {ticket.get_category_display()} for "
        f"{ticket.get_service_display()} is not covered. Options: quote a price, escalate, or decline with a reason."
    )


SCOPE_DECISIONS = {"quote": Scope.QUOTED, "escalate": Scope.ESCALATED, "decline": Scope.DECLINED}


@transaction.atomic
def decide_scope(actor: Actor, ticket_id: int, decision: str, message: str) -> Ticket:
    """Settle an out-of-scope request: quote (the message states the price), escalate, or decline with a
    reason. The message goes to the customer; a decline also resolves the ticket."""
    ticket = _ticket_for_change(actor, ticket_id)
    if actor.kind is ActorKind.CUSTOMER:
        raise Forbidden("customers do not decide scope", code="permission_denied")
    if ticket.scope != Scope.OUT_OF_SCOPE:
        raise Conflict(
            f"{ticket.reference} is not an open out-of-scope request ({ticket.scope})", code="not_out_of_scope"
        )
    if decision not in SCOPE_DECISIONS:
        raise ValidationFailed(f"decision must be one of {', '.join(SCOPE_DECISIONS)}", field="decision")
    if not message.strip():
        raise ValidationFailed("tell the customer the price or the reason", field="message")
    before = {"scope": ticket.scope}
    ticket.scope = SCOPE_DECISIONS[decision]
    now = clock.now()
    TicketMessage.objects.create(ticket=ticket, kind=MessageKind.PUBLIC, author_id=actor.user_id,
                                 body=message.strip(), created_at=now)  # fmt: skip
    ticket.first_responded_at = ticket.first_responded_at or now
    if decision == "decline":
        ticket.status = Status.RESOLVED
        ticket.resolved_at = now
    elif ticket.status == Status.NEW:
        ticket.status = Status.OPEN
    ticket.updated_at = now
    ticket.save()
    billing_questions.sync_dispute(actor, ticket)
    _event(actor, ticket, "ticket.scope_decided", {"scope": ticket.scope, "decision": decision}, before)
    return ticket


def _route_after_commit(actor: Actor, ticket_id: int) -> None:
    from . import outsourcing

    outsourcing.route(actor, ticket_id)


@transaction.atomic
def log_time(actor: Actor, ticket_id: int, minutes: int, note: str, *, billable: bool = True,
             worked_on: dt.date | None = None) -> TimeEntry:  # fmt: skip
    """Record work on a ticket; billable time goes to the customer's next invoice through its support plan."""
    ticket = _ticket_for_change(actor, ticket_id)
    if actor.kind is ActorKind.CUSTOMER:
        raise Forbidden("customers do not log time", code="permission_denied")
    if minutes <= 0:
        raise ValidationFailed("minutes must be above zero", field="minutes")
    entry = TimeEntry.objects.create(ticket=ticket, author_id=actor.user_id, minutes=minutes, note=note[:200],
                                     billable=billable, worked_on=worked_on or clock.today())  # fmt: skip
    if billable:
        from cspdesk.catalog import services as catalog

        catalog.record_support_charge(
            actor, customer_id=ticket.customer_id, kind="hours", quantity=Decimal(minutes) / 60,
            description=f"{ticket.reference}: {note}"[:200], occurred_on=entry.worked_on,
            reference=f"{ticket.reference}/time/{entry.pk}",
        )  # fmt: skip
    _event(actor, ticket, "ticket.time_logged", {"minutes": minutes, "billable": billable, "entry": entry.pk})
    return entry


@transaction.atomic
def reply(
    actor: Actor,
    ticket_id: int,
    body: str,
    *,
    internal: bool = False,
    attachments: Iterable[UploadedFile] = (),
    email_message_id: str = "",
    author_email: str = "",
) -> TicketMessage:
    ticket = _ticket_for_change(actor, ticket_id)
    if not body.strip():
        raise ValidationFailed("the reply is empty", field="body")
    from_customer = actor.kind is ActorKind.CUSTOMER or bool(author_email)
    if internal and from_customer:
        raise Forbidden("customers cannot write internal notes", code="permission_denied")
    if ticket.status == Status.CLOSED:
        raise Conflict(f"{ticket.reference} is closed; open a new ticket", code="ticket_closed")
    now = clock.now()
    message = TicketMessage.objects.create(
        ticket=ticket, kind=MessageKind.INTERNAL if internal else MessageKind.PUBLIC, author_id=actor.user_id,
        author_email=author_email, from_customer=from_customer, body=body.strip(),
        email_message_id=email_message_id, created_at=now,
    )  # fmt: skip
    before = {"status": ticket.status, "turn": ticket.turn}
    if from_customer:
        if ticket.status in (Status.PENDING_CUSTOMER, Status.RESOLVED):
            ticket.status = Status.OPEN
            ticket.resolved_at = None
        _unpause(ticket, Turn.CUSTOMER)
        if ticket.turn == Turn.CUSTOMER:
            ticket.turn = Turn.PARTNER
    elif not internal:
        if ticket.first_responded_at is None:
            ticket.first_responded_at = now
        if ticket.status == Status.NEW:
            ticket.status = Status.OPEN
    _store_attachments(actor, message, attachments)
    recompute_sla(ticket)
    ticket.updated_at = now
    ticket.save()
    billing_questions.sync_dispute(actor, ticket)
    _event(actor, ticket, "ticket.internal_note" if internal else "ticket.replied",
           {"message_id": message.pk, "status": ticket.status, "turn": ticket.turn}, before)  # fmt: skip
    return message


_ALLOWED = {
    Status.NEW: {Status.OPEN, Status.PENDING_CUSTOMER, Status.RESOLVED, Status.CLOSED},
    Status.OPEN: {Status.PENDING_CUSTOMER, Status.RESOLVED, Status.CLOSED},
    Status.PENDING_CUSTOMER: {Status.OPEN, Status.RESOLVED, Status.CLOSED},
    Status.ESCALATED: {Status.OPEN, Status.PENDING_CUSTOMER, Status.RESOLVED, Status.CLOSED},
    Status.RESOLVED: {Status.OPEN, Status.CLOSED},
    Status.CLOSED: set(),
}


@transaction.atomic
def change_status(actor: Actor, ticket_id: int, status: str, *, note: str = "") -> Ticket:
    """Move a ticket (staff). Pending-customer stops the clock until the customer answers or staff resume."""
    ticket = _ticket_for_change(actor, ticket_id)
    if actor.kind is ActorKind.CUSTOMER and status not in (Status.RESOLVED, Status.CLOSED):
        raise Forbidden("customers can only mark their ticket resolved or closed", code="permission_denied")
    _choice(status, Status, "status")
    if status not in _ALLOWED[Status(ticket.status)]:
        raise Conflict(f"{ticket.reference} cannot go from {ticket.status} to {status}", code="invalid_transition",
                       field="status")  # fmt: skip
    before = {"status": ticket.status, "turn": ticket.turn}
    now = clock.now()
    if status == Status.PENDING_CUSTOMER:
        _pause(ticket, Turn.CUSTOMER)
        ticket.turn = Turn.CUSTOMER
    else:
        _unpause(ticket, Turn.CUSTOMER)
        if ticket.turn == Turn.CUSTOMER:
            ticket.turn = Turn.PARTNER
    if status == Status.RESOLVED:
        ticket.resolved_at = now
    elif status == Status.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    elif status == Status.OPEN:
        ticket.resolved_at = None
    ticket.status = status
    recompute_sla(ticket)
    ticket.updated_at = now
    ticket.save()
    if note:
        TicketMessage.objects.create(ticket=ticket, kind=MessageKind.INTERNAL, author_id=actor.user_id, body=note)
    billing_questions.sync_dispute(actor, ticket)
    _event(actor, ticket, "ticket.status_changed", {"status": status, "turn": ticket.turn}, before)
    return ticket


@transaction.atomic
def assign(actor: Actor, ticket_id: int, user_id: int | None, queue: str | None = None) -> Ticket:
    ticket = _ticket_for_change(actor, ticket_id)
    if actor.kind is ActorKind.CUSTOMER:
        raise Forbidden("customers do not assign tickets", code="permission_denied")
    before = {"assignee": ticket.assignee_id, "queue": ticket.queue}
    if user_id is not None:
        ok = Membership.objects.filter(
            user_id=user_id, organisation_id__in=[ticket.organisation_id, actor.organisation_id]
        ).exists()
        if not ok:
            raise ValidationFailed("the assignee must be staff of the handling organisation", field="assignee")
    ticket.assignee_id = user_id
    if queue:
        ticket.queue = queue
    ticket.save(update_fields=["assignee", "queue", "updated_at"])
    _event(actor, ticket, "ticket.assigned", {"assignee": user_id, "queue": ticket.queue}, before)
    return ticket


# --- e-mail intake ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailOutcome:
    action: str  # "opened", "replied", "duplicate", "held"
    ticket_id: int | None = None
    reference: str | None = None
    held_id: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _sender_customer(actor: Actor, sender: str) -> tuple[Customer | None, int | None]:
    """The customer an address belongs to (a customer user's e-mail, or a billing contact)."""
    scope = tenancy.customers_for(actor, Perm.TICKETS_CHANGE)
    user = get_user_model().objects.filter(email__iexact=sender, is_active=True).first()
    if user is not None:
        m = Membership.objects.filter(user=user, customer__in=scope).first()
        if m is not None and m.customer is not None:
            return m.customer, user.pk
    for customer in scope:
        if sender in {e.lower() for e in customer.billing_emails}:
            return customer, None
    return None, None


def _hold(actor: Actor, parsed: mail.InboundMessage | None, raw: bytes, reason: str) -> MailOutcome:
    held = HeldEmail.objects.create(
        sender=parsed.sender if parsed else "", subject=(parsed.subject if parsed else "")[:500],
        message_id=parsed.message_id if parsed else "", reason=reason[:200], raw=raw,
    )  # fmt: skip
    audit.record(actor, "mail.held", obj=held, after={"sender": held.sender, "reason": reason})
    return MailOutcome("held", held_id=held.pk, reason=reason)


@transaction.atomic
def take_in_email(actor: Actor, raw: bytes) -> MailOutcome:
    """File an inbound message: a reply threads into its ticket, a new one opens a ticket, an unknown
    sender is held for review. The same Message-ID twice is taken in once."""
    permissions.require(actor, Perm.TICKETS_CHANGE)
    try:
        parsed = mail.parse(raw)
    except DomainError as exc:
        return _hold(actor, None, raw, f"unreadable message: {exc.message}")
    if parsed.message_id:
        seen = TicketMessage.objects.filter(email_message_id=parsed.message_id).select_related("ticket").first()
        if seen is not None:
            return MailOutcome("duplicate", seen.ticket_id, seen.ticket.reference)
    customer, user_id = _sender_customer(actor, parsed.sender)
    if customer is None:
        return _hold(actor, parsed, raw, f"{parsed.sender} is not a known customer contact")
    files = [UploadedFile(a.filename, a.content_type, a.data) for a in parsed.attachments]
    target = _thread(actor, customer, parsed)
    sender_actor = Actor(kind=ActorKind.SYSTEM, user_id=user_id, username=f"mail:{parsed.sender}",
                         request_id=actor.request_id)  # fmt: skip
    if target is not None:
        if target.status == Status.CLOSED:
            target = None
        else:
            reply(sender_actor, target.pk, parsed.body or "(empty message)", attachments=files,
                  email_message_id=parsed.message_id, author_email=parsed.sender)  # fmt: skip
            return MailOutcome("replied", target.pk, target.reference)
    ticket = open_ticket(
        sender_actor, customer_id=customer.pk, subject=parsed.subject or "(no subject)",
        body=parsed.body or "(empty message)", category=Category.TECHNICAL, service=Service.OTHER,
        channel=Channel.EMAIL, requester_email=parsed.sender, attachments=files,
        email_message_id=parsed.message_id,
    )  # fmt: skip
    return MailOutcome("opened", ticket.pk, ticket.reference)


def _thread(actor: Actor, customer: Customer, parsed: mail.InboundMessage) -> Ticket | None:
    mine = Ticket.objects.filter(customer=customer)
    ref = parsed.ticket_reference
    if ref:
        found = mine.filter(reference=ref).first()
        if found is not None:
            return found
    if parsed.references:
        msg = TicketMessage.objects.filter(ticket__in=mine, email_message_id__in=parsed.references).first()
        if msg is not None:
            return msg.ticket
    return None


# --- escalation ------------------------------------------------------------------------------------

PC_SEVERITY = {Severity.CRITICAL: "critical", Severity.HIGH: "moderate", Severity.NORMAL: "minimal"}
CLOUD_SERVICES = {Service.AZURE, Service.M365, Service.D365}
COMMERCIAL_CATEGORIES = {Category.BILLING, Category.SUBSCRIPTION, Category.COMMERCIAL}
TOPIC_NAMES = {
    Category.BILLING: "Billing",
    Category.SUBSCRIPTION: "Subscription management",
    Category.COMMERCIAL: "Customer management",
    Service.AZURE: "Azure technical",
    Service.M365: "Microsoft 365 technical",
    Service.D365: "Dynamics 365 technical",
    Service.OTHER: "Partner Center Issues",
}


def _escalating_org(actor: Actor, ticket: Ticket) -> Organisation:
    if actor.is_system or actor.organisation_id == ticket.organisation_id:
        return ticket.organisation
    if ticket.escalations.filter(escalated_to_id=actor.organisation_id).exists():
        return Organisation.objects.get(pk=actor.organisation_pk)
    raise Forbidden("only the handling organisation escalates this ticket", code="permission_denied")


def propose_vehicle(ticket: Ticket, org: Organisation) -> tuple[str, str]:
    """Which channel a ticket goes to next, and why (or a clear error when there is none)."""
    if org.kind == OrganisationKind.INDIRECT_RESELLER:
        return Vehicle.PROVIDER, f"{org} is an indirect reseller: its indirect provider {org.parent} escalates"
    if ticket.category in COMMERCIAL_CATEGORIES:
        return Vehicle.COMMERCIAL, "billing, subscription and commercial issues go to commercial support"
    if org.has_unified_support:
        return Vehicle.UNIFIED, "technical issue; Premier/Unified Support for Partners covers all products"
    if ticket.service in CLOUD_SERVICES and org.has_advanced_support:
        return Vehicle.ADVANCED, "technical cloud issue; Advanced Support for Partners covers cloud products"
    if ticket.service in CLOUD_SERVICES and org.has_signature_support:
        return Vehicle.SIGNATURE, "technical cloud issue; Signature Cloud Support covers cloud products"
    scope = "this product" if ticket.service not in CLOUD_SERVICES else "technical issues"
    raise DomainError(
        f"{org} has no Microsoft technical support entitlement for {scope} (Premier/Unified, Advanced or "
        "Signature Cloud Support). Options: resolve it within your own support, buy a support incident, or "
        "decline with a reason.",
        code="no_technical_entitlement",
    )


def _client_for(org: Organisation) -> Any:
    from cspdesk.partnercenter.client import PartnerCenterClient

    return PartnerCenterClient.for_organisation(org)


def escalate(actor: Actor, ticket_id: int, *, vehicle: str | None = None, note: str = "",
             client_factory: Any = None) -> Escalation:  # fmt: skip
    """Escalate to the next tier: a reseller's ticket to its indirect provider; otherwise to Microsoft
    through the proposed (or chosen) vehicle, creating a Partner Center service request."""
    with transaction.atomic():
        ticket = _ticket_for_change(actor, ticket_id)
        if actor.kind is ActorKind.CUSTOMER:
            raise Forbidden("customers do not escalate", code="permission_denied")
        org = _escalating_org(actor, ticket)
        proposed, why = propose_vehicle(ticket, org)
        chosen = vehicle or proposed
        _choice(chosen, Vehicle, "vehicle")
        if chosen != proposed and chosen not in org.support_vehicles():
            raise ValidationFailed(f"{org} is not entitled to {chosen}; proposed: {proposed} ({why})", field="vehicle")
        if ticket.escalations.filter(vehicle=chosen, closed_at__isnull=True).exclude(ms_request_id="").exists():
            raise Conflict(f"{ticket.reference} is already escalated through {chosen}", code="already_escalated")
        if chosen == Vehicle.PROVIDER:
            esc = Escalation.objects.create(ticket=ticket, vehicle=chosen, escalated_by_id=actor.user_id,
                                            escalated_to=org.parent)  # fmt: skip
            _mark_escalated(ticket, Turn.PROVIDER)
            if note:
                TicketMessage.objects.create(ticket=ticket, kind=MessageKind.INTERNAL, author_id=actor.user_id,
                                             body=note)  # fmt: skip
            _event(actor, ticket, "ticket.escalated", {"vehicle": chosen, "to": org.parent_id, "reason": why})
            return esc
        esc = (
            ticket.escalations.filter(vehicle=chosen, ms_request_id="", closed_at__isnull=True).first()
            or Escalation.objects.create(ticket=ticket, vehicle=chosen, escalated_by_id=actor.user_id,
                                         ms_call_id=str(uuid.uuid4()))
        )  # fmt: skip
    # The Partner Center call happens outside the transaction; its MS-RequestId is stored first, so a
    # retry after a crash or a timeout repeats the same request instead of opening a second one.
    first = ticket.messages.filter(kind=MessageKind.PUBLIC).first()
    topic_name = TOPIC_NAMES[Category(ticket.category)] if ticket.category in COMMERCIAL_CATEGORIES else TOPIC_NAMES[
        Service(ticket.service)]  # fmt: skip
    with (client_factory or _client_for)(org) as client:
        topics = {t["name"]: t for t in client.list_support_topics()}
        topic = topics.get(topic_name) or topics.get("Partner Center Issues")
        if topic is None:
            raise DomainError("Partner Center offers no support topic for this request", code="no_support_topic")
        description = (
            f"Vehicle: {Vehicle(chosen).label}\nCustomer: {ticket.customer.name} "
            f"(tenant {ticket.customer.tenant_id})\nTicket: {ticket.reference}\n\n{first.body if first else ''}"
        )
        sr = client.create_service_request(
            title=f"[{ticket.reference}] {ticket.subject}"[:200], description=description[:4000],
            severity=PC_SEVERITY[Severity(ticket.severity)], support_topic_id=str(topic["id"]),
            country_code=org.country, note=note or None, request_id=esc.ms_call_id,
        )  # fmt: skip
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        esc.ms_request_id = str(sr.get("id", ""))
        esc.ms_status = str(sr.get("status", ""))
        esc.ms_support_topic = str(topic["name"])
        esc.last_synced_at = clock.now()
        esc.save()
        _mark_escalated(ticket, Turn.MICROSOFT)
        TicketMessage.objects.create(
            ticket=ticket, kind=MessageKind.SYSTEM,
            body=f"Escalated to Microsoft ({Vehicle(chosen).label}), service request {esc.ms_request_id}.",
        )  # fmt: skip
        _event(actor, ticket, "ticket.escalated",
               {"vehicle": chosen, "ms_request_id": esc.ms_request_id, "reason": why})  # fmt: skip
    return esc


def _mark_escalated(ticket: Ticket, turn: str) -> None:
    ticket.status = Status.ESCALATED
    ticket.turn = turn
    policy = _policy(ticket)
    if policy is not None and policy.pause_while_vendor:
        _pause(ticket, turn)
    recompute_sla(ticket)
    ticket.updated_at = clock.now()
    ticket.save()


def sync_escalations(actor: Actor, client_factory: Any = None) -> dict[str, int]:
    """Bring Microsoft's status and notes back onto open escalations."""
    counts = {"checked": 0, "notes": 0, "closed": 0, "failed": 0}
    open_escalations = Escalation.objects.filter(closed_at__isnull=True).exclude(ms_request_id="").select_related(
        "ticket__organisation")  # fmt: skip
    for esc in open_escalations:
        org = esc.escalated_to or esc.ticket.organisation
        if esc.vehicle != Vehicle.PROVIDER and org.kind == OrganisationKind.INDIRECT_RESELLER and org.parent:
            org = org.parent
        holder = Organisation.objects.filter(
            Q(pk=esc.ticket.organisation_id) | Q(resellers=esc.ticket.organisation_id), pc_tenant_id__isnull=False
        ).first() or org  # fmt: skip
        try:
            with (client_factory or _client_for)(holder) as client:
                sr = client.get_service_request(esc.ms_request_id)
        except DomainError:
            counts["failed"] += 1
            continue
        counts["checked"] += 1
        with transaction.atomic():
            ticket = Ticket.objects.select_for_update().get(pk=esc.ticket_id)
            notes = sr.get("notes") or []
            for n in notes[esc.notes_seen :]:
                TicketMessage.objects.create(
                    ticket=ticket,
                    kind=MessageKind.INTERNAL,
                    body=f"Microsoft ({n.get('createdByName', '')}): {n.get('text', '')}",
                )
                counts["notes"] += 1
            esc.notes_seen = len(notes)
            esc.ms_status = str(sr.get("status", esc.ms_status))
            esc.last_synced_at = clock.now()
            if esc.ms_status == "closed":
                esc.closed_at = clock.now()
                counts["closed"] += 1
                _unpause(ticket, Turn.MICROSOFT)
                ticket.turn = Turn.PARTNER
                if ticket.status == Status.ESCALATED:
                    ticket.status = Status.OPEN
                recompute_sla(ticket)
                ticket.save()
            esc.save()
            _event(
                actor,
                ticket,
                "ticket.escalation_synced",
                {"ms_request_id": esc.ms_request_id, "ms_status": esc.ms_status, "notes": esc.notes_seen},
            )
    return counts


def require_ticket(actor: Actor, ticket_id: int) -> Ticket:
    """A ticket the actor may read (404 when it is not theirs to see)."""
    permissions.require(actor, Perm.TICKETS_READ)
    ticket: Ticket = tenancy.get_or_404(selectors.tickets_for(actor), ticket_id, "ticket")
    return ticket


@transaction.atomic
def set_plan_terms(
    actor: Actor,
    plan_id: int,
    *,
    in_scope: list[list[str]],
    service_hours_id: int,
    targets: dict[str, list[int]],
    contact_methods: list[dict[str, str]],
) -> PlanTerms:
    """Publish what a support plan covers, when, how fast and through which channels."""
    from cspdesk.catalog import selectors as catalog

    permissions.require(actor, Perm.PRICE_RULES_CHANGE)
    plan = tenancy.get_or_404(catalog.support_plans_for(actor), plan_id, "support plan")
    hours = tenancy.get_or_404(ServiceHours.objects.filter(organisation_id=plan.organisation_id), service_hours_id,
                               "service hours")  # fmt: skip
    for i, pair in enumerate(in_scope):
        if len(pair) != 2 or pair[0] not in [*Category.values, "*"] or pair[1] not in [*Service.values, "*"]:
            raise ValidationFailed(f"in_scope[{i}] must be [category or *, service or *]", field=f"in_scope[{i}]")
    for severity, minutes in targets.items():
        if (
            severity not in Severity.values
            or len(minutes) != 2
            or not all(isinstance(m, int) and m > 0 for m in minutes)
        ):
            raise ValidationFailed(f"targets[{severity}] must be [first response, resolution] in minutes",
                                   field=f"targets.{severity}")  # fmt: skip
    for i, method in enumerate(contact_methods):
        if method.get("kind") not in {"portal", "email", "phone"} or (method["kind"] != "portal" and not method.get(
                "value")):  # fmt: skip
            raise ValidationFailed(f"contact_methods[{i}] needs a kind (portal, email, phone) and a value",
                                   field=f"contact_methods[{i}]")  # fmt: skip
    terms, _ = PlanTerms.objects.update_or_create(
        plan=plan, defaults={"in_scope": in_scope, "service_hours": hours, "targets": targets,
                             "contact_methods": contact_methods},
    )  # fmt: skip
    audit.record(actor, "support.plan_terms_set", obj=terms, organisation_id=plan.organisation_id,
                 after={"plan": plan.pk, "in_scope": in_scope, "targets": targets})  # fmt: skip
    return terms
