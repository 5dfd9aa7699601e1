"""A run's drafts are finalized in chunks (one transaction each): numbers stay gapless and in draft order across
chunks, every invoice gets its audit event, and a finalization cut off between chunks finishes when re-run."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cspdesk.audit.models import AuditEvent
from cspdesk.billing import services
from cspdesk.billing.models import Invoice, InvoiceStatus, RunStatus
from cspdesk.catalog import services as catalog
from cspdesk.core import clock
from tests.billing.test_billing_run import OCT, SYSTEM, copy_draft, make_import, make_line


@pytest.fixture
def five_drafts(demo, monkeypatch):  # type: ignore[no-untyped-def]
    """Five drafts of one run (two customers' invoices and copies of them), finalized two per chunk."""
    monkeypatch.setattr(services, "FINALIZE_CHUNK", 2)
    org = demo.org("nuvola")
    catalog.create_price_rule(SYSTEM, organisation_id=org.pk, method="markup", percent=Decimal(10), effective_from=OCT)
    imp = make_import(org)
    for n, key in enumerate(("bellavista", "liffey")):
        make_line(imp, demo.customer(key), f"{10 + n}.00", subscription_id=f"s{n}")
    run = services.bill(SYSTEM, OCT)
    originals = list(Invoice.objects.filter(run=run).order_by("pk"))
    for n in range(3):
        copy_draft(originals[n % 2])
    drafts = list(Invoice.objects.filter(run=run).order_by("pk"))
    assert len(drafts) == 5
    return run, drafts


def test_chunks_number_gaplessly_in_draft_order_with_one_event_each(five_drafts) -> None:  # type: ignore[no-untyped-def]
    run, drafts = five_drafts
    with clock.frozen(dt.datetime(2026, 11, 3, 9, tzinfo=dt.UTC)):
        services.finalize_run(SYSTEM, run.pk)
    done = list(Invoice.objects.filter(run=run).order_by("pk"))
    assert [i.pk for i in done] == [d.pk for d in drafts]
    assert [i.sequence for i in done] == list(range(1, len(drafts) + 1))
    assert all(i.status == InvoiceStatus.FINALIZED and i.issue_date == dt.date(2026, 11, 3) for i in done)
    assert done[0].number == "NUV-2026-000001"
    events = AuditEvent.objects.filter(action="billing.invoice_finalized")
    assert sorted(int(e.object_id) for e in events) == [i.pk for i in done]
    assert {e.after["number"] for e in events} == {i.number for i in done}


def test_a_finalization_cut_off_between_chunks_finishes_when_run_again(five_drafts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    run, drafts = five_drafts
    real = services._finalize
    calls = 0

    def dies_on_the_second_chunk(actor, invoices):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("worker lost")
        real(actor, invoices)

    monkeypatch.setattr(services, "_finalize", dies_on_the_second_chunk)
    with pytest.raises(RuntimeError):
        services.finalize_run(SYSTEM, run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FINALIZING
    assert Invoice.objects.filter(run=run, status=InvoiceStatus.FINALIZED).count() == 2  # the first chunk stays
    monkeypatch.setattr(services, "_finalize", real)
    services.finalize_run(SYSTEM, run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FINALIZED
    seqs = list(Invoice.objects.filter(run=run).order_by("pk").values_list("sequence", flat=True))
    assert seqs == list(range(1, len(drafts) + 1))
