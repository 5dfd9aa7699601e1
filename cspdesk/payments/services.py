"""Payments state changes: intake, allocation, suspense, refunds, reversals, Microsoft payables.

Every operation checks its permission, works in one transaction and records one audit event per change.
Allocation for a customer runs under :func:`lock_customer_ledger` so two payments never fill the same
invoice twice. Every allocation change ends in :func:`on_balance_changed` (collections will hook there).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext, ngettext

from cspdesk.audit import services as audit
from cspdesk.billing import selectors as billing_selectors
from cspdesk.billing.models import Invoice, InvoiceKind, InvoiceStatus
from cspdesk.core import clock, l10n, outbox
from cspdesk.core.actor import Actor, ActorKind
from cspdesk.core.errors import Conflict, NotFound, ValidationFailed
from cspdesk.core.money import is_currency, quantize
from cspdesk.partnercenter.recon.models import MicrosoftInvoice
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.models import Customer, Organisation, StaffRole
from cspdesk.tenancy.permissions import Perm

from . import allocation, bank, selectors
from .models import (
    Allocation,
    BankImport,
    CustomerOverdueState,
    MicrosoftPayment,
    PayableReminder,
    Payment,
    PaymentMethod,
    PaymentSource,
    Refund,
    ReminderStage,
    WriteOff,
)

ZERO = Decimal(0)
REMIND_DAYS_BEFORE = 7


def lock_customer_ledger(customer_id: int) -> Customer:
    """Lock the customer row: allocations of one customer happen one at a time."""
    return Customer.objects.select_for_update().get(pk=customer_id)


def lock_payment(payment_id: int) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment_id)


def _access_payment(actor: Actor, payment_id: int) -> Payment:
    """A payment the actor may change (404 outside its scope, 403 when it can only read it)."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    payment = tenancy_selectors.get_or_404(selectors.payments_for(actor, Perm.PAYMENTS_CHANGE), payment_id, "payment")
    return lock_payment(payment.pk)


# ---------------------------------------------------------------- the collections hook


def on_balance_changed(customer_id: int) -> CustomerOverdueState:
    """Called after every allocation change: refresh the customer's overdue position, then let collections
    re-check the customer's open case (a cleared balance closes it and reactivates what it suspended).
    Explicit, no signals; collections is built on payments, so it is imported here, not at module level."""
    today = clock.today()
    qs = selectors.with_open_amount(
        Invoice.objects.filter(customer_id=customer_id, kind=InvoiceKind.INVOICE, status=InvoiceStatus.FINALIZED)
    )
    open_total = overdue = ZERO
    oldest: dt.date | None = None
    for inv in qs:
        amount = selectors.open_of(inv)
        if amount <= ZERO:
            continue
        open_total += amount
        if inv.due_date and inv.due_date < today:
            overdue += amount
            oldest = inv.due_date if oldest is None else min(oldest, inv.due_date)
    state, _ = CustomerOverdueState.objects.update_or_create(
        customer_id=customer_id,
        defaults={"overdue_amount": overdue, "open_amount": open_total, "oldest_due_date": oldest,
                  "evaluated_at": clock.now()},
    )  # fmt: skip
    from cspdesk.collections import services as collections

    collections.on_balance_changed(customer_id)
    return state


# ---------------------------------------------------------------- intake


@dataclass
class Recorded:
    payment: Payment
    created: bool
    allocations: list[Allocation] = field(default_factory=list)


def _organisation_for(actor: Actor, organisation_id: int | None) -> Organisation:
    if organisation_id is None:
        if actor.organisation_id is None:
            raise ValidationFailed("say which organisation received the payment", field="organisation_id")
        organisation_id = actor.organisation_id
    if not actor.is_system and organisation_id != actor.organisation_id:
        raise NotFound(f"no organisation with id {organisation_id}")
    try:
        return Organisation.objects.get(pk=organisation_id)
    except Organisation.DoesNotExist:
        raise NotFound(f"no organisation with id {organisation_id}") from None


def identify_customer(organisation_id: int, currency: str, text: str, payer_account: str,
                      payer_name: str) -> tuple[int | None, str]:  # fmt: skip
    """Who paid: an invoice named in the text, else an account or a name seen before; else nobody."""
    invoices = Invoice.objects.filter(organisation_id=organisation_id, kind=InvoiceKind.INVOICE,
                                      status=InvoiceStatus.FINALIZED, customer__isnull=False)  # fmt: skip
    if text:
        candidates = [
            allocation.OpenItem(pk, number, due or dt.date.min, Decimal(1))
            for pk, number, due in invoices.values_list("pk", "number", "due_date")
        ]
        named = allocation.references_in(text, candidates)
        customers = set(invoices.filter(pk__in=[n.invoice_id for n in named]).values_list("customer_id", flat=True))
        if len(customers) == 1:
            return customers.pop(), "reference"
    if payer_account:
        known = set(
            Payment.objects.filter(
                organisation_id=organisation_id, payer_account=payer_account, customer__isnull=False
            ).values_list("customer_id", flat=True)
        )
        if len(known) == 1:
            return known.pop(), "payer_account"
    if payer_name:
        named_customers = list(
            Customer.objects.filter(organisation_id=organisation_id, name__iexact=payer_name.strip()).values_list(
                "pk", flat=True
            )
        )
        if len(named_customers) == 1:
            return named_customers[0], "payer_name"
    return None, "suspense"


@transaction.atomic
def record_payment(
    actor: Actor,
    *,
    amount: Decimal,
    currency: str,
    received_on: dt.date,
    customer_id: int | None = None,
    organisation_id: int | None = None,
    method: str = PaymentMethod.BANK_TRANSFER,
    source: str = PaymentSource.MANUAL,
    reference: str = "",
    payer_name: str = "",
    payer_account: str = "",
    external_key: str = "",
    invoice_id: int | None = None,
) -> Recorded:
    """Record money received and allocate it. With an ``external_key`` seen before, nothing new happens
    (the existing payment is returned with ``created=False``)."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= ZERO:
        raise ValidationFailed("the amount must be a positive decimal", field="amount")
    currency = (currency or "").upper()
    if not is_currency(currency):
        raise ValidationFailed(f"unknown currency {currency!r}", field="currency")
    if method not in PaymentMethod.values:
        raise ValidationFailed(f"method must be one of {', '.join(PaymentMethod.values)}", field="method")
    amount = quantize(amount, currency)
    if amount <= ZERO:
        raise ValidationFailed("the amount rounds to zero", field="amount")
    customer: Customer | None = None
    if customer_id is not None:
        customer = tenancy_selectors.get_or_404(tenancy_selectors.customers_for(actor), customer_id, "customer")
        assert customer is not None
        if not actor.is_system and customer.organisation_id != actor.organisation_id:
            raise NotFound(f"no customer with id {customer_id}")
        organisation = customer.organisation
    else:
        organisation = _organisation_for(actor, organisation_id)
    if external_key:
        existing = Payment.objects.filter(organisation=organisation, external_key=external_key).first()
        if existing is not None:
            return Recorded(existing, False)
    rule = "given" if customer is not None else ""
    if customer is None:
        found, rule = identify_customer(organisation.pk, currency, reference, payer_account, payer_name)
        customer = Customer.objects.get(pk=found) if found else None
    payment = Payment(organisation=organisation, customer=customer, amount=amount, currency=currency,
                      received_on=received_on, method=method, source=source, reference=reference[:500],
                      payer_name=payer_name[:200], payer_account=payer_account[:64], external_key=external_key,
                      match_rule="" if customer is None else rule, created_by=actor.username)  # fmt: skip
    try:
        with transaction.atomic():
            payment.save()
    except IntegrityError:
        existing = Payment.objects.filter(organisation=organisation, external_key=external_key).first()
        if existing is None:
            raise
        return Recorded(existing, False)
    audit.record(actor, "payments.payment_recorded", obj=payment, organisation_id=organisation.pk,
                 customer_id=payment.customer_id, after=audit.snapshot(payment))  # fmt: skip
    made: list[Allocation] = []
    if customer is not None:
        lock_customer_ledger(customer.pk)
        if invoice_id is not None:
            made += _allocate_to(actor, payment, invoice_id, None, "given")
        made += _auto_allocate(actor, payment)
        on_balance_changed(customer.pk)
    return Recorded(payment, True, made)


def _create_allocation(actor: Actor, payment: Payment, invoice_id: int, amount: Decimal, rule: str) -> Allocation:
    a = Allocation.objects.create(payment=payment, invoice_id=invoice_id, amount=amount, rule=rule,
                                  created_by=actor.username)  # fmt: skip
    audit.record(actor, "payments.allocated", obj=a, organisation_id=payment.organisation_id,
                 customer_id=payment.customer_id, after={"payment_id": payment.pk, "invoice_id": invoice_id,
                 "amount": amount, "rule": rule})  # fmt: skip
    return a


def _auto_allocate(actor: Actor, payment: Payment) -> list[Allocation]:
    """Apply what is left of the payment by the matching rules (the caller holds the ledger lock)."""
    assert payment.customer_id is not None
    left = selectors.unallocated(payment)
    if left <= ZERO:
        return []
    items = selectors.open_items(payment.customer_id, payment.currency)
    made = []
    for p in allocation.plan(left, payment.reference, items):
        made.append(_create_allocation(actor, payment, p.invoice_id, p.amount, p.rule))
    if made and not payment.match_rule:
        payment.match_rule = made[0].rule
    if made:
        payment.match_rule = made[0].rule if payment.match_rule in ("", "given") else payment.match_rule
        payment.save(update_fields=["match_rule"])
    return made


def _allocate_to(
    actor: Actor, payment: Payment, invoice_id: int, amount: Decimal | None, rule: str
) -> list[Allocation]:
    assert payment.customer_id is not None
    inv = Invoice.objects.filter(pk=invoice_id, customer_id=payment.customer_id, kind=InvoiceKind.INVOICE,
                                 status=InvoiceStatus.FINALIZED).first()  # fmt: skip
    if inv is None:
        raise NotFound(f"the payment's customer has no finalized invoice with id {invoice_id}", field="invoice_id")
    if inv.currency != payment.currency:
        raise ValidationFailed(f"invoice {inv.number} is in {inv.currency}, the payment in {payment.currency}",
                               field="invoice_id")  # fmt: skip
    room = selectors.open_balance(inv)
    left = selectors.unallocated(payment)
    if amount is None:
        amount = min(room, left)
    amount = quantize(amount, payment.currency)
    if amount <= ZERO:
        raise Conflict(f"nothing to allocate: invoice {inv.number} open {room}, payment left {left}",
                       code="nothing_to_allocate")  # fmt: skip
    if amount > room:
        raise Conflict(f"invoice {inv.number} has only {room} open", code="over_allocation", field="amount")
    if amount > left:
        raise Conflict(f"the payment has only {left} left", code="over_allocation", field="amount")
    return [_create_allocation(actor, payment, inv.pk, amount, rule)]


@transaction.atomic
def allocate(actor: Actor, payment_id: int, invoice_id: int, amount: Decimal | None = None) -> Allocation:
    """Apply (part of) a payment to one invoice of its customer by hand."""
    payment = _access_payment(actor, payment_id)
    if payment.customer_id is None:
        raise Conflict("the payment is in suspense: assign a customer first", code="in_suspense")
    lock_customer_ledger(payment.customer_id)
    made = _allocate_to(actor, payment, invoice_id, amount, "manual")
    on_balance_changed(payment.customer_id)
    return made[0]


@transaction.atomic
def assign_customer(actor: Actor, payment_id: int, customer_id: int, invoice_id: int | None = None) -> Payment:
    """Match a suspense payment by hand: give it its customer, then allocate (to ``invoice_id`` first)."""
    payment = _access_payment(actor, payment_id)
    if payment.customer_id is not None:
        raise Conflict(f"payment {payment.pk} already belongs to a customer", code="not_in_suspense")
    customer = tenancy_selectors.get_or_404(
        tenancy_selectors.customers_for(actor).filter(organisation_id=payment.organisation_id), customer_id, "customer"
    )
    if (
        customer.currency != payment.currency
        and not Invoice.objects.filter(customer=customer, currency=payment.currency).exists()
    ):
        raise ValidationFailed(f"{customer.name} is billed in {customer.currency}, the payment is in "
                               f"{payment.currency}", field="customer_id")  # fmt: skip
    lock_customer_ledger(customer.pk)
    payment.customer = customer
    payment.match_rule = "manual"
    payment.save(update_fields=["customer", "match_rule"])
    audit.record(actor, "payments.customer_assigned", obj=payment, organisation_id=payment.organisation_id,
                 customer_id=customer.pk, before={"customer_id": None}, after={"customer_id": customer.pk})  # fmt: skip
    if invoice_id is not None:
        _allocate_to(actor, payment, invoice_id, None, "manual")
    _auto_allocate(actor, payment)
    on_balance_changed(customer.pk)
    return payment


def _reverse(actor: Actor, a: Allocation, reason: str) -> None:
    a.mark_reversed(actor.username, reason)
    audit.record(actor, "payments.allocation_reversed", obj=a, organisation_id=a.payment.organisation_id,
                 customer_id=a.payment.customer_id, before={"amount": a.amount, "invoice_id": a.invoice_id},
                 after={"reversed": True, "reason": reason})  # fmt: skip


@transaction.atomic
def reverse_allocation(actor: Actor, allocation_id: int, *, reason: str) -> Allocation:
    """Undo a wrong match: the allocation is kept, marked reversed; its amount is the payment's again."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    if not reason.strip():
        raise ValidationFailed("say why the allocation is reversed", field="reason")
    a = tenancy_selectors.get_or_404(selectors.allocations_for(actor, Perm.PAYMENTS_CHANGE), allocation_id,
                                     "allocation")  # fmt: skip
    lock_payment(a.payment_id)
    if a.payment.customer_id:
        lock_customer_ledger(a.payment.customer_id)
    a = Allocation.objects.select_related("payment").get(pk=a.pk)
    if a.reversed_at is not None:
        raise Conflict(f"allocation {a.pk} is already reversed", code="already_reversed")
    _reverse(actor, a, reason.strip())
    if a.payment.customer_id:
        on_balance_changed(a.payment.customer_id)
    return a


@transaction.atomic
def write_off(actor: Actor, invoice_id: int, *, reason: str, amount: Decimal | None = None,
              on: dt.date | None = None) -> WriteOff:  # fmt: skip
    """Give up (part of) an invoice's open amount as uncollectable. The invoice stays as issued (no credit note,
    its tax unchanged); the receivable closes, so collections re-checks the customer at once."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    if not reason.strip():
        raise ValidationFailed("say why the amount is written off", field="reason")
    scope = billing_selectors.invoices_for(actor, Perm.INVOICES_READ).filter(customer__isnull=False)
    if actor.kind is ActorKind.STAFF:
        scope = scope.filter(organisation_id=actor.organisation_pk)
    inv = tenancy_selectors.get_or_404(scope, invoice_id, "invoice")
    if inv.kind != InvoiceKind.INVOICE or inv.status != InvoiceStatus.FINALIZED:
        raise Conflict(f"{inv.number or inv.pk} is not a finalized invoice", code="not_writable_off")
    assert inv.customer_id is not None
    lock_customer_ledger(inv.customer_id)
    room = selectors.open_balance(inv)
    amount = room if amount is None else quantize(amount, inv.currency)
    if room <= ZERO:
        raise Conflict(f"invoice {inv.number} has nothing open", code="nothing_open")
    if amount <= ZERO:
        raise ValidationFailed("the amount written off is positive", field="amount")
    if amount > room:
        raise Conflict(f"invoice {inv.number} has only {room} {inv.currency} open", code="over_write_off",
                       field="amount")  # fmt: skip
    wo = WriteOff.objects.create(invoice=inv, amount=amount, written_off_on=on or clock.today(),
                                 reason=reason.strip()[:300], created_by=actor.username)  # fmt: skip
    audit.record(actor, "payments.invoice_written_off", obj=wo, organisation_id=inv.organisation_id,
                 customer_id=inv.customer_id, before={"open": room},
                 after={"invoice": inv.number, "amount": amount, "currency": inv.currency,
                        "reason": wo.reason})  # fmt: skip
    on_balance_changed(inv.customer_id)
    return wo


@transaction.atomic
def reverse_write_off(actor: Actor, write_off_id: int, *, reason: str) -> WriteOff:
    """Undo a write-off made in error: kept, marked reversed; the amount is owed again."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    if not reason.strip():
        raise ValidationFailed("say why the write-off is reversed", field="reason")
    wo = tenancy_selectors.get_or_404(selectors.write_offs_for(actor, Perm.PAYMENTS_CHANGE), write_off_id,
                                      "write-off")  # fmt: skip
    customer_id = wo.invoice.customer_id
    assert customer_id is not None
    lock_customer_ledger(customer_id)
    wo = WriteOff.objects.select_for_update().get(pk=wo.pk)
    if wo.reversed_at is not None:
        raise Conflict(f"write-off {wo.pk} is already reversed", code="already_reversed")
    wo.mark_reversed(actor.username, reason.strip())
    audit.record(actor, "payments.write_off_reversed", obj=wo, organisation_id=wo.invoice.organisation_id,
                 customer_id=customer_id, before={"amount": wo.amount}, after={"reversed": True,
                 "reason": wo.reversal_reason})  # fmt: skip
    on_balance_changed(customer_id)
    return wo


@transaction.atomic
def return_to_suspense(actor: Actor, payment_id: int, *, reason: str) -> Payment:
    """The payment was put on the wrong customer: reverse its allocations and queue it for matching."""
    payment = _access_payment(actor, payment_id)
    if payment.customer_id is None:
        raise Conflict(f"payment {payment.pk} is already in suspense", code="in_suspense")
    if not reason.strip():
        raise ValidationFailed("say why the payment goes back to suspense", field="reason")
    old = payment.customer_id
    lock_customer_ledger(old)
    for a in payment.allocations.filter(reversed_at__isnull=True).select_related("payment"):
        _reverse(actor, a, reason.strip())
    payment.customer = None
    payment.match_rule = ""
    payment.save(update_fields=["customer", "match_rule"])
    audit.record(actor, "payments.returned_to_suspense", obj=payment, organisation_id=payment.organisation_id,
                 customer_id=old, before={"customer_id": old},
                 after={"customer_id": None, "reason": reason})  # fmt: skip
    on_balance_changed(old)
    return payment


@transaction.atomic
def refund(actor: Actor, payment_id: int, amount: Decimal, *, reason: str, refunded_on: dt.date | None = None,
           external_key: str = "") -> Refund:  # fmt: skip
    """Pay money back. It comes out of the payment's unapplied credit first, then the newest allocations
    are reversed (a partly needed one is re-applied for the part that stays)."""
    payment = _access_payment(actor, payment_id)
    if external_key and Refund.objects.filter(external_key=external_key).exists():
        return Refund.objects.get(external_key=external_key)
    if not isinstance(amount, Decimal) or amount <= ZERO:
        raise ValidationFailed("the refund must be a positive decimal", field="amount")
    amount = quantize(amount, payment.currency)
    refundable = Decimal(payment.amount) - Decimal(payment.refunded)
    if amount > refundable:
        raise Conflict(f"only {quantize(refundable, payment.currency)} of payment {payment.pk} can be refunded",
                       code="over_refund", field="amount")  # fmt: skip
    if payment.customer_id:
        lock_customer_ledger(payment.customer_id)
    need = amount - max(selectors.unallocated(payment), ZERO)
    for a in payment.allocations.filter(reversed_at__isnull=True).order_by("-created_at", "-pk"):
        if need <= ZERO:
            break
        a.payment = payment
        _reverse(actor, a, f"refund: {reason}".strip())
        keep = a.amount - need
        need -= a.amount
        if keep > ZERO:
            _create_allocation(actor, payment, a.invoice_id, keep, a.rule)
    r = Refund.objects.create(payment=payment, amount=amount, refunded_on=refunded_on or clock.today(),
                              reason=reason[:300], external_key=external_key, created_by=actor.username)  # fmt: skip
    payment.refunded = Decimal(payment.refunded) + amount
    payment.save(update_fields=["refunded"])
    audit.record(actor, "payments.refunded", obj=r, organisation_id=payment.organisation_id,
                 customer_id=payment.customer_id, after={"payment_id": payment.pk, "amount": amount,
                 "reason": reason})  # fmt: skip
    if payment.customer_id:
        on_balance_changed(payment.customer_id)
    return r


@transaction.atomic
def apply_customer_credit(actor: Actor, customer_id: int) -> list[Allocation]:
    """Apply the customer's unapplied money (overpayments) to its open invoices, oldest payment first.
    Call after an invoice is finalized so a credit pays the next invoice."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    customer = tenancy_selectors.get_or_404(tenancy_selectors.customers_for(actor), customer_id, "customer")
    if not actor.is_system and customer.organisation_id != actor.organisation_id:
        raise NotFound(f"no customer with id {customer_id}")
    lock_customer_ledger(customer.pk)
    made: list[Allocation] = []
    for p in Payment.objects.filter(customer=customer).order_by("received_on", "pk"):
        made += _auto_allocate(actor, p)
    on_balance_changed(customer.pk)
    return made


# ---------------------------------------------------------------- bank statements


def csv_layout(layout: dict[str, Any] | None = None) -> bank.CsvLayout:
    """The CSV layout: ``layout`` if given, else ``settings.CSPDESK_BANK_CSV`` (a dict), else defaults."""
    data = layout if layout is not None else getattr(settings, "CSPDESK_BANK_CSV", None) or {}
    return bank.CsvLayout.from_dict(data)


def import_statement(actor: Actor, path: Path, *, organisation_id: int | None = None,
                     layout: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Read a camt.053 XML or CSV statement; each credit entry becomes a payment (once: replaying the file
    creates nothing). Refused entries are reported with their place and kept on the import record."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    organisation = _organisation_for(actor, organisation_id)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(f"{path}: {exc.strerror}", field="file") from None
    if bank.is_camt053(data):
        parsed, source = bank.parse_camt053(data), PaymentSource.CAMT053
    else:
        parsed, source = bank.parse_csv(data, csv_layout(layout)), PaymentSource.CSV
    seen: Counter[str] = Counter()
    created = duplicates = skipped = 0
    payments = []
    for entry in parsed.entries:
        key = entry.key
        seen[key] += 1
        if seen[key] > 1:  # the same entry twice in one file (no bank reference): the n-th occurrence
            key = f"{key}#{seen[key]}"
        if not entry.credit or entry.amount <= ZERO:
            skipped += 1
            continue
        try:
            result = record_payment(actor, amount=entry.amount, currency=entry.currency, received_on=entry.booked_on,
                                    organisation_id=organisation.pk, source=source, reference=entry.text,
                                    payer_name=entry.payer_name, payer_account=entry.payer_account,
                                    external_key=key[:200])  # fmt: skip
        except ValidationFailed as exc:
            parsed.errors.append({"place": entry.place, "message": exc.message})
            continue
        if result.created:
            created += 1
            payments.append(result.payment.pk)
        else:
            duplicates += 1
    with transaction.atomic():
        record = BankImport.objects.create(
            organisation=organisation, file_name=path.name[:255], file_sha256=hashlib.sha256(data).hexdigest(),
            format=parsed.format, entries=len(parsed.entries), created=created, duplicates=duplicates,
            skipped=skipped, errors=parsed.errors, imported_by=actor.username,
        )  # fmt: skip
        audit.record(actor, "payments.statement_imported", obj=record, organisation_id=organisation.pk,
                     after={"file": path.name, "format": parsed.format, "created": created,
                     "duplicates": duplicates, "errors": len(parsed.errors)})  # fmt: skip
    in_suspense = Payment.objects.filter(pk__in=payments, customer__isnull=True).count()
    return {"import_id": record.pk, "file": str(path), "format": parsed.format, "entries": len(parsed.entries),
            "created": created, "duplicates": duplicates, "debits_skipped": skipped, "in_suspense": in_suspense,
            "payments": payments, "errors": parsed.errors}  # fmt: skip


# ---------------------------------------------------------------- Microsoft payables


def _microsoft_invoice(actor: Actor, ref: str | int) -> MicrosoftInvoice:
    from cspdesk.partnercenter.recon import selectors as recon_selectors

    qs = recon_selectors.microsoft_invoices_for(actor)
    if not actor.is_system:
        qs = qs.filter(organisation_id=actor.organisation_pk)
    found = qs.filter(Q(number=str(ref)) | Q(pk=int(ref)) if str(ref).isdigit() else Q(number=str(ref)))
    if found.count() != 1:
        raise NotFound(f"no Microsoft invoice {ref}" if not found else f"{ref} names several Microsoft invoices")
    return found.get()


@transaction.atomic
def mark_microsoft_paid(actor: Actor, invoice: str | int, *, paid_on: dt.date, amount: Decimal | None = None,
                        reference: str = "") -> MicrosoftPayment:  # fmt: skip
    """Record that the partner paid a Microsoft invoice (again with the same date: no change)."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    mi = _microsoft_invoice(actor, invoice)
    MicrosoftInvoice.objects.select_for_update().filter(pk=mi.pk).first()
    existing = MicrosoftPayment.objects.filter(microsoft_invoice=mi).first()
    if existing is not None:
        if existing.paid_on == paid_on:
            return existing
        raise Conflict(f"{mi.number} was already marked paid on {existing.paid_on}", code="already_paid")
    if paid_on > clock.today():
        raise ValidationFailed("the payment date is in the future", field="date")
    paid = MicrosoftPayment.objects.create(microsoft_invoice=mi, paid_on=paid_on,
                                           amount=amount if amount is not None else mi.total,
                                           reference=reference[:200], recorded_by=actor.username)  # fmt: skip
    audit.record(actor, "payments.microsoft_invoice_paid", obj=paid, organisation_id=mi.organisation_id,
                 after={"number": mi.number, "paid_on": paid_on, "amount": paid.amount,
                        "currency": mi.currency})  # fmt: skip
    return paid


def billing_admin_emails(organisation_id: int) -> list[str]:
    User = get_user_model()
    emails = (
        User.objects.filter(
            is_active=True,
            membership__organisation_id=organisation_id,
            membership__grants__role=StaffRole.BILLING_ADMIN,
        )
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
        .distinct()
    )
    return list(emails)


def _payable_reminder_text(mi: MicrosoftInvoice, stage: str, today: dt.date) -> tuple[str, str]:
    """The reminder in the organisation's own language, with its local date and money formats."""
    language = mi.organisation.default_locale
    with translation.override(language):
        days = (mi.due_date - today).days
        due = l10n.day(mi.due_date, language)
        if days > 0:
            when = ngettext("is due in %(days)d day, on %(date)s", "is due in %(days)d days, on %(date)s", days) % {
                "days": days, "date": due}  # fmt: skip
        elif days == 0:
            when = gettext("is due today (%(date)s)") % {"date": due}
        else:
            when = ngettext("was due on %(date)s, %(days)d day ago", "was due on %(date)s, %(days)d days ago",
                            -days) % {"days": -days, "date": due}  # fmt: skip
        if stage == ReminderStage.OVERDUE:
            subject = gettext("Microsoft invoice %(number)s is overdue") % {"number": mi.number}
        else:
            subject = gettext("Microsoft invoice %(number)s is due soon") % {"number": mi.number}
        body = gettext(
            "Microsoft invoice %(number)s of %(date)s for %(amount)s %(when)s and is not marked paid.\n\n"
            "When it is paid: cspdesk payables --mark-paid %(number)s --date YYYY-MM-DD\n"
        ) % {"number": mi.number, "date": l10n.day(mi.invoice_date, language),
             "amount": l10n.money(mi.total, mi.currency, language), "when": when}  # fmt: skip
    return str(subject), str(body)


def remind_payables(
    actor: Actor, *, today: dt.date | None = None, days_before: int = REMIND_DAYS_BEFORE
) -> list[dict[str, Any]]:
    """E-mail the billing admins ``days_before`` days before an unpaid Microsoft invoice is due and again
    once it is overdue: one e-mail per invoice and stage, ever (a unique key), written with the reminder's row
    and sent once that commits (:mod:`cspdesk.core.outbox` retries a refused send)."""
    permissions.require(actor, Perm.PAYMENTS_CHANGE)
    today = today or clock.today()
    sent = []
    from cspdesk.partnercenter.recon import selectors as recon_selectors

    qs = recon_selectors.microsoft_invoices_for(actor).filter(payment__isnull=True).select_related("organisation")
    if not actor.is_system:
        qs = qs.filter(organisation_id=actor.organisation_pk)
    for mi in qs.order_by("due_date", "pk"):
        if mi.due_date < today:
            stage = ReminderStage.OVERDUE
        elif mi.due_date <= today + dt.timedelta(days=days_before):
            stage = ReminderStage.DUE_SOON
        else:
            continue
        to = billing_admin_emails(mi.organisation_id)
        if not to:
            continue
        with transaction.atomic():
            try:
                with transaction.atomic():
                    reminder = PayableReminder.objects.create(microsoft_invoice=mi, stage=stage, sent_to=to)
            except IntegrityError:
                continue  # this stage was reminded already
            subject, body = _payable_reminder_text(mi, stage, today)
            outbox.queue(f"payments.payable_reminder:{reminder.pk}", subject=subject, body=body, to=to,
                         source="payments.payable_reminder", organisation_id=mi.organisation_id)  # fmt: skip
            audit.record(actor, "payments.payable_reminder_sent", obj=reminder, organisation_id=mi.organisation_id,
                         after={"number": mi.number, "stage": stage, "to": to, "due_date": mi.due_date})  # fmt: skip
        sent.append({"number": mi.number, "stage": str(stage), "due_date": mi.due_date, "to": to})
    outbox.flush()
    return sent


def as_actor_json(value: Any) -> str:
    return json.dumps(value, default=str)


def is_staff_actor(actor: Actor) -> bool:
    return actor.kind is ActorKind.STAFF
