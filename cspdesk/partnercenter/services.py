"""State changes for Partner Center data: mirrored subscriptions and suspension/reactivation.

Each operation checks the permission and the scope, writes, and records one audit event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, transaction

from cspdesk.audit import services as audit
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, NotFound, ValidationFailed
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.models import Customer, Organisation, OrganisationKind
from cspdesk.tenancy.permissions import Perm

from . import graph_export, selectors
from .client import PartnerCenterClient, Resource
from .errors import PartnerCenterError
from .models import (
    BillingType,
    StatusChangeAction,
    StatusChangeState,
    Subscription,
    SubscriptionStatus,
    SubscriptionStatusChange,
)
from .recon import services as recon_services

Outcome = Literal["created", "updated", "unchanged"]
_MIRRORED = (
    "offer_id",
    "offer_name",
    "friendly_name",
    "product_id",
    "sku_id",
    "quantity",
    "unit_type",
    "status",
    "billing_type",
    "billing_cycle",
    "term_duration",
    "effective_start_date",
    "commitment_end_date",
    "auto_renew",
    "reseller_mpn_id",
    "etag",
)


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    return dt.date.fromisoformat(str(value)[:10])


def subscription_fields(resource: Resource) -> dict[str, Any]:
    """Our columns from a Partner Center Subscription resource (offer id ``PRODUCT:SKU:AVAILABILITY``)."""
    offer_id = str(resource.get("offerId") or "")
    parts = offer_id.split(":")
    status = str(resource.get("status") or "none").lower()
    billing_type = str(resource.get("billingType") or "none").lower()
    partner_id = str(resource.get("partnerId") or "")
    return {
        "offer_id": offer_id,
        "offer_name": str(resource.get("offerName") or ""),
        "friendly_name": str(resource.get("friendlyName") or ""),
        "product_id": parts[0] if len(parts) >= 2 else "",
        "sku_id": parts[1] if len(parts) >= 2 else "",
        "quantity": int(resource.get("quantity") or 0),
        "unit_type": str(resource.get("unitType") or ""),
        "status": status if status in SubscriptionStatus.values else SubscriptionStatus.NONE,
        "billing_type": billing_type if billing_type in BillingType.values else BillingType.NONE,
        "billing_cycle": str(resource.get("billingCycle") or "").lower(),
        "term_duration": str(resource.get("termDuration") or ""),
        "effective_start_date": _date(resource.get("effectiveStartDate")),
        "commitment_end_date": _date(resource.get("commitmentEndDate")),
        "auto_renew": bool(resource.get("autoRenewEnabled")),
        "reseller_mpn_id": "" if partner_id in ("", "0", "-1") else partner_id,
        "etag": str((resource.get("attributes") or {}).get("etag") or ""),
    }


def _visible_customer(actor: Actor, customer_id: int, perm: Perm) -> Customer:
    return tenancy_selectors.get_or_404(tenancy_selectors.customers_for(actor, perm), customer_id, "customer")


@transaction.atomic
def mirror_subscription(actor: Actor, customer_id: int, resource: Resource) -> tuple[Subscription, Outcome]:
    """Create or update our copy of a Partner Center subscription; an unchanged one is only re-stamped."""
    permissions.require(actor, Perm.SUBSCRIPTIONS_CHANGE)
    customer = _visible_customer(actor, customer_id, Perm.SUBSCRIPTIONS_CHANGE)
    fields = subscription_fields(resource)
    now = clock.now()
    pc_id = uuid.UUID(str(resource["id"]))
    sub = Subscription.objects.select_for_update().filter(pc_subscription_id=pc_id).first()
    if sub is None:
        sub = Subscription(
            customer=customer, pc_subscription_id=pc_id, last_synced_at=now, created_at=now, updated_at=now, **fields
        )
        try:
            with transaction.atomic():
                sub.save()
        except IntegrityError:
            raise Conflict(f"subscription {pc_id} was created meanwhile; sync again") from None
        audit.record(
            actor,
            "subscription.mirrored",
            obj=sub,
            after=audit.snapshot(sub),
            organisation_id=customer.organisation_id,
            customer_id=customer.pk,
        )
        return sub, "created"
    if sub.customer_id != customer.pk:
        raise Conflict(f"subscription {pc_id} belongs to another customer in cspdesk", field="customer")
    before = audit.snapshot(sub, list(_MIRRORED))
    for name, value in fields.items():
        setattr(sub, name, value)
    old, new = audit.changes(before, audit.snapshot(sub, list(_MIRRORED)))
    if not new:
        Subscription.objects.filter(pk=sub.pk).update(last_synced_at=now)
        return sub, "unchanged"
    sub.last_synced_at = sub.updated_at = now
    sub.save()
    audit.record(
        actor,
        "subscription.updated_from_partner_center",
        obj=sub,
        before=old,
        after=new,
        organisation_id=customer.organisation_id,
        customer_id=customer.pk,
    )
    return sub, "updated"


def suspend_subscription(
    actor: Actor, subscription_id: int, client: PartnerCenterClient, *, reason: str, idempotency_key: str | None = None
) -> SubscriptionStatusChange:
    """Suspend a subscription in Partner Center (e.g. for non-payment). Asking twice with one key: one call."""
    return _change_status(actor, subscription_id, client, StatusChangeAction.SUSPEND, reason, idempotency_key)


def reactivate_subscription(
    actor: Actor, subscription_id: int, client: PartnerCenterClient, *, reason: str, idempotency_key: str | None = None
) -> SubscriptionStatusChange:
    """Reactivate a suspended subscription in Partner Center."""
    return _change_status(actor, subscription_id, client, StatusChangeAction.REACTIVATE, reason, idempotency_key)


def _change_status(
    actor: Actor,
    subscription_id: int,
    client: PartnerCenterClient,
    action: str,
    reason: str,
    idempotency_key: str | None,
) -> SubscriptionStatusChange:
    permissions.require(actor, Perm.SUBSCRIPTIONS_CHANGE)
    sub = tenancy_selectors.get_or_404(
        selectors.subscriptions_for(actor, Perm.SUBSCRIPTIONS_CHANGE), subscription_id, "subscription"
    )
    key = idempotency_key or f"{action}:{sub.pk}:{uuid.uuid4()}"
    # Written (and committed) before the call, so a crash leaves a pending row with the MS-RequestId to reuse.
    with transaction.atomic():
        change, _ = SubscriptionStatusChange.objects.get_or_create(
            idempotency_key=key,
            defaults={
                "subscription": sub,
                "action": action,
                "reason": reason,
                "ms_request_id": uuid.uuid4(),
                "requested_by": actor.username,
            },
        )
    if change.subscription_id != sub.pk or change.action != action:
        raise Conflict(f"idempotency key {key!r} was used for another change", field="idempotency_key")
    if change.state == StatusChangeState.SUCCEEDED:
        return change
    target = SubscriptionStatus.SUSPENDED if action == StatusChangeAction.SUSPEND else SubscriptionStatus.ACTIVE
    try:
        resource = client.set_subscription_status(
            str(sub.customer.tenant_id), str(sub.pc_subscription_id), target, request_id=str(change.ms_request_id)
        )
    except PartnerCenterError as exc:
        with transaction.atomic():
            change.state, change.error_code, change.error_message = (
                StatusChangeState.FAILED,
                exc.ms_code or exc.code,
                str(exc),
            )
            change.ms_correlation_id, change.completed_at = exc.correlation_id, clock.now()
            change.save()
            audit.record(
                actor,
                f"subscription.{action}_failed",
                obj=sub,
                after={"change": change.pk, "reason": reason, **exc.support_details()},
                organisation_id=sub.customer.organisation_id,
                customer_id=sub.customer_id,
            )
        raise
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=sub.pk)
        before = audit.snapshot(locked, ["status", "etag"])
        fields = subscription_fields(resource)
        locked.status, locked.etag = fields["status"], fields["etag"]
        locked.updated_at = locked.last_synced_at = clock.now()
        locked.save()
        change.state, change.error_code, change.error_message = StatusChangeState.SUCCEEDED, "", ""
        change.ms_correlation_id, change.completed_at = client.correlation_id, clock.now()
        change.save()
        audit.record(
            actor,
            f"subscription.{action}ed" if action == "suspend" else "subscription.reactivated",
            obj=locked,
            before=before,
            after={**audit.snapshot(locked, ["status", "etag"]), "change": change.pk, "reason": reason},
            organisation_id=locked.customer.organisation_id,
            customer_id=locked.customer_id,
        )
    return change


def record_sync(actor: Actor, summary: dict[str, Any]) -> None:
    """The one audit event of a ``pc sync`` run (its per-object changes have their own events)."""
    audit.record(
        actor, "partnercenter.synced", object_type="partnercenter.sync", object_id=actor.request_id or "", after=summary
    )


@dataclass
class ExportResult:
    """A Graph reconciliation export downloaded (and converted, and perhaps imported)."""

    organisation: Organisation
    downloaded: graph_export.DownloadedExport
    conversion: graph_export.Conversion
    imported: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        d = self.downloaded
        request = d.request
        return {
            "organisation_id": self.organisation.pk,
            "organisation": self.organisation.legal_name,
            "kind": request.kind,
            "billed": request.billed,
            "invoice_id": request.invoice_id or None,
            "billing_period": request.billing_period or None,
            "currency": request.currency or None,
            "attribute_set": request.attribute_set,
            "operation_id": d.operation_id,
            "manifest": d.manifest.public(),
            "directory": str(d.directory),
            "blobs": [{"name": p.name, "bytes": p.stat().st_size} for p in d.blobs],
            "csv": self.conversion.as_dict(),
            "import": self.imported,
        }

    def text(self) -> str:
        d, c = self.downloaded, self.conversion
        what = d.request.invoice_id or f"unbilled {d.request.billing_period} {d.request.currency}"
        lines = [
            f"{self.organisation.legal_name}: {d.request.kind} export of {what} ({d.request.attribute_set}), "
            f"operation {d.operation_id}",
            f"  {len(d.blobs)} blob(s) under {d.directory}, {c.rows} rows, cost {c.cost_total}",
            f"  recon file {c.path}",
        ]
        if c.absent:
            lines.append(f"  attributes not in this export (left empty): {', '.join(c.absent)}")
        if self.imported is not None:
            i = self.imported
            head = "already imported as" if i["duplicate"] else "imported as"
            lines.append(
                f"  {head} import {i['import_id']}: {i['rows']} rows, cost {i['total_cost']} {i['currency']} "
                f"(customers {i['assigned_cost']}, unassigned {i['unassigned_cost']})"
            )
        return "\n".join(lines)


def export_organisation(organisation_id: int | None) -> Organisation:
    """The organisation an export is for: the one named, or the only one with a Partner Center tenant."""
    qs = Organisation.objects.filter(
        pc_tenant_id__isnull=False,
        kind__in=[OrganisationKind.DIRECT_BILL_PARTNER, OrganisationKind.INDIRECT_PROVIDER],
    ).order_by("pk")
    if organisation_id is not None:
        org = qs.filter(pk=organisation_id).first()
        if org is None:
            raise NotFound(
                f"organisation {organisation_id} has no Partner Center tenant of its own (direct-bill partners "
                "and indirect providers have)",
                field="organisation",
            )
        return org
    found = list(qs[:2])
    if len(found) != 1:
        raise ValidationFailed(
            "name the organisation (--organisation ID): "
            + ("none has a Partner Center tenant" if not found else "several have a Partner Center tenant"),
            field="organisation",
        )
    return found[0]


def export_reconciliation(
    actor: Actor,
    request: graph_export.ExportRequest,
    *,
    organisation_id: int | None = None,
    do_import: bool = False,
    client: graph_export.GraphBillingClient | None = None,
    out_dir: Path | None = None,
) -> ExportResult:
    """Export reconciliation data through Microsoft Graph, write it as a recon file and, with
    ``do_import``, import it (the same file twice: the earlier import is reported, nothing changes)."""
    permissions.require(actor, Perm.INVOICES_CHANGE if do_import else Perm.INVOICES_READ)
    org = export_organisation(organisation_id)
    readable = tenancy_selectors.readable_organisation_ids(actor)
    if readable is not None and org.pk not in readable:
        raise NotFound(f"no organisation with id {org.pk}", field="organisation")
    if do_import and request.kind == "invoice" and not request.billed:
        raise ValidationFailed(
            "unbilled invoice reconciliation is not imported: the importer reads invoice reconciliation as a "
            "Microsoft invoice (a payable) and unbilled charges have none yet; download it without --import",
            field="import",
            code="unbilled_reconciliation_not_importable",
        )
    owned = client is None
    client = client or graph_export.GraphBillingClient.for_organisation(org)
    base = Path(out_dir or Path(settings.VAR_DIR) / "partnercenter" / "exports")
    directory = base / str(org.pc_tenant_id) / f"{request.label}-{request.attribute_set}" / uuid.uuid4().hex
    try:
        downloaded = client.export(request, directory)
    finally:
        if owned:
            client.close()
    conversion = graph_export.to_recon_csv(
        downloaded.blobs, request.layout, directory / f"graph-{request.label}-{request.attribute_set}.csv.gz"
    )
    result = ExportResult(org, downloaded, conversion)
    with transaction.atomic():
        audit.record(
            actor,
            "partnercenter.reconciliation_exported",
            object_type="partnercenter.graph_export",
            object_id=downloaded.operation_id,
            organisation_id=org.pk,
            after={
                "kind": request.kind,
                "invoice_id": request.invoice_id,
                "billing_period": request.billing_period,
                "currency": request.currency,
                "attribute_set": request.attribute_set,
                "manifest_id": downloaded.manifest.id,
                "manifest_etag": downloaded.manifest.etag,
                "blobs": len(downloaded.blobs),
                "rows": conversion.rows,
                "cost_total": str(conversion.cost_total),
                "file": conversion.path.name,
            },
        )
    if do_import:
        missing = conversion.missing_for_import()
        if missing:
            raise ValidationFailed(
                f"the {request.attribute_set} attribute set lacks what the importer needs on every row: "
                f"{', '.join(missing)}; export with --attributes full (the download is kept at {conversion.path})",
                field="attributes",
                code="export_lacks_attributes",
            )
        if conversion.rows == 0:
            raise ValidationFailed("the export has no rows to import", field="file", code="no_valid_rows")
        result.imported = recon_services.import_file(actor, conversion.path, organisation_id=org.pk).as_dict()
    return result
