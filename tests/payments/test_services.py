"""Payment intake, matching, suspense, partial/over/under payments, refunds and reversals, with audit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cspdesk.audit.models import AuditEvent
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, Forbidden, NotFound
from cspdesk.payments import allocation, selectors, services
from cspdesk.payments.models import Allocation, CustomerOverdueState, Payment
from tests.payments.fixtures import make_credit_note, make_invoice

D = Decimal
SYSTEM = Actor.system("test")
NOW = dt.datetime(2026, 6, 15, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


@pytest.fixture
def world(demo):  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        c = demo.customer("bellavista")
        demo.inv_old = make_invoice(c, "100.00", due=dt.date(2026, 4, 30))
        demo.inv_mid = make_invoice(c, "250.00", due=dt.date(2026, 5, 31))
        demo.inv_new = make_invoice(c, "80.00", due=dt.date(2026, 7, 15))
        yield demo


def billing(demo):  # type: ignore[no-untyped-def]
    return demo.actor("nuvola.billing")


def record(demo, amount: str, text: str = "", **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("customer_id", demo.customer("bellavista").pk)
    return services.record_payment(billing(demo), amount=D(amount), currency="EUR", received_on=TODAY,
                                   reference=text, **kw)  # fmt: skip


def active(payment: Payment) -> list[tuple[str, Decimal, str]]:
    return [(a.invoice.number, a.amount, a.rule) for a in payment.allocations.filter(reversed_at__isnull=True)
            .select_related("invoice").order_by("pk")]  # fmt: skip


def test_reference_match_pays_named_invoice_and_records_audit(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        before = AuditEvent.objects.count()
        r = record(world, "250.00", f"Saldo fattura {world.inv_mid.number}")
    assert r.created
    assert active(r.payment) == [(world.inv_mid.number, D("250.000000"), "reference")]
    assert selectors.open_balance(world.inv_mid) == D("0.00")
    assert selectors.open_balance(world.inv_old) == D("100.00")
    actions = list(AuditEvent.objects.order_by("pk")[before:].values_list("action", flat=True))
    assert actions == ["payments.payment_recorded", "payments.allocated"]


def test_rf_reference_match(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        r = record(world, "80.00", f"SEPA {allocation.rf_reference(world.inv_new.number)}")
    assert active(r.payment) == [(world.inv_new.number, D("80"), "reference")]


def test_exact_amount_then_oldest_first(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        exact = record(world, "250.00", "bonifico")
        oldest = record(world, "130.00", "bonifico")
    assert active(exact.payment) == [(world.inv_mid.number, D("250"), "exact_amount")]
    assert active(oldest.payment) == [(world.inv_old.number, D("100"), "oldest_first"),
                                      (world.inv_new.number, D("30"), "oldest_first")]  # fmt: skip
    assert selectors.open_balance(world.inv_new) == D("50.00")


def test_partial_under_and_overpayment_credit_applies_to_next_invoice(world) -> None:  # type: ignore[no-untyped-def]
    c = world.customer("bellavista")
    with clock.frozen(NOW):
        partial = record(world, "40.00", world.inv_old.number)
        assert selectors.open_balance(world.inv_old) == D("60.00")
        over = record(world, "500.00", "")
        # 60 + 250 + 80 = 390 applied; 110 stays as the customer's credit
        assert selectors.unallocated(over.payment) == D("110")
        assert selectors.customer_credit(c.pk) == D("110")
        nxt = make_invoice(c, "150.00", due=dt.date(2026, 8, 15))
        made = services.apply_customer_credit(billing(world), c.pk)
    assert active(partial.payment) == [(world.inv_old.number, D("40"), "reference")]
    assert [(a.invoice_id, a.amount) for a in made] == [(nxt.pk, D("110.00"))]
    assert selectors.open_balance(nxt) == D("40.00")
    assert selectors.customer_credit(c.pk) == D("0")


def test_credit_notes_count_in_the_open_balance(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        make_credit_note(world.inv_mid, "50.00", issued=TODAY)
        r = record(world, "200.00", world.inv_mid.number)
    assert active(r.payment) == [(world.inv_mid.number, D("200"), "reference")]
    assert selectors.open_balance(world.inv_mid) == D("0.00")


def test_suspense_queue_and_manual_match(world) -> None:  # type: ignore[no-untyped-def]
    org = world.org("nuvola")
    with clock.frozen(NOW):
        r = services.record_payment(billing(world), amount=D("100.00"), currency="EUR", received_on=TODAY,
                                    organisation_id=org.pk, reference="payment", payer_name="Unknown Ltd")  # fmt: skip
        assert r.payment.customer_id is None
        assert list(selectors.suspense_for(billing(world))) == [r.payment]
        assert list(selectors.suspense_for(world.actor("bellavista.contabilita"))) == []
        services.assign_customer(billing(world), r.payment.pk, world.customer("bellavista").pk,
                                 invoice_id=world.inv_new.pk)  # fmt: skip
        later = services.record_payment(billing(world), amount=D("5.00"), currency="EUR", received_on=TODAY,
                                        organisation_id=org.pk,
                                        payer_account=r.payment.payer_account or "")  # fmt: skip
    r.payment.refresh_from_db()
    assert list(selectors.suspense_for(billing(world))) == [later.payment]
    assert active(r.payment) == [
        (world.inv_new.number, D("80"), "manual"),
        (world.inv_old.number, D("20"), "oldest_first"),
    ]
    assert AuditEvent.objects.filter(action="payments.customer_assigned", object_id=str(r.payment.pk)).count() == 1


def test_customer_found_by_invoice_number_without_customer(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        r = services.record_payment(billing(world), amount=D("100.00"), currency="EUR", received_on=TODAY,
                                    organisation_id=world.org("nuvola").pk,
                                    reference=f"inv {world.inv_old.number}",
                                    payer_account="IT60X0542811101000000123456")  # fmt: skip
        again = services.record_payment(billing(world), amount=D("1.00"), currency="EUR", received_on=TODAY,
                                        organisation_id=world.org("nuvola").pk,
                                        payer_account="IT60X0542811101000000123456")  # fmt: skip
    assert r.payment.customer == world.customer("bellavista")
    assert r.payment.match_rule == "reference"
    assert again.payment.customer == world.customer("bellavista")
    assert again.payment.match_rule in ("payer_account", "oldest_first")


def test_reversal_of_a_wrong_match_and_return_to_suspense(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        r = record(world, "100.00", world.inv_old.number)
        a = r.payment.allocations.get()
        services.reverse_allocation(billing(world), a.pk, reason="paid the wrong invoice")
        assert selectors.open_balance(world.inv_old) == D("100.00")
        assert selectors.unallocated(r.payment) == D("100")
        with pytest.raises(Conflict):
            services.reverse_allocation(billing(world), a.pk, reason="again")
        services.allocate(billing(world), r.payment.pk, world.inv_new.pk, D("80.00"))
        services.return_to_suspense(billing(world), r.payment.pk, reason="other customer's money")
    r.payment.refresh_from_db()
    assert r.payment.customer_id is None
    assert active(r.payment) == []
    assert Allocation.objects.filter(payment=r.payment).count() == 2  # kept, marked reversed
    assert selectors.open_balance(world.inv_new) == D("80.00")


def test_refund_takes_credit_first_then_newest_allocation(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        r = record(world, "450.00", "")  # 100 + 250 + 80 applied, 20 credit
        services.refund(billing(world), r.payment.pk, D("50.00"), reason="customer asked")
        with pytest.raises(Conflict):
            services.refund(billing(world), r.payment.pk, D("401.00"), reason="too much")
    r.payment.refresh_from_db()
    assert r.payment.refunded == D("50")
    assert selectors.unallocated(r.payment) == D("0")
    assert selectors.open_balance(world.inv_new) == D("30.00")
    assert AuditEvent.objects.filter(action="payments.refunded").count() == 1


def test_overdue_state_follows_allocations(world) -> None:  # type: ignore[no-untyped-def]
    c = world.customer("bellavista")
    with clock.frozen(NOW):
        record(world, "100.00", world.inv_old.number)
        state = CustomerOverdueState.objects.get(customer=c)
        assert (state.overdue_amount, state.oldest_due_date) == (D("250"), dt.date(2026, 5, 31))
        record(world, "250.00", world.inv_mid.number)
    state.refresh_from_db()
    assert (state.overdue_amount, state.open_amount, state.is_overdue) == (D("0"), D("80"), False)


def test_idempotent_external_key(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        first = record(world, "10.00", external_key="k-1")
        second = record(world, "10.00", external_key="k-1")
    assert (first.created, second.created, second.payment.pk) == (True, False, first.payment.pk)
    assert Payment.objects.count() == 1


@pytest.mark.parametrize("username", ["nuvola.sales", "nuvola.helpdesk", "bellavista.contabilita", "nuvola.users"])
def test_roles_that_cannot_record_payments(world, username: str) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW), pytest.raises(Forbidden):
        services.record_payment(world.actor(username), amount=D("1.00"), currency="EUR", received_on=TODAY,
                                customer_id=world.customer("bellavista").pk)  # fmt: skip
    assert Payment.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="payments.").exists()


def test_scoping(world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(NOW):
        mine = record(world, "10.00")
        other = record(world, "10.00", customer_id=world.customer("liffey").pk)
        with pytest.raises(NotFound):  # another organisation's billing admin cannot touch it
            services.allocate(world.actor("fjall.billing"), mine.payment.pk, world.inv_old.pk)
        with pytest.raises(NotFound):
            services.record_payment(world.actor("fjall.billing"), amount=D("1.00"), currency="EUR",
                                    received_on=TODAY, customer_id=world.customer("bellavista").pk)  # fmt: skip
    assert set(selectors.payments_for(world.actor("bellavista.contabilita"))) == {mine.payment}
    assert set(selectors.payments_for(world.actor("nuvola.billing"))) == {mine.payment, other.payment}
    assert list(selectors.payments_for(world.actor("fjall.billing"))) == []
    assert list(selectors.payments_for(world.actor("nuvola.sales"))) == []
