"""The emulator's Microsoft Graph partner billing export: export operations, manifests and SAS-guarded blobs.

The data is the emulator's own (:class:`~.state.EmulatorState`, seeded from the demo world): the export of an
invoice holds the same line items as ``GET /v1/invoices/{id}/lineitems``, written as Graph writes them, one
JSON object per line with the reconciliation file's attribute names (``PartnerId``, ``Subtotal`` …), gzip'd,
split into blobs of at most :attr:`GraphExports.rows_per_blob` lines.

An operation answers ``runningOperation`` (with ``Retry-After``) for the first :attr:`GraphExports.polls_before_ready`
polls, then ``exportSuccessOperation`` with ``resourceLocation@odata.navigationLink`` → the manifest, or
``failedOperation`` with error ``5000`` "No data available" when there is nothing to export (an invoice the
partner does not have, a currency it is not billed in, the ``last`` unbilled period, which the emulator keeps
empty as its REST API does).

Blobs live under ``/blobs/{container}/…`` on the emulator itself; a download needs the manifest's
``sasToken`` as its query string (signature over the directory and expiry, checked; a wrong or expired
token gets Azure Storage's 403 ``AuthenticationFailed``). ``Range: bytes=N-`` is honoured (206), as Azure
Blob Storage does, so an interrupted download can resume.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import hmac
import io
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from cspdesk.partnercenter.recon.layouts import INVOICE_COLUMNS, USAGE_COLUMNS

from .state import EmulatorError, EmulatorState, Resource

ODATA = "#microsoft.graph.partners.billing."
PREFIX = "/v1.0/reports/partners/billing"
SAS_VERSION = "2021-08-06"
SAS_LIFETIME = dt.timedelta(hours=1)

# Graph's attribute-set table spells these two with "ID"; everything else as the CSV header does.
GRAPH_SPELLING = {"BenefitId": "BenefitID", "BenefitOrderId": "BenefitOrderID"}
# The REST line item field a column's value comes from, where its name is not the column's.
REST_FIELD = {
    "Tier2MpnId": "resellerMpnId",
    "Total": "totalForCustomer",
    "Unit": "unitOfMeasure",
    "PartnerEarnedCreditPercentage": "rateOfPartnerEarnedCredit",
    "CreditPercentage": "rateOfCredit",
}
# Daily rated usage, "basic": Microsoft's attribute-set table (Graph docs, partners-billing-attributeset).
USAGE_BASIC = frozenset({
    "AdditionalInfo", "BenefitOrderId", "BenefitType", "BillingCurrency", "BillingPreTaxTotal", "ChargeEndDate",
    "ChargeStartDate", "ChargeType", "CreditPercentage", "CreditType", "CustomerId", "CustomerName",
    "EffectiveUnitPrice", "EntitlementId", "InvoiceNumber", "PartnerId", "PartnerName", "PCToBCExchangeRate",
    "PricingCurrency", "PricingPreTaxTotal", "ProductId", "PublisherName", "Quantity", "ResourceURI", "SkuId",
    "SkuName", "SubscriptionId", "UnitPrice", "UnitType", "UsageDate",
})  # fmt: skip
# Invoice reconciliation, "basic": not published in the docs we have; our choice (docs/adr/0004): who, what,
# when, how much — the attributes a reconciliation needs, without names, addresses and descriptions.
INVOICE_BASIC = frozenset({
    "PartnerId", "CustomerId", "CustomerName", "InvoiceNumber", "OrderId", "OrderDate", "ProductId", "SkuId",
    "SkuName", "ChargeType", "UnitPrice", "Quantity", "Subtotal", "TaxTotal", "Total", "Currency", "SubscriptionId",
    "ChargeStartDate", "ChargeEndDate", "EffectiveUnitPrice", "BillableQuantity", "PricingCurrency",
    "PCToBCExchangeRate", "PCToBCExchangeRateDate", "ReferenceId",
})  # fmt: skip


class GraphError(EmulatorError):
    """An error answered in Graph's shape: ``{"error": {"code", "message", "innerError"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.body = graph_error_body(code, message)


def graph_error_body(code: str, message: str) -> Resource:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"error": {"code": code, "message": message, "innerError": {"date": now, "request-id": str(uuid.uuid4())}}}


def _stamp(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _json_value(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")  # the exact number, as a JSON number
    return json.dumps(value, ensure_ascii=False)


def json_line(record: dict[str, Any]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{_json_value(v)}" for k, v in record.items()) + "}\n"


def graph_record(item: Resource, columns: tuple[str, ...], basic: frozenset[str] | None) -> dict[str, Any]:
    """A REST line item as one Graph export record: the file's attribute names, in the file's order."""
    lowered = {k.lower(): v for k, v in item.items()}
    record: dict[str, Any] = {}
    for column in columns:
        if basic is not None and column not in basic:
            continue
        value = lowered.get(REST_FIELD.get(column, column).lower())
        record[GRAPH_SPELLING.get(column, column)] = None if value == "" else value
    return record


@dataclass
class Operation:
    id: str
    partner: str
    dataset: str  # reconciliation | usage
    billed: bool
    request: Resource
    records: list[dict[str, Any]]
    created: dt.datetime
    polls: int = 0
    manifest_id: str = ""
    last_action: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class GraphExports:
    """The Graph side of one emulator: operations, manifests and blob bytes. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.operations: dict[str, Operation] = {}
        self.manifests: dict[str, tuple[str, Resource]] = {}  # id -> (partner, manifest)
        self.blobs: dict[str, bytes] = {}  # path under /blobs/ -> gzip'd JSON Lines
        self.secret = os.urandom(32)
        self.polls_before_ready = 1
        self.retry_after = 1
        self.rows_per_blob = 1000

    # -- POST …/{reconciliation|usage}/{billed|unbilled}/export --------------------------------------------

    def start(self, state: EmulatorState, partner: str, dataset: str, billed: bool, raw: bytes) -> Operation:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise GraphError(400, "BadRequest", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
        attribute_set = body.get("attributeSet", "full")
        if attribute_set not in ("full", "basic"):
            raise GraphError(400, "BadRequest", f"attributeSet must be full or basic, not {attribute_set!r}.")
        kind = "billinglineitems" if dataset == "reconciliation" else "usagelineitems"
        if billed:
            invoice = body.get("invoiceId")
            if not isinstance(invoice, str) or not invoice:
                raise GraphError(400, "BadRequest", "invoiceId is required.")
            items = state.line_items.get((partner, invoice, kind), [])
        else:
            period, currency = body.get("billingPeriod"), body.get("currencyCode")
            if period not in ("current", "last"):
                raise GraphError(400, "BadRequest", "billingPeriod must be current or last.")
            if not isinstance(currency, str) or len(currency) != 3:
                raise GraphError(400, "BadRequest", "currencyCode is required (ISO 4217).")
            items = state.line_items.get((partner, "unbilled", kind), [])
            if period == "last" or currency.upper() != state.partners[partner]["currency"]:
                items = []
        columns = INVOICE_COLUMNS if dataset == "reconciliation" else USAGE_COLUMNS
        basic = None if attribute_set == "full" else (INVOICE_BASIC if dataset == "reconciliation" else USAGE_BASIC)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        op = Operation(
            str(uuid.uuid4()), partner, dataset, billed, body, [graph_record(i, columns, basic) for i in items], now
        )
        with self.lock:
            self.operations[op.id] = op
        return op

    # -- GET …/operations/{id} ------------------------------------------------------------------------------

    def poll(self, partner: str, op_id: str, base: str) -> tuple[Resource, dict[str, str]]:
        with self.lock:
            op = self.operations.get(op_id)
            if op is None or op.partner != partner:
                raise GraphError(404, "NotFound", f"Operation {op_id} was not found.")
            head: Resource = {"id": op.id, "createdDateTime": _stamp(op.created)}
            if op.polls < self.polls_before_ready:
                op.polls += 1
                status = "notStarted" if op.polls == 1 and self.polls_before_ready > 1 else "running"
                body = {
                    "@odata.type": f"{ODATA}runningOperation",
                    **head,
                    "status": status,
                    "lastActionDateTime": _stamp(op.last_action),
                }
                return body, {"Retry-After": str(self.retry_after)}
            op.last_action = dt.datetime.now(dt.UTC)
            if not op.records:
                return {
                    "@odata.type": f"{ODATA}failedOperation",
                    **head,
                    "status": "failed",
                    "lastActionDateTime": _stamp(op.last_action),
                    "error": {"message": "No data available", "code": "5000"},
                }, {}
            if not op.manifest_id:
                op.manifest_id = self._publish(op, base)
            return {
                "@odata.type": f"{ODATA}exportSuccessOperation",
                **head,
                "status": "succeeded",
                "lastActionDateTime": _stamp(op.last_action),
                "resourceLocation@odata.navigationLink": f"{base}{PREFIX}/manifests/{op.manifest_id}",
            }, {}

    def _publish(self, op: Operation, base: str) -> str:
        """Write the operation's blobs and its manifest (called once, under the lock)."""
        attribute_set = op.request.get("attributeSet", "full")
        container = f"{'billed' if op.billed else 'unbilled'}{'recon' if op.dataset == 'reconciliation' else 'usage'}"
        if op.billed:
            invoice = op.request["invoiceId"]
            month = str((op.records[0].get("ChargeStartDate") or "")[:7]).replace("-", "")
            where = f"BillingMonth={month}/InvoiceId={invoice}"
        else:
            where = f"BillingPeriod={op.request['billingPeriod']}/CurrencyCode={op.request['currencyCode'].upper()}"
        fragment = f"Fragment={attribute_set}/PartitionType=default"
        directory = f"{container}fastpath/v1/PartnerTenantId={op.partner}/{where}/{fragment}"
        names = []
        job = uuid.uuid4()
        for n, start in enumerate(range(0, len(op.records), self.rows_per_blob)):
            name = f"part-{n:05d}-{job}.c000.json.gz"
            text = "".join(json_line(r) for r in op.records[start : start + self.rows_per_blob])
            buffer = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
                gz.write(text.encode())
            self.blobs[f"{directory}/{name}"] = buffer.getvalue()
            names.append(name)
        expiry = _stamp(dt.datetime.now(dt.UTC).replace(microsecond=0) + SAS_LIFETIME)
        manifest_id = str(uuid.uuid4())
        manifest = {
            "id": manifest_id,
            "schemaVersion": "1",
            "dataFormat": "compressedJSONLines",
            "createdDateTime": _stamp(dt.datetime.now(dt.UTC)),
            "eTag": base64.urlsafe_b64encode(hashlib.sha256(str(op.records).encode()).digest()[:12]).decode(),
            "partnerTenantId": op.partner,
            "rootDirectory": f"{base}/blobs/{directory}",
            "sasToken": self.sas_token(directory, expiry),
            "partitionType": "Default",
            "blobCount": len(names),
            "blobs": [{"name": name, "partitionValue": "default"} for name in names],
        }
        self.manifests[manifest_id] = (op.partner, manifest)
        return manifest_id

    # -- GET …/manifests/{id} -------------------------------------------------------------------------------

    def manifest(self, partner: str, manifest_id: str) -> Resource:
        with self.lock:
            found = self.manifests.get(manifest_id)
        if found is None or found[0] != partner:
            raise GraphError(404, "NotFound", f"Manifest {manifest_id} was not found.")
        return found[1]

    # -- GET /blobs/{directory}/{name}?{sasToken} -----------------------------------------------------------

    def _signature(self, directory: str, expiry: str) -> str:
        mac = hmac.new(self.secret, f"{directory}\n{expiry}".encode(), hashlib.sha256).digest()
        return base64.b64encode(mac).decode()

    def sas_token(self, directory: str, expiry: str) -> str:
        fields = {"sv": SAS_VERSION, "se": expiry, "sr": "d", "sp": "rl", "sdd": str(directory.count("/") + 1)}
        return urlencode({**fields, "sig": self._signature(directory, expiry)}, quote_via=quote)

    def blob(self, path: str, query: str) -> bytes:
        """The blob at ``path`` if the query string is a valid SAS token for its directory."""
        directory = path.rsplit("/", 1)[0]
        sas = {k: v[-1] for k, v in parse_qs(query).items()}
        expiry = sas.get("se", "")
        good = hmac.compare_digest(sas.get("sig", ""), self._signature(directory, expiry))
        try:
            expired = dt.datetime.fromisoformat(expiry.replace("Z", "+00:00")) < dt.datetime.now(dt.UTC)
        except ValueError:
            expired = True
        if not good or expired or "r" not in sas.get("sp", ""):
            raise BlobError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
                "correctly including the signature." + (" Signed expiry time has passed." if expired else ""),
            )
        with self.lock:
            data = self.blobs.get(path)
        if data is None:
            raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
        return data


class BlobError(EmulatorError):
    """An Azure Storage error: XML body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.xml = (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}\n'
            f"RequestId:{uuid.uuid4()}\nTime:{_stamp(dt.datetime.now(dt.UTC))}</Message></Error>"
        ).encode()


def blob_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
