"""Two real workers (RQ on Redis) against PostgreSQL: a billing run, a collections run and a recon import split per
buyer / customer give the single-process result, once each, also when the workers are SIGKILLed in the middle or
the database drops their connections. Marked slow: each test starts processes and a demo month."""

from __future__ import annotations

import datetime as dt
import email
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from cspdesk.billing import services as billing
from cspdesk.billing.models import BillingRun, RunStatus
from cspdesk.collections import services as collections
from cspdesk.collections.models import Suspension, SuspensionState
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.models import BatchStatus, MailStatus, OutboundMail, PartState, WorkBatch, WorkPart
from cspdesk.partnercenter import sync
from cspdesk.partnercenter.emulator import start_in_thread
from cspdesk.partnercenter.models import Subscription, SubscriptionStatus
from cspdesk.partnercenter.recon import generator
from cspdesk.partnercenter.recon import services as recon
from cspdesk.partnercenter.recon.models import Import, ImportStatus
from cspdesk.tenancy.models import Customer, Organisation
from tests.fixtures import DemoWorld, import_demo_month, load_demo_world
from tests.scale import snapshots
from tests.scale.conftest import WORKER_APP, Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PERIOD = "2026-10"
SYSTEM = Actor.system("tests")


@pytest.fixture
def world(transactional_db: None, settings: Any, tmp_path: Path) -> Iterator[DemoWorld]:
    emu = start_in_thread("127.0.0.1", 0, seed=7)
    settings.PARTNER_CENTER = {"BASE_URL": emu.url, "AUTHORITY": emu.url, "AUTHORITY_USGOV": emu.url,
                               "CLIENT_ID": "", "CLIENT_SECRET": "", "REFRESH_TOKEN": ""}  # fmt: skip
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.VAR_DIR = tmp_path
    demo = load_demo_world()
    import_demo_month(PERIOD, 1500)
    try:
        yield demo
    finally:
        emu.stop()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _part_running(kind: str) -> Callable[[], bool]:
    return lambda: WorkPart.objects.filter(batch__kind=kind, state=PartState.RUNNING).exists()


def _finish(cluster: Cluster, proc: Any, timeout: float = 300) -> None:
    assert proc.wait(timeout=timeout) == 0, cluster.log_text()


def _latest_run() -> BillingRun:
    run = BillingRun.objects.filter(period=billing.parse_period(PERIOD)).order_by("-pk").first()
    assert run is not None
    return run


def test_billing_run_on_two_workers_equals_one_process(world: DemoWorld, cluster: Cluster) -> None:
    single = billing.bill(SYSTEM, billing.parse_period(PERIOD))
    expected = snapshots.billing(single)
    cluster.start_worker()
    cluster.start_worker()
    _finish(cluster, cluster.command("bill", "--period", PERIOD, "--workers", "--timeout", "240"))
    run = _latest_run()
    assert run.pk != single.pk and run.status == RunStatus.DRAFT
    assert snapshots.billing(run) == expected
    assert snapshots.duplicates_in(run) == {"buyers": {}, "charge_lines": {}}
    batch = WorkBatch.objects.get(kind="billing.draft", key=f"run:{run.pk}")
    assert batch.status == BatchStatus.DONE
    assert set(batch.parts.values_list("state", flat=True)) == {PartState.DONE}


def test_billing_run_survives_sigkilled_workers(world: DemoWorld, cluster: Cluster) -> None:
    expected = snapshots.billing(billing.bill(SYSTEM, billing.parse_period(PERIOD)))
    workers = [cluster.start_worker(), cluster.start_worker()]
    orchestrator = cluster.command("bill", "--period", PERIOD, "--workers", "--timeout", "240")
    running = WorkPart.objects.filter(batch__kind="billing.draft", state=PartState.RUNNING)
    for _ in range(5):
        _wait_for(_part_running("billing.draft"), 120, "a worker to be drafting an invoice")
        for proc in workers:
            cluster.kill(proc)
        # read after the kill: a part finishes in milliseconds, and only the killed workers could hold one now
        held = list(running.values_list("pk", flat=True))
        if held:
            break
        workers = [cluster.start_worker(), cluster.start_worker()]  # both were between parts: again
    cluster.start_worker()
    cluster.start_worker()
    _finish(cluster, orchestrator)
    run = _latest_run()
    assert snapshots.billing(run) == expected
    assert snapshots.duplicates_in(run) == {"buyers": {}, "charge_lines": {}}
    # the parts the killed workers held were taken over once their lease ran out
    retried = WorkPart.objects.filter(pk__in=held, state=PartState.DONE, attempts__gte=2)
    assert retried.count() == len(held) > 0


def test_database_dropping_the_workers_connections_fails_the_part_and_retries_it(
    world: DemoWorld, cluster: Cluster
) -> None:
    expected = snapshots.billing(billing.bill(SYSTEM, billing.parse_period(PERIOD)))
    cluster.start_worker()
    cluster.start_worker()
    orchestrator = cluster.command("bill", "--period", PERIOD, "--workers", "--timeout", "240")
    _wait_for(_part_running("billing.draft"), 120, "a worker to be drafting an invoice")
    with connection.cursor() as cur:  # what the workers see when PostgreSQL restarts under them
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = %s AND pid <> pg_backend_pid()", [WORKER_APP])  # fmt: skip
        dropped = len(cur.fetchall())
    assert dropped > 0
    _finish(cluster, orchestrator)
    run = _latest_run()
    assert snapshots.billing(run) == expected
    assert snapshots.duplicates_in(run) == {"buyers": {}, "charge_lines": {}}
    assert WorkPart.objects.filter(batch__kind="billing.draft", attempts__gte=2).exists()


def _mails(var: Path) -> list[tuple[str, str]]:
    out = []
    for path in sorted((var / "mail").glob("*")):
        for chunk in path.read_text().split("-" * 79):
            if chunk.strip():
                msg = email.message_from_string(chunk.strip())
                out.append((str(msg["To"]), str(msg["Subject"])))
    return out


def test_collections_run_on_two_workers_with_a_kill_does_each_stage_once(world: DemoWorld, cluster: Cluster) -> None:
    assert sync.sync(SYSTEM).as_dict()["ok"] is True
    today = clock.today()
    issued = dt.datetime.combine(today - dt.timedelta(days=75), dt.time(9), tzinfo=dt.UTC)
    with clock.frozen(issued):
        billing.finalize_run(SYSTEM, billing.bill(SYSTEM, billing.parse_period(PERIOD)).pk)
    policy = {"stages": [{"days": 7, "action": "reminder"}, {"days": 14, "action": "final_notice"},
                         {"days": 30, "action": "suspend"}], "grace_days": 0, "minimum_amounts": {},
              "categories": ["azure", "microsoft365"]}  # fmt: skip
    collections.set_policy(SYSTEM, policy, organisation_id=world.org("fjall").pk)
    collections.set_policy(SYSTEM, policy, organisation_id=world.org("atlantico").pk)
    # straight to suspension on the first run, so this run also calls Partner Center
    policy["stages"] = [{"days": 30, "action": "suspend"}]
    collections.set_policy(SYSTEM, policy, organisation_id=world.org("nuvola").pk)
    preview = collections.run(SYSTEM, today=today, dry_run=True)
    planned = sorted((a["customer_id"], a["stage"]) for a in preview.actions)
    assert any(a["action"] == "suspend" for a in preview.actions), preview.actions

    first = [cluster.start_worker(), cluster.start_worker()]
    orchestrator = cluster.command("collections", "run", "--workers", "--today", today.isoformat(), "--json")
    _wait_for(_part_running("collections.run"), 120, "a worker to be deciding a customer")
    for proc in first:
        cluster.kill(proc)
    cluster.start_worker()
    cluster.start_worker()
    _finish(cluster, orchestrator)
    assert sorted((c, s) for c, s, _a, _st in snapshots.collections_state()["actions"]) == planned
    # a suspension whose worker died between its claim and Partner Center's answer waits out the claim timeout;
    # the next run sends it with the same idempotency key
    stale = Suspension.objects.filter(state__in=[SuspensionState.PENDING, SuspensionState.FAILED])
    stale.update(claimed_at=clock.now() - collections.CLAIM_TIMEOUT - dt.timedelta(minutes=1))
    _finish(cluster, cluster.command("collections", "run", "--workers", "--today", today.isoformat(), "--json"))
    # an e-mail a killed worker held waits out its claim, then goes (with the Message-ID it was written with)
    time.sleep(3.5)
    _finish(cluster, cluster.command("outbox", "--send"))
    _wait_for(lambda: not OutboundMail.objects.exclude(status=MailStatus.SENT).exists(), 60, "every e-mail to go")

    suspensions = Suspension.objects.select_related("subscription")
    assert suspensions.exists()
    assert {s.state for s in suspensions} == {SuspensionState.SUSPENDED}
    assert all(s.subscription.status == SubscriptionStatus.SUSPENDED for s in suspensions)
    assert Counter(Subscription.objects.filter(status=SubscriptionStatus.SUSPENDED).values_list("pk", flat=True)) == \
        Counter(s.subscription_id for s in suspensions)  # fmt: skip
    mails = _mails(Path(cluster.env["CSPDESK_VAR_DIR"]))
    assert mails and [m for m, n in Counter(mails).items() if n > 1] == []
    assert len(mails) == OutboundMail.objects.count()
    notices = sum(1 for a in preview.actions if a["action"] in ("reminder", "final_notice"))
    suspended_cases = len({s.case_id for s in suspensions})
    assert len(mails) == notices + suspended_cases


def _generated_month(out: Path, customers: int) -> Path:
    """A month with ``customers`` generated customers registered in cspdesk; the usage file with the most tenants."""
    from cspdesk.demo import world as demo_world

    seed = 11
    paths = generator.generate(out, PERIOD, n_customers=customers, usage_rows=4000, seed=seed)
    orgs = {o.invoice_series: o for o in Organisation.objects.all()}
    by_key = {spec.key: orgs[spec.invoice_series] for spec in demo_world.ORGANISATIONS}
    by_mpn = {spec.mpn_id: orgs[spec.invoice_series] for spec in demo_world.ORGANISATIONS}
    Customer.objects.bulk_create([
        Customer(organisation=by_mpn[c.reseller_mpn] if c.reseller_mpn else by_key[c.partner], tenant_id=c.tenant_id,
                 default_domain=c.domain, name=c.name, address_line1="Via Roma 1", city="Milano", country=c.country,
                 currency=c.currency, billing_emails=[f"billing@{c.domain}"])
        for c in generator.customers(customers, seed) if c.key.startswith("gen")
    ])  # fmt: skip
    usage = [p for p in paths if "-usage-billed-" in p.name]
    return max(usage, key=lambda p: p.stat().st_size)


def test_import_survives_sigkilled_workers(
    transactional_db: None, cluster: Cluster, tmp_path: Path, settings: Any
) -> None:
    settings.VAR_DIR = tmp_path / "single"
    load_demo_world()
    path = _generated_month(tmp_path / "files", customers=120)
    with transaction.atomic():  # the single-process import of the same file, rolled back
        expected = snapshots.recon_import(recon.import_file(Actor.system("cli:import"), path).imported)
        transaction.set_rollback(True)
    assert expected["import"]["customers"] >= 20, expected["import"]
    orchestrator = cluster.command("import", "--workers", "--timeout", "240", "--json", str(path))
    held: list[int] = []
    while not held:  # kill both workers until a kill catches one writing a customer's lines
        first = [cluster.start_worker(), cluster.start_worker()]
        _wait_for(_part_running("recon.import"), 120, "a worker to be writing a customer's charge lines")
        for proc in first:
            cluster.kill(proc)
        held = list(WorkPart.objects.filter(batch__kind="recon.import", state=PartState.RUNNING)
                    .values_list("pk", flat=True))  # fmt: skip
    assert Import.objects.get(file_sha256=expected["import"]["file_sha256"]).status == ImportStatus.IMPORTING
    cluster.start_worker()
    cluster.start_worker()
    _finish(cluster, orchestrator)
    imp = Import.objects.get(file_sha256=expected["import"]["file_sha256"])
    assert snapshots.recon_import(imp) == expected  # every charge line once, the figures and the payable as one process
    retried = WorkPart.objects.filter(pk__in=held, state=PartState.DONE, attempts__gte=2)
    assert retried.count() == len(held) > 0
    batch = WorkBatch.objects.get(kind="recon.import", key=f"import:{imp.pk}")
    assert batch.status == BatchStatus.DONE and batch.parts.count() == expected["import"]["customers"] + bool(
        expected["summary"]["unassigned_tenants"]
    )
