"""Recon state changes: import a file, link charge lines to customers. Each records one audit event."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import CharField, Count, Q, Sum

from cspdesk.audit import services as audit
from cspdesk.core import bulk
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.models import Customer, Organisation, OrganisationKind
from cspdesk.tenancy.permissions import Perm

from . import importer
from .layouts import Kind
from .models import ChargeLine, Import, ImportStatus, MicrosoftInvoice, RejectedRow

ZERO = Decimal(0)
BATCH = 2000


log = logging.getLogger(__name__)


def recon_dir() -> Path:
    return Path(settings.VAR_DIR) / "recon"


def money_text(value: Decimal) -> str:
    """A cost as text: at least two decimals, no trailing zeros beyond them."""
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


@dataclass
class ImportResult:
    imported: Import
    duplicate: bool

    def as_dict(self) -> dict[str, Any]:
        imp = self.imported
        return {
            "import_id": imp.pk,
            "duplicate": self.duplicate,
            "status": imp.status,
            "kind": imp.kind,
            "file": imp.file_name,
            "file_sha256": imp.file_sha256,
            "organisation_id": imp.organisation_id,
            "rows": imp.rows,
            "rejected": imp.rejected,
            "total_cost": money_text(imp.total_cost),
            "assigned_cost": money_text(imp.assigned_cost),
            "unassigned_cost": money_text(imp.unassigned_cost),
            "currency": imp.currency,
            "invoice_number": imp.invoice_number or None,
            "period": imp.period.strftime("%Y-%m"),
            "customers": imp.customers,
            "raw_path": imp.raw_path,
            **imp.summary,
        }

    def text(self) -> str:
        d = self.as_dict()
        head = "already imported as" if self.duplicate else "imported as"
        lines = [
            f"{d['file']}: {head} import {d['import_id']} ({d['kind']}, {d['status']})",
            f"  rows {d['rows']}, rejected {d['rejected']}, charge lines {d.get('charge_lines', '?')}",
            f"  cost {d['total_cost']} {d['currency']}: customers {d['assigned_cost']} "
            f"({d['customers']} customers), unassigned {d['unassigned_cost']}",
        ]
        if d["invoice_number"]:
            lines.append(f"  Microsoft invoice {d['invoice_number']}")
        else:
            lines.append(
                f"  unbilled usage for {d['period']} (no invoice number: matched by organisation, period and currency)"
            )
        for t in d.get("unassigned_tenants", []):
            lines.append(f"  unassigned: {t['tenant_id']} {t['name']!r} {t['cost']} ({t['rows']} rows)")
        for k, n in d.get("unknown_charge_types", {}).items():
            lines.append(f"  unknown charge type {k!r}: {n} rows (kept)")
        if d["rejected"]:
            lines.append(f"  see the rejects: cspdesk import --show-rejects {d['import_id']}")
        return "\n".join(lines)


class _Matcher:
    """Customer tenant id (+ reseller MPN id) → the cspdesk customer among an organisation's customers."""

    def __init__(self, organisation: Organisation) -> None:
        q = Q(organisation=organisation)
        if organisation.kind == OrganisationKind.INDIRECT_PROVIDER:
            q |= Q(organisation__parent=organisation)
        self.by_tenant: dict[str, list[tuple[int, str]]] = {}
        for pk, tenant, mpn in Customer.objects.filter(q).values_list("pk", "tenant_id", "organisation__mpn_id"):
            self.by_tenant.setdefault(str(tenant), []).append((pk, mpn))

    def match(self, tenant: str, reseller_mpn: str) -> int | None:
        found = self.by_tenant.get(tenant, [])
        if len(found) > 1:
            found = [f for f in found if f[1] == reseller_mpn]
        return found[0][0] if len(found) == 1 else None


def _organisation(actor: Actor, staging: importer.Staging, organisation_id: int | None) -> Organisation:
    partner = staging.partner_id
    if organisation_id is not None:
        org = Organisation.objects.filter(pk=organisation_id).first()
        if org is None:
            raise NotFound(f"no organisation with id {organisation_id}", field="organisation")
        if org.pc_tenant_id is not None and str(org.pc_tenant_id) != partner:
            raise ValidationFailed(
                f"the file is for partner tenant {partner}, but {org} has Partner Center tenant {org.pc_tenant_id}",
                field="PartnerId",
            )
    else:
        found = Organisation.objects.filter(pc_tenant_id=partner).first() if partner else None
        if found is None:
            raise ValidationFailed(
                f"no organisation has Partner Center tenant id {partner or '(none: no valid row)'}; set it on the "
                "organisation or name one with --organisation",
                field="PartnerId",
                code="unknown_partner",
            )
        org = found
    if not permissions.has(actor, Perm.INVOICES_CHANGE):
        raise Forbidden("your role does not allow importing recon files", code="permission_denied")
    if not actor.is_system and org.pk not in (tenancy_selectors.readable_organisation_ids(actor) or set()):
        raise Forbidden("you cannot import files of another organisation", code="permission_denied")
    return org


def _active_twin(org: Organisation, staging: importer.Staging) -> Import | None:
    assert staging.period is not None
    qs = Import.objects.select_for_update().filter(organisation=org, kind=staging.kind, status=ImportStatus.ACTIVE)
    if staging.invoice_number:
        return qs.filter(invoice_number=staging.invoice_number).first()
    return qs.filter(invoice_number="", period=staging.period, currency=staging.currency).first()


def _twin_message(twin: Import) -> str:
    if twin.invoice_number:
        return (
            f"invoice {twin.invoice_number} ({twin.kind}) is already imported from another file "
            f"(import {twin.pk}, {twin.file_name}); use --replace to supersede it"
        )
    return (
        f"unbilled usage for {twin.period:%Y-%m} in {twin.currency} is already imported (import {twin.pk}, "
        f"{twin.file_name}); unbilled files have no invoice number, so they are matched by organisation, "
        "period and billing currency; "
        "use --replace to supersede it"
    )


def import_file(
    actor: Actor,
    path: Path,
    *,
    replace: bool = False,
    organisation_id: int | None = None,
    invoice_date: dt.date | None = None,
) -> ImportResult:
    """Import one recon file. The same file again is a no-op that returns the earlier import."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such file", field="file")
    # The SHA-256 decides whether the file is new. Only a file the size of an earlier import can be one seen
    # before: such a file is hashed first; any other is hashed in a thread while DuckDB stages it.
    hasher: importer.BackgroundSha256 | None = None
    if Import.objects.filter(file_size=path.stat().st_size).exists():
        sha = importer.sha256_of(path)
        earlier = Import.objects.filter(file_sha256=sha).first()
        if earlier is not None:
            return ImportResult(earlier, duplicate=True)
    else:
        hasher = importer.BackgroundSha256(path)
    workdir = recon_dir() / f"staging-{uuid.uuid4().hex}"
    staging = None
    final_dir: Path | None = None
    try:
        staging = importer.stage(path, workdir)
        if hasher is not None:
            sha, hasher = hasher.result(), None
        if staging.period is None:
            raise ValidationFailed(
                f"{path.name}: no row passed validation ({staging.rejected} rejected)",
                field="file",
                code="no_valid_rows",
            )
        org = _organisation(actor, staging, organisation_id)
        with transaction.atomic():
            result = _write(actor, path, sha, staging, org, replace=replace, invoice_date=invoice_date)
            bulk.analyze_after_commit(ChargeLine)
            final_dir = recon_dir() / str(result.imported.pk)
            staging.close()
            move_into_place(workdir, final_dir)
        return result
    except IntegrityError:
        same = Import.objects.filter(file_sha256=sha).first()
        if same is not None:
            return ImportResult(same, duplicate=True)
        raise
    finally:
        if hasher is not None:
            hasher.cancel()
        discard_staging(staging, workdir, final_dir)


def move_into_place(workdir: Path, final_dir: Path) -> None:
    """Give the staged folder its import's name. A folder already there belongs to no import (the id is new
    in this transaction): one left by an attempt rolled back after its rename, or by an import made after
    the backup the database was restored from. It is kept aside under another name, never overwritten."""
    if final_dir.exists():
        aside = final_dir.with_name(f"orphaned-{final_dir.name}-{uuid.uuid4().hex[:8]}")
        final_dir.rename(aside)
        log.warning("recon folder %s belonged to no import; kept as %s", final_dir, aside.name)
    workdir.rename(final_dir)


def discard_staging(staging: importer.Staging | None, workdir: Path, final_dir: Path | None) -> None:
    """After an import attempt: close the staging, remove its folder, and remove the import's folder too
    unless an import row refers to it (the attempt rolled back after the rename)."""
    if staging is not None:
        staging.close()
    shutil.rmtree(workdir, ignore_errors=True)
    if final_dir is not None and not Import.objects.filter(raw_path__startswith=f"recon/{final_dir.name}/").exists():
        shutil.rmtree(final_dir, ignore_errors=True)


def _write(
    actor: Actor,
    path: Path,
    sha: str,
    staging: importer.Staging,
    org: Organisation,
    *,
    replace: bool,
    invoice_date: dt.date | None,
) -> ImportResult:
    twin = _active_twin(org, staging)
    if twin is not None:
        if not replace:
            raise Conflict(_twin_message(twin), field="file", code="already_imported")
        Import.objects.filter(pk=twin.pk).update(status=ImportStatus.SUPERSEDED)
    matcher = _Matcher(org)
    unassigned: list[dict[str, Any]] = []
    assigned_cost = unassigned_cost = ZERO
    customers: set[int] = set()
    for tenant, reseller, name, cost, rows in importer.tenants(staging):
        pk = matcher.match(tenant, reseller)
        if pk is None:
            unassigned_cost += cost
            unassigned.append(
                {"tenant_id": tenant, "name": name, "reseller_mpn_id": reseller, "cost": money_text(cost), "rows": rows}
            )
        else:
            assigned_cost += cost
            customers.add(pk)
    total, rejected_cost = importer.file_cost(staging)
    assert staging.period is not None
    imp = Import.objects.create(
        organisation=org, kind=staging.kind, file_name=path.name, file_sha256=sha, file_size=path.stat().st_size,
        partner_tenant_id=uuid.UUID(staging.partner_id), invoice_number=staging.invoice_number,
        period=staging.period, currency=staging.currency, rows=staging.rows, rejected=staging.rejected,
        total_cost=total, assigned_cost=assigned_cost, unassigned_cost=unassigned_cost, customers=len(customers),
        raw_path="", imported_by=actor.username,
    )  # fmt: skip
    imp.raw_path = f"recon/{imp.pk}/rows.parquet"
    lines_cost, n_lines = _insert_lines(staging, imp, matcher)
    if lines_cost != total:
        raise AssertionError(f"conservation broken: rows {total} ≠ charge lines {lines_cost}")
    reasons = write_rejects(staging, imp, path.name)
    payable = None
    if staging.kind == Kind.INVOICE:
        payable = _payable(staging, org, imp, invoice_date)
    imp.summary = {
        "charge_lines": n_lines,
        "rejected_cost": money_text(rejected_cost),
        "reject_reasons": dict(sorted(reasons.items())),
        "unassigned_tenants": unassigned,
        "unknown_charge_types": staging.facts["unknown_charge_types"],
        "superseded_import_id": twin.pk if twin else None,
        "matched_by": "invoice_number" if staging.invoice_number else "organisation_kind_period_currency",
        "microsoft_invoice": payable,
    }
    imp.save(update_fields=["raw_path", "summary"])
    if twin is not None:
        Import.objects.filter(pk=twin.pk).update(superseded_by=imp)
    audit.record(actor, "recon.imported", obj=imp, organisation_id=org.pk,
                 before={"superseded_import_id": twin.pk} if twin else None,
                 after={"file": path.name, "sha256": sha, "kind": imp.kind, "rows": imp.rows,
                        "rejected": imp.rejected, "total_cost": total, "currency": imp.currency,
                        "invoice_number": imp.invoice_number, "unassigned_cost": unassigned_cost})  # fmt: skip
    return ImportResult(imp, duplicate=False)


REJECT_FIELDS = ("source", "file_name", "line_number", "column", "reason", "message", "problems", "raw")


def write_rejects(staging: importer.Staging, imp: Import, file_name: str) -> Counter[str]:
    """Store the staging's rejected rows for ``imp``; returns how many there are of each reason."""
    reasons = Counter[str]()

    def rows() -> Iterable[tuple[Any, ...]]:
        for r in importer.rejects(staging):
            reasons[r["reason"]] += 1
            yield (imp.pk, file_name, r["line_number"], r["column"], r["reason"], r["message"], r["problems"],
                   r["raw"])  # fmt: skip

    bulk.insert_rows(RejectedRow, REJECT_FIELDS, rows(), batch_size=BATCH)
    return reasons


LINE_FIELDS = ("source", "organisation", "customer", "currency", *importer.CHARGE_FIELDS)
_TENANT, _RESELLER, _COST, _CREDIT_PERCENTAGE = (
    importer.CHARGE_FIELDS.index(name)
    for name in ("customer_tenant_id", "reseller_mpn_id", "cost", "credit_percentage")
)
_TEXT_SIZES = [  # a name longer than the column holds is cut (PostgreSQL enforces the size)
    (i, field.max_length)
    for i, name in enumerate(importer.CHARGE_FIELDS)
    if isinstance(field := ChargeLine._meta.get_field(name), CharField)
]


def clean_line(found: Sequence[Any]) -> list[Any]:
    """An aggregated charge line (:data:`.importer.CHARGE_FIELDS` order, as DuckDB gives it) with its text fit
    for the database: no NUL (see :func:`.importer.db_text`), no longer than its column."""
    line = list(found)
    for i, size in _TEXT_SIZES:
        text = line[i]
        if type(text) is str:
            if "\x00" in text:
                text = importer.db_text(text)
            line[i] = text[:size] if size is not None else text
    return line


def write_charge_lines(
    imp: Import, lines: Iterable[list[Any]], customer_of: Callable[[str, str], int | None]
) -> tuple[Decimal, int]:
    """Store ``imp``'s charge lines (each from :func:`clean_line`), the customer of each being
    ``customer_of(tenant, reseller MPN id)``; returns their cost and how many."""
    total = ZERO
    known: dict[tuple[str, str], tuple[uuid.UUID, int | None]] = {}

    def rows() -> Iterable[tuple[Any, ...]]:
        nonlocal total
        head = (imp.pk, imp.organisation_id)
        currency = imp.currency
        for line in lines:
            key = (line[_TENANT], line[_RESELLER])
            found = known.get(key)
            if found is None:
                tenant = uuid.UUID(key[0])
                found = known[key] = (tenant, customer_of(str(tenant), key[1]))
            line[_TENANT] = found[0]
            line[_CREDIT_PERCENTAGE] = Decimal(line[_CREDIT_PERCENTAGE])
            total += line[_COST]
            yield (*head, found[1], currency, *line)

    count = bulk.insert_rows(ChargeLine, LINE_FIELDS, rows(), batch_size=BATCH)
    return total, count


def _insert_lines(staging: importer.Staging, imp: Import, matcher: _Matcher) -> tuple[Decimal, int]:
    return write_charge_lines(imp, map(clean_line, importer.charge_rows(staging)), matcher.match)


def _payable(staging: importer.Staging, org: Organisation, imp: Import, invoice_date: dt.date | None) -> dict[str, Any]:
    """Record (or, on replace, update) the Microsoft invoice the file belongs to."""
    assert staging.period is not None
    subtotal, tax, total = importer.invoice_totals(staging)
    if invoice_date is None:  # Microsoft invoices a month early in the next: the file has no invoice date
        p = staging.period
        invoice_date = dt.date(p.year + p.month // 12, p.month % 12 + 1, 1)
    due = invoice_date + dt.timedelta(days=org.microsoft_payment_terms_days)
    inv, _ = MicrosoftInvoice.objects.update_or_create(
        organisation=org, number=imp.invoice_number,
        defaults={"invoice_date": invoice_date, "due_date": due, "currency": imp.currency, "subtotal": subtotal,
                  "tax": tax, "total": total, "source": imp},
    )  # fmt: skip
    return {"id": inv.pk, "number": inv.number, "invoice_date": invoice_date.isoformat(),
            "due_date": due.isoformat(), "subtotal": money_text(subtotal), "tax": money_text(tax),
            "total": money_text(total)}  # fmt: skip


@transaction.atomic
def link_customers(actor: Actor) -> int:
    """Assign still-unassigned charge lines of active imports to customers that now exist; returns how many."""
    permissions.require(actor, Perm.INVOICES_CHANGE)
    orgs = tenancy_selectors.readable_organisation_ids(actor)
    pending = ChargeLine.objects.filter(customer__isnull=True, source__status=ImportStatus.ACTIVE)
    if orgs is not None:
        pending = pending.filter(organisation_id__in=orgs)
    keys = pending.values_list("organisation_id", "customer_tenant_id", "reseller_mpn_id").distinct()
    matchers: dict[int, _Matcher] = {}
    linked = 0
    touched: set[int] = set()
    for org_id, tenant, reseller in keys:
        if org_id not in matchers:
            matchers[org_id] = _Matcher(Organisation.objects.get(pk=org_id))
        pk = matchers[org_id].match(str(tenant), reseller)
        if pk is None:
            continue
        lines = pending.filter(organisation_id=org_id, customer_tenant_id=tenant, reseller_mpn_id=reseller)
        touched |= set(lines.values_list("source_id", flat=True).distinct())
        linked += lines.update(customer_id=pk)
    for imp in Import.objects.select_for_update().filter(pk__in=touched):
        _refresh_figures(imp)
    if linked:
        audit.record(
            actor, "recon.customers_linked", object_type="recon.import",
            object_id=",".join(map(str, sorted(touched))), after={"charge_lines": linked, "imports": sorted(touched)},
        )  # fmt: skip
    return linked


def _refresh_figures(imp: Import) -> None:
    lines = ChargeLine.objects.filter(source=imp)
    figures = lines.aggregate(
        assigned=Sum("cost", filter=Q(customer__isnull=False)),
        unassigned=Sum("cost", filter=Q(customer__isnull=True)),
        customers=Count("customer", distinct=True),
    )
    imp.assigned_cost = figures["assigned"] or ZERO
    imp.unassigned_cost = figures["unassigned"] or ZERO
    imp.customers = figures["customers"]
    still = {str(t) for t in lines.filter(customer__isnull=True).values_list("customer_tenant_id", flat=True)}
    imp.summary = {
        **imp.summary,
        "unassigned_tenants": [t for t in imp.summary.get("unassigned_tenants", []) if t["tenant_id"] in still],
    }
    imp.save(update_fields=["assigned_cost", "unassigned_cost", "customers", "summary"])
