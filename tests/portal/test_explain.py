"""billing.explain: what is behind an invoice line, scoped by the actor; cost for staff only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Sum

from cspdesk.billing import explain
from cspdesk.billing.models import InvoiceLineCharge, LineKind
from cspdesk.core.errors import NotFound
from cspdesk.partnercenter.recon.models import ChargeLine
from tests.portal.world import PortalWorld

pytestmark = pytest.mark.django_db


def test_every_line_is_explained_by_its_charge_lines(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    actor = world.demo.actor("bellavista.admin")
    for line in inv.lines.filter(kind=LineKind.MICROSOFT):
        x = explain.explain(actor, inv.pk, line.position)
        links = InvoiceLineCharge.objects.filter(line=line)
        assert [s.charge_line_id for s in x.sources] == sorted(
            links.values_list("charge_line_id", flat=True),
            key=lambda pk: (ChargeLine.objects.get(pk=pk).charge_start, pk),
        )
        assert sum((s.price for s in x.sources), Decimal(0)) == links.aggregate(s=Sum("price"))["s"]
        assert x.file_rows == ChargeLine.objects.filter(pk__in=links.values("charge_line_id")).aggregate(
            s=Sum("row_count"))["s"]  # fmt: skip
        assert all(s.first_line <= s.last_line and s.import_id for s in x.sources)
        assert x.days == (line.period_end - line.period_start).days + 1
        assert x.cost is None and all(s.cost is None for s in x.sources)
        assert x.method == line.method and (x.rule is None) == (line.price_rule_id is None)


def test_staff_see_microsofts_cost(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    line = inv.lines.filter(kind=LineKind.MICROSOFT).first()
    assert line is not None
    x = explain.explain(world.demo.actor("nuvola.helpdesk"), inv.pk, line.position)
    assert x.cost == line.cost and x.include_cost
    assert sum((s.cost or Decimal(0) for s in x.sources), Decimal(0)).quantize(Decimal("0.01")) == line.cost


def test_synced_subscriptions_are_named(world: PortalWorld) -> None:
    assert world.suspended is not None
    inv = world.invoice("bellavista")
    link = InvoiceLineCharge.objects.filter(
        line__invoice=inv, charge_line__subscription_id=str(world.suspended.pc_subscription_id)
    ).first()
    assert link is not None
    x = explain.explain(world.demo.actor("bellavista.admin"), inv.pk, link.line.position)
    assert [(s.pc_subscription_id, s.status) for s in x.subscriptions] == [
        (str(world.suspended.pc_subscription_id), "suspended")
    ]


def test_a_support_line_has_no_microsoft_rows(world: PortalWorld) -> None:
    inv = world.invoice("bellavista")
    line = inv.lines.filter(kind=LineKind.SUPPORT).first()
    if line is None:
        pytest.skip("the demo customer has no support plan line")
    x = explain.explain(world.demo.actor("bellavista.admin"), inv.pk, line.position)
    assert x.sources == () and x.method == "support"


def test_another_customers_line_and_a_missing_line_are_not_found(world: PortalWorld) -> None:
    other = world.invoice("liffey")
    with pytest.raises(NotFound):
        explain.explain(world.demo.actor("bellavista.admin"), other.pk, 1)
    own = world.invoice("bellavista")
    with pytest.raises(NotFound):
        explain.explain(world.demo.actor("bellavista.admin"), own.pk, 999)
