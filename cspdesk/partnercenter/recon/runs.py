"""A recon import split per customer: the file is staged and validated once (DuckDB, as
:func:`.services.import_file` does), then each customer's charge lines are written by a part that the workers do
in parallel, each committing its lines with the part's "done" mark (see :mod:`cspdesk.core.fanout`).

* :func:`start_import` stages the file, writes the :class:`.models.Import` with status ``importing`` (billing
  and every other reader only see ``active`` imports), its rejected rows, and the aggregated charge lines as
  ``lines.parquet`` beside the raw rows under ``VAR_DIR/recon/<id>/`` (shared storage: each worker reads its
  customer's lines from it with DuckDB); then one part per known customer and one for the unassigned tenants.
* :func:`insert_part` writes one customer's charge lines. A part whose lines are already there writes nothing,
  so a part done again (a retry after a crash, a second enqueue) never duplicates a charge line.
* :func:`finish_import` (the last part) checks conservation against the database (every charge line once, their
  cost = the accepted rows' cost), supersedes the file's twin on ``--replace``, records the Microsoft payable,
  makes the import ``active`` and writes its audit event: from then on it is what ``import_file`` would have made.

The aggregation is the staging's own (its ``lines`` table, the rows :func:`.importer.charge_rows` yields),
exported as is; :func:`tests.scale.test_split_import` holds the split result equal to the single-process one.
"""

# ruff: noqa: S608 - SQL here names a Parquet path quoted by _lit() and the staging's fixed column list.
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum

from cspdesk.audit import services as audit
from cspdesk.core import bulk, fanout
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, NotFound, ValidationFailed
from cspdesk.core.models import BatchStatus, WorkBatch, WorkPart
from cspdesk.tenancy.models import Organisation

from . import importer, services
from .layouts import Kind
from .models import ChargeLine, Import, ImportStatus, MicrosoftInvoice

KIND = "recon.import"
_TENANT, _RESELLER = importer.CHARGE_FIELDS.index("customer_tenant_id"), importer.CHARGE_FIELDS.index("reseller_mpn_id")
LINES_PARQUET = "lines.parquet"
UNASSIGNED = "unassigned"


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def lines_path(imp: Import) -> Path:
    return services.recon_dir() / str(imp.pk) / LINES_PARQUET


def _export_lines(staging: importer.Staging, path: Path) -> tuple[int, Decimal]:
    """Write the staging's aggregated charge lines to ``path``, sorted by tenant so that a worker reading one
    customer's lines skips the other row groups; returns how many and their cost."""
    cur = staging.con.cursor()
    try:
        cur.execute(
            f"""COPY (SELECT {importer._LINE_COLUMNS} FROM lines ORDER BY tenant, reseller, first_line)
                TO {_lit(path.as_posix())} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 4096)"""
        )
        found = cur.execute(
            f"SELECT count(*), coalesce(sum(cost), 0) FROM read_parquet({_lit(path.as_posix())})"
        ).fetchone()
    finally:
        cur.close()
    assert found is not None
    return int(found[0]), Decimal(found[1])


def _read_lines(path: Path, tenants: list[str]) -> list[tuple[Any, ...]]:
    """The charge lines of ``tenants`` in ``lines.parquet``, as :func:`.importer.charge_rows` yields them."""
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.execute("SET memory_limit = '256MB'")
        wanted = ", ".join(_lit(t) for t in tenants)
        rows = con.execute(
            f"SELECT * FROM read_parquet({_lit(path.as_posix())}) WHERE tenant IN ({wanted}) ORDER BY first_line"
        ).fetchall()
    finally:
        con.close()
    return rows


def _pending_twin(org: Organisation, staging: importer.Staging) -> Import | None:
    """An import of the same invoice (or unbilled month) that workers are still writing."""
    assert staging.period is not None
    qs = Import.objects.filter(organisation=org, kind=staging.kind, status=ImportStatus.IMPORTING)
    if staging.invoice_number:
        return qs.filter(invoice_number=staging.invoice_number).first()
    return qs.filter(invoice_number="", period=staging.period, currency=staging.currency).first()


def start_import(
    actor: Actor,
    path: Path,
    *,
    replace: bool = False,
    organisation_id: int | None = None,
    invoice_date: dt.date | None = None,
    per_part: int | None = None,
) -> tuple[services.ImportResult, WorkBatch | None]:
    """Stage the file and enqueue its parts (after the commit): ``per_part`` customers to a part
    (CSPDESK_IMPORT_CUSTOMERS_PER_PART, 100), and one for the unassigned tenants. A file imported before (or being
    imported) is returned as a duplicate with its batch, if it has one."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such file", field="file")
    sha = importer.sha256_of(path)
    earlier = Import.objects.filter(file_sha256=sha).first()
    if earlier is not None:
        return services.ImportResult(earlier, duplicate=True), batch_of(earlier)
    workdir = services.recon_dir() / f"staging-{uuid.uuid4().hex}"
    staging = None
    final_dir: Path | None = None
    try:
        staging = importer.stage(path, workdir)
        if staging.period is None:
            raise ValidationFailed(f"{path.name}: no row passed validation ({staging.rejected} rejected)",
                                   field="file", code="no_valid_rows")  # fmt: skip
        org = services._organisation(actor, staging, organisation_id)
        n_lines, lines_cost = _export_lines(staging, workdir / LINES_PARQUET)
        total, _ = importer.file_cost(staging)
        if lines_cost != total:
            raise AssertionError(f"conservation broken: rows {total} ≠ charge lines {lines_cost}")
        with transaction.atomic():
            imp, batch = _write(actor, path, sha, staging, org, n_lines, replace=replace, invoice_date=invoice_date,
                                per_part=per_part or customers_per_part())  # fmt: skip
            final_dir = services.recon_dir() / str(imp.pk)
            staging.close()
            services.move_into_place(workdir, final_dir)
        return services.ImportResult(imp, duplicate=False), batch
    except IntegrityError:  # the same file, started at the same moment elsewhere
        same = Import.objects.filter(file_sha256=sha).first()
        if same is not None:
            return services.ImportResult(same, duplicate=True), batch_of(same)
        raise
    finally:
        services.discard_staging(staging, workdir, final_dir)


def _write(
    actor: Actor,
    path: Path,
    sha: str,
    staging: importer.Staging,
    org: Organisation,
    n_lines: int,
    *,
    replace: bool,
    invoice_date: dt.date | None,
    per_part: int,
) -> tuple[Import, WorkBatch]:
    assert staging.period is not None
    twin = services._active_twin(org, staging)  # locks it until the commit
    if twin is not None and not replace:
        raise Conflict(services._twin_message(twin), field="file", code="already_imported")
    pending = _pending_twin(org, staging)
    if pending is not None:
        raise Conflict(
            f"the same invoice or month is being imported by the workers right now (import {pending.pk}, "
            f"{pending.file_name}); wait for it, then use --replace",
            field="file",
            code="import_running",
        )
    matcher = services._Matcher(org)
    unassigned: list[dict[str, Any]] = []
    assigned_cost = unassigned_cost = services.ZERO
    by_customer: dict[int | None, list[list[str]]] = {}
    for tenant, reseller, name, cost, rows in importer.tenants(staging):
        pk = matcher.match(tenant, reseller)
        by_customer.setdefault(pk, []).append([tenant, reseller])
        if pk is None:
            unassigned_cost += cost
            unassigned.append({"tenant_id": tenant, "name": name, "reseller_mpn_id": reseller,
                               "cost": services.money_text(cost), "rows": rows})  # fmt: skip
        else:
            assigned_cost += cost
    total, rejected_cost = importer.file_cost(staging)
    imp = Import.objects.create(
        organisation=org, kind=staging.kind, status=ImportStatus.IMPORTING, file_name=path.name, file_sha256=sha,
        file_size=path.stat().st_size, partner_tenant_id=uuid.UUID(staging.partner_id),
        invoice_number=staging.invoice_number, period=staging.period, currency=staging.currency, rows=staging.rows,
        rejected=staging.rejected, total_cost=total, assigned_cost=assigned_cost, unassigned_cost=unassigned_cost,
        customers=sum(1 for pk in by_customer if pk is not None), raw_path="", imported_by=actor.username,
    )  # fmt: skip
    imp.raw_path = f"recon/{imp.pk}/rows.parquet"
    reasons = services.write_rejects(staging, imp, path.name)
    imp.summary = {
        "charge_lines": n_lines,
        "rejected_cost": services.money_text(rejected_cost),
        "reject_reasons": dict(sorted(reasons.items())),
        "unassigned_tenants": unassigned,
        "unknown_charge_types": staging.facts["unknown_charge_types"],
        "superseded_import_id": twin.pk if twin else None,
        "matched_by": "invoice_number" if staging.invoice_number else "organisation_kind_period_currency",
        "microsoft_invoice": None,
    }
    imp.save(update_fields=["raw_path", "summary"])
    invoice = importer.invoice_totals(staging) if staging.kind == Kind.INVOICE else None
    known = sorted((pk, keys) for pk, keys in by_customer.items() if pk is not None)
    parts: list[tuple[str, dict[str, Any]]] = []
    if None in by_customer:
        parts.append((UNASSIGNED, {"customers": [{"customer_id": None, "keys": by_customer[None]}]}))
    for i in range(0, len(known), per_part):
        group = known[i : i + per_part]
        parts.append((f"customer:{group[0][0]:012d}",
                      {"customers": [{"customer_id": pk, "keys": keys} for pk, keys in group]}))  # fmt: skip
    started = fanout.start(
        KIND, f"import:{imp.pk}", parts, handler="cspdesk.partnercenter.recon.runs.insert_part",
        finisher="cspdesk.partnercenter.recon.runs.finish_import", atomic=True,
        params={"import_id": imp.pk, "actor": fanout.actor_json(actor), "replace": replace,
                "charge_lines": n_lines, "invoice_date": invoice_date, "invoice_totals": invoice},
    )  # fmt: skip
    return imp, started


def customers_per_part() -> int:
    return max(1, int(getattr(settings, "CSPDESK_IMPORT_CUSTOMERS_PER_PART", 100)))


def insert_part(batch: WorkBatch, part: WorkPart) -> dict[str, Any]:
    """Its customers' charge lines (or the unassigned tenants'); runs inside the part's transaction, so all of
    them are written or none."""
    imp = Import.objects.get(pk=batch.params["import_id"])
    if imp.status != ImportStatus.IMPORTING:
        return {"skipped": f"import {imp.pk} is {imp.status}"}
    customers = part.args.get("customers") or [part.args]  # a part enqueued before grouping holds one customer
    first: int | None = customers[0]["customer_id"]
    mine = ChargeLine.objects.filter(source=imp)
    mine = mine.filter(customer_id=first) if first is not None else mine.filter(customer__isnull=True)
    if mine.exists():  # written before (the part's "done" mark went missing): never twice
        ids = [c["customer_id"] for c in customers]
        theirs = Q(customer_id__in=[i for i in ids if i is not None])
        if None in ids:
            theirs |= Q(customer__isnull=True)
        return {
            "skipped": "charge lines already written",
            "lines": ChargeLine.objects.filter(theirs, source=imp).count(),
        }
    owner = {(t, r): c["customer_id"] for c in customers for t, r in c["keys"]}
    lines = (services.clean_line(g) for g in _read_lines(lines_path(imp), sorted({t for t, _ in owner})))
    # a line of the same tenant under another reseller is another customer's part's
    mine_only = (g for g in lines if (g[_TENANT], g[_RESELLER]) in owner)
    cost, n = services.write_charge_lines(imp, mine_only, lambda tenant, reseller: owner[tenant, reseller])
    return {"lines": n, "cost": services.money_text(cost)}


def finish_import(batch: WorkBatch) -> dict[str, Any]:
    """Every customer is written: check conservation, supersede the twin, record the payable, activate."""
    params = batch.params
    imp = Import.objects.select_for_update().get(pk=params["import_id"])
    if imp.status != ImportStatus.IMPORTING:
        return {"import_id": imp.pk, "status": imp.status}
    figures = ChargeLine.objects.filter(source=imp).aggregate(
        lines=Count("pk"), total=Sum("cost"), firsts=Count("first_line", distinct=True)
    )
    cost = figures["total"] or services.ZERO
    if (figures["lines"], figures["firsts"], cost) != (params["charge_lines"], params["charge_lines"], imp.total_cost):
        raise AssertionError(
            f"conservation broken in import {imp.pk}: {figures['lines']} charge lines ({figures['firsts']} distinct) "
            f"costing {cost}, expected {params['charge_lines']} costing {imp.total_cost}"
        )
    twins = Import.objects.select_for_update().filter(
        organisation_id=imp.organisation_id,
        kind=imp.kind,
        status=ImportStatus.ACTIVE,
        invoice_number=imp.invoice_number,
    )
    if not imp.invoice_number:  # an unbilled file: its twin is the same month in the same currency
        twins = twins.filter(period=imp.period, currency=imp.currency)
    twin = twins.first()
    if twin is not None:
        if not params["replace"]:
            raise Conflict(services._twin_message(twin), field="file", code="already_imported")
        Import.objects.filter(pk=twin.pk).update(status=ImportStatus.SUPERSEDED, superseded_by=imp)
    summary = {**imp.summary, "superseded_import_id": twin.pk if twin else None}
    if params.get("invoice_totals") is not None:
        summary["microsoft_invoice"] = _payable(imp, params)
    imp.status, imp.summary = ImportStatus.ACTIVE, summary
    imp.save(update_fields=["status", "summary"])
    bulk.analyze_after_commit(ChargeLine)
    actor = fanout.actor_of(params["actor"])
    audit.record(actor, "recon.imported", obj=imp, organisation_id=imp.organisation_id,
                 before={"superseded_import_id": twin.pk} if twin else None,
                 after={"file": imp.file_name, "sha256": imp.file_sha256, "kind": imp.kind, "rows": imp.rows,
                        "rejected": imp.rejected, "total_cost": imp.total_cost, "currency": imp.currency,
                        "invoice_number": imp.invoice_number, "unassigned_cost": imp.unassigned_cost,
                        "parts": batch.parts.count()})  # fmt: skip
    done = lines_path(imp)
    transaction.on_commit(lambda: done.unlink(missing_ok=True))  # the parts' input; rows.parquet stays
    return {"import_id": imp.pk, "charge_lines": figures["lines"], "cost": services.money_text(cost)}


def _payable(imp: Import, params: dict[str, Any]) -> dict[str, Any]:
    """The Microsoft invoice the file belongs to, as :func:`.services._payable` records it."""
    subtotal, tax, total = (Decimal(str(v)) for v in params["invoice_totals"])
    invoice_date = dt.date.fromisoformat(params["invoice_date"]) if params.get("invoice_date") else None
    if invoice_date is None:  # Microsoft invoices a month early in the next: the file has no invoice date
        p = imp.period
        invoice_date = dt.date(p.year + p.month // 12, p.month % 12 + 1, 1)
    org = Organisation.objects.get(pk=imp.organisation_id)
    due = invoice_date + dt.timedelta(days=org.microsoft_payment_terms_days)
    inv, _ = MicrosoftInvoice.objects.update_or_create(
        organisation=org, number=imp.invoice_number,
        defaults={"invoice_date": invoice_date, "due_date": due, "currency": imp.currency, "subtotal": subtotal,
                  "tax": tax, "total": total, "source": imp},
    )  # fmt: skip
    return {"id": inv.pk, "number": inv.number, "invoice_date": invoice_date.isoformat(),
            "due_date": due.isoformat(), "subtotal": services.money_text(subtotal), "tax": services.money_text(tax),
            "total": services.money_text(total)}  # fmt: skip


def batch_of(imp: Import) -> WorkBatch | None:
    return WorkBatch.objects.filter(kind=KIND, key=f"import:{imp.pk}").first()


def import_parallel(
    actor: Actor,
    path: Path,
    *,
    replace: bool = False,
    organisation_id: int | None = None,
    invoice_date: dt.date | None = None,
    timeout: float = 3600,
    in_process: bool = False,
    per_part: int | None = None,
) -> services.ImportResult:
    """Start the split import and wait for the workers (``in_process``: do the parts here, one after another).
    A file already being imported is waited for, not imported again."""
    result, batch = start_import(actor, path, replace=replace, organisation_id=organisation_id,
                                 invoice_date=invoice_date, per_part=per_part)  # fmt: skip
    if batch is not None and batch.status != BatchStatus.DONE:
        if in_process:
            fanout.drain(batch.pk)
        else:
            fanout.wait(batch.pk, timeout=timeout)
    result.imported.refresh_from_db()
    return result
