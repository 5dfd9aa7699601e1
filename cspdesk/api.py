"""The JSON API at /api/v1/: one NinjaAPI, each domain app contributes a router.

Authentication: a per-user API token (``Authorization: Bearer csp_…``) or the browser session (with CSRF).
Every error is ``{"code", "message", "field"}`` with a stable code.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DataError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth

from cspdesk.core import throttle
from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError, Throttled, Unauthenticated
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy import services as tenancy_services

log = logging.getLogger(__name__)


class TokenAuth(HttpBearer):
    """``Authorization: Bearer csp_…``. A failed token is logged (never the secret) and counted per client
    address; past ``CSPDESK_TOKEN_FAILURE_LIMIT`` failures in the window that address gets 429. No account
    is locked: a guessed token names no account."""

    openapi_scheme = "bearer"

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        ip = throttle.client_ip(request) or "unknown"
        if throttle.failures("api-token", ip) >= settings.CSPDESK_TOKEN_FAILURE_LIMIT:
            raise Throttled("too many failed API token attempts from this address; try again later")
        try:
            user = tenancy_services.authenticate_token(token)
        except Unauthenticated as exc:
            count = throttle.record_failure("api-token", ip, settings.CSPDESK_TOKEN_FAILURE_WINDOW)
            log.warning("API token refused from %s (%s; %d failures in the window)", ip, exc.message, count)
            return None
        request.user = user
        return user


class BrowserSessionAuth(SessionAuth):
    """The browser session, CSRF-checked. A request that carries no session cookie at all has no session to
    forge, so it is simply unauthenticated (401), never a misleading CSRF failure (403)."""

    def _get_key(self, request: HttpRequest) -> str | None:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None
        return super()._get_key(request)


# Answers any operation can give, whatever its router declares: the error envelope with these statuses.
_ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "field": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["code", "message"],
}
_COMMON_ERRORS = {
    "422": ("the request does not validate; `field` names the place", False),
    "401": ("no session and no valid API token", True),
    "403": ("the role lacks the permission, or a session request failed the CSRF check", True),
    "429": ("too many failed API token attempts from this address", True),
}


class CspdeskAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: Any = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault("Error", _ERROR_SCHEMA)
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                for status, (description, needs_auth) in _COMMON_ERRORS.items():
                    if needs_auth and not operation.get("security"):
                        continue
                    operation["responses"].setdefault(int(status), {"description": description, "content": ref})
        return schema


api = CspdeskAPI(
    title="cspdesk",
    version="1",
    description="Billing, collections and support desk for Microsoft CSP partners.",
    auth=[TokenAuth(), BrowserSessionAuth()],
    urls_namespace="api",
)


def actor(request: HttpRequest) -> Actor:
    """The acting user of an authenticated API request."""
    return tenancy_selectors.actor_for_user(request.auth, getattr(request, "request_id", None))  # type: ignore[attr-defined]


def _error(request: HttpRequest, status: int, code: str, message: str, field: str | None = None) -> HttpResponse:
    return api.create_response(request, {"code": code, "message": message, "field": field}, status=status)


@api.exception_handler(DomainError)
def _domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return _error(request, exc.status, exc.code, exc.message, exc.field)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    first = exc.errors[0] if exc.errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "payload", "query", "path")]
    field = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    return _error(request, 422, "validation_error", f"{field}: {message}" if field else message, field)


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, "unauthenticated", "log in or send a valid API token (Authorization: Bearer …)")


@api.exception_handler(AuthorizationError)
def _authz_error(request: HttpRequest, exc: AuthorizationError) -> HttpResponse:
    return _error(request, 403, "forbidden", str(exc))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = "csrf_failed" if "CSRF" in str(exc) else "http_error"
    return _error(request, exc.status_code, code, str(exc))


@api.exception_handler(OverflowError)
@api.exception_handler(DataError)
def _out_of_range(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A number or text the database cannot hold (an id past 64 bits, a string past its column)."""
    log.warning("request value rejected by the database: %s", exc)
    return _error(request, 422, "validation_error", "a value in the request is out of range for its field")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "not found")


def _register_routers() -> None:
    from cspdesk.tenancy.api import router as tenancy_router

    api.add_router("/", tenancy_router)
    from cspdesk.partnercenter.api import router as partnercenter_router

    api.add_router("/", partnercenter_router)
    from cspdesk.billing.api import router as billing_router

    api.add_router("/", billing_router)
    from cspdesk.payments.api import router as payments_router

    api.add_router("/", payments_router)
    from cspdesk.support.api import router as support_router

    api.add_router("/", support_router)
    from cspdesk.collections.api import router as collections_router

    api.add_router("/", collections_router)
    from cspdesk.catalog.api import router as catalog_router

    api.add_router("/", catalog_router)


_register_routers()
