"""Issued documents: a finalized invoice's PDF and UBL, rendered once and kept as issued.

An invoice must read the same for as long as it is kept, whatever later happens to the wording, the fonts or the
layout. So once an invoice or credit note is finalized its documents are rendered and stored under
``MEDIA_ROOT/invoices/<organisation>/<year>/`` with their SHA-256 (:class:`~cspdesk.billing.models.IssuedDocument`),
and every download, e-mail and export serves those bytes, checked against the fingerprint. A draft is rendered
each time it is asked for.

Finalizing a run queues the storing as a split run (:func:`start`), parts of ``CSPDESK_ARCHIVE_INVOICES_PER_PART``
invoices done by the workers in parallel; a document asked for before its part ran is stored there and then.
Storing is idempotent: the file is written first under a name carrying its digest, then the row; a part retried
after a killed worker, or two processes storing the same invoice, leave one row and the file it names.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from cspdesk.audit import services as audit
from cspdesk.core import fanout
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict
from cspdesk.core.models import WorkBatch, WorkPart

from .documents import pdf as pdf_document
from .documents import ubl as ubl_document
from .documents.build import document_for, documents_for
from .models import DocumentFormat, Invoice, InvoiceStatus, IssuedDocument

SYSTEM = Actor.system("billing-archive")
KIND = "billing.archive"
RENDER = {DocumentFormat.PDF: pdf_document.render, DocumentFormat.UBL: ubl_document.render}
SUFFIX = {DocumentFormat.PDF: "pdf", DocumentFormat.UBL: "xml"}


class DocumentDamaged(Conflict):
    code = "document_damaged"


def invoices_per_part() -> int:
    return max(1, int(getattr(settings, "CSPDESK_ARCHIVE_INVOICES_PER_PART", 100)))


def _root() -> Path:
    return Path(settings.MEDIA_ROOT)


def _relative(invoice: Invoice, fmt: DocumentFormat, digest: str) -> str:
    assert invoice.issue_date is not None
    name = re.sub(r"[^A-Za-z0-9._-]", "_", invoice.number) or f"invoice-{invoice.pk}"
    return f"invoices/{invoice.organisation_id}/{invoice.issue_date.year}/{name}-{digest[:16]}.{SUFFIX[fmt]}"


def _write(files: list[tuple[str, bytes]]) -> None:
    """Write ``files`` (relative path, bytes) under MEDIA_ROOT durably: each is written beside its place, all are
    flushed to disk, then each is moved into place and the folders' entries are flushed too, so a row naming a
    file is never committed before the file would survive a crash. Flushing a part's files together rather than
    one by one lets the disk write them in one go."""
    root = _root()
    scratch: list[tuple[Path, Path]] = []
    for relative, data in files:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        part.write_bytes(data)
        scratch.append((part, path))
    for part, _ in scratch:
        _fsync(part, os.O_RDONLY)
    for part, path in scratch:
        os.replace(part, path)
    for folder in {path.parent for _, path in scratch}:
        _fsync(folder, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stored(invoices: list[Invoice]) -> set[tuple[int, str]]:
    return set(IssuedDocument.objects.filter(invoice__in=invoices).values_list("invoice_id", "format"))


def store(invoices: Iterable[Invoice]) -> int:
    """Store the documents of the finalized ``invoices`` that have none yet; returns how many were stored.

    Renders and writes the files first, outside any transaction, then adds the rows and their audit events in
    one short transaction (the caller's, when it has one)."""
    finalized = [i for i in invoices if i.status == InvoiceStatus.FINALIZED]
    have = _stored(finalized)
    made: list[IssuedDocument] = []
    files: list[tuple[str, bytes]] = []
    missing = {i.pk: [(f, r) for f, r in RENDER.items() if (i.pk, f.value) not in have] for i in finalized}
    needed = [i for i in finalized if missing[i.pk]]
    for invoice, doc in zip(needed, documents_for(needed), strict=True):
        for fmt, render in missing[invoice.pk]:
            data = render(doc)
            digest = hashlib.sha256(data).hexdigest()
            relative = _relative(invoice, fmt, digest)
            files.append((relative, data))
            made.append(IssuedDocument(invoice=invoice, format=fmt.value, path=relative, sha256=digest, size=len(data)))
    if not made:
        return 0
    _write(files)
    with transaction.atomic():
        IssuedDocument.objects.bulk_create(made, ignore_conflicts=True)
        kept = set(
            IssuedDocument.objects.filter(invoice__in={d.invoice_id for d in made}).values_list("path", flat=True)
        )
        stored = [d for d in made if d.path in kept]
        issued: dict[int, dict[str, Any]] = {}
        for d in stored:
            issued.setdefault(d.invoice_id, {})[d.format] = d.sha256
        by_pk = {i.pk: i for i in finalized}
        audit.record_many(SYSTEM, "billing.documents_issued", [
            {"obj": by_pk[pk], "organisation_id": by_pk[pk].organisation_id, "customer_id": by_pk[pk].customer_id,
             "after": {"number": by_pk[pk].number, **docs}}
            for pk, docs in issued.items()
        ])  # fmt: skip
    for d in made:
        if d.path not in kept:  # another process stored this invoice first: its file is the one named
            (_root() / d.path).unlink(missing_ok=True)
    return len(stored)


def document(invoice: Invoice, fmt: str) -> bytes:
    """The bytes to hand out: a finalized invoice's stored document (stored now if its part has not run yet),
    checked against its fingerprint; a draft's, rendered now."""
    fmt = DocumentFormat(fmt)
    if invoice.status != InvoiceStatus.FINALIZED:
        return RENDER[fmt](document_for(invoice))
    row = IssuedDocument.objects.filter(invoice=invoice, format=fmt).first()
    if row is None:
        store([invoice])
        row = IssuedDocument.objects.get(invoice=invoice, format=fmt)
    path = _root() / row.path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DocumentDamaged(f"the issued {fmt.label} of {invoice.number} is missing from {row.path} under "
                              "MEDIA_ROOT; restore it from a backup") from None  # fmt: skip
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise DocumentDamaged(f"the issued {fmt.label} of {invoice.number} at {row.path} does not match the SHA-256 "
                              f"recorded when it was issued ({row.sha256}); restore it from a backup")  # fmt: skip
    return data


def pdf(invoice: Invoice) -> bytes:
    return document(invoice, DocumentFormat.PDF)


def ubl(invoice: Invoice) -> bytes:
    return document(invoice, DocumentFormat.UBL)


# ---------------------------------------------------------------- split over the workers


def start(invoice_ids: list[int], key: str) -> WorkBatch:
    """Queue the storing of these invoices' documents, ``invoices_per_part()`` per part (after the commit);
    ``key`` names the occasion (one batch per key, e.g. a finalization's time)."""
    ids = sorted(invoice_ids)
    size = invoices_per_part()
    parts = [(f"invoices:{ids[i]:012d}", {"invoice_ids": ids[i : i + size]}) for i in range(0, len(ids), size)]
    with transaction.atomic():
        # not atomic: a part renders for seconds and must not hold the database meanwhile; store() commits
        # each part's rows in one short transaction of its own and skips what is stored already
        return fanout.start(KIND, key, parts, handler="cspdesk.billing.archive.run_part", atomic=False)


def run_part(batch: WorkBatch, part: WorkPart) -> dict[str, Any]:
    invoices = Invoice.objects.filter(pk__in=part.args["invoice_ids"]).select_related(
        "organisation", "customer", "buyer_organisation", "credited_invoice"
    )
    return {"stored": store(invoices.order_by("pk"))}
