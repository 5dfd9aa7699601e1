"""A finalized invoice's PDF and UBL are stored as issued: served byte for byte afterwards, whatever changes,
checked against their SHA-256, stored once even when two processes or a retried part store them."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from cspdesk.audit.models import AuditEvent
from cspdesk.billing import archive, services
from cspdesk.billing.documents.build import render_pdf
from cspdesk.billing.models import Invoice, IssuedDocument
from cspdesk.core import fanout
from cspdesk.core.models import WorkBatch
from tests.billing.test_billing_run import OCT, SYSTEM, invoice_of, nuvola  # noqa: F401
from tests.fixtures import DemoWorld


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "files"
    return Path(settings.MEDIA_ROOT)


def _text(data: bytes) -> str:
    return "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).replace("\n", "")


def _finalized(world: DemoWorld) -> Invoice:
    run = services.bill(SYSTEM, OCT)
    services.finalize_run(SYSTEM, run.pk)
    return invoice_of(run, world.customer("bellavista"))


def test_the_issued_pdf_stays_as_issued_when_what_it_was_made_from_changes(nuvola: DemoWorld, media: Path) -> None:  # noqa: F811
    from cspdesk.collections import services as collections
    from tests.collections.fixtures import POLICY

    invoice = _finalized(nuvola)
    issued = archive.pdf(invoice)
    row = IssuedDocument.objects.get(invoice=invoice, format="pdf")
    assert (media / row.path).read_bytes() == issued and hashlib.sha256(issued).hexdigest() == row.sha256
    assert row.path.startswith(f"invoices/{invoice.organisation_id}/2026/{invoice.number}-")
    collections.set_policy(SYSTEM, POLICY, organisation_id=nuvola.org("nuvola").pk)
    assert "Condizioni di pagamento e sospensione" in _text(render_pdf(invoice))  # a document made today says so
    assert archive.pdf(invoice) == issued  # the one the customer received does not
    assert "Condizioni di pagamento e sospensione" not in _text(nuvola.api("bellavista.admin").get(
        f"/api/v1/invoices/{invoice.pk}/pdf").content)  # fmt: skip
    assert archive.ubl(invoice).startswith(b"<?xml")
    assert IssuedDocument.objects.filter(invoice=invoice).count() == 2
    event = AuditEvent.objects.get(action="billing.documents_issued", object_id=str(invoice.pk))
    assert event.after["pdf"] == row.sha256 and event.after["number"] == invoice.number


def test_a_damaged_or_missing_issued_document_is_refused_with_the_reason(nuvola: DemoWorld, media: Path) -> None:  # noqa: F811
    invoice = _finalized(nuvola)
    archive.pdf(invoice)
    row = IssuedDocument.objects.get(invoice=invoice, format="pdf")
    path = media / row.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed on the disk
    path.write_bytes(bytes(data))
    client = nuvola.api("bellavista.admin")
    resp = client.get(f"/api/v1/invoices/{invoice.pk}/pdf")
    assert resp.status_code == 409
    assert resp.json()["code"] == "document_damaged"
    assert f"the issued PDF of {invoice.number} at {row.path} does not match the SHA-256" in resp.json()["message"]
    # in the portal: back to the invoice, told why, in the customer's language (Italian)
    portal = nuvola.browser("bellavista.admin")
    resp = portal.get(f"/portal/invoices/{invoice.pk}/pdf/", follow=True)
    assert resp.redirect_chain == [(f"/portal/invoices/{invoice.pk}/", 302)]
    page = resp.content.decode()
    assert invoice.number in page and "controllo di integrità" in page
    assert portal.get(f"/portal/invoices/{invoice.pk}/ubl/").status_code == 200  # the UBL is intact
    path.unlink()
    resp = client.get(f"/api/v1/invoices/{invoice.pk}/pdf")
    assert resp.status_code == 409 and "is missing" in resp.json()["message"]


def test_a_draft_is_rendered_each_time_and_nothing_is_stored(nuvola: DemoWorld, media: Path) -> None:  # noqa: F811
    run = services.bill(SYSTEM, OCT)
    draft = invoice_of(run, nuvola.customer("bellavista"))
    assert archive.pdf(draft).startswith(b"%PDF")
    assert not IssuedDocument.objects.exists() and not media.exists()


def test_finalizing_a_run_stores_every_document_once_over_the_parts(
    nuvola: DemoWorld,  # noqa: F811
    media: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = services.bill(SYSTEM, OCT)
    services.finalize_run(SYSTEM, run.pk)
    batch = WorkBatch.objects.get(kind=archive.KIND)
    fanout.drain(batch.pk)
    invoices = list(Invoice.objects.filter(run=run))
    assert len(invoices) == 2
    rows = IssuedDocument.objects.filter(invoice__in=invoices)
    assert sorted(rows.values_list("invoice_id", "format")) == sorted(
        (i.pk, f) for i in invoices for f in ("pdf", "ubl")
    )
    assert sorted(p.name for p in media.rglob("*") if p.is_file()) == sorted(Path(r.path).name for r in rows)
    part = batch.parts.get()
    assert archive.run_part(batch, part) == {"stored": 0}  # a retried part finds them stored


def test_two_processes_storing_the_same_invoice_leave_one_row_and_its_file(
    nuvola: DemoWorld,  # noqa: F811
    media: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice = _finalized(nuvola)
    assert archive.store([invoice]) == 2
    first = {r.format: r.path for r in IssuedDocument.objects.filter(invoice=invoice)}
    # the second process looked before the first one's rows were committed, and renders other bytes (its clock)
    monkeypatch.setattr(archive, "_stored", lambda invoices: set())
    monkeypatch.setitem(archive.RENDER, archive.DocumentFormat.PDF, lambda doc: b"%PDF-1.4 rendered later")
    monkeypatch.setitem(archive.RENDER, archive.DocumentFormat.UBL, lambda doc: b"<?xml version='1.0'?><later/>")
    assert archive.store([invoice]) == 0
    assert {r.format: r.path for r in IssuedDocument.objects.filter(invoice=invoice)} == first
    assert sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()) == sorted(first.values())


def test_a_part_links_each_customers_collections_policy_as_one_invoice_at_a_time_does(nuvola: DemoWorld) -> None:  # noqa: F811
    """A part builds its documents together (their lines and policies read at once); each customer still gets
    its own policy's address, or its organisation's, or none."""
    from cspdesk.billing.documents.build import document_for, documents_for
    from cspdesk.collections import services as collections
    from tests.collections.fixtures import POLICY

    run = services.bill(SYSTEM, OCT)
    services.finalize_run(SYSTEM, run.pk)
    invoices = list(Invoice.objects.filter(run=run).order_by("pk"))
    liffey = nuvola.customer("liffey")

    def urls() -> dict[str, str]:
        together = {d.buyer.name: d.policy_url for d in documents_for(invoices)}
        assert together == {d.buyer.name: d.policy_url for d in map(document_for, invoices)}
        assert [d.lines for d in documents_for(invoices)] == [document_for(i).lines for i in invoices]
        return together

    assert set(urls().values()) == {""}
    collections.set_policy(SYSTEM, POLICY, customer_id=liffey.pk)  # one customer's own policy
    assert urls() == {nuvola.customer("bellavista").name: "", liffey.name: f"http://127.0.0.1:8000/collections/"
                      f"policy/customer/{liffey.tenant_id}/?lang=en"}  # fmt: skip
    collections.set_policy(SYSTEM, POLICY, organisation_id=nuvola.org("nuvola").pk)
    assert all(urls().values())
