"""A local Partner Center: a real HTTP server (standard library only) speaking the REST subset cspdesk uses.

Start it with ``cspdesk pc-emulator --port 8765 [--faults SPEC]`` and point cspdesk at it::

    PARTNER_CENTER_BASE_URL=http://127.0.0.1:8765 PARTNER_CENTER_AUTHORITY=http://127.0.0.1:8765

Tests use :func:`start_in_thread` (port 0 picks a free port).

Served (``{tid}`` a partner tenant id, ``{cid}`` a customer tenant id), with the route names faults use:

=========================  =======  =====================================================
route                      method   path
=========================  =======  =====================================================
openid                     GET      /{tid}/v2.0/.well-known/openid-configuration
token                      POST     /{tid}/oauth2/v2.0/token  (client_credentials, refresh_token)
customers                  GET      /v1/customers?size=N  (seek paging)
customer                   GET      /v1/customers/{cid}
subscriptions              GET      /v1/customers/{cid}/subscriptions
subscription               GET      /v1/customers/{cid}/subscriptions/{sid}
subscription               PATCH    same; full resource + ``If-Match`` etag (412 when stale)
customer_servicerequests   GET      /v1/customers/{cid}/servicerequests
invoices                   GET      /v1/invoices?size=N&offset=M  (offset paging)
invoice                    GET      /v1/invoices/{id}
invoice_lineitems          GET      /v1/invoices/{id}/lineitems?provider=onetime&invoicelineitemtype=...
unbilled_lineitems         GET      /v1/invoices/unbilled/lineitems?...&currencycode=..&period=current
supporttopics              GET      /v1/servicerequests/supporttopics
servicerequests            GET      /v1/servicerequests
servicerequest_create      POST     /v1/servicerequests/{locale}  (201; same MS-RequestId ⇒ same request)
servicerequest             GET      /v1/servicerequests/{id}
servicerequest             PATCH    same; ``NewNote`` and/or ``Status``
graph_export               POST     /v1.0/reports/partners/billing/{reconciliation|usage}/{billed|unbilled}/export
graph_operation            GET      /v1.0/reports/partners/billing/operations/{id}
graph_manifest             GET      /v1.0/reports/partners/billing/manifests/{id}
graph_blob                 GET      /blobs/{directory}/{name}?{sasToken}  (no bearer token; ``Range`` honoured)
=========================  =======  =====================================================

The ``graph_*`` routes are Microsoft Graph's partner billing export (see :mod:`.graph`); point cspdesk's
``PARTNER_CENTER_GRAPH_BASE_URL`` at ``{emulator}/v1.0``. They want a token asked for with a Graph scope
(``https://graph.microsoft.com/.default``), as Graph does.

Admin (never faulted): ``GET/POST/DELETE /_emulator/faults`` (see :mod:`.faults`),
``GET /_emulator/calls`` (every call: route, method, path, MS-RequestId, MS-CorrelationId, status),
``POST /_emulator/reset`` (fresh seed, no faults, no calls), ``GET /_emulator/health``.

Service requests need an app+user token (one obtained with a refresh token), as in Partner Center.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .faults import Fault, FaultPlan, FaultSpecError, from_dict, parse_spec
from .graph import PREFIX as GRAPH_PREFIX
from .graph import BlobError, GraphError, GraphExports, blob_md5, graph_error_body
from .state import EmulatorError, EmulatorState, Resource, error_body

_GUID = r"[0-9a-fA-F-]{36}"
ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    ("GET", "openid", re.compile(rf"^/(?P<tid>{_GUID})/v2\.0/\.well-known/openid-configuration$")),
    ("POST", "token", re.compile(rf"^/(?P<tid>{_GUID})/oauth2/v2\.0/token$")),
    ("GET", "customers", re.compile(r"^/v1/customers$")),
    ("GET", "customer", re.compile(rf"^/v1/customers/(?P<cid>{_GUID})$")),
    ("GET", "subscriptions", re.compile(rf"^/v1/customers/(?P<cid>{_GUID})/subscriptions$")),
    ("GET", "subscription", re.compile(rf"^/v1/customers/(?P<cid>{_GUID})/subscriptions/(?P<sid>{_GUID})$")),
    ("PATCH", "subscription", re.compile(rf"^/v1/customers/(?P<cid>{_GUID})/subscriptions/(?P<sid>{_GUID})$")),
    ("GET", "customer_servicerequests", re.compile(rf"^/v1/customers/(?P<cid>{_GUID})/servicerequests$")),
    ("GET", "invoices", re.compile(r"^/v1/invoices$")),
    ("GET", "unbilled_lineitems", re.compile(r"^/v1/invoices/unbilled/lineitems$")),
    ("GET", "invoice_lineitems", re.compile(r"^/v1/invoices/(?P<iid>[A-Za-z0-9]+)/lineitems$")),
    ("GET", "invoice", re.compile(r"^/v1/invoices/(?P<iid>[A-Za-z0-9]+)$")),
    ("GET", "supporttopics", re.compile(r"^/v1/servicerequests/supporttopics$")),
    ("GET", "servicerequests", re.compile(r"^/v1/servicerequests$")),
    ("GET", "servicerequest", re.compile(r"^/v1/servicerequests/(?P<srid>\d+)$")),
    ("PATCH", "servicerequest", re.compile(r"^/v1/servicerequests/(?P<srid>\d+)$")),
    ("POST", "servicerequest_create", re.compile(r"^/v1/servicerequests/(?P<locale>[A-Za-z]{2}-[A-Za-z]{2})$")),
    (
        "POST",
        "graph_export",
        re.compile(
            r"^/v1\.0/reports/partners/billing/(?P<dataset>reconciliation|usage)/(?P<billed>billed|unbilled)/export$"
        ),
    ),
    ("GET", "graph_operation", re.compile(rf"^/v1\.0/reports/partners/billing/operations/(?P<opid>{_GUID})$")),
    ("GET", "graph_manifest", re.compile(rf"^/v1\.0/reports/partners/billing/manifests/(?P<mid>{_GUID})$")),
    ("GET", "graph_blob", re.compile(r"^/blobs/(?P<blob>[A-Za-z0-9=/._-]+)$")),
]
GRAPH_SCOPE_PREFIX = "https://graph.microsoft.com/"
ADMIN_PREFIX = "/_emulator/"
TOKEN_LIFETIME_S = 3599


@dataclass
class Call:
    route: str
    method: str
    path: str
    request_id: str
    correlation_id: str
    status: int = 0
    fault: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class EmulatorConfig:
    """Credentials the token endpoint insists on; empty means any non-empty value is accepted."""

    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is (a blob, an XML error) instead of ``body`` as JSON
    content_type: str = "application/json; charset=utf-8"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    raise TypeError(type(value).__name__)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        faults: list[Fault] | None = None,
        config: EmulatorConfig | None = None,
        quiet: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.state = EmulatorState()
        self.faults = FaultPlan(faults, seed=seed)
        self.config = config or EmulatorConfig()
        self.quiet = quiet
        self.calls: list[Call] = []
        self.calls_lock = threading.Lock()
        self.tokens: dict[str, tuple[str, bool]] = {}  # access token -> (partner tenant id, app+user)
        self.token_scopes: dict[str, str] = {}  # access token -> the scope it was asked for
        self.graph = GraphExports()
        self.continuations: dict[str, tuple[str, int]] = {}  # MS-ContinuationToken -> (query key, offset)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        self.state = EmulatorState()
        self.faults.clear()
        with self.calls_lock:
            self.calls.clear()
        self.continuations.clear()
        self.graph = GraphExports()

    def calls_to(self, route: str, method: str | None = None) -> list[Call]:
        with self.calls_lock:
            return [c for c in self.calls if c.route == route and (method is None or c.method == method)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorServer
    server_version = "PartnerCenterEmulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ---------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path.startswith(ADMIN_PREFIX):
            self._send(self._admin(method, path[len(ADMIN_PREFIX) :], query, raw))
            return
        route, params = "", {}
        for route_method, name, pattern in ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                route, params = name, match.groupdict()
                break
        request_id = self.headers.get("MS-RequestId") or self.headers.get("client-request-id") or str(uuid.uuid4())
        correlation_id = self.headers.get("MS-CorrelationId") or str(uuid.uuid4())
        call = Call(route or "unknown", method, self.path, request_id, correlation_id)
        with self.server.calls_lock:
            self.server.calls.append(call)
        echo = {
            "MS-RequestId": request_id,
            "MS-CorrelationId": correlation_id,
            "MS-CV": uuid.uuid4().hex[:22],
            "MS-ServerId": "emulator",
        }
        graph = route.startswith("graph_")
        if graph:
            echo.update({"request-id": str(uuid.uuid4()), "client-request-id": request_id})
        if not route:
            call.status = 404
            self._send(_Reply(404, error_body("NotFound", f"No resource at {method} {path}."), echo))
            return
        fault = self.server.faults.pick(route, method)
        if fault is not None:
            call.fault = fault.kind
            if fault.kind == "drop":
                self._drop()
                return
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "429":
                call.status = 429
                seconds = f"{fault.retry_after:g}"
                message = f"Rate limit is exceeded. Try again in {seconds} seconds."
                body = (
                    graph_error_body("TooManyRequests", message) if graph else {"statusCode": 429, "message": message}
                )
                self._send(_Reply(429, body, {**echo, "Retry-After": seconds}))
                return
            elif fault.kind in ("500", "503"):
                call.status = int(fault.kind)
                extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.kind == "503" else {}
                code = "InternalServerError" if fault.kind == "500" else "ServiceUnavailable"
                message = "The service is temporarily unavailable."
                body = graph_error_body(code, message) if graph else error_body(code, message)
                self._send(_Reply(int(fault.kind), body, {**echo, **extra}))
                return
        try:
            reply = self._route(route, method, params, query, raw, request_id)
        except BlobError as exc:
            reply = _Reply(exc.status, None, {"x-ms-error-code": exc.body["code"]}, exc.xml, "application/xml")
        except EmulatorError as exc:
            body = exc.body
            if graph and not isinstance(exc, GraphError):
                body = graph_error_body(exc.body["code"], exc.body["description"])
            reply = _Reply(exc.status, body)
        except (ValueError, KeyError, TypeError) as exc:
            reply = _Reply(400, error_body("BadRequest", f"Malformed request: {exc}"))
        call.status = reply.status
        if fault is not None and fault.kind == "drop_after":
            self._drop()
            return
        reply.headers = {**echo, **reply.headers}
        self._send(reply, cut=fault is not None and fault.kind == "cut")

    def _drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: _Reply, *, cut: bool = False) -> None:
        """Answer; ``cut``: announce the whole body, send half of it, close (a connection dropped mid-body)."""
        if reply.raw is not None:
            data = reply.raw
        else:
            data = b"" if reply.body is None else json.dumps(reply.body, default=_json_default).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if cut:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._drop()
            return
        self.wfile.write(data)

    def _partner(self, app_user_required: bool = False) -> str:
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        found = self.server.tokens.get(token)
        if found is None:
            raise EmulatorError(401, "Unauthorized", "The access token is missing, invalid or expired.")
        if app_user_required and not found[1]:
            raise EmulatorError(403, "Forbidden", "This operation requires App+User authentication.")
        return found[0]

    # -- collections ------------------------------------------------------------------------

    def _collection(
        self, items: list[Resource], base: str, query: dict[str, str], *, seek: bool, default_size: int
    ) -> _Reply:
        size = max(1, int(query.get("size", default_size)))
        key = base + "?" + urlencode(sorted((k, v) for k, v in query.items() if k.lower() != "seekoperation"))
        offset = 0
        if seek and query.get("seekOperation", query.get("seekoperation", "")).lower() == "next":
            token = self.headers.get("MS-ContinuationToken", "")
            found = self.server.continuations.get(token)
            if found is None or found[0] != key:
                raise EmulatorError(400, "InvalidContinuationToken", "The continuation token is not valid.")
            offset = found[1]
        elif not seek:
            offset = max(0, int(query.get("offset", 0)))
        page = items[offset : offset + size]
        self_query = urlencode(list(query.items()))
        links: Resource = {
            "self": {"uri": f"{base}?{self_query}" if self_query else base, "method": "GET", "headers": []}
        }
        body: Resource = {
            "totalCount": len(page),
            "items": page,
            "links": links,
            "attributes": {"objectType": "Collection"},
        }
        if offset + size < len(items):
            if seek:
                token = uuid.uuid4().hex
                self.server.continuations[token] = (key, offset + size)
                next_query = urlencode(
                    [*((k, v) for k, v in query.items() if k.lower() != "seekoperation"), ("seekOperation", "Next")]
                )
                links["next"] = {
                    "uri": f"{base}?{next_query}",
                    "method": "GET",
                    "headers": [{"key": "MS-ContinuationToken", "value": token}],
                }
                body["continuationToken"] = token
            else:
                next_query = urlencode(
                    [*((k, v) for k, v in query.items() if k != "offset"), ("offset", str(offset + size))]
                )
                links["next"] = {"uri": f"{base}?{next_query}", "method": "GET", "headers": []}
        return _Reply(200, body)

    # -- routes -----------------------------------------------------------------------------

    def _route(
        self, route: str, method: str, p: dict[str, str], q: dict[str, str], raw: bytes, request_id: str
    ) -> _Reply:
        state = self.server.state
        if route == "openid":
            return self._openid(p["tid"])
        if route == "token":
            return self._token(p["tid"], raw)
        if route.startswith("graph_"):
            return self._graph(route, p, raw)
        app_user = route.startswith(("servicerequest", "supporttopics", "customer_servicerequests"))
        partner = self._partner(app_user_required=app_user)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if route == "customers":
            listed = [{k: v for k, v in c.items() if k != "billingProfile"} for c in state.customers_of(partner)]
            return self._collection(listed, "/customers", q, seek=True, default_size=500)
        if route == "customer":
            return _Reply(200, state.customer(partner, p["cid"]))
        if route == "subscriptions":
            subs = state.subscriptions_of(partner, p["cid"])
            return self._collection(
                subs, f"/customers/{p['cid']}/subscriptions", q, seek=True, default_size=len(subs) or 1
            )
        if route == "subscription" and method == "GET":
            return _Reply(200, state.subscription(partner, p["cid"], p["sid"]))
        if route == "subscription":
            body = json.loads(raw or b"{}", parse_float=Decimal)
            return _Reply(
                200, state.patch_subscription(partner, p["cid"], p["sid"], body, self.headers.get("If-Match", ""))
            )
        if route == "invoices":
            return self._collection(state.invoices.get(partner, []), "/invoices", q, seek=False, default_size=200)
        if route == "invoice":
            found = next((i for i in state.invoices.get(partner, []) if i["id"] == p["iid"]), None)
            if found is None:
                raise EmulatorError(404, "InvoiceNotFound", f"Invoice {p['iid']} was not found.")
            return _Reply(200, found)
        if route in ("invoice_lineitems", "unbilled_lineitems"):
            invoice_id = p.get("iid", "unbilled")
            kind = q.get("invoicelineitemtype", "").lower()
            if q.get("provider", "").lower() != "onetime" or kind not in ("billinglineitems", "usagelineitems"):
                raise EmulatorError(
                    400,
                    "InvalidInput",
                    "provider must be onetime and invoicelineitemtype billinglineitems or usagelineitems.",
                )
            if route == "unbilled_lineitems" and (
                not q.get("currencycode") or q.get("period", "").lower() not in ("current", "previous")
            ):
                raise EmulatorError(400, "InvalidInput", "currencycode and period (current|previous) are required.")
            if (partner, invoice_id, kind) not in state.line_items:
                raise EmulatorError(404, "InvoiceNotFound", f"Invoice {invoice_id} was not found.")
            items = state.line_items[(partner, invoice_id, kind)]
            if route == "unbilled_lineitems" and q.get("period", "").lower() == "previous":
                items = []
            base = f"/invoices/{invoice_id}/lineitems"
            return self._collection(items, base, q, seek=True, default_size=2000)
        if route == "supporttopics":
            from .state import SUPPORT_TOPICS

            topics = [
                {"name": n, "description": d, "id": i, "attributes": {"objectType": "SupportTopic"}}
                for i, n, d in SUPPORT_TOPICS
            ]
            return self._collection(topics, "/servicerequests/supporttopics", q, seek=True, default_size=100)
        if route == "servicerequest_create":
            body = json.loads(raw or b"{}")
            sr, _created = state.create_service_request(partner, body, request_id, now)
            return _Reply(201, sr)
        if route == "servicerequest" and method == "GET":
            return _Reply(200, state.service_request(partner, p["srid"]))
        if route == "servicerequest":
            return _Reply(200, state.update_service_request(partner, p["srid"], json.loads(raw or b"{}"), now))
        if route == "servicerequests":
            return self._collection(
                state.service_requests_of(partner), "/servicerequests", q, seek=True, default_size=500
            )
        if route == "customer_servicerequests":
            state.customer(partner, p["cid"])
            return self._collection(
                state.service_requests_of(partner, p["cid"]),
                f"/customers/{p['cid']}/servicerequests",
                q,
                seek=True,
                default_size=500,
            )
        raise EmulatorError(404, "NotFound", "No such route.")

    def _graph(self, route: str, p: dict[str, str], raw: bytes) -> _Reply:
        """Microsoft Graph's partner billing export (see :mod:`.graph`)."""
        exports = self.server.graph
        if route == "graph_blob":
            data = exports.blob(p["blob"], urlsplit(self.path).query)
            return self._blob(data)
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if token not in self.server.tokens:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        if not self.server.token_scopes.get(token, "").startswith(GRAPH_SCOPE_PREFIX):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        partner = self.server.tokens[token][0]
        base = self._base()
        if route == "graph_export":
            op = exports.start(self.server.state, partner, p["dataset"], p["billed"] == "billed", raw)
            return _Reply(202, None, {"Location": f"{base}{GRAPH_PREFIX}/operations/{op.id}"})
        if route == "graph_operation":
            body, headers = exports.poll(partner, p["opid"], base)
            return _Reply(200, body, headers)
        return _Reply(200, exports.manifest(partner, p["mid"]))

    def _blob(self, data: bytes) -> _Reply:
        """A blob, whole (200) or from ``Range: bytes=N-`` on (206), with Azure's headers."""
        md5 = blob_md5(data)
        headers = {
            "Accept-Ranges": "bytes",
            "x-ms-blob-type": "BlockBlob",
            "x-ms-blob-content-md5": md5,
            "ETag": f'"0x{md5.encode().hex()[:16].upper()}"',
        }
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "").strip())
        if wanted and 0 < int(wanted.group(1)) < len(data):
            start = int(wanted.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return _Reply(206, None, headers, data[start:], "application/octet-stream")
        return _Reply(200, None, {**headers, "Content-MD5": md5}, data, "application/octet-stream")

    def _base(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.url.split('//', 1)[1]}"

    def _openid(self, tid: str) -> _Reply:
        if tid.lower() not in self.server.state.partners:
            return _Reply(
                400, {"error": "invalid_tenant", "error_description": f"AADSTS90002: Tenant '{tid}' not found."}
            )
        base = f"{self._base()}/{tid}"
        return _Reply(
            200,
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "tenant_region_scope": "EU",
            },
        )

    def _token(self, tid: str, raw: bytes) -> _Reply:
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        cfg = self.server.config

        def refuse(status: int, error: str, description: str) -> _Reply:
            return _Reply(
                status,
                {
                    "error": error,
                    "error_description": description,
                    "error_codes": [],
                    "correlation_id": str(uuid.uuid4()),
                },
            )

        if tid.lower() not in self.server.state.partners:
            return refuse(400, "invalid_request", f"AADSTS90002: Tenant '{tid}' not found.")
        if not form.get("client_id") or (cfg.client_id and form["client_id"] != cfg.client_id):
            return refuse(400, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            if not form.get("client_secret") or (cfg.client_secret and form["client_secret"] != cfg.client_secret):
                return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
            app_user = False
        elif grant == "refresh_token":
            if not form.get("refresh_token") or (cfg.refresh_token and form["refresh_token"] != cfg.refresh_token):
                return refuse(400, "invalid_grant", "AADSTS70000: The refresh token is invalid or expired.")
            app_user = True
        else:
            return refuse(400, "unsupported_grant_type", f"AADSTS70003: grant_type {grant!r} is not supported.")
        token = f"emu.{uuid.uuid4().hex}"
        self.server.tokens[token] = (tid.lower(), app_user)
        self.server.token_scopes[token] = form.get("scope", "")
        body: Resource = {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "ext_expires_in": TOKEN_LIFETIME_S,
            "access_token": token,
            "scope": form.get("scope", ""),
        }
        if app_user:
            body["refresh_token"] = form["refresh_token"] if cfg.refresh_token else f"emu-rt.{uuid.uuid4().hex}"
        return _Reply(200, body)

    # -- admin ------------------------------------------------------------------------------

    def _admin(self, method: str, what: str, query: dict[str, str], raw: bytes) -> _Reply:
        server = self.server
        if what == "health" and method == "GET":
            return _Reply(200, {"status": "ok"})
        if what == "faults" and method == "GET":
            return _Reply(200, {"faults": server.faults.list()})
        if what == "faults" and method == "DELETE":
            server.faults.clear()
            return _Reply(200, {"faults": []})
        if what == "faults" and method == "POST":
            try:
                data = json.loads(raw or b"null")
                if isinstance(data, dict) and "spec" in data:
                    added = parse_spec(str(data["spec"]))
                elif isinstance(data, list):
                    added = [from_dict(d) for d in data]
                elif isinstance(data, dict):
                    added = [from_dict(data)]
                else:
                    raise FaultSpecError('send a fault object, a list of them, or {"spec": "..."}')
            except (ValueError, FaultSpecError) as exc:
                return _Reply(400, error_body("InvalidFault", str(exc)))
            server.faults.add(added)
            return _Reply(201, {"added": [f.as_dict() for f in added], "faults": server.faults.list()})
        if what == "calls" and method == "GET":
            with server.calls_lock:
                calls = [c.as_dict() for c in server.calls if not query.get("route") or c.route == query["route"]]
            return _Reply(200, {"calls": calls})
        if what == "reset" and method == "POST":
            server.reset()
            return _Reply(200, {"status": "reset"})
        return _Reply(404, error_body("NotFound", f"No admin endpoint {method} /_emulator/{what}."))


@dataclass
class RunningEmulator:
    server: EmulatorServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> EmulatorState:
        return self.server.state

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    faults: list[Fault] | str | None = None,
    config: EmulatorConfig | None = None,
    seed: int | None = None,
) -> RunningEmulator:
    """Serve in a daemon thread; ``port=0`` takes a free port (read it from ``.url``)."""
    parsed = parse_spec(faults) if isinstance(faults, str) else faults
    server = EmulatorServer((host, port), faults=parsed, config=config, seed=seed)
    thread = threading.Thread(target=server.serve_forever, name="pc-emulator", daemon=True)
    thread.start()
    return RunningEmulator(server, thread)


def serve(
    host: str,
    port: int,
    *,
    faults: list[Fault] | None = None,
    config: EmulatorConfig | None = None,
    quiet: bool = False,
    ready: Callable[[EmulatorServer], None] | None = None,
) -> None:
    """Serve in the foreground until SIGINT (Ctrl-C) or SIGTERM.

    Both are handled explicitly: a process started in the background by a shell inherits an ignored SIGINT,
    and a process manager stops with SIGTERM; either way the server shuts down and closes its socket.
    """
    server = EmulatorServer((host, port), faults=faults, config=config, quiet=quiet)

    def _stop(*_a: Any) -> None:
        # shutdown() waits for serve_forever to return, so it must not run on the serving (main) thread
        threading.Thread(target=server.shutdown, name="pc-emulator-stop", daemon=True).start()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    if ready:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
