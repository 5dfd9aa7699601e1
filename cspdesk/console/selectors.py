"""What the staff console shows, computed from the domain apps' scoped selectors.

Every function takes the :class:`Actor` and reads only through the owning app's ``*_for(actor)``
selectors, so the numbers a person sees are the numbers their role and tenant scope allow. Figures are
``Decimal``, per currency (amounts in different currencies are never added together).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from cspdesk.audit.models import AuditEvent
from cspdesk.billing import selectors as billing_selectors
from cspdesk.billing.models import InvoiceKind, InvoiceStatus
from cspdesk.collections import selectors as collection_selectors
from cspdesk.collections.models import (
    ActionStatus,
    CaseAction,
    CaseStatus,
    Dispute,
    DisputeStatus,
    Hold,
    PaymentPlan,
    PlanStatus,
)
from cspdesk.collections.models import Case as CollectionCase
from cspdesk.core import clock
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.money import quantize
from cspdesk.partnercenter import selectors as pc_selectors
from cspdesk.partnercenter.models import Subscription, SubscriptionStatus
from cspdesk.partnercenter.recon.models import ChargeLine, ImportKind, ImportStatus
from cspdesk.payments import allocation
from cspdesk.payments import selectors as payment_selectors
from cspdesk.support import selectors as support_selectors
from cspdesk.support.models import Status as TicketStatus
from cspdesk.support.models import Ticket, Turn
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.permissions import Perm

ZERO = Decimal(0)
OPEN_TICKET_STATES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING_CUSTOMER, TicketStatus.ESCALATED)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def last_months(today: dt.date, count: int) -> list[dt.date]:
    """The first days of the ``count`` months ending with ``today``'s month, oldest first."""
    first = month_start(today)
    return [add_months(first, -i) for i in range(count - 1, -1, -1)]


# ---------------------------------------------------------------- revenue, cost and margin


@dataclass(frozen=True)
class MonthMargin:
    period: dt.date
    revenue: Decimal
    cost: Decimal

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_percent(self) -> Decimal | None:
        if not self.revenue:
            return None
        return (self.margin / self.revenue * 100).quantize(Decimal("0.1"))


def monthly_margin(actor: Actor, months: int = 12, today: dt.date | None = None) -> dict[str, list[MonthMargin]]:
    """Per currency, per billed month: net revenue of finalized invoices less credit notes, Microsoft's cost
    of the same lines, and the margin. Only what the actor's organisation sells (not what it buys)."""
    today = today or clock.today()
    periods = last_months(today, months)
    qs = billing_selectors.invoices_for(actor).filter(status=InvoiceStatus.FINALIZED, period__gte=periods[0])
    if not actor.is_system and actor.organisation_id is not None:
        qs = qs.filter(organisation_id=actor.organisation_id)
    sums: dict[tuple[str, dt.date], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    rows = qs.values("currency", "period", "kind").annotate(net=Sum("net"), cost=Sum("cost")).order_by()
    for row in rows:
        sign = -1 if row["kind"] == InvoiceKind.CREDIT_NOTE else 1
        acc = sums[(row["currency"], month_start(row["period"]))]
        acc[0] += sign * Decimal(row["net"] or 0)
        acc[1] += sign * Decimal(row["cost"] or 0)
    out: dict[str, list[MonthMargin]] = {}
    for currency in sorted({c for c, _p in sums}):
        out[currency] = [
            MonthMargin(p, quantize(sums[(currency, p)][0], currency), quantize(sums[(currency, p)][1], currency))
            if (currency, p) in sums
            else MonthMargin(p, ZERO, ZERO)
            for p in periods
        ]
    return out


# ---------------------------------------------------------------- receivables and payables


def receivables_aging(actor: Actor, today: dt.date | None = None) -> dict[str, dict[str, Decimal]]:
    """Open receivables per currency by age bucket (``current`` … ``over_90``, and ``total``), summed over
    the organisations the actor reads (each invoice counted once: resellers' rows are not rolled up again)."""
    report = payment_selectors.aging_report(actor, today)
    out: dict[str, dict[str, Decimal]] = {}
    for row in report["organisations"]:
        acc = out.setdefault(row["currency"], dict.fromkeys([*allocation.BUCKETS, "total"], ZERO))
        for key, value in row["buckets"].items():
            acc[key] += value
    return dict(sorted(out.items()))


PAYABLE_BUCKETS = ("overdue", "week", "month", "two_months", "later")


def payable_bucket(due: dt.date, today: dt.date) -> str:
    days = (due - today).days
    if days < 0:
        return "overdue"
    if days <= 7:
        return "week"
    if days <= 30:
        return "month"
    if days <= 60:
        return "two_months"
    return "later"


def payables_due(actor: Actor, today: dt.date | None = None) -> dict[str, dict[str, Decimal]]:
    """Unpaid Microsoft invoices per currency by when they fall due: overdue, within 7, 30, 60 days, later."""
    today = today or clock.today()
    out: dict[str, dict[str, Decimal]] = {}
    for mi in payment_selectors.microsoft_unpaid(actor):
        acc = out.setdefault(mi.currency, dict.fromkeys(PAYABLE_BUCKETS, ZERO))
        acc[payable_bucket(mi.due_date, today)] += Decimal(mi.total)
    return {c: {k: quantize(v, c) for k, v in b.items()} for c, b in sorted(out.items())}


# ---------------------------------------------------------------- SLA compliance


@dataclass
class SlaMonth:
    period: dt.date
    met: int = 0
    breached: int = 0
    running: int = 0

    @property
    def decided(self) -> int:
        return self.met + self.breached

    @property
    def percent(self) -> Decimal | None:
        if not self.decided:
            return None
        return (Decimal(self.met) / self.decided * 100).quantize(Decimal("0.1"))


def resolution_outcome(ticket: Ticket, now: dt.datetime) -> str | None:
    """``met``, ``breached`` or ``running`` for a ticket with a resolution target; ``None`` without one."""
    due = ticket.resolution_due
    if due is None:
        return None
    if ticket.resolution_breached:
        return "breached"
    if ticket.resolved_at is not None:
        return "met" if ticket.resolved_at <= due else "breached"
    return "breached" if now > due else "running"


def sla_compliance(actor: Actor, months: int = 6, now: dt.datetime | None = None) -> list[SlaMonth]:
    """Per month of opening: tickets resolved within their resolution target, those that missed it, and
    those still running inside it. Tickets without an SLA policy are left out."""
    now = now or clock.now()
    periods = last_months(now.date(), months)
    by_month = {p: SlaMonth(p) for p in periods}
    since = dt.datetime.combine(periods[0], dt.time.min, tzinfo=dt.UTC)
    qs = support_selectors.tickets_for(actor).filter(created_at__gte=since, resolution_due__isnull=False)
    for ticket in qs.select_related(None):
        outcome = resolution_outcome(ticket, now)
        month = by_month.get(month_start(ticket.created_at.date()))
        if month is None or outcome is None:
            continue
        setattr(month, outcome, getattr(month, outcome) + 1)
    return [by_month[p] for p in periods]


def open_amount(invoice: Any) -> Decimal:
    """An invoice's open amount from a ``payments.selectors.receivables_for`` row (annotated)."""
    return payment_selectors.open_of(invoice)


# ---------------------------------------------------------------- ticket SLA timers


@dataclass(frozen=True)
class SlaTimer:
    """The clock a ticket runs against now: the first response until there is one, then the resolution."""

    target: str  # "first_response", "resolution" or "" (no SLA policy, or resolved / closed)
    due: dt.datetime | None
    left: dt.timedelta | None
    breached: bool
    paused: bool

    @property
    def minutes_left(self) -> int | None:
        return None if self.left is None else int(self.left.total_seconds() // 60)

    @property
    def sort_key(self) -> tuple[int, float]:
        """Breached first, then the least time left; tickets without a running clock last."""
        if self.breached:
            return (0, self.left.total_seconds() if self.left is not None else 0.0)
        if self.left is None or self.paused:
            return (2, 0.0)
        return (1, self.left.total_seconds())


def sla_timer(ticket: Ticket, now: dt.datetime) -> SlaTimer:
    paused = ticket.turn == Turn.CUSTOMER
    if ticket.status not in OPEN_TICKET_STATES:
        return SlaTimer("", None, None, bool(ticket.resolution_breached), False)
    if ticket.first_responded_at is None and ticket.first_response_due is not None:
        target, due, flag = "first_response", ticket.first_response_due, ticket.first_response_breached
    elif ticket.resolution_due is not None:
        target, due, flag = "resolution", ticket.resolution_due, ticket.resolution_breached
    else:
        return SlaTimer("", None, None, False, paused)
    left = due - now
    return SlaTimer(target, due, left, bool(flag) or left.total_seconds() < 0, paused)


# ---------------------------------------------------------------- the dunning funnel

FUNNEL_STAGES = ("open", "overdue", "over_14", "over_30", "over_60")
_FUNNEL_DAYS = {"over_14": 14, "over_30": 30, "over_60": 60}


def dunning_funnel(actor: Actor, today: dt.date | None = None) -> dict[str, int]:
    """How many customers owe something, and how many of them are overdue, more than 14, 30, 60 days
    (by their oldest unpaid due date). Each stage is a subset of the one before."""
    if not permissions.has(actor, Perm.COLLECTIONS_READ):
        return dict.fromkeys(FUNNEL_STAGES, 0)
    today = today or clock.today()
    oldest: dict[int, dt.date | None] = {}
    for inv in payment_selectors.receivables_for(actor).select_related(None):
        amount = payment_selectors.open_of(inv)
        if amount <= ZERO or inv.customer_id is None:
            continue
        current = oldest.get(inv.customer_id)
        due = inv.due_date
        if inv.customer_id not in oldest or (due is not None and (current is None or due < current)):
            oldest[inv.customer_id] = due
    counts = dict.fromkeys(FUNNEL_STAGES, 0)
    for due in oldest.values():
        counts["open"] += 1
        late = (today - due).days if due else 0
        if late > 0:
            counts["overdue"] += 1
        for stage, days in _FUNNEL_DAYS.items():
            if late > days:
                counts[stage] += 1
    return counts


# ---------------------------------------------------------------- billing runs


ANOMALY_ORDER = ("price_rule_conflict", "no_exchange_rate", "unsupported_tax_case", "negative_margin",
                 "no_price_rule", "bill_moved", "unassigned_cost")  # fmt: skip


@dataclass
class RunReview:
    """A billing run's review, anomalies first: organisation-wide problems, then customers with anomalies
    (most serious first), then the rest."""

    organisation_anomalies: list[dict[str, Any]]
    flagged: list[dict[str, Any]]
    clean: list[dict[str, Any]]
    blocking: int
    totals: dict[str, dict[str, Any]] = field(default_factory=dict)


def review_of(review: dict[str, Any], blocking_codes: frozenset[str]) -> RunReview:
    def rank(code: str) -> int:
        return ANOMALY_ORDER.index(code) if code in ANOMALY_ORDER else len(ANOMALY_ORDER)

    customers = list(review.get("customers", []))
    flagged = [c for c in customers if c.get("anomalies")]
    flagged.sort(key=lambda c: (min(rank(a["code"]) for a in c["anomalies"]), c.get("buyer_name", "")))
    clean = sorted((c for c in customers if not c.get("anomalies")), key=lambda c: c.get("buyer_name", ""))
    blocking = sum(1 for c in flagged for a in c["anomalies"] if a["code"] in blocking_codes)
    return RunReview(list(review.get("anomalies", [])), flagged, clean, blocking, dict(review.get("totals", {})))


# ---------------------------------------------------------------- the audit log and customer timelines

# Which permission reading an event needs, by the action's family (the text before the first dot).
EVENT_FAMILIES: dict[str, Perm] = {
    "billing": Perm.INVOICES_READ,
    "recon": Perm.INVOICES_READ,
    "payments": Perm.PAYMENTS_READ,
    "collections": Perm.COLLECTIONS_READ,
    "ticket": Perm.TICKETS_READ,
    "support": Perm.TICKETS_READ,
    "mail": Perm.TICKETS_READ,
    "subscription": Perm.SUBSCRIPTIONS_READ,
    "partnercenter": Perm.SUBSCRIPTIONS_READ,
    "catalog": Perm.PRICE_RULES_READ,
    "user": Perm.USERS_READ,
    "api_token": Perm.USERS_READ,
    "organisation": Perm.ORGANISATIONS_READ,
    "customer": Perm.CUSTOMERS_READ,
}


def _families_filter(actor: Actor) -> Q | None:
    """``None`` when every family is readable; else the filter to the readable ones."""
    allowed = [fam for fam, perm in EVENT_FAMILIES.items() if permissions.has(actor, perm)]
    if len(allowed) == len(EVENT_FAMILIES):
        return None
    q = Q(pk__in=[])
    for fam in allowed:
        q |= Q(action__startswith=f"{fam}.")
    return q


def events_for(actor: Actor) -> QuerySet[AuditEvent]:
    """Audit events the actor may read: ``audit.read``, events of the organisations it reads (or of their
    customers), and only the families its role may read."""
    if not permissions.has(actor, Perm.AUDIT_READ) or actor.kind is ActorKind.CUSTOMER:
        return AuditEvent.objects.none()
    qs = AuditEvent.objects.all()
    if not actor.is_system:
        orgs = tenancy_selectors.readable_organisation_ids(actor) or set()
        customers = tenancy_selectors.customers_for(actor).values("pk")
        qs = qs.filter(Q(organisation_id__in=orgs) | Q(customer_id__in=customers))
    families = _families_filter(actor)
    return qs if families is None else qs.filter(families)


def timeline_for(actor: Actor, customer_id: int, limit: int = 50) -> list[AuditEvent]:
    """A customer's recent events (the customer must be readable), only the families the role may read."""
    customer = tenancy_selectors.get_or_404(tenancy_selectors.customers_for(actor), customer_id, "customer")
    qs = AuditEvent.objects.filter(customer_id=customer.pk)
    families = _families_filter(actor)
    if families is not None:
        qs = qs.filter(families)
    return list(qs.order_by("-created_at", "-id")[:limit])


# ---------------------------------------------------------------- the sales view


def renewals_due(actor: Actor, days: int = 60, today: dt.date | None = None) -> QuerySet[Subscription]:
    """Active subscriptions whose term ends within ``days`` days (today included), soonest first."""
    today = today or clock.today()
    return (
        pc_selectors.subscriptions_for(actor)
        .filter(status=SubscriptionStatus.ACTIVE, commitment_end_date__range=(today, today + dt.timedelta(days=days)))
        .select_related("customer")
        .order_by("commitment_end_date", "customer__name", "pk")
    )


@dataclass(frozen=True)
class SpendChange:
    customer_id: int
    customer: str
    currency: str
    previous_period: dt.date
    period: dt.date
    previous: Decimal
    current: Decimal

    @property
    def change_percent(self) -> Decimal | None:
        if not self.previous:
            return None
        return ((self.current - self.previous) / abs(self.previous) * 100).quantize(Decimal("0.1"))

    @property
    def grew(self) -> bool:
        return self.current > self.previous


def spend_changes(actor: Actor, threshold: Decimal = Decimal(25)) -> list[SpendChange]:
    """Customers whose Microsoft spend (cost on Microsoft's invoice files) moved by more than ``threshold``
    percent between the two latest months the data has, or started or stopped; biggest move first."""
    if not permissions.has(actor, Perm.INSIGHTS_READ):
        return []
    customers = tenancy_selectors.customers_for(actor)
    lines = ChargeLine.objects.filter(
        customer__in=customers, source__status=ImportStatus.ACTIVE, source__kind=ImportKind.INVOICE
    )
    periods = sorted(set(lines.values_list("source__period", flat=True).distinct()), reverse=True)[:2]
    if len(periods) < 2:
        return []
    current, previous = periods
    if add_months(previous, 1) != current:
        return []
    sums: dict[tuple[int, str], dict[dt.date, Decimal]] = defaultdict(dict)
    names: dict[int, str] = {}
    rows = (
        lines.filter(source__period__in=periods)
        .values("customer_id", "customer__name", "currency", "source__period")
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    for row in rows:
        names[row["customer_id"]] = row["customer__name"]
        sums[(row["customer_id"], row["currency"])][row["source__period"]] = Decimal(row["cost"] or 0)
    out = []
    for (cid, currency), by_period in sums.items():
        before = quantize(by_period.get(previous, ZERO), currency)
        now = quantize(by_period.get(current, ZERO), currency)
        change = SpendChange(cid, names[cid], currency, previous, current, before, now)
        pct = change.change_percent
        if (pct is None and now > 0) or (pct is not None and abs(pct) >= threshold):
            out.append(change)

    def size(c: SpendChange) -> tuple[Decimal, str]:
        pct = c.change_percent
        return (Decimal(-(10**9)) if pct is None else -abs(pct), c.customer)

    return sorted(out, key=size)


@dataclass(frozen=True)
class RecurringTopic:
    customer_id: int
    customer: str
    category: str
    service: str
    tickets: int


def recurring_topics(
    actor: Actor, days: int = 90, at_least: int = 2, now: dt.datetime | None = None
) -> list[RecurringTopic]:
    """Customers who opened ``at_least`` tickets on the same topic (category and service) in ``days`` days."""
    now = now or clock.now()
    qs = (
        support_selectors.tickets_for(actor)
        .filter(created_at__gte=now - dt.timedelta(days=days))
        .values("customer_id", "customer__name", "category", "service")
        .annotate(n=Count("pk", distinct=True))
        .filter(n__gte=at_least)
        .order_by("-n", "customer__name", "category", "service")
    )
    return [RecurringTopic(r["customer_id"], r["customer__name"], r["category"], r["service"], r["n"]) for r in qs]


# ---------------------------------------------------------------- collections


@dataclass(frozen=True)
class PendingApproval:
    """A suspension stage that waited because the run's cap was reached, with what it would suspend now."""

    case: CollectionCase
    action: CaseAction
    subscriptions: list[Subscription]


def pending_approvals(actor: Actor) -> list[PendingApproval]:
    """Suspensions waiting for a billing admin's approval in the actor's collections scope, oldest first."""
    actions = (
        CaseAction.objects.filter(status=ActionStatus.AWAITING_APPROVAL, case__status=CaseStatus.OPEN,
                                  case__in=collection_selectors.cases_for(actor))
        .select_related("case", "case__customer")
        .order_by("run_on", "case__customer__name", "pk")
    )  # fmt: skip
    out = []
    for action in actions:
        ids = [int(i) for i in action.details.get("subscriptions", [])]
        subs = list(
            Subscription.objects.filter(pk__in=ids, customer_id=action.case.customer_id).order_by("offer_name", "pk")
        )
        out.append(PendingApproval(action.case, action, subs))
    return out


@dataclass(frozen=True)
class StageGroup:
    stage_key: str  # "30:suspend"; "" for cases no stage has run on yet
    cases: list[CollectionCase]


def open_cases_by_stage(actor: Actor) -> list[StageGroup]:
    """Open collections cases grouped by the last stage run on them: the furthest stage first."""
    groups: dict[str, list[CollectionCase]] = defaultdict(list)
    for case in collection_selectors.cases_for(actor).filter(status=CaseStatus.OPEN).order_by("customer__name", "pk"):
        groups[case.last_stage_key].append(case)

    def days(key: str) -> int:
        head = key.split(":", 1)[0]
        return int(head) if head.isdigit() else -1

    return [StageGroup(key, groups[key]) for key in sorted(groups, key=lambda k: (-days(k), k))]


@dataclass(frozen=True)
class CollectionsBrakes:
    """What holds collections back today: holds in force, open disputes, active payment plans."""

    holds: list[Hold]
    disputes: list[Dispute]
    plans: list[PaymentPlan]


def collections_brakes(actor: Actor, today: dt.date | None = None) -> CollectionsBrakes:
    today = today or clock.today()
    holds = collection_selectors.holds_for(actor).filter(released_at__isnull=True, until__gte=today)
    disputes = collection_selectors.disputes_for(actor).filter(status=DisputeStatus.OPEN)
    plans = collection_selectors.plans_for(actor).filter(status=PlanStatus.ACTIVE).prefetch_related("instalments")
    return CollectionsBrakes(
        list(holds.order_by("until", "customer__name", "pk")),
        list(disputes.order_by("opened_at", "pk")),
        list(plans.order_by("customer__name", "pk")),
    )
