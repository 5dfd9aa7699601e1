"""The Partner Center REST client (``httpx`` + :mod:`cspdesk.partnercenter.auth`).

One :class:`PartnerCenterClient` talks to one partner tenant. Point it at the real service or at the
local emulator by configuration only (``settings.PARTNER_CENTER["BASE_URL"]`` / ``["AUTHORITY"]``, or
the ``base_url`` / ``authority`` arguments of :meth:`PartnerCenterClient.for_organisation`): the code
path is the same.

Every call sends ``Authorization``, ``Accept``, ``MS-RequestId`` (one GUID per logical call, **reused**
on each retry of that call, which is what makes a retried PATCH or POST idempotent on Microsoft's
side), ``MS-CorrelationId`` (one GUID per client, so a whole sync run can be traced), ``MS-Contract-
Version: v1``, ``MS-PartnerCenter-Application`` and ``X-Locale``.

Retries: 429 and 5xx (not 501) and transport failures (refused or dropped connection, connect/read
timeout) are retried up to ``max_retries`` times with exponential backoff and full jitter
(``uniform(0, base * 2**attempt)``, capped); a ``Retry-After`` header (seconds or an HTTP date) is a
floor for the wait. A ``Retry-After`` longer than ``max_retry_after`` is not waited out: the call fails
with :class:`~cspdesk.partnercenter.errors.Throttled` at once. ``sleep`` is injectable for tests.

A 401 drops the cached token and retries once with a fresh one.

Pagination: seek-based collections (customers, line items) follow ``links.next.uri`` and send every
``links.next.headers`` entry (``MS-ContinuationToken``) as a header; ``links.*.uri`` values are relative
to ``/v1``. Offset-based collections (invoices) page with ``size``/``offset``. Both stop when the
collection has no ``links.next``.

JSON numbers are parsed as :class:`~decimal.Decimal` (money never passes through ``float``).
"""

from __future__ import annotations

import email.utils
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

import httpx

from . import auth
from .errors import AuthError, Misconfigured, PartnerCenterError, Throttled, TransportError, error_class_for

Resource = dict[str, Any]
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
APPLICATION_NAME = "cspdesk"
DEFAULT_PAGE_SIZE = 500
MAX_LINE_ITEM_PAGE = 2000
GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: a uniform wait in [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * (2**attempt)))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _loads(content: bytes) -> Any:
    if not content:
        return None
    return json.loads(content, parse_float=Decimal)


class PartnerCenterClient:
    def __init__(
        self,
        base_url: str,
        tokens: auth.TokenProvider,
        *,
        locale: str = "en-US",
        correlation_id: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.locale = locale
        self.correlation_id = correlation_id or str(uuid.uuid4())
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    # -- construction from settings -----------------------------------------------------------

    @classmethod
    def for_organisation(
        cls,
        organisation: Any,
        *,
        base_url: str | None = None,
        authority: str | None = None,
        credentials: auth.Credentials | None = None,
        **kwargs: Any,
    ) -> PartnerCenterClient:
        """A client for an organisation's partner tenant, configured from ``settings.PARTNER_CENTER``.

        ``organisation.pc_cloud`` picks the authority (``AUTHORITY`` or ``AUTHORITY_USGOV``); any
        argument overrides the setting for this instance.
        """
        cfg = partner_center_settings()
        if authority is None:
            authority = cfg["AUTHORITY_USGOV"] if organisation.pc_cloud == "usgov" else cfg["AUTHORITY"]
        tokens = organisation_tokens(organisation, authority, credentials, cfg)
        return cls(base_url or cfg["BASE_URL"], tokens, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PartnerCenterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the HTTP core ------------------------------------------------------------------------

    def _url(self, path_or_uri: str) -> str:
        if path_or_uri.startswith(("http://", "https://")):
            return path_or_uri
        path = path_or_uri if path_or_uri.startswith("/") else f"/{path_or_uri}"
        if not path.startswith("/v1/"):
            path = f"/v1{path}"  # collection links are relative to /v1
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> Any:
        """One logical call: retried as described in the module docstring; returns the parsed JSON.

        ``request_id`` (the ``MS-RequestId``) defaults to a new GUID; pass a stored one to repeat a call
        whose outcome is unknown (Partner Center then treats it as the same request).
        """
        response = self.call(method, path, params=params, json_body=json_body, headers=headers, request_id=request_id)
        return _loads(response.content)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> httpx.Response:
        """:meth:`request`, returning the successful response itself (for its status and headers)."""
        url = self._url(path)
        request_id = request_id or str(uuid.uuid4())
        attempt = 0
        refreshed_token = False
        while True:
            attempt += 1
            try:
                response = self._send(method, url, request_id, params, json_body, headers)
            except PartnerCenterError as exc:  # transport failure, or the token endpoint failed
                exc.attempts = attempt
                if not exc.retryable or attempt > self.retry.max_retries:
                    raise
                self.sleep(self.retry.backoff(attempt - 1, self.rng))
                continue
            if response.status_code < 400:
                return response
            if response.status_code == 401 and not refreshed_token:
                refreshed_token = True
                self.tokens.invalidate()
                attempt -= 1
                continue
            error = self._error(method, url, request_id, response, attempt)
            if response.status_code not in RETRYABLE_STATUS or attempt > self.retry.max_retries:
                raise error
            wait = self.retry.backoff(attempt - 1, self.rng)
            if error.retry_after is not None:
                if error.retry_after > self.retry.max_retry_after:
                    raise error
                wait = max(wait, error.retry_after)
            self.sleep(wait)

    def _send(
        self,
        method: str,
        url: str,
        request_id: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        extra: Mapping[str, str] | None,
    ) -> httpx.Response:
        headers = self._headers(request_id)
        headers.update(extra or {})
        content = None
        if json_body is not None:
            content = json.dumps(json_body, default=_json_default).encode()
            headers["Content-Type"] = "application/json"
        try:
            return self._http.request(method, url, params=params, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise TransportError(
                f"{method} {url}: no answer from Partner Center ({type(exc).__name__}: {exc})",
                method=method,
                url=url,
                request_id=request_id,
                correlation_id=self.correlation_id,
            ) from exc

    def _headers(self, request_id: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.tokens.access_token()}",
            "Accept": "application/json",
            "MS-RequestId": request_id,
            "MS-CorrelationId": self.correlation_id,
            "MS-Contract-Version": "v1",
            "MS-PartnerCenter-Application": APPLICATION_NAME,
            "X-Locale": self.locale,
        }

    def _error(
        self, method: str, url: str, request_id: str, response: httpx.Response, attempt: int
    ) -> PartnerCenterError:
        try:
            body = _loads(response.content)
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        if isinstance(body.get("error"), dict):  # Microsoft Graph: {"error": {"code", "message", ...}}
            body = body["error"]
        ms_code = str(body.get("code") or body.get("statusCode") or body.get("error") or "")
        description = str(body.get("description") or body.get("message") or body.get("error_description") or "")
        cls = error_class_for(response.status_code)
        return cls(
            f"{method} {url} answered {response.status_code} {response.reason_phrase}"
            + (f": {description}" if description else ""),
            http_status=response.status_code,
            ms_code=ms_code,
            ms_description=description,
            correlation_id=response.headers.get("MS-CorrelationId", self.correlation_id),
            request_id=response.headers.get("MS-RequestId", request_id),
            method=method,
            url=url,
            attempts=attempt,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    # -- pagination ---------------------------------------------------------------------------

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Resource]:
        """Every item of a seek-based collection, following ``links.next`` until there is none."""
        page = self.request("GET", path, params=params)
        while True:
            yield from (page or {}).get("items", [])
            nxt = ((page or {}).get("links") or {}).get("next")
            if not nxt or not nxt.get("uri"):
                return
            headers = {h["key"]: str(h["value"]) for h in nxt.get("headers") or [] if h.get("key")}
            page = self.request(nxt.get("method") or "GET", nxt["uri"], headers=headers)

    def paginate_offset(self, path: str, size: int, params: Mapping[str, Any] | None = None) -> Iterator[Resource]:
        """Every item of an offset-based collection (``size`` + ``offset``)."""
        offset = 0
        while True:
            page = self.request("GET", path, params={**(params or {}), "size": size, "offset": offset}) or {}
            items = page.get("items", [])
            yield from items
            if not items or not (page.get("links") or {}).get("next"):
                return
            offset += len(items)

    # -- customers and subscriptions ----------------------------------------------------------

    def list_customers(self, size: int = DEFAULT_PAGE_SIZE) -> Iterator[Resource]:
        return self.paginate("/v1/customers", {"size": size})

    def get_customer(self, customer_id: str) -> Resource:
        return dict(self.request("GET", f"/v1/customers/{customer_id}"))

    def list_subscriptions(self, customer_id: str) -> Iterator[Resource]:
        return self.paginate(f"/v1/customers/{customer_id}/subscriptions")

    def get_subscription(self, customer_id: str, subscription_id: str) -> Resource:
        return dict(self.request("GET", f"/v1/customers/{customer_id}/subscriptions/{subscription_id}"))

    def update_subscription(
        self, customer_id: str, subscription: Resource, *, request_id: str | None = None
    ) -> Resource:
        """PATCH the full subscription resource, guarded by ``If-Match`` with its etag."""
        etag = (subscription.get("attributes") or {}).get("etag", "")
        headers = {"If-Match": etag} if etag else {}
        path = f"/v1/customers/{customer_id}/subscriptions/{subscription['id']}"
        return dict(self.request("PATCH", path, json_body=subscription, headers=headers, request_id=request_id))

    def set_subscription_status(
        self, customer_id: str, subscription_id: str, status: str, *, request_id: str | None = None
    ) -> Resource:
        """Read the subscription, then PATCH it with ``status`` (``suspended`` or ``active``).

        Already in that status: nothing is sent. ``request_id`` is the PATCH's ``MS-RequestId``.
        """
        current = self.get_subscription(customer_id, subscription_id)
        if current.get("status") == status:
            return current
        return self.update_subscription(customer_id, {**current, "status": status}, request_id=request_id)

    def suspend_subscription(self, customer_id: str, subscription_id: str) -> Resource:
        return self.set_subscription_status(customer_id, subscription_id, "suspended")

    def reactivate_subscription(self, customer_id: str, subscription_id: str) -> Resource:
        return self.set_subscription_status(customer_id, subscription_id, "active")

    # -- invoices and reconciliation ----------------------------------------------------------

    def list_invoices(self, size: int = 200) -> Iterator[Resource]:
        return self.paginate_offset("/v1/invoices", size)

    def get_invoice(self, invoice_id: str) -> Resource:
        return dict(self.request("GET", f"/v1/invoices/{invoice_id}"))

    def list_invoice_line_items(
        self,
        invoice_id: str,
        *,
        line_item_type: str = "billinglineitems",
        provider: str = "onetime",
        currency: str | None = None,
        size: int = MAX_LINE_ITEM_PAGE,
    ) -> Iterator[Resource]:
        """Billed line items of an invoice: ``billinglineitems`` (new-commerce recon) or
        ``usagelineitems`` (daily rated usage, needs ``currency``)."""
        params: dict[str, Any] = {
            "provider": provider,
            "invoicelineitemtype": line_item_type,
            "size": min(size, MAX_LINE_ITEM_PAGE),
        }
        if currency:
            params["currencycode"] = currency
        return self.paginate(f"/v1/invoices/{invoice_id}/lineitems", params)

    def list_unbilled_line_items(
        self,
        *,
        currency: str,
        line_item_type: str = "billinglineitems",
        period: str = "current",
        size: int = MAX_LINE_ITEM_PAGE,
    ) -> Iterator[Resource]:
        """Unbilled reconciliation (``billinglineitems``) or daily rated usage (``usagelineitems``)
        of the ``current`` or ``previous`` period."""
        params = {
            "provider": "onetime",
            "invoicelineitemtype": line_item_type,
            "currencycode": currency,
            "period": period,
            "size": min(size, MAX_LINE_ITEM_PAGE),
        }
        return self.paginate("/v1/invoices/unbilled/lineitems", params)

    # -- support ------------------------------------------------------------------------------

    def list_support_topics(self) -> list[Resource]:
        return list(self.paginate("/v1/servicerequests/supporttopics"))

    def create_service_request(
        self,
        *,
        title: str,
        description: str,
        severity: str,
        support_topic_id: str,
        agent_locale: str | None = None,
        primary_contact: Resource | None = None,
        country_code: str | None = None,
        note: str | None = None,
        request_id: str | None = None,
    ) -> Resource:
        """Open a partner service request (severity ``critical``/``moderate``/``minimal``).

        Pass the same ``request_id`` to repeat a create whose outcome is unknown: it is the same request.
        """
        body: Resource = {
            "Title": title,
            "Description": description,
            "Severity": severity,
            "SupportTopicId": str(support_topic_id),
            "Attributes": {"ObjectType": "ServiceRequest"},
        }
        if primary_contact:
            body["PrimaryContact"] = primary_contact
        if country_code:
            body["CountryCode"] = country_code
        if note:
            body["NewNote"] = {"Text": note}
        path = f"/v1/servicerequests/{agent_locale or self.locale}"
        return dict(self.request("POST", path, json_body=body, request_id=request_id))

    def get_service_request(self, request_id: str) -> Resource:
        return dict(self.request("GET", f"/v1/servicerequests/{request_id}"))

    def update_service_request(
        self, request_id: str, *, note: str | None = None, status: str | None = None
    ) -> Resource:
        """Add a note and/or change the status (``open``, ``closed``, ``attention_needed``)."""
        body: Resource = {}
        if note:
            body["NewNote"] = {"Text": note}
        if status:
            body["Status"] = status
        if not body:
            raise ValueError("give a note or a status")
        return dict(self.request("PATCH", f"/v1/servicerequests/{request_id}", json_body=body))

    def list_service_requests(self) -> list[Resource]:
        return list(self.paginate("/v1/servicerequests"))

    def list_customer_service_requests(self, customer_id: str) -> list[Resource]:
        return list(self.paginate(f"/v1/customers/{customer_id}/servicerequests"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def organisation_tokens(
    organisation: Any,
    authority: str,
    credentials: auth.Credentials | None = None,
    cfg: Mapping[str, str] | None = None,
    *,
    resource: str = auth.RESOURCE,
) -> auth.TokenProvider:
    """Tokens for an organisation's partner tenant from ``settings.PARTNER_CENTER`` (or ``credentials``)."""
    cfg = cfg or partner_center_settings()
    if not organisation.pc_tenant_id:
        raise Misconfigured(f"{organisation} has no Partner Center tenant id")
    local = auth.is_loopback_url(authority)  # the emulator: any non-empty app credentials will do
    creds = credentials or auth.Credentials(
        tenant_id=str(organisation.pc_tenant_id),
        client_id=cfg["CLIENT_ID"] or ("cspdesk-emulator" if local else ""),
        client_secret=cfg["CLIENT_SECRET"] or ("cspdesk-emulator" if local and not cfg["REFRESH_TOKEN"] else ""),
        refresh_token=cfg["REFRESH_TOKEN"],
    )
    if not creds.client_id or not (creds.client_secret or creds.refresh_token):
        raise Misconfigured(f"no Partner Center credentials configured for {organisation}")
    return auth.token_provider(authority, creds.for_resource(resource))


def partner_center_settings() -> dict[str, str]:
    """``settings.PARTNER_CENTER`` with defaults for keys an older settings file may lack."""
    from django.conf import settings

    cfg = dict(getattr(settings, "PARTNER_CENTER", {}))
    cfg.setdefault("BASE_URL", "https://api.partnercenter.microsoft.com")
    cfg.setdefault("AUTHORITY", auth.COMMERCIAL_AUTHORITY)
    cfg.setdefault("AUTHORITY_USGOV", auth.USGOV_AUTHORITY)
    cfg.setdefault("GRAPH_BASE_URL", GRAPH_BASE_URL)
    for key in ("CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN"):
        cfg.setdefault(key, "")
    return {k: str(v) for k, v in cfg.items()}


__all__ = ["AuthError", "PartnerCenterClient", "RetryPolicy", "Throttled", "parse_retry_after"]
