"""Partner Center failures, one class per failure class.

Every error keeps what Microsoft support asks for: the HTTP status, Microsoft's error ``code`` and
``description`` (from the ``{code, description, data, source}`` error body, or the ``{statusCode,
message}`` body of a 429), and the ``MS-CorrelationId`` / ``MS-RequestId`` of the call.

They are :class:`~cspdesk.core.errors.DomainError` subclasses, so the JSON API turns them into
``{code, message, field}`` with a stable cspdesk code (``pc_throttled``, ``pc_not_found`` …).
"""

from __future__ import annotations

from cspdesk.core.errors import DomainError


class PartnerCenterError(DomainError):
    """A Partner Center call failed. ``status`` is the HTTP status cspdesk answers with."""

    status = 502
    code = "pc_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        ms_code: str = "",
        ms_description: str = "",
        correlation_id: str = "",
        request_id: str = "",
        method: str = "",
        url: str = "",
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.ms_code = ms_code
        self.ms_description = ms_description
        self.correlation_id = correlation_id
        self.request_id = request_id
        self.method = method
        self.url = url
        self.attempts = attempts
        self.retry_after = retry_after

    def support_details(self) -> dict[str, str | int | None]:
        """What to paste into a Microsoft support request."""
        return {
            "http_status": self.http_status,
            "ms_code": self.ms_code,
            "ms_description": self.ms_description,
            "ms_correlation_id": self.correlation_id,
            "ms_request_id": self.request_id,
            "method": self.method,
            "url": self.url,
            "attempts": self.attempts,
        }

    def __str__(self) -> str:
        ids = f" (MS-CorrelationId {self.correlation_id}, MS-RequestId {self.request_id})" if self.request_id else ""
        return f"{self.message}{ids}"


class Throttled(PartnerCenterError):
    """429 Too Many Requests, still throttled after the retries (or Retry-After too long to wait)."""

    status = 503
    code = "pc_throttled"
    retryable = True


class ServerError(PartnerCenterError):
    """5xx from Partner Center, still failing after the retries."""

    code = "pc_server_error"
    retryable = True


class TransportError(PartnerCenterError):
    """No HTTP answer: connection refused or dropped, or a connect/read timeout."""

    code = "pc_unreachable"
    retryable = True


class AuthError(PartnerCenterError):
    """401/403 from Partner Center, or the token endpoint refused the credentials."""

    code = "pc_auth_failed"


class NotFound(PartnerCenterError):
    status = 404
    code = "pc_not_found"


class ConflictError(PartnerCenterError):
    """409 Conflict or 412 Precondition Failed (the ``If-Match`` etag is stale: read again, retry)."""

    status = 409
    code = "pc_conflict"


class BadRequest(PartnerCenterError):
    """Any other 4xx: the request itself is wrong; retrying will not help."""

    status = 502
    code = "pc_bad_request"


class Misconfigured(PartnerCenterError):
    """cspdesk is not set up to call Partner Center for this organisation (no tenant id, no credentials)."""

    status = 409
    code = "pc_misconfigured"


class CloudNotSupported(PartnerCenterError):
    """The call exists only in Microsoft's global cloud (the Graph billing export), not in this organisation's."""

    status = 409
    code = "pc_cloud_not_supported"


class ExportFailed(PartnerCenterError):
    """A Graph billing export operation ended as ``failedOperation``; ``ms_code``/``ms_description`` say why
    (``5000`` "No data available" when there is nothing to export for that invoice or period)."""

    status = 502
    code = "pc_export_failed"

    @property
    def no_data(self) -> bool:
        return self.ms_code == "5000"


class ExportNotReady(PartnerCenterError):
    """The export operation was still running when cspdesk stopped waiting; ask again later."""

    status = 503
    code = "pc_export_not_ready"
    retryable = True


def error_class_for(http_status: int) -> type[PartnerCenterError]:
    if http_status == 429:
        return Throttled
    if http_status >= 500:
        return ServerError
    if http_status in (401, 403):
        return AuthError
    if http_status == 404:
        return NotFound
    if http_status in (409, 412):
        return ConflictError
    return BadRequest
