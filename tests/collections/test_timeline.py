"""The done-when walk: due date → reminder → final notice → suspension (in the emulator) → payment →
reactivation (in the emulator), in Italian and in Hungarian, with a frozen clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail

from cspdesk.audit.models import AuditEvent
from cspdesk.billing.models import Invoice, InvoiceLine
from cspdesk.collections import selectors
from cspdesk.collections.models import Case, CaseStatus, Suspension, SuspensionState
from cspdesk.core import l10n
from cspdesk.partnercenter.models import Subscription
from cspdesk.payments import services as payments
from tests.collections.fixtures import SYSTEM, World, at, cw, pc  # noqa: F401
from tests.payments.fixtures import make_invoice

DUE = dt.date(2026, 10, 1)

# What the customer reads, in its language (the catalogue's translations of the collections e-mails).
EXPECTED = {
    "bellavista": {
        "reminder": "Sollecito di pagamento: 1 fattura scaduta",
        "final": "Ultimo avviso: 1 fattura scaduta",
        "suspended": "2 abbonamenti sospesi per mancato pagamento",
        "restored": "I suoi abbonamenti sono di nuovo attivi",
        "body": "i nostri dati indicano che questa fattura è scaduta:",
    },
    "gyor": {
        "reminder": "Fizetési emlékeztető: 1 lejárt számla",
        "final": "Utolsó felszólítás: 1 lejárt számla",
        "suspended": "2 előfizetés felfüggesztve nemfizetés miatt",
        "restored": "Előfizetései ismét aktívak",
        "body": "nyilvántartásunk szerint ez a számla lejárt:",
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["bellavista", "gyor"], ids=["italian", "hungarian"])
def test_a_customer_walks_from_due_date_to_suspension_and_back(
    cw: World,  # noqa: F811
    key: str,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    customer = cw.customer(key)
    language = l10n.normalize_language(customer.locale)
    invoice = make_invoice(customer, "1000.00", due=DUE)
    subs = list(Subscription.objects.filter(customer=customer).order_by("pk"))
    assert len(subs) == 2 and {cw.pc_status(s) for s in subs} == {"active"}
    words = EXPECTED[key]

    # Inside the grace period nothing happens; day 4 is past it but before the first stage.
    for day in (DUE, DUE + dt.timedelta(days=3), DUE + dt.timedelta(days=6)):
        report = cw.run(day)
        assert report.actions == []
    assert len(mail.outbox) == 0
    case = Case.objects.get(customer=customer, status=CaseStatus.OPEN)

    report = cw.run(DUE + dt.timedelta(days=7))
    assert [a["action"] for a in report.actions] == ["reminder"]
    assert len(mail.outbox) == 1
    reminder = mail.outbox[0]
    assert reminder.subject == words["reminder"]
    assert reminder.to == customer.billing_emails
    assert words["body"] in reminder.body
    assert invoice.number in reminder.body
    assert l10n.money(Decimal("1000.00"), customer.currency, language) in reminder.body
    assert f"/collections/policy/customer/{customer.tenant_id}/?lang={language}" in reminder.body
    assert cw.run(DUE + dt.timedelta(days=8)).actions == []  # once per stage

    report = cw.run(DUE + dt.timedelta(days=14))
    assert [a["action"] for a in report.actions] == ["final_notice"]
    assert mail.outbox[1].subject == words["final"]
    assert l10n.day(DUE + dt.timedelta(days=30), language) in mail.outbox[1].body  # when the suspension comes

    report = cw.run(DUE + dt.timedelta(days=30))
    assert [(a["action"], a["status"]) for a in report.actions] == [("suspend", "in_progress")]
    assert [p["ok"] for p in report.partner_center] == [True, True]
    assert {cw.pc_status(s) for s in subs} == {"suspended"}
    assert {s.state for s in Suspension.objects.filter(case=case)} == {SuspensionState.SUSPENDED}
    assert {s.status for s in Subscription.objects.filter(customer=customer)} == {"suspended"}
    assert mail.outbox[2].subject == words["suspended"]
    assert cw.run(DUE + dt.timedelta(days=31)).partner_center == []  # nothing sent twice

    # A partial payment keeps the case where it is.
    with at(DUE + dt.timedelta(days=32)), django_capture_on_commit_callbacks(execute=True):
        payments.record_payment(SYSTEM, amount=Decimal("400.00"), currency=customer.currency,
                                received_on=DUE + dt.timedelta(days=32), customer_id=customer.pk)  # fmt: skip
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    assert case.last_stage_key == "30:suspend"
    assert case.overdue_amounts == {customer.currency: "600.00"}
    assert {cw.pc_status(s) for s in subs} == {"suspended"}

    # Paying the rest clears the overdue balance: the case closes and the reactivation task runs at once.
    with at(DUE + dt.timedelta(days=33)), django_capture_on_commit_callbacks(execute=True):
        payments.record_payment(SYSTEM, amount=Decimal("600.00"), currency=customer.currency,
                                received_on=DUE + dt.timedelta(days=33), customer_id=customer.pk)  # fmt: skip
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED and case.close_reason == "cleared"
    assert {cw.pc_status(s) for s in subs} == {"active"}
    assert {s.state for s in Suspension.objects.filter(case=case)} == {SuspensionState.REACTIVATED}
    assert {s.status for s in Subscription.objects.filter(customer=customer)} == {"active"}
    assert mail.outbox[3].subject == words["restored"]
    assert len(mail.outbox) == 4

    actions = [e["action"] for e in selectors.timeline(SYSTEM, customer.pk)]
    story = [a for a in actions if a.startswith("collections.") and a != "collections.policy_set"]
    assert story == [
        "collections.case_opened",
        "collections.reminder",
        "collections.final_notice",
        "collections.suspend",
        "collections.subscription_suspended",
        "collections.subscription_suspended",
        "collections.suspension_notice_sent",
        "collections.case_closed",
        "collections.subscription_reactivated",
        "collections.subscription_reactivated",
        "collections.reactivation_notice_sent",
    ]
    assert actions.count("payments.payment_recorded") == 2
    assert AuditEvent.objects.filter(action="subscription.suspended", customer_id=customer.pk).count() == 2


def _suspend(cw: World, customer_key: str) -> tuple[Case, list[Subscription], Invoice]:  # noqa: F811
    """A customer whose one 1,000.00 invoice (one licence line, reverse-charged) went unpaid to suspension."""
    customer = cw.customer(customer_key)
    invoice = make_invoice(customer, "1000.00", due=DUE)
    InvoiceLine.objects.bulk_create([InvoiceLine(  # the fixture's invoice is already finalized: no save()
        invoice=invoice, position=1, description="Microsoft 365 Business Premium", group="Microsoft 365",
        quantity=Decimal(50), unit_price=Decimal(20), net_amount=Decimal("1000.00"), cost=Decimal("800.00"),
        vat_category="AE", vat_rate=Decimal(0), vat_exemption_code="VATEX-EU-AE", method="markup",
        period_start=DUE.replace(day=1) - dt.timedelta(days=30), period_end=DUE.replace(day=1) - dt.timedelta(days=1),
    )])  # fmt: skip
    for day in (7, 14, 30):
        cw.run(DUE + dt.timedelta(days=day))
    case = Case.objects.get(customer=customer, status=CaseStatus.OPEN)
    subs = list(Subscription.objects.filter(customer=customer).order_by("pk"))
    assert {cw.pc_status(s) for s in subs} == {"suspended"}
    return case, subs, invoice


@pytest.mark.django_db
def test_a_credit_note_that_clears_the_balance_reactivates(
    cw: World,  # noqa: F811
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    from cspdesk.billing import services as billing

    case, subs, invoice = _suspend(cw, "bellavista")
    with at(DUE + dt.timedelta(days=32)), django_capture_on_commit_callbacks(execute=True):
        billing.issue_credit_note(SYSTEM, invoice.pk, reason="Licences charged twice")
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED and case.close_reason == "cleared"
    assert {cw.pc_status(s) for s in subs} == {"active"}
    assert {s.state for s in Suspension.objects.filter(case=case)} == {SuspensionState.REACTIVATED}


@pytest.mark.django_db
def test_a_partial_write_off_keeps_the_stage_and_the_rest_reactivates(
    cw: World,  # noqa: F811
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    from cspdesk.core.errors import Conflict
    from cspdesk.payments.models import WriteOff

    case, subs, invoice = _suspend(cw, "gyor")
    currency = invoice.currency
    with at(DUE + dt.timedelta(days=32)), django_capture_on_commit_callbacks(execute=True):
        first = payments.write_off(SYSTEM, invoice.pk, reason="Settlement agreed", amount=Decimal("250.00"))
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN and case.last_stage_key == "30:suspend"
    assert case.overdue_amounts == {currency: "750.00"}
    assert {cw.pc_status(s) for s in subs} == {"suspended"}
    with pytest.raises(Conflict, match=r"only 750\.00"):
        payments.write_off(SYSTEM, invoice.pk, reason="too much", amount=Decimal("750.01"))

    with at(DUE + dt.timedelta(days=33)), django_capture_on_commit_callbacks(execute=True):
        rest = payments.write_off(SYSTEM, invoice.pk, reason="Customer insolvent")
    assert rest.amount == Decimal("750.00")
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED and case.close_reason == "cleared"
    assert {cw.pc_status(s) for s in subs} == {"active"}
    assert AuditEvent.objects.filter(action="payments.invoice_written_off", object_id=str(first.pk)).exists()

    # Reversing a write-off made in error makes the amount owed again.
    with at(DUE + dt.timedelta(days=34)), django_capture_on_commit_callbacks(execute=True):
        payments.reverse_write_off(SYSTEM, rest.pk, reason="Wrong invoice")
    assert WriteOff.objects.get(pk=rest.pk).reversed_at is not None
    from cspdesk.payments.models import CustomerOverdueState

    assert CustomerOverdueState.objects.get(customer_id=invoice.customer_id).overdue_amount == Decimal("750.00")
