"""Microsoft payables: per Microsoft invoice, what is owed, what was billed on, what is unassigned."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Sum

from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.partnercenter.recon import selectors as recon_selectors
from cspdesk.partnercenter.recon.models import Import, ImportKind, ImportStatus

from .models import InvoiceKind, InvoiceLineCharge, InvoiceStatus

ZERO = Decimal(0)
DUE_SOON_DAYS = 7


def payables(actor: Actor, today: dt.date | None = None) -> list[dict[str, Any]]:
    """One row per Microsoft invoice the actor may read; flags unassigned cost, and an unpaid invoice due within
    7 days or overdue.

    "Billed on" counts the charge lines of the Microsoft invoice's active imports that are on finalized
    invoices to customers (a reseller's customers: the provider's invoice to the reseller).
    """
    today = today or clock.today()
    rows = []
    for mi in recon_selectors.microsoft_invoices_for(actor).select_related("payment").order_by("due_date", "number"):
        try:
            paid_on = mi.payment.paid_on  # the payments app records it (the reverse one-to-one)
        except ObjectDoesNotExist:
            paid_on = None
        imports = Import.objects.filter(organisation_id=mi.organisation_id, invoice_number=mi.number,
                                        status=ImportStatus.ACTIVE)  # fmt: skip
        invoice_import = imports.filter(kind=ImportKind.INVOICE).first()
        sources = InvoiceLineCharge.objects.filter(
            charge_line__source__in=imports, line__invoice__status=InvoiceStatus.FINALIZED,
            line__invoice__kind=InvoiceKind.INVOICE, line__invoice__organisation_id=mi.organisation_id,
        )  # fmt: skip
        agg = sources.aggregate(cost=Sum("cost"), price=Sum("price"))
        billed, price = agg["cost"] or ZERO, agg["price"] or ZERO
        unassigned = invoice_import.unassigned_cost if invoice_import else ZERO
        flags = []
        if unassigned:
            flags.append("unassigned_cost")
        if paid_on is None and today <= mi.due_date <= today + dt.timedelta(days=DUE_SOON_DAYS):
            flags.append("due_soon")
        elif paid_on is None and mi.due_date < today:
            flags.append("overdue")
        rows.append({
            "id": mi.pk, "organisation_id": mi.organisation_id, "number": mi.number, "invoice_date": mi.invoice_date,
            "due_date": mi.due_date, "currency": mi.currency, "microsoft_total": mi.total, "subtotal": mi.subtotal,
            "billed_on_cost": billed.quantize(Decimal("0.01")), "unassigned_cost": unassigned,
            "not_yet_billed_cost": (mi.subtotal - billed - unassigned).quantize(Decimal("0.01")),
            "margin": (price - billed).quantize(Decimal("0.01")), "paid": paid_on is not None, "paid_on": paid_on,
            "flags": flags,
        })  # fmt: skip
    return rows
