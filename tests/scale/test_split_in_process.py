"""The split runs done in one process (no worker) give what the single-process services give."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cspdesk.billing import runs as billing_runs
from cspdesk.billing import services as billing
from cspdesk.billing.models import RunStatus
from cspdesk.collections import runs as collections_runs
from cspdesk.core import fanout
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict
from cspdesk.core.models import BatchStatus, PartState, WorkPart
from tests.fixtures import import_demo_month
from tests.scale import snapshots

PERIOD = "2026-10"
SYSTEM = Actor.system("tests")


@pytest.fixture
def billable(demo, settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    import_demo_month(PERIOD, 1500)
    return demo


@pytest.mark.parametrize("per_part", [1, 3], ids=["one-buyer-per-part", "three-buyers-per-part"])
def test_split_billing_run_equals_the_single_process_run(billable, per_part) -> None:  # type: ignore[no-untyped-def]
    period = billing.parse_period(PERIOD)
    single = billing.bill(SYSTEM, period)
    expected = snapshots.billing(single)
    run, batch = billing_runs.start_run(SYSTEM, period, per_part=per_part)
    with pytest.raises(Conflict) as refused:  # half drafted: nothing may be finalized yet
        billing.finalize_run(SYSTEM, run.pk)
    assert refused.value.code == "drafting"
    fanout.drain(batch.pk)
    run.refresh_from_db()
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DONE
    buyers = len(expected["review"]["customers"])
    assert buyers > 3
    assert batch.parts.count() == -(-buyers // per_part)  # consecutive buyers, per_part to a part
    assert snapshots.billing(run) == expected
    assert snapshots.duplicates_in(run) == {"buyers": {}, "charge_lines": {}}
    single.refresh_from_db()
    assert single.status == RunStatus.REPLACED


def test_a_part_done_twice_drafts_once(billable) -> None:  # type: ignore[no-untyped-def]
    period = billing.parse_period(PERIOD)
    expected = snapshots.billing(billing.bill(SYSTEM, period))
    run, batch = billing_runs.start_run(SYSTEM, period, per_part=2)
    first = batch.parts.order_by("key").first()
    assert first is not None
    fanout.run_part(first.pk)
    assert fanout.run_part(first.pk) == {"part": first.pk, "skipped": True}
    # a worker that died holding a part: its lease ran out, so the part is taken over and done once
    second = batch.parts.order_by("key")[1]
    WorkPart.objects.filter(pk=second.pk).update(state=PartState.RUNNING, attempts=1,
                                                 leased_until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # fmt: skip
    fanout.drain(batch.pk)
    second.refresh_from_db()
    assert (second.state, second.attempts) == (PartState.DONE, 2)
    run.refresh_from_db()
    assert snapshots.billing(run) == expected


def test_split_collections_run_does_what_the_dry_run_said(billable, settings) -> None:  # type: ignore[no-untyped-def]
    from cspdesk.collections import services as collections
    from cspdesk.core import clock

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    period = billing.parse_period(PERIOD)
    issued = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    with clock.frozen(issued):
        billing.finalize_run(SYSTEM, billing.bill(SYSTEM, period).pk)
    for org in ("nuvola", "fjall", "atlantico"):
        collections.set_policy(SYSTEM, {"stages": [{"days": 7, "action": "reminder"},
                                                   {"days": 14, "action": "final_notice"}],
                                        "grace_days": 0, "minimum_amounts": {}, "categories": ["azure"]},
                               organisation_id=billable.org(org).pk)  # fmt: skip
    today = issued.date() + dt.timedelta(days=75)
    with clock.frozen(dt.datetime.combine(today, dt.time(9), tzinfo=dt.UTC)):
        preview = collections.run(SYSTEM, today=today, dry_run=True)
        batch = collections_runs.start_run(SYSTEM, today=today)
        fanout.drain(batch.pk)
    batch.refresh_from_db()
    planned = [(a["customer_id"], a["stage"]) for a in preview.actions]
    done = [(a["customer_id"], a["stage"]) for a in batch.result["actions"]]
    assert planned and done == planned
    assert sorted((c, s) for c, s, _a, _st in snapshots.collections_state()["actions"]) == sorted(planned)
    from django.core import mail

    assert len(mail.outbox) == sum(1 for a in preview.actions if a["action"] in ("reminder", "final_notice"))
