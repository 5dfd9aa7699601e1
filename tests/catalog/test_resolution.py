"""Which price rule wins: each scope, the precedence between them, dates, and conflicts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cspdesk.catalog.resolution import ChargeKey, RuleConflict, RuleSpec, category_of, select_rule

ON = dt.date(2026, 10, 1)
KEY = ChargeKey(customer_id=7, reseller_id=3, category="azure", product_id="DZH318Z0BPS6", sku_id="0001",
                meter_category="Virtual Machines", on=ON)  # fmt: skip

RULES = [
    RuleSpec(1, "markup", percent=Decimal(10)),
    RuleSpec(2, "markup", reseller_id=3),
    RuleSpec(3, "markup", customer_id=7),
    RuleSpec(4, "markup", customer_id=7, category="azure"),
    RuleSpec(5, "markup", customer_id=7, product_id="DZH318Z0BPS6"),
    RuleSpec(6, "markup", customer_id=7, sku_id="0001"),
    RuleSpec(7, "markup", customer_id=7, meter_category="Virtual Machines"),
]


@pytest.mark.parametrize(
    ("available", "winner"),
    [
        pytest.param(1, 1, id="organisation-default"),
        pytest.param(2, 2, id="reseller-beats-default"),
        pytest.param(3, 3, id="customer-beats-reseller"),
        pytest.param(4, 4, id="category"),
        pytest.param(5, 5, id="product-beats-category"),
        pytest.param(6, 6, id="sku-beats-product"),
        pytest.param(7, 7, id="meter-category-beats-sku"),
    ],
)
def test_most_specific_rule_wins(available: int, winner: int) -> None:
    chosen = select_rule(RULES[:available], KEY)
    assert chosen is not None and chosen.id == winner


def test_customer_scope_beats_a_more_specific_product_scope_of_the_default() -> None:
    rules = [RuleSpec(1, "markup", meter_category="Virtual Machines"), RuleSpec(2, "markup", customer_id=7)]
    assert select_rule(rules, KEY).id == 2  # type: ignore[union-attr]


def test_rules_of_other_customers_resellers_products_and_dates_do_not_match() -> None:
    rules = [
        RuleSpec(1, "markup", customer_id=8),
        RuleSpec(2, "markup", reseller_id=4),
        RuleSpec(3, "markup", category="microsoft365"),
        RuleSpec(4, "markup", effective_from=dt.date(2026, 10, 2)),
        RuleSpec(5, "markup", effective_to=dt.date(2026, 9, 30)),
    ]
    assert select_rule(rules, KEY) is None


def test_equal_specificity_in_force_together_is_a_conflict_never_a_pick() -> None:
    rules = [RuleSpec(1, "markup", category="azure"), RuleSpec(2, "list_adjust", category="azure")]
    with pytest.raises(RuleConflict) as exc:
        select_rule(rules, KEY)
    assert [r.id for r in exc.value.rules] == [1, 2]


def test_equal_specificity_one_after_the_other_is_no_conflict() -> None:
    rules = [RuleSpec(1, "markup", effective_to=dt.date(2026, 9, 30)), RuleSpec(2, "markup", effective_from=ON)]
    assert select_rule(rules, KEY).id == 2  # type: ignore[union-attr]


@given(st.permutations(RULES))
def test_the_order_of_rules_does_not_matter(rules: list[RuleSpec]) -> None:
    assert select_rule(rules, KEY).id == 7  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("product_id", "name", "meter", "category"),
    [
        ("DZH318Z0BPS6", "Azure plan", "", "azure"),
        ("X", "Something", "Storage", "azure"),
        ("CFQ7TTC0LFK6", "Dynamics 365 Sales Enterprise", "", "dynamics365"),
        ("CFQ7TTC0LCHC", "Microsoft 365 Business Premium", "", "microsoft365"),
        ("CFQ7TTC0LHSF", "Exchange Online (Plan 1)", "", "microsoft365"),
        ("ABC", "Windows Server CAL", "", "other"),
    ],
)
def test_category_of(product_id: str, name: str, meter: str, category: str) -> None:
    assert category_of(product_id, name, meter) == category
