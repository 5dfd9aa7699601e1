"""Recon reads, scoped by an :class:`Actor`.

Microsoft's cost is the partner's business: staff with ``invoices.read`` see the imports of the
organisations they may read (a provider: also its resellers') and charge lines of those organisations or
of their customers; customer users see none of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from cspdesk.core.actor import Actor, ActorKind
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.permissions import Perm

from . import importer
from .models import ChargeLine, Import, ImportStatus, MicrosoftInvoice, RejectedRow


def _org_ids(actor: Actor) -> set[int] | None:
    """``None`` for everything, else the readable organisations (empty for customers and the unauthorised)."""
    if not permissions.has(actor, Perm.INVOICES_READ) or actor.kind is ActorKind.CUSTOMER:
        return set()
    return tenancy_selectors.readable_organisation_ids(actor)


def imports_for(actor: Actor) -> QuerySet[Import]:
    ids = _org_ids(actor)
    qs = Import.objects.select_related("organisation")
    return qs if ids is None else qs.filter(organisation_id__in=ids)


def charge_lines_for(actor: Actor, *, include_superseded: bool = False) -> QuerySet[ChargeLine]:
    ids = _org_ids(actor)
    qs = ChargeLine.objects.select_related("customer", "source")
    if not include_superseded:
        qs = qs.filter(source__status=ImportStatus.ACTIVE)
    if ids is None:
        return qs
    return qs.filter(Q(organisation_id__in=ids) | Q(customer__organisation_id__in=ids))


def rejects_for(actor: Actor, import_id: int) -> QuerySet[RejectedRow]:
    imp = tenancy_selectors.get_or_404(imports_for(actor), import_id, "import")
    return RejectedRow.objects.filter(source=imp).order_by("line_number", "pk")


def microsoft_invoices_for(actor: Actor) -> QuerySet[MicrosoftInvoice]:
    ids = _org_ids(actor)
    qs = MicrosoftInvoice.objects.select_related("organisation", "source")
    return qs if ids is None else qs.filter(organisation_id__in=ids)


def rows_of_charge_line(actor: Actor, line_id: int) -> list[dict[str, Any]]:
    """The raw file rows a charge line came from, each with its line number ("explain this charge")."""
    line = tenancy_selectors.get_or_404(charge_lines_for(actor, include_superseded=True), line_id, "charge line")
    parquet = Path(settings.VAR_DIR) / line.source.raw_path
    key = {
        f: getattr(line, f)
        for f in (
            "customer_tenant_id",
            "reseller_mpn_id",
            "subscription_id",
            "product_id",
            "sku_id",
            "meter_id",
            "charge_type",
            "charge_start",
            "charge_end",
            "first_line",
        )
    }
    return importer.rows_of(parquet, importer.layout_for(line.source.kind), key)
