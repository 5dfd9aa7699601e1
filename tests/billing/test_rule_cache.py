"""A run remembers which rule prices which kind of charge: it must answer exactly as select_rule does."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cspdesk.billing import services
from cspdesk.billing.models import Invoice, InvoiceLine, InvoiceLineCharge
from cspdesk.billing.rating import engine
from cspdesk.catalog import services as catalog
from cspdesk.catalog.resolution import RuleConflict, RuleSpec, select_rule
from tests.billing.test_billing_run import SYSTEM, make_import, make_line
from tests.billing.test_rating import charge

D = Decimal
OCT = dt.date(2026, 10, 1)
MID = dt.date(2026, 10, 15)

days = st.integers(-5, 40).map(lambda n: OCT + dt.timedelta(days=n))


def scope(*values: object) -> st.SearchStrategy[object]:
    """A rule's scope on one attribute: as often any value (the wildcard) as one of ``values``."""
    return st.one_of(st.just(None if values[0] is None or isinstance(values[0], int) else ""), st.sampled_from(values))


rule_scopes = st.fixed_dictionaries({
    "customer_id": scope(1, 2), "reseller_id": scope(7, 8), "category": scope("azure", "microsoft365"),
    "product_id": scope("P", "p", "Q"), "sku_id": scope("0001", "0002"),
    "meter_category": scope("Virtual Machines", "virtual machines", "Storage"),
    "effective_from": days, "effective_to": st.one_of(st.none(), days, st.just(dt.date.max)),
})  # fmt: skip
charge_scopes = st.fixed_dictionaries({
    "customer_id": st.sampled_from([None, 1, 2, 3]), "reseller_id": st.sampled_from([None, 7, 9]),
    "category": st.sampled_from(["azure", "microsoft365", "other"]), "product_id": st.sampled_from(["P", "p", "R"]),
    "sku_id": st.sampled_from(["0001", "0002", "0003"]),
    "meter_category": st.sampled_from(["", "Virtual Machines", "VIRTUAL MACHINES", "Networking"]), "start": days,
})  # fmt: skip


def outcome(select, c: engine.Charge) -> object:  # type: ignore[no-untyped-def]
    try:
        return select(c)
    except RuleConflict as conflict:
        return ("conflict", conflict.rules, str(conflict))


@settings(max_examples=300, deadline=None)
@given(st.lists(rule_scopes, max_size=8), st.lists(charge_scopes, min_size=1, max_size=30))
def test_the_lookup_answers_as_select_rule_for_every_charge_in_any_order(rules_kw, charges_kw) -> None:  # type: ignore[no-untyped-def]
    rules = [RuleSpec(i, "markup", percent=D(i), **kw) for i, kw in enumerate(rules_kw, start=1)]
    rules = [r for r in rules if r.effective_to is None or r.effective_to >= r.effective_from]
    charges = [charge(i, **kw) for i, kw in enumerate(charges_kw, start=1)]
    lookup = engine.RuleLookup(rules)
    for c in charges + charges[::-1]:  # the second time round every answer is a remembered one
        assert outcome(lookup, c) == outcome(lambda c: select_rule(rules, c.key()), c)


def test_a_rule_ending_mid_month_prices_the_charges_before_its_end_only() -> None:
    deal = RuleSpec(1, "markup", percent=D(20), customer_id=1, effective_from=OCT, effective_to=MID)
    default = RuleSpec(2, "markup", percent=D(10), effective_from=OCT)
    lookup = engine.RuleLookup([deal, default])
    late, early, last_day = (charge(i, start=d) for i, d in ((1, dt.date(2026, 10, 20)), (2, OCT), (3, MID)))
    assert [lookup(c) for c in (late, early, last_day, late)] == [default, deal, deal, default]
    assert lookup(dataclasses.replace(early, customer_id=2)) == default  # another customer: not its deal


def test_a_conflict_is_raised_for_every_charge_it_concerns() -> None:
    a = RuleSpec(1, "markup", percent=D(5), sku_id="0001")
    b = RuleSpec(2, "markup", percent=D(7), product_id="P", sku_id="0001")  # as specific as ``a``
    rated = engine.rate([charge(1), charge(2), charge(3, sku_id="0002")], [a, b], lambda x, _c: x)
    assert [(c.id, conflict.rules) for c, conflict in rated.conflicts] == [(1, (a, b)), (2, (a, b))]
    assert [(p.charge.id, p.rule) for p in rated.priced] == [(3, None)]


def test_a_run_prices_each_charge_by_the_rule_in_force_on_its_date(demo) -> None:  # type: ignore[no-untyped-def]
    org, bellavista, liffey = demo.org("nuvola"), demo.customer("bellavista"), demo.customer("liffey")
    default = catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(10),
                                        effective_from=OCT)  # fmt: skip
    deal = catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(20),
                                     customer_id=bellavista.pk, effective_from=OCT, effective_to=MID)  # fmt: skip
    imp = make_import(org)
    after = make_line(imp, bellavista, "100.00", charge_start=dt.date(2026, 10, 20))  # read first: the lowest id
    before = make_line(imp, bellavista, "100.00", charge_end=MID)
    make_line(imp, liffey, "100.00")
    run = services.bill(SYSTEM, OCT)
    lines = InvoiceLine.objects.filter(invoice__customer=bellavista, invoice__run=run).order_by("period_start")
    assert [(ln.price_rule_id, ln.net_amount) for ln in lines] == [(deal.pk, D("120.00")), (default.pk, D("110.00"))]
    links = InvoiceLineCharge.objects.filter(line__in=lines).order_by("line__period_start")
    assert [(lk.charge_line_id, lk.price) for lk in links] == [(before.pk, D("120")), (after.pk, D("110"))]
    assert Invoice.objects.get(run=run, customer=liffey).net == D("110.00")


def test_a_run_reports_a_conflict_for_every_charge_line_it_concerns(demo) -> None:  # type: ignore[no-untyped-def]
    org, bellavista = demo.org("nuvola"), demo.customer("bellavista")
    a = catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(5), sku_id="0001",
                                  effective_from=OCT)  # fmt: skip
    b = catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=D(7), sku_id="0001",
                                  product_id="CFQ7TTC0LFLX", effective_from=OCT)  # fmt: skip
    imp = make_import(org)
    ids = [make_line(imp, bellavista, "100.00", subscription_id=f"sub-{n}").pk for n in range(3)]
    run = services.bill(SYSTEM, OCT)
    conflicts = [x for c in run.review["customers"] for x in c["anomalies"] if x["code"] == "price_rule_conflict"]
    assert [(x["charge_line_id"], x["rule_ids"]) for x in conflicts] == [(i, [a.pk, b.pk]) for i in ids]
