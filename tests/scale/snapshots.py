"""What a billing run, a collections run or a recon import produced, without ids that differ between two runs of
the same thing: the single-process result and the workers' result are compared with these."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cspdesk.audit.models import AuditEvent
from cspdesk.billing.models import BillingRun, Invoice, InvoiceLineCharge
from cspdesk.collections.models import CaseAction, Suspension
from cspdesk.partnercenter.recon.models import ChargeLine, Import, MicrosoftInvoice, RejectedRow


def billing(run: BillingRun) -> dict[str, Any]:
    invoices = []
    for inv in Invoice.objects.filter(run=run).prefetch_related("lines__sources"):
        lines = tuple(
            (ln.position, ln.kind, ln.description, ln.group, ln.item_id, str(ln.quantity), str(ln.unit_price),
             str(ln.net_amount), str(ln.cost), ln.vat_category, str(ln.vat_rate), ln.method,
             tuple(sorted((s.charge_line_id, str(s.cost), str(s.price)) for s in ln.sources.all())))
            for ln in sorted(inv.lines.all(), key=lambda x: x.position)
        )  # fmt: skip
        invoices.append((inv.organisation_id, inv.customer_id or 0, inv.buyer_organisation_id or 0, inv.currency,
                         inv.source_currency, str(inv.net), str(inv.tax), str(inv.total), str(inv.cost),
                         str(inv.exchange_rate), lines))  # fmt: skip
    review = {k: v for k, v in run.review.items() if k != "replaced_drafts"}  # a second run replaces the first's
    review["customers"] = [{k: v for k, v in c.items() if k != "invoice_id"} for c in review.get("customers", [])]
    return {"invoices": sorted(invoices), "review": review}


def duplicates_in(run: BillingRun) -> dict[str, Any]:
    """Anything billed twice within the run: a buyer with two invoices, a charge line on two invoice lines."""
    invoices = Invoice.objects.filter(run=run)
    buyers = Counter(invoices.values_list("organisation_id", "customer_id", "buyer_organisation_id", "source_currency"))
    # a reseller's customer's charge is on two invoices (reseller → customer, provider → reseller): one per seller
    charges = Counter(InvoiceLineCharge.objects.filter(line__invoice__run=run)
                      .values_list("charge_line_id", "line__invoice__organisation_id"))  # fmt: skip
    return {"buyers": {k: n for k, n in buyers.items() if n > 1}, "charge_lines": {k: n for k, n in charges.items()
            if n > 1}}  # fmt: skip


def collections_state() -> dict[str, Any]:
    actions = sorted(CaseAction.objects.values_list("case__customer_id", "stage_key", "action", "status"))
    suspensions = sorted(Suspension.objects.values_list("case__customer_id", "subscription_id", "state"))
    return {"actions": actions, "suspensions": suspensions}


def recon_import(imp: Import) -> dict[str, Any]:
    """An import as the database holds it, without the ids two imports of the same file do not share."""
    imp.refresh_from_db()
    skip = {"id", "source", "created_at", "updated_at"}
    line_fields = [f.attname for f in ChargeLine._meta.concrete_fields if f.name not in skip]
    reject_fields = [f.attname for f in RejectedRow._meta.concrete_fields if f.name not in skip]
    summary = dict(imp.summary)
    if summary.get("microsoft_invoice"):
        summary["microsoft_invoice"] = {k: v for k, v in summary["microsoft_invoice"].items() if k != "id"}
    payable = MicrosoftInvoice.objects.filter(source=imp).values(
        "organisation_id", "number", "invoice_date", "due_date", "currency", "subtotal", "tax", "total"
    )
    return {
        "import": {k: getattr(imp, k) for k in ("organisation_id", "kind", "status", "file_name", "file_sha256",
                                                "rows", "rejected", "total_cost", "assigned_cost", "unassigned_cost",
                                                "customers", "currency", "invoice_number", "period", "imported_by")},
        "summary": summary,
        "lines": Counter(ChargeLine.objects.filter(source=imp).values_list(*line_fields)),
        "rejects": sorted(map(repr, RejectedRow.objects.filter(source=imp).values_list(*reject_fields))),
        "payable": list(payable),
        "audit": AuditEvent.objects.filter(action="recon.imported", object_id=str(imp.pk)).count(),
    }  # fmt: skip
