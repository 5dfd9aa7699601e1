"""Microsoft's billing reconciliation export on Microsoft Graph: start, wait, manifest, blobs, recon CSV.

Partner Center's asynchronous reconciliation data lives on Graph (``/v1.0/reports/partners/billing``),
global cloud only. Four exports, each a ``POST`` answered ``202 Accepted`` with a ``Location`` header:

==========================================  ==============================================================
``reconciliation/billed/export``            invoice reconciliation of one invoice (``invoiceId``)
``reconciliation/unbilled/export``          invoice reconciliation not yet billed (``billingPeriod``, ``currencyCode``)
``usage/billed/export``                     daily rated usage of one invoice
``usage/unbilled/export``                   daily rated usage not yet billed
==========================================  ==============================================================

each with ``attributeSet`` ``full`` or ``basic``. The ``Location`` is an operation, polled (honouring
``Retry-After``) until it is an ``exportSuccessOperation`` (its ``resourceLocation`` is the manifest, as a
navigation link or inline) or a ``failedOperation`` (:class:`~.errors.ExportFailed` with Microsoft's code,
e.g. ``5000`` "No data available"). The manifest names blobs under ``rootDirectory``; each is downloaded
with the manifest's SAS token as ``{rootDirectory}/{name}?{sasToken}`` (no bearer token goes to storage),
streamed to disk, resumed with ``Range`` after a dropped connection, and checked against the blob's MD5.

Each blob is gzip'd JSON Lines whose attribute names are the recon file's column names; :func:`to_recon_csv`
streams them into the CSV layout :mod:`cspdesk.partnercenter.recon` imports (a deterministic ``.csv.gz``:
the same export gives the same bytes, so importing it twice is a no-op). Memory stays bounded: nothing holds
a whole blob or the whole export.

The HTTP machinery (token, retries with backoff and ``Retry-After``, typed errors) is the Partner Center
client's: :class:`GraphBillingClient` is a :class:`~.client.PartnerCenterClient` speaking Graph's headers,
with a token for the Graph resource (``https://graph.microsoft.com/.default``).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import gzip
import hashlib
import io
import json
import re
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from cspdesk.core.errors import ValidationFailed

from . import auth
from .client import (
    RETRYABLE_STATUS,
    PartnerCenterClient,
    Resource,
    _loads,
    organisation_tokens,
    parse_retry_after,
    partner_center_settings,
)
from .errors import CloudNotSupported, ExportFailed, ExportNotReady, PartnerCenterError, TransportError
from .recon.layouts import INVOICE, USAGE, Layout

ATTRIBUTE_SETS = ("full", "basic")
BILLING_PERIODS = ("current", "last")
KINDS = ("invoice", "usage")
_ODATA = "#microsoft.graph.partners.billing."
_CHUNK = 1 << 20


class ExportDataError(ValidationFailed):
    """A downloaded blob is not what the manifest promised (not gzip, not JSON Lines, damaged)."""

    code = "export_data_damaged"


@dataclass(frozen=True)
class ExportRequest:
    """One export: ``kind`` ``invoice`` (reconciliation) or ``usage`` (daily rated usage), billed (by
    ``invoice_id``) or unbilled (``billing_period`` ``current``/``last`` and ``currency``)."""

    kind: str
    invoice_id: str = ""
    billing_period: str = ""
    currency: str = ""
    attribute_set: str = "full"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="kind")
        if bool(self.invoice_id) == bool(self.billing_period):
            raise ValidationFailed(
                "give an invoice id (billed) or a billing period (unbilled), not both", field="invoice"
            )
        if self.invoice_id and not re.fullmatch(r"[A-Za-z0-9]{1,40}", self.invoice_id):
            raise ValidationFailed(f"{self.invoice_id!r} is not an invoice id such as G016907411", field="invoice")
        if self.billing_period and self.billing_period not in BILLING_PERIODS:
            raise ValidationFailed("the unbilled billing period is current or last", field="unbilled")
        if self.billing_period and not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValidationFailed("an unbilled export needs a currency code such as EUR", field="currency")
        if self.attribute_set not in ATTRIBUTE_SETS:
            raise ValidationFailed("the attribute set is full or basic", field="attributes")

    @property
    def billed(self) -> bool:
        return bool(self.invoice_id)

    @property
    def path(self) -> str:
        dataset = "reconciliation" if self.kind == "invoice" else "usage"
        return f"/reports/partners/billing/{dataset}/{'billed' if self.billed else 'unbilled'}/export"

    def body(self) -> dict[str, str]:
        if self.billed:
            return {"invoiceId": self.invoice_id, "attributeSet": self.attribute_set}
        return {"billingPeriod": self.billing_period, "currencyCode": self.currency, "attributeSet": self.attribute_set}

    @property
    def layout(self) -> Layout:
        return INVOICE if self.kind == "invoice" else USAGE

    @property
    def label(self) -> str:
        """A file-name-safe name: ``invoice-G000410801``, ``usage-unbilled-current-EUR`` …"""
        if self.billed:
            return f"{self.kind}-{self.invoice_id}" if self.kind == "invoice" else f"usage-billed-{self.invoice_id}"
        return f"{self.kind}-unbilled-{self.billing_period}-{self.currency}"


@dataclass(frozen=True)
class Blob:
    name: str
    partition_value: str


@dataclass(frozen=True)
class Manifest:
    id: str
    schema_version: str
    data_format: str
    created: str
    etag: str
    partner_tenant_id: str
    root_directory: str
    sas_token: str = field(repr=False)
    partition_type: str
    blobs: tuple[Blob, ...]

    @classmethod
    def from_json(cls, data: Resource) -> Manifest:
        try:
            blobs = tuple(Blob(str(b["name"]), str(b.get("partitionValue") or "")) for b in data.get("blobs") or [])
            manifest = cls(
                id=str(data.get("id") or ""),
                schema_version=str(data.get("schemaVersion") or ""),
                data_format=str(data.get("dataFormat") or ""),
                created=str(data.get("createdDateTime") or ""),
                etag=str(data.get("eTag") or ""),
                partner_tenant_id=str(data.get("partnerTenantId") or ""),
                root_directory=str(data["rootDirectory"]),
                sas_token=str(data.get("sasToken") or ""),
                partition_type=str(data.get("partitionType") or ""),
                blobs=blobs,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise PartnerCenterError(f"the export manifest is not in the documented shape (missing {exc})") from None
        # Documented "compressedJSONLines"; Microsoft's own sample response says "compressedJSON".
        if not manifest.data_format.lower().startswith("compressedjson"):
            raise PartnerCenterError(f"the export is in {manifest.data_format!r}, not gzip'd JSON Lines")
        count = data.get("blobCount")
        if count is not None and int(count) != len(blobs):
            raise PartnerCenterError(f"the manifest counts {count} blobs but lists {len(blobs)}")
        for blob in blobs:
            if not re.fullmatch(r"[A-Za-z0-9._=-]+", blob.name) or blob.name.startswith("."):
                raise PartnerCenterError(f"the manifest names a blob {blob.name!r} cspdesk will not write to disk")
        return manifest

    def blob_url(self, blob: Blob) -> str:
        return f"{self.root_directory.rstrip('/')}/{blob.name}?{self.sas_token.lstrip('?')}"

    def public(self) -> dict[str, Any]:
        """The manifest without its SAS token (a credential: never logged, written or reported)."""
        return {
            "id": self.id,
            "schemaVersion": self.schema_version,
            "dataFormat": self.data_format,
            "createdDateTime": self.created,
            "eTag": self.etag,
            "partnerTenantId": self.partner_tenant_id,
            "rootDirectory": self.root_directory,
            "partitionType": self.partition_type,
            "blobCount": len(self.blobs),
            "blobs": [{"name": b.name, "partitionValue": b.partition_value} for b in self.blobs],
        }


def _redact(url: str) -> str:
    """A blob URL without its query string (the SAS signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?<sas>" if parts.query else "")


def operation_status(operation: Resource) -> str:
    """``running``, ``succeeded`` or ``failed`` (``notStarted`` counts as running), from ``status`` or
    the operation's ``@odata.type`` (``runningOperation``, ``exportSuccessOperation``, ``failedOperation``)."""
    status = str(operation.get("status") or "").lower()
    if status in ("notstarted", "running"):
        return "running"
    if status in ("succeeded", "failed"):
        return status
    kind = str(operation.get("@odata.type") or "").removeprefix(_ODATA).removeprefix(_ODATA[1:])
    return {"runningOperation": "running", "exportSuccessOperation": "succeeded", "failedOperation": "failed"}.get(
        kind, status or "unknown"
    )


class GraphBillingClient(PartnerCenterClient):
    """Microsoft Graph's partner billing export, with the Partner Center client's retries and errors."""

    def __init__(
        self, base_url: str, tokens: auth.TokenProvider, *, poll_interval: float = 30.0, max_wait: float = 3600.0,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(base_url, tokens, **kwargs)
        self.poll_interval = poll_interval
        self.max_wait = max_wait

    @classmethod
    def for_organisation(
        cls,
        organisation: Any,
        *,
        base_url: str | None = None,
        authority: str | None = None,
        credentials: auth.Credentials | None = None,
        **kwargs: Any,
    ) -> GraphBillingClient:
        """A Graph client for an organisation's partner tenant; refused outside Microsoft's global cloud."""
        if getattr(organisation, "pc_cloud", "commercial") != "commercial":
            raise CloudNotSupported(
                f"{organisation} is in Microsoft's {organisation.get_pc_cloud_display()}: the billing "
                "reconciliation export on Microsoft Graph exists only in the global cloud; use the reconciliation "
                "files downloaded from Partner Center (`cspdesk import`) instead"
            )
        cfg = partner_center_settings()
        tokens = organisation_tokens(
            organisation, authority or cfg["AUTHORITY"], credentials, cfg, resource=auth.GRAPH_RESOURCE
        )
        return cls(base_url or cfg["GRAPH_BASE_URL"], tokens, **kwargs)

    def _url(self, path_or_uri: str) -> str:
        if path_or_uri.startswith(("http://", "https://")):
            return path_or_uri
        return f"{self.base_url}/{path_or_uri.lstrip('/')}"

    def _headers(self, request_id: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.tokens.access_token()}",
            "Accept": "application/json",
            "client-request-id": request_id,
            "return-client-request-id": "true",
        }

    # -- the three steps --------------------------------------------------------------------------------

    def start_export(self, request: ExportRequest) -> str:
        """POST the export; returns the operation URL from the ``Location`` header."""
        response = self.call("POST", request.path, json_body=request.body())
        location = response.headers.get("Location", "")
        if response.status_code != 202 or not location:
            raise PartnerCenterError(
                f"POST {request.path} answered {response.status_code} without an operation Location",
                http_status=response.status_code,
                method="POST",
                url=self._url(request.path),
            )
        return urljoin(self.base_url + "/", location)

    def wait_for_manifest(self, operation_url: str) -> tuple[str, Manifest]:
        """Poll the operation until it ends: its id and manifest, or :class:`ExportFailed`.

        Waits ``Retry-After`` (else :attr:`poll_interval`) between polls; gives up with
        :class:`ExportNotReady` once more than :attr:`max_wait` seconds would have been waited.
        """
        waited = 0.0
        while True:
            response = self.call("GET", operation_url)
            operation = _loads(response.content)
            if not isinstance(operation, dict):
                raise PartnerCenterError(f"GET {operation_url} answered something that is not an operation")
            op_id = str(operation.get("id") or operation_url.rstrip("/").rsplit("/", 1)[-1])
            status = operation_status(operation)
            if status == "succeeded":
                return op_id, self._manifest_of(operation, operation_url)
            if status == "failed":
                found = operation.get("error")
                error: dict[str, Any] = found if isinstance(found, dict) else {}
                code, message = str(error.get("code") or ""), str(error.get("message") or "")
                raise ExportFailed(
                    f"Microsoft's export operation {op_id} failed: {code} {message}".rstrip(),
                    ms_code=code,
                    ms_description=message,
                    method="GET",
                    url=operation_url,
                )
            if status != "running":
                raise PartnerCenterError(f"export operation {op_id} has an unknown status {status!r}")
            pause = self._retry_after(response)
            if waited + pause > self.max_wait:
                raise ExportNotReady(
                    f"export operation {op_id} was still running after {waited:g} s; try again later",
                    method="GET",
                    url=operation_url,
                    retry_after=pause,
                )
            self.sleep(pause)
            waited += pause

    def _retry_after(self, response: httpx.Response) -> float:
        value = parse_retry_after(response.headers.get("Retry-After"))
        return self.poll_interval if value is None else value

    def _manifest_of(self, operation: Resource, operation_url: str) -> Manifest:
        """The manifest: inline in ``resourceLocation`` (as Microsoft's sample reads it) or behind
        ``resourceLocation@odata.navigationLink`` (as the Graph reference shows it)."""
        inline = operation.get("resourceLocation")
        if isinstance(inline, dict) and "rootDirectory" in inline:
            return Manifest.from_json(inline)
        link = operation.get("resourceLocation@odata.navigationLink") or (inline if isinstance(inline, str) else "")
        if not link:
            raise PartnerCenterError(f"the finished operation at {operation_url} names no manifest")
        manifest = self.request("GET", str(link))
        if not isinstance(manifest, dict):
            raise PartnerCenterError(f"GET {link} answered something that is not a manifest")
        return Manifest.from_json(manifest)

    # -- blobs --------------------------------------------------------------------------------------------

    def download_blob(self, url: str, dest: Path) -> int:
        """Stream one blob to ``dest``; a dropped connection is resumed with ``Range`` (or restarted when the
        server answers the whole blob again); 429/5xx are retried like any call. Returns the size."""
        partial = dest.with_name(dest.name + ".part")
        partial.unlink(missing_ok=True)
        request_id = str(uuid.uuid4())
        have, md5, attempt = 0, "", 0
        while True:
            attempt += 1
            headers = {"x-ms-client-request-id": request_id}
            if have:
                headers["Range"] = f"bytes={have}-"
            try:
                with self._http.stream("GET", url, headers=headers) as response:
                    if response.status_code in (200, 206):
                        resume = response.status_code == 206 and have > 0
                        if not resume:
                            have = 0
                        md5 = response.headers.get("x-ms-blob-content-md5") or (
                            response.headers.get("Content-MD5", "") if response.status_code == 200 else md5
                        )
                        with partial.open("ab" if resume else "wb") as fh:
                            for chunk in response.iter_raw():  # the bytes as stored, as they arrive
                                fh.write(chunk)
                                have += len(chunk)
                        break
                    response.read()
                    error = self._error("GET", _redact(url), request_id, response, attempt)
            except httpx.TransportError as exc:
                if attempt > self.retry.max_retries:
                    raise TransportError(
                        f"GET {_redact(url)}: the download failed {attempt} times ({type(exc).__name__}: {exc})",
                        method="GET",
                        url=_redact(url),
                        request_id=request_id,
                        attempts=attempt,
                    ) from exc
                self.sleep(self.retry.backoff(attempt - 1, self.rng))
                continue
            if error.http_status not in RETRYABLE_STATUS or attempt > self.retry.max_retries:
                raise error
            pause = self.retry.backoff(attempt - 1, self.rng)
            if error.retry_after is not None:
                if error.retry_after > self.retry.max_retry_after:
                    raise error
                pause = max(pause, error.retry_after)
            self.sleep(pause)
        if md5 and _md5_of(partial) != md5:
            partial.unlink(missing_ok=True)
            raise ExportDataError(f"{dest.name}: the download does not match the blob's MD5", field=dest.name)
        partial.replace(dest)
        return have

    def export(self, request: ExportRequest, directory: Path) -> DownloadedExport:
        """Start, wait, read the manifest and download every blob under ``directory``/``blobs``."""
        operation_url = self.start_export(request)
        op_id, manifest = self.wait_for_manifest(operation_url)
        target = directory / "blobs"
        target.mkdir(parents=True, exist_ok=True)
        files = []
        for blob in manifest.blobs:
            path = target / blob.name
            self.download_blob(manifest.blob_url(blob), path)
            files.append(path)
        (directory / "manifest.json").write_text(json.dumps(manifest.public(), indent=2))
        return DownloadedExport(request, op_id, manifest, directory, files)


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


@dataclass
class DownloadedExport:
    request: ExportRequest
    operation_id: str
    manifest: Manifest
    directory: Path
    blobs: list[Path]


# --- JSON Lines → the recon CSV layout ------------------------------------------------------------------


@dataclass
class Conversion:
    """What :func:`to_recon_csv` wrote: rows, the cost they add up to, which attributes came and which not."""

    path: Path
    layout: Layout
    rows: int
    cost_total: Decimal
    present: tuple[str, ...]
    absent: tuple[str, ...]
    ignored: tuple[str, ...]

    def missing_for_import(self) -> tuple[str, ...]:
        """Attributes the importer needs on every row that this export does not have (a ``basic`` set may
        lack some): such a file would only be rejected row by row, so it is refused whole, by name."""
        layout = self.layout
        needed = (*layout.guid, *layout.dates, *layout.decimals, layout.currency, "ChargeType", "ProductId")
        return tuple(c for c in dict.fromkeys(needed) if c not in self.present)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "layout": self.layout.name,
            "rows": self.rows,
            "cost_total": str(self.cost_total),
            "absent_attributes": list(self.absent),
            "ignored_attributes": list(self.ignored),
        }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=lambda d: format(d, "f"))


def read_records(blob: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of one gzip'd JSON Lines blob, one at a time (numbers as :class:`Decimal`)."""
    try:
        with gzip.open(blob, "rt", encoding="utf-8-sig", newline="") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line, parse_float=Decimal)
                except ValueError as exc:
                    raise ExportDataError(f"{blob.name}: line {n} is not JSON ({exc})", field=blob.name) from None
                if not isinstance(record, dict):
                    raise ExportDataError(f"{blob.name}: line {n} is not a JSON object", field=blob.name)
                yield record
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ExportDataError(f"{blob.name}: not readable gzip'd JSON Lines ({exc})", field=blob.name) from None


def to_recon_csv(blobs: list[Path], layout: Layout, dest: Path) -> Conversion:
    """Stream the blobs' records into ``dest`` (``.csv.gz``): the layout's header and columns in its order.

    Attribute names match the columns case-insensitively (``BenefitID`` is ``BenefitId``; ``ResellerMpnId``
    is ``Tier2MpnId``); a column the export lacks (a ``basic`` set) is written empty, and listed in
    :attr:`Conversion.absent`; an attribute the layout does not know is left out and listed in
    :attr:`Conversion.ignored`. Same records, same bytes (gzip with no name and no timestamp).
    """
    by_key = {c.lower(): c for c in layout.columns} | {"resellermpnid": "Tier2MpnId"}
    present: set[str] = set()
    ignored: set[str] = set()
    rows, total = 0, Decimal(0)
    partial = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (
        partial.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        io.TextIOWrapper(gz, encoding="utf-8", newline="") as text,
    ):
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(layout.columns)
        for blob in blobs:
            for record in read_records(blob):
                row = dict.fromkeys(layout.columns, "")
                for key, value in record.items():
                    column = by_key.get(str(key).lower())
                    if column is None:
                        ignored.add(str(key))
                        continue
                    present.add(column)
                    row[column] = _cell(value)
                writer.writerow(row.values())
                rows += 1
                with contextlib.suppress(InvalidOperation):  # the importer rejects such a row and says why
                    total += Decimal(row[layout.cost] or 0)
    partial.replace(dest)
    absent = tuple(c for c in layout.columns if c not in present)
    return Conversion(dest, layout, rows, total, tuple(c for c in layout.columns if c in present), absent,
                      tuple(sorted(ignored)))  # fmt: skip
