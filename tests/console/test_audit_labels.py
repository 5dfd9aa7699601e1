"""Every audit action the code base records has a label (cspdesk/audit/labels.py), found by reading the source:
each ``audit.record(actor, "…")`` and ``_event(actor, ticket, "…")`` call. An action built from a template
(an f-string) is expanded with the values the template takes; a template not listed here fails the test, so a new
one is labelled when it is written."""

from __future__ import annotations

import re
from pathlib import Path

from cspdesk.audit.labels import ACTION_LABELS, action_label
from cspdesk.collections.models import PlanStatus, StageAction

SOURCE = Path(__file__).resolve().parents[2] / "cspdesk"
CALL = re.compile(
    r"(?:(?:audit\.record(?:_many)?|\b_event)\(\s*[\w.()\"]+,\s*(?:\w+,\s*)?|\b_audit\(\s*)"  # the call, its actor
    # (and ticket); the outbox's own helper takes the action first
    r"(f?)\"([^\"]+)\"(?:\s+if\s[^,]+?\selse\s+\"([^\"]+)\")?",  # the action, or either of two
    re.S,
)
TEMPLATES = {
    "collections.{stage.action}": [f"collections.{a}" for a in StageAction.values],
    "collections.payment_plan_{status}": [
        f"collections.payment_plan_{s}" for s in PlanStatus.values if s != PlanStatus.ACTIVE
    ],
    "subscription.{action}_failed": ["subscription.suspend_failed", "subscription.reactivate_failed"],
    "subscription.{action}ed": ["subscription.suspended"],
    "ticket.sla_{name}_breached": ["ticket.sla_first_response_breached", "ticket.sla_resolution_breached"],
    "ticket.sla_{name}_warning": ["ticket.sla_first_response_warning", "ticket.sla_resolution_warning"],
}


def recorded_actions() -> tuple[set[str], set[str]]:
    """The literal action codes and the f-string templates the source records."""
    literal, templates = set(), set()
    for path in SOURCE.rglob("*.py"):
        for f, code, otherwise in CALL.findall(path.read_text(encoding="utf-8")):
            (templates if f else literal).add(code)
            if otherwise:
                literal.add(otherwise)
    return literal, templates


def test_every_recorded_action_has_a_label() -> None:
    literal, templates = recorded_actions()
    assert len(literal) >= 60 and "payments.allocated" in literal and "ticket.replied" in literal
    assert templates <= set(TEMPLATES), f"an action template without expansions: {templates - set(TEMPLATES)}"
    codes = literal | {code for t in templates for code in TEMPLATES[t]}
    assert sorted(codes - set(ACTION_LABELS)) == []


def test_an_unknown_code_is_shown_as_itself_and_a_known_one_translated() -> None:
    from django.utils import translation

    assert action_label("something.new") == "something.new"
    with translation.override("it"):
        assert action_label("payments.allocated") not in ("payments.allocated", "Payment allocated to an invoice")
