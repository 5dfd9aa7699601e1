"""The numbers behind the console's charts, and the chart geometry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cspdesk.billing import services as billing
from cspdesk.billing.models import Invoice
from cspdesk.console import charts
from cspdesk.console import selectors as console
from cspdesk.core import clock
from cspdesk.partnercenter.recon.models import MicrosoftInvoice
from cspdesk.payments import services as payments
from cspdesk.support.models import Ticket
from tests.fixtures import DemoWorld

from .fixtures import OCT, SYSTEM, drafted_run, make_import, open_tickets

D = Decimal
NOV_20 = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_monthly_margin_sums_invoices_less_credit_notes_per_currency(demo: DemoWorld) -> None:
    run = drafted_run(demo)
    with clock.frozen(NOV_20):
        billing.finalize_run(SYSTEM, run.pk)
        liffey = Invoice.objects.get(run=run, customer=demo.customer("liffey"))
        billing.issue_credit_note(SYSTEM, liffey.pk, reason="goodwill")
        figures = console.monthly_margin(demo.actor("nuvola.billing"), months=3)
    # Bellavista: cost 100, +10 % → 110; Liffey: cost 50, list −20 % → 40, then credited in full.
    assert list(figures) == ["EUR"]
    months = figures["EUR"]
    assert [m.period for m in months] == [dt.date(2026, 9, 1), OCT, dt.date(2026, 11, 1)]
    october = months[1]
    assert (october.revenue, october.cost, october.margin) == (D("110.00"), D("100.00"), D("10.00"))
    assert october.margin_percent == D("9.1")
    assert (months[0].revenue, months[2].revenue) == (D(0), D(0))
    # Another tenant sees none of it; a role without invoices.read neither.
    assert console.monthly_margin(demo.actor("fjall.billing"), months=3) == {}
    assert console.monthly_margin(demo.actor("nuvola.sales"), months=3) == {}


@pytest.mark.django_db
def test_aging_funnel_and_payables(demo: DemoWorld) -> None:
    run = drafted_run(demo)
    with clock.frozen(dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)):
        billing.finalize_run(SYSTEM, run.pk)  # due 30 days later: 2 December
    bella = Invoice.objects.get(run=run, customer=demo.customer("bellavista"))
    payments.record_payment(SYSTEM, amount=D("50.00"), currency="EUR", received_on=dt.date(2026, 11, 10),
                            customer_id=bella.customer_id, invoice_id=bella.pk)  # fmt: skip
    actor = demo.actor("nuvola.billing")
    open_bella = bella.total - D("50.00")
    liffey_total = Invoice.objects.get(run=run, customer=demo.customer("liffey")).total
    aging = console.receivables_aging(actor, dt.date(2026, 12, 20))
    assert aging["EUR"]["1_30"] == open_bella + liffey_total
    assert aging["EUR"]["total"] == open_bella + liffey_total
    assert aging["EUR"]["current"] == D(0)
    assert console.dunning_funnel(actor, dt.date(2026, 11, 20)) == {
        "open": 2, "overdue": 0, "over_14": 0, "over_30": 0, "over_60": 0}  # fmt: skip
    assert console.dunning_funnel(actor, dt.date(2026, 12, 20)) == {
        "open": 2, "overdue": 2, "over_14": 2, "over_30": 0, "over_60": 0}  # fmt: skip
    assert console.dunning_funnel(demo.actor("nuvola.sales"), dt.date(2026, 12, 20))["open"] == 0

    org = demo.org("nuvola")
    for number, due, total in (("M1", dt.date(2026, 12, 1), "900.00"), ("M2", dt.date(2026, 12, 24), "100.00"),
                               ("M3", dt.date(2027, 3, 1), "5.00")):  # fmt: skip
        MicrosoftInvoice.objects.create(organisation=org, number=number, invoice_date=dt.date(2026, 11, 1),
                                        due_date=due, currency="EUR", subtotal=D(total), tax=0, total=D(total),
                                        source=make_import(org, number=number))  # fmt: skip
    due = console.payables_due(actor, dt.date(2026, 12, 20))
    assert due == {"EUR": {"overdue": D("900.00"), "week": D("100.00"), "month": D(0), "two_months": D(0),
                           "later": D("5.00")}}  # fmt: skip
    assert console.payables_due(demo.actor("fjall.billing"), dt.date(2026, 12, 20)) == {}


@pytest.mark.django_db
def test_sla_compliance_counts_met_breached_and_running_by_month(demo: DemoWorld) -> None:
    tickets = open_tickets(demo)
    nuvola = [t for t in tickets if t.organisation_id == demo.org("nuvola").pk]
    assert len(nuvola) == 3
    base = dt.datetime(2026, 10, 5, 9, tzinfo=dt.UTC)
    due = base + dt.timedelta(days=2)
    met, missed, running = nuvola
    Ticket.objects.filter(pk=met.pk).update(
        created_at=base, resolution_due=due, resolved_at=due - dt.timedelta(hours=1)
    )
    Ticket.objects.filter(pk=missed.pk).update(
        created_at=base, resolution_due=due, resolved_at=due + dt.timedelta(hours=1)
    )
    Ticket.objects.filter(pk=running.pk).update(
        created_at=base + dt.timedelta(days=30), resolution_due=NOV_20 + dt.timedelta(days=1)
    )
    months = console.sla_compliance(demo.actor("nuvola.helpdesk"), months=2, now=NOV_20)
    assert [(m.period, m.met, m.breached, m.running) for m in months] == [
        (dt.date(2026, 10, 1), 1, 1, 0), (dt.date(2026, 11, 1), 0, 0, 1)]  # fmt: skip
    assert months[0].percent == D("50.0") and months[1].percent is None
    later = console.sla_compliance(demo.actor("nuvola.helpdesk"), months=2, now=NOV_20 + dt.timedelta(days=2))
    assert (later[1].running, later[1].breached) == (0, 1)


@pytest.mark.django_db
def test_sla_timer_follows_the_first_response_then_the_resolution(demo: DemoWorld) -> None:
    ticket = open_tickets(demo)[0]
    now = ticket.created_at
    timer = console.sla_timer(ticket, now)
    assert timer.target == "first_response" and not timer.breached
    assert timer.left == ticket.first_response_due - now  # type: ignore[operator]
    late = console.sla_timer(ticket, ticket.first_response_due + dt.timedelta(minutes=1))  # type: ignore[operator]
    assert late.breached and late.sort_key[0] == 0
    ticket.turn = "customer"
    waiting = console.sla_timer(ticket, now)
    assert waiting.paused and waiting.sort_key == (2, 0.0)
    ticket.turn = "microsoft"
    assert not console.sla_timer(ticket, now).paused
    ticket.first_responded_at = now
    assert console.sla_timer(ticket, now).target == "resolution"
    ticket.status = "resolved"
    assert console.sla_timer(ticket, now).target == ""


@pytest.mark.django_db
def test_spend_changes_compare_the_two_latest_months(demo: DemoWorld) -> None:
    from .fixtures import SEP, make_line

    org = demo.org("nuvola")
    sep, octo = make_import(org, period=SEP, number="G0"), make_import(org, period=OCT, number="G1")
    make_line(sep, demo.customer("bellavista"), "200.00")
    make_line(octo, demo.customer("bellavista"), "100.00")
    make_line(sep, demo.customer("liffey"), "100.00")
    make_line(octo, demo.customer("liffey"), "110.00")
    make_line(octo, demo.customer("prairie"), "40.00", currency="EUR")
    moves = console.spend_changes(demo.actor("nuvola.sales"))
    assert [(m.customer, m.change_percent, m.grew) for m in moves] == [
        ("Prairie Robotics Inc.", None, True), ("Trattoria Bellavista S.r.l.", D("-50.0"), False)]  # fmt: skip
    assert console.spend_changes(demo.actor("nuvola.helpdesk")) == []  # no insights.read
    assert console.spend_changes(demo.actor("fjall.sales")) == []


def test_review_puts_blocking_and_serious_anomalies_first() -> None:
    review = {"customers": [
        {"buyer_name": "A", "anomalies": []},
        {"buyer_name": "B", "anomalies": [{"code": "bill_moved"}]},
        {"buyer_name": "C", "anomalies": [{"code": "no_exchange_rate"}]},
        {"buyer_name": "D", "anomalies": [{"code": "negative_margin"}, {"code": "no_price_rule"}]},
    ], "anomalies": [{"code": "unassigned_cost"}], "totals": {}}  # fmt: skip
    r = console.review_of(review, frozenset({"no_exchange_rate"}))
    assert [c["buyer_name"] for c in r.flagged] == ["C", "D", "B"]
    assert [c["buyer_name"] for c in r.clean] == ["A"]
    assert r.blocking == 1 and len(r.organisation_anomalies) == 1


def test_column_chart_scales_to_round_ticks_and_hangs_negatives_below_zero() -> None:
    chart = charts.column_chart(["Sep", "Oct"], [("Margin", [D(150), D(-50)])], str, width=400, height=200)
    assert [t.label for t in chart.ticks] == ["-50", "0", "50", "100", "150"]
    up, down = chart.bars
    assert up.y + up.height == pytest.approx(chart.zero_y, abs=0.1)
    assert down.y == pytest.approx(chart.zero_y, abs=0.1) and down.negative
    assert up.height == pytest.approx(3 * down.height, abs=0.2)
    assert up.title == "Sep · Margin: 150"
    assert charts.nice_step(D(1234)) == D(500)
    assert charts.nice_step(D(0)) == D(1)


def test_bar_chart_scales_to_the_largest_and_centres_a_funnel() -> None:
    chart = charts.bar_chart([("a", D(10)), ("b", D(5)), ("c", D(0))], str, width=600, centered=True)
    a, b, c = (r.rect for r in chart.rows)
    assert a.width == pytest.approx(2 * b.width, abs=0.1)
    assert c.width == 0
    assert b.x + b.width / 2 == pytest.approx(a.x + a.width / 2, abs=0.1)
    assert chart.height == 3 * 30 + 4
