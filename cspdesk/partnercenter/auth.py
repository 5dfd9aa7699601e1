"""Access tokens for Partner Center (Microsoft Entra ID).

Two ways in, as Partner Center allows:

- **app-only** (client credentials): ``client_id`` + ``client_secret``, scope
  ``https://api.partnercenter.microsoft.com/.default``;
- **app+user** (the Secure Application Model): a refresh token obtained once by an MFA-consented
  partner user, exchanged (``grant_type=refresh_token``) for access tokens with the delegated scope
  ``https://api.partnercenter.microsoft.com/user_impersonation``. Service requests need it.

The same registration gets tokens for Microsoft Graph (the billing reconciliation export) with
``Credentials.for_resource(GRAPH_RESOURCE)``: scope ``https://graph.microsoft.com/.default`` app-only, or the
delegated ``https://graph.microsoft.com/PartnerBilling.Read.All`` with a refresh token.

Clouds: the commercial cloud's authority is ``https://login.microsoftonline.com``; the US Government
cloud's is ``https://login.microsoftonline.us`` (Entra's national-cloud endpoint, the value msal itself
names ``AZURE_US_GOVERNMENT``). Partner Center's REST base URL is the same for both clouds, so only the
authority differs. The token scope for US Government is assumed to be the same resource URI
(not confirmed by a published sample).

Why two providers: msal only accepts an ``https://`` authority (``msal.authority.canonicalize`` rejects
anything else, and it also canonicalizes the token endpoint it discovers), so it cannot talk to the
local emulator on ``http://127.0.0.1``. :class:`MsalTokenProvider` serves every ``https`` authority (the
real service). :class:`LoopbackTokenProvider` serves an ``http`` authority on a loopback address only:
it performs the same two steps msal performs (OpenID discovery at
``{authority}/{tenant}/v2.0/.well-known/openid-configuration``, then a form POST of the same grant to
the discovered ``token_endpoint``), so the emulator's token endpoint is the one msal would call.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from .errors import AuthError, Misconfigured, ServerError, TransportError

RESOURCE = "https://api.partnercenter.microsoft.com"
SCOPE_APP_ONLY = f"{RESOURCE}/.default"
SCOPE_APP_USER = f"{RESOURCE}/user_impersonation"
# Microsoft Graph (the partner billing reconciliation export): another resource, so another token.
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_SCOPE_APP_USER = f"{GRAPH_RESOURCE}/PartnerBilling.Read.All"
COMMERCIAL_AUTHORITY = "https://login.microsoftonline.com"
USGOV_AUTHORITY = "https://login.microsoftonline.us"
_EARLY_REFRESH_S = 120.0


@dataclass(frozen=True)
class Credentials:
    """One partner tenant's app registration. A refresh token means app+user, else app-only.

    ``resource`` is the API the token is for: Partner Center (the default) or Microsoft Graph
    (:data:`GRAPH_RESOURCE`), whose delegated scope is ``PartnerBilling.Read.All``.
    """

    tenant_id: str
    client_id: str
    client_secret: str = ""
    refresh_token: str = ""
    resource: str = RESOURCE

    @property
    def app_user(self) -> bool:
        return bool(self.refresh_token)

    @property
    def scope(self) -> str:
        if not self.app_user:
            return f"{self.resource}/.default"
        return GRAPH_SCOPE_APP_USER if self.resource == GRAPH_RESOURCE else f"{self.resource}/user_impersonation"

    def for_resource(self, resource: str) -> Credentials:
        """The same app registration, asking for a token to another API."""
        return Credentials(self.tenant_id, self.client_id, self.client_secret, self.refresh_token, resource)


class TokenProvider(Protocol):
    """Gives a bearer token for Partner Center; raises a :class:`PartnerCenterError` subclass."""

    def access_token(self) -> str: ...

    def invalidate(self) -> None:
        """Forget the cached token (after a 401), so the next call fetches a fresh one."""
        ...


class _CachedToken:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0

    def get(self) -> str | None:
        if self._token and time.monotonic() < self._expires - _EARLY_REFRESH_S:
            return self._token
        return None

    def put(self, token: str, expires_in: Any) -> None:
        try:
            seconds = float(expires_in)
        except (TypeError, ValueError):
            seconds = 300.0
        self._token, self._expires = token, time.monotonic() + seconds

    def clear(self) -> None:
        self._token, self._expires = "", 0.0


class MsalTokenProvider:
    """Tokens from Microsoft Entra ID through msal (any ``https`` authority)."""

    def __init__(self, authority: str, credentials: Credentials, *, timeout: float = 30.0) -> None:
        self.authority = f"{authority.rstrip('/')}/{credentials.tenant_id}"
        self.credentials = credentials
        self._timeout = timeout
        self._app: Any = None
        self._refresh_token = credentials.refresh_token
        self._cache = _CachedToken()

    def _application(self) -> Any:
        import msal
        import requests

        if self._app is None:
            try:
                if self.credentials.client_secret:
                    self._app = msal.ConfidentialClientApplication(
                        self.credentials.client_id,
                        client_credential=self.credentials.client_secret,
                        authority=self.authority,
                        timeout=self._timeout,
                    )
                else:  # a native (public) app: app+user only
                    self._app = msal.PublicClientApplication(
                        self.credentials.client_id,
                        authority=self.authority,
                        timeout=self._timeout,
                    )
            except ValueError as exc:
                raise AuthError(f"Entra authority {self.authority} refused: {exc}") from exc
            except requests.RequestException as exc:
                raise TransportError(f"Entra authority {self.authority} unreachable: {exc}") from exc
        return self._app

    def access_token(self) -> str:
        import requests

        cached = self._cache.get()
        if cached:
            return cached
        app = self._application()
        try:
            with self._cache._lock:
                if self.credentials.app_user:
                    result = app.acquire_token_by_refresh_token(self._refresh_token, scopes=[self.credentials.scope])
                else:
                    result = app.acquire_token_for_client(scopes=[self.credentials.scope])
        except requests.RequestException as exc:
            raise TransportError(f"token request to {self.authority} failed: {exc}") from exc
        if "access_token" not in result:
            raise AuthError(
                f"Entra ID refused the token request: {result.get('error', 'unknown_error')}",
                ms_code=str(result.get("error", "")),
                ms_description=str(result.get("error_description", "")),
                correlation_id=str(result.get("correlation_id", "")),
            )
        if result.get("refresh_token"):
            self._refresh_token = result["refresh_token"]  # rotated: keep the newest
        self._cache.put(result["access_token"], result.get("expires_in"))
        return str(result["access_token"])

    def invalidate(self) -> None:
        self._cache.clear()


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackTokenProvider:
    """The OAuth 2.0 token exchange msal performs, over plain http, to a loopback authority only."""

    def __init__(self, authority: str, credentials: Credentials, *, timeout: float = 10.0) -> None:
        if not is_loopback_url(authority):
            raise ValueError(f"plain-http authority must be a loopback address, not {authority!r}")
        self.authority = f"{authority.rstrip('/')}/{credentials.tenant_id}"
        self.credentials = credentials
        self._timeout = timeout
        self._token_endpoint = ""
        self._refresh_token = credentials.refresh_token
        self._cache = _CachedToken()

    def _call(self, http: httpx.Client, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise TransportError(f"token endpoint {url} unreachable: {exc!r}", method=method, url=url) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500:
            raise ServerError(
                f"token endpoint answered {response.status_code}",
                http_status=response.status_code,
                method=method,
                url=url,
            )
        if response.status_code >= 400 or not isinstance(body, dict):
            body = body if isinstance(body, dict) else {}
            raise AuthError(
                f"Entra ID refused the token request: {body.get('error', response.status_code)}",
                http_status=response.status_code,
                ms_code=str(body.get("error", "")),
                ms_description=str(body.get("error_description", "")),
                correlation_id=str(body.get("correlation_id", "")),
                method=method,
                url=url,
            )
        return body

    def access_token(self) -> str:
        cached = self._cache.get()
        if cached:
            return cached
        with self._cache._lock, httpx.Client(timeout=self._timeout) as http:
            if not self._token_endpoint:
                config = self._call(http, "GET", f"{self.authority}/v2.0/.well-known/openid-configuration")
                self._token_endpoint = str(config.get("token_endpoint", ""))
                if not self._token_endpoint:
                    raise AuthError(f"no token_endpoint in the OpenID configuration of {self.authority}")
            form = {"client_id": self.credentials.client_id, "scope": self.credentials.scope}
            if self.credentials.client_secret:
                form["client_secret"] = self.credentials.client_secret
            if self.credentials.app_user:
                form.update(grant_type="refresh_token", refresh_token=self._refresh_token)
            else:
                form["grant_type"] = "client_credentials"
            body = self._call(http, "POST", self._token_endpoint, data=form)
        if "access_token" not in body:
            raise AuthError("the token endpoint answered without an access_token")
        if body.get("refresh_token"):
            self._refresh_token = str(body["refresh_token"])
        self._cache.put(str(body["access_token"]), body.get("expires_in"))
        return str(body["access_token"])

    def invalidate(self) -> None:
        self._cache.clear()


def token_provider(authority: str, credentials: Credentials, *, timeout: float = 30.0) -> TokenProvider:
    """msal for ``https`` authorities; the loopback provider for ``http://127.0.0.1``-style ones."""
    scheme = urlsplit(authority).scheme
    if scheme == "https":
        return MsalTokenProvider(authority, credentials, timeout=timeout)
    if scheme == "http" and is_loopback_url(authority):
        return LoopbackTokenProvider(authority, credentials, timeout=timeout)
    raise Misconfigured(f"authority must be https (or http on a loopback address): {authority!r}")
