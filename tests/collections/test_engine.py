"""The engine's safety rules: holds, disputes, plans, minimum, exemptions, the cap, Partner Center failures,
dry runs, bad policies, and two engines at once."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection

from cspdesk.audit.models import AuditEvent
from cspdesk.collections import evaluation, published, services
from cspdesk.collections.models import ActionStatus, Case, CaseAction, CaseStatus, Suspension, SuspensionState
from cspdesk.collections.pdf import render
from cspdesk.core.errors import ValidationFailed
from cspdesk.partnercenter.emulator import parse_spec
from cspdesk.partnercenter.models import Subscription, SubscriptionStatusChange
from cspdesk.payments import services as payments
from tests.collections.fixtures import POLICY, SYSTEM, World, at, cw, pc  # noqa: F401
from tests.payments.fixtures import make_invoice

DUE = dt.date(2026, 10, 1)


def day(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


def walk(cw: World, until: int) -> None:  # noqa: F811
    for n in (7, 14, until):
        cw.run(day(n))


@pytest.mark.django_db
def test_a_disputed_invoice_is_left_out_until_the_dispute_closes(cw: World) -> None:  # noqa: F811
    customer = cw.customer("bellavista")
    invoice = make_invoice(customer, "500.00", due=DUE)
    with at(day(5)):
        dispute = services.open_dispute(SYSTEM, invoice.pk, reason="seats counted twice")
    assert [a["action"] for a in cw.run(day(7)).actions] == []
    assert not Case.objects.filter(customer=customer).exists()
    with at(day(20)):
        services.close_dispute(SYSTEM, dispute.pk, resolution="seats confirmed")
    assert [a["action"] for a in cw.run(day(20)).actions] == ["reminder"]
    assert AuditEvent.objects.filter(action="collections.dispute_opened", customer_id=customer.pk).count() == 1


@pytest.mark.django_db
def test_a_dispute_opened_on_a_suspended_customer_closes_the_case_and_reactivates(cw: World) -> None:  # noqa: F811
    customer = cw.customer("bellavista")
    invoice = make_invoice(customer, "500.00", due=DUE)
    walk(cw, 30)
    subs = list(Subscription.objects.filter(customer=customer))
    assert {cw.pc_status(s) for s in subs} == {"suspended"}
    with at(day(31)):
        services.open_dispute(SYSTEM, invoice.pk, reason="wrong customer")
    case = Case.objects.get(customer=customer)
    assert case.status == CaseStatus.CLOSED
    assert {s.state for s in case.suspensions.all()} == {SuspensionState.REACTIVATING}
    cw.run(day(31))  # the reactivation is retried by the engine when no worker ran it
    assert {cw.pc_status(s) for s in subs} == {"active"}


@pytest.mark.django_db
def test_a_payment_plan_on_time_pauses_the_case_and_a_missed_instalment_resumes_it(cw: World) -> None:  # noqa: F811
    customer = cw.customer("bellavista")
    invoice = make_invoice(customer, "600.00", due=DUE)
    with at(day(5)):
        schedule = [(day(10), Decimal("300")), (day(40), Decimal("300"))]
        plan = services.create_payment_plan(SYSTEM, customer.pk, invoice_ids=[invoice.pk], instalments=schedule)
    assert cw.run(day(7)).actions == []
    with at(day(9)):
        payments.record_payment(SYSTEM, amount=Decimal("300"), currency="EUR", received_on=day(9),
                                customer_id=customer.pk)  # fmt: skip
    assert cw.run(day(30)).actions == []  # on time: paused
    report = cw.run(day(41))  # the second instalment was due on day 40 and did not come
    assert [a["action"] for a in report.actions] == ["reminder"]
    plan.refresh_from_db()
    assert plan.status == "broken"


@pytest.mark.django_db
def test_payment_plan_instalments_must_add_up(cw: World) -> None:  # noqa: F811
    customer = cw.customer("bellavista")
    invoice = make_invoice(customer, "600.00", due=DUE)
    with at(day(5)), pytest.raises(ValidationFailed) as exc:
        services.create_payment_plan(SYSTEM, customer.pk, invoice_ids=[invoice.pk],
                                     instalments=[(day(10), Decimal("100"))])  # fmt: skip
    assert exc.value.field == "instalments"
    assert exc.value.message == "the instalments add up to 100.00 EUR; the invoices have 600.00 EUR open"


@pytest.mark.django_db
def test_a_manual_hold_stops_stages_until_its_end_date(cw: World) -> None:  # noqa: F811
    customer = cw.customer("bellavista")
    make_invoice(customer, "500.00", due=DUE)
    with at(day(5)):
        services.place_hold(SYSTEM, customer.pk, reason="CFO on holiday, promised payment", until=day(12))
    assert cw.run(day(7)).actions == []
    assert cw.run(day(12)).actions == []
    assert [a["action"] for a in cw.run(day(13)).actions] == ["reminder"]


@pytest.mark.django_db
def test_below_the_minimum_nothing_happens(cw: World) -> None:  # noqa: F811
    services.set_policy(SYSTEM, {**POLICY, "minimum_amounts": {"EUR": "50"}}, organisation_id=cw.org("nuvola").pk)
    customer = cw.customer("bellavista")
    make_invoice(customer, "49.99", due=DUE)
    report = cw.run(day(7))
    assert report.actions == []
    assert [s["reason"] for s in report.skipped if s["customer_id"] == customer.pk] == ["below_minimum"]
    make_invoice(customer, "0.01", due=DUE)
    assert [a["action"] for a in cw.run(day(8)).actions] == ["reminder"]


@pytest.mark.django_db
def test_an_exempt_customer_is_never_acted_on(cw: World) -> None:  # noqa: F811
    customer = cw.customer("bellavista")
    make_invoice(customer, "500.00", due=DUE)
    services.exempt_customer(SYSTEM, customer.pk, reason="public administration, pays on its own schedule")
    for n in (7, 14, 30, 60):
        assert cw.run(day(n)).actions == []
    assert not Case.objects.filter(customer=customer).exists()
    assert {cw.pc_status(s) for s in Subscription.objects.filter(customer=customer)} == {"active"}
    assert mail.outbox == []


@pytest.mark.django_db
def test_suspensions_beyond_the_cap_wait_for_approval(cw: World) -> None:  # noqa: F811
    customers = [cw.customer(k) for k in ("bellavista", "liffey")]
    for c in customers:
        make_invoice(c, "500.00", due=DUE)
    cw.run(day(7))
    cw.run(day(14))
    report = cw.run(day(30), cap=1)
    statuses = sorted(a["status"] for a in report.actions)
    assert statuses == ["awaiting_approval", "in_progress"]
    waiting = CaseAction.objects.get(status=ActionStatus.AWAITING_APPROVAL)
    held = waiting.case.customer
    assert {cw.pc_status(s) for s in Subscription.objects.filter(customer=held)} == {"active"}
    assert not Suspension.objects.filter(case=waiting.case).exists()
    assert cw.run(day(31), cap=1).actions == []  # it waits; the next run does not start it either
    services.approve_suspension(SYSTEM, waiting.case_id)
    cw.run(day(31), cap=1)  # approved work is sent (by the task, or by the next run as here)
    covered = [s for s in Subscription.objects.filter(customer=held)
               if evaluation.coverage(services._facts(s), services.selectors.rules_of(
                   services.selectors.policy_for_customer(held))) == "covered" or s.status == "suspended"]  # fmt: skip
    assert covered and {cw.pc_status(s) for s in covered} == {"suspended"}
    waiting.refresh_from_db()
    assert waiting.status == ActionStatus.DONE and waiting.approved_by == "tests"


@pytest.mark.django_db
def test_partner_center_503_is_retried_on_the_next_run_and_never_reported_suspended(cw: World) -> None:  # noqa: F811
    customer = cw.customer("bellavista")
    make_invoice(customer, "500.00", due=DUE)
    cw.run(day(7))
    cw.run(day(14))
    cw.emulator.server.faults.add(parse_spec("subscription:503:count=2"))  # the first look at each subscription
    report = cw.run(day(30))
    assert [p["ok"] for p in report.partner_center] == [False, False]
    assert {s.state for s in Suspension.objects.filter(case__customer=customer)} == {SuspensionState.FAILED}
    assert {s.status for s in Subscription.objects.filter(customer=customer)} == {"active"}
    assert CaseAction.objects.get(action="suspend").status == ActionStatus.IN_PROGRESS
    assert len(mail.outbox) == 2  # no suspension notice on a guess
    report = cw.run(day(31))
    assert [p["ok"] for p in report.partner_center] == [True, True]
    assert {s.state for s in Suspension.objects.filter(case__customer=customer)} == {SuspensionState.SUSPENDED}
    assert {cw.pc_status(s) for s in Subscription.objects.filter(customer=customer)} == {"suspended"}
    assert [s.attempts for s in Suspension.objects.filter(case__customer=customer)] == [2, 2]
    assert CaseAction.objects.get(action="suspend").status == ActionStatus.DONE
    assert len(mail.outbox) == 3


@pytest.mark.django_db
def test_a_dry_run_changes_nothing(cw: World) -> None:  # noqa: F811
    customer = cw.customer("bellavista")
    make_invoice(customer, "500.00", due=DUE)
    before = AuditEvent.objects.count()
    report = cw.run(day(7), dry_run=True)
    assert [(a["customer"], a["action"]) for a in report.actions] == [(customer.name, "reminder")]
    assert AuditEvent.objects.count() == before
    assert not Case.objects.exists() and mail.outbox == []


@pytest.mark.django_db
def test_the_command_runs_and_reports_json(cw: World) -> None:  # noqa: F811
    import io
    import json

    make_invoice(cw.customer("gyor"), "90000.00", due=DUE)
    out = io.StringIO()
    with at(day(7)):
        call_command("collections", "run", "--today", str(day(7)), "--dry-run", "--json", stdout=out)
    document = json.loads(out.getvalue())
    assert [a["action"] for a in document["actions"]] == ["reminder"]
    assert document["dry_run"] is True


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        ({"stages": []}, "stages", "expected a non-empty list of {days, action}"),
        (
            {"stages": [{"days": 7, "action": "shout"}]},
            "stages[0].action",
            "expected one of reminder, final_notice, suspend, cancel_at_renewal, hand_over, got 'shout'",
        ),
        (
            {"stages": [{"days": 14, "action": "reminder"}, {"days": 7, "action": "suspend"}]},
            "stages[1].days",
            "stages are ordered: 7 must be after 14",
        ),
        (
            {"stages": [{"days": 2, "action": "reminder"}], "grace_days": 3},
            "stages[0].days",
            "the first stage must come after the 3-day grace period",
        ),
        ({**POLICY, "minimum_amounts": {"EURO": "5"}}, "minimum_amounts.EURO", "expected an ISO 4217 currency code"),
    ],
    ids=["no-stages", "unknown-action", "unordered", "inside-grace", "bad-currency"],
)
def test_a_bad_policy_names_the_place(policy: dict, field: str, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(evaluation.PolicyError) as exc:
        evaluation.parse_rules(policy)
    assert (exc.value.field, exc.value.message) == (field, message)


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "it", "sv", "pt-pt", "hu"])
def test_the_published_policy_reads_in_every_language(cw: World, language: str) -> None:  # noqa: F811
    policy = services.selectors.organisation_policy(cw.org("nuvola").pk)
    assert policy is not None
    doc = published.document(policy, language)
    html = published.render_policy(policy, language)
    assert doc.title in html and "Nuvola Informatica S.r.l." in doc.title
    assert len(doc.sections[0].items) == 3  # one line per configured stage
    first = {"en": "7 days after the due date", "it": "7 giorni dopo la scadenza",
             "sv": "7 dagar efter förfallodagen", "pt-pt": "7 dias após o vencimento",
             "hu": "A fizetési határidő után 7 nappal"}[language]  # fmt: skip
    assert doc.sections[0].items[0].startswith(first)
    assert render(doc).startswith(b"%PDF")
    response = cw.demo.browser("nuvola.billing").get(f"/collections/policy/{cw.org('nuvola').pk}/?lang={language}")
    assert response.status_code == 200 and first in response.content.decode()


@pytest.mark.django_db
def test_a_billing_admin_sets_the_policy_over_the_api_and_a_helpdesk_agent_may_not(cw: World) -> None:  # noqa: F811
    body = {**POLICY, "grace_days": 5}
    denied = cw.demo.api("nuvola.helpdesk").put("/api/v1/collections/policy", data=body,
                                                content_type="application/json")  # fmt: skip
    assert denied.status_code == 403
    ok = cw.demo.api("nuvola.billing").put("/api/v1/collections/policy", data=body, content_type="application/json")
    assert ok.status_code == 200 and ok.json()["grace_days"] == 5
    bad = cw.demo.api("nuvola.billing").put(
        "/api/v1/collections/policy", data={**body, "stages": [{"days": 7, "action": "shout"}]},
        content_type="application/json",
    )  # fmt: skip
    assert bad.status_code == 422 and bad.json()["field"] == "stages[0].action"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_engines_at_once_take_each_action_once(cw: World) -> None:  # noqa: F811
    customers = [cw.customer(k) for k in ("bellavista", "liffey", "angstrom", "gyor")]
    for c in customers:
        make_invoice(c, "5000.00", due=DUE)
    cw.run(day(7))
    cw.run(day(14))
    mail.outbox.clear()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def engine() -> None:
        try:
            barrier.wait()
            cw.run(day(30))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=engine) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert CaseAction.objects.filter(action="suspend").count() == len(customers)
    assert len(mail.outbox) == len(customers)  # one suspension notice each
    suspended = Suspension.objects.filter(state=SuspensionState.SUSPENDED)
    assert suspended.count() == Suspension.objects.count() > 0
    keys = list(SubscriptionStatusChange.objects.values_list("idempotency_key", flat=True))
    assert len(keys) == len(set(keys)) == suspended.count()
    patches = [c for c in cw.emulator.server.calls if c.route == "subscription" and c.method == "PATCH"]
    assert len(patches) == suspended.count()


@pytest.mark.django_db
def test_a_stage_rolled_back_after_writing_its_notice_sends_nothing_and_its_retry_sends_it_once(
    cw: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = cw.customer("bellavista")
    make_invoice(customer, "500.00", due=DUE)
    record = services.audit.record
    failures = []

    def dies_after_the_notice(actor: object, action: str, **kwargs: object) -> object:
        if action == "collections.reminder" and not failures:
            failures.append(action)
            raise ConnectionResetError("the database went away before the stage committed")
        return record(actor, action, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services.audit, "record", dies_after_the_notice)
    with pytest.raises(ConnectionResetError):
        cw.run(day(7))
    assert mail.outbox == []  # the notice was written with the stage, and went with it
    assert not CaseAction.objects.filter(case__customer=customer).exists()
    assert [a["action"] for a in cw.run(day(7)).actions] == ["reminder"]
    assert [m.to for m in mail.outbox] == [customer.billing_emails]
    assert cw.run(day(8)).actions == [] and len(mail.outbox) == 1
