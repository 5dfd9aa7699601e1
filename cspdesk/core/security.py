"""Login throttling glue for django-axes: the backend and the lockout response.

Failed logins are counted per (username, client IP); after ``AXES_FAILURE_LIMIT`` failures that pair is
locked out for ``AXES_COOLOFF_TIME``. A locked-out request gets 429 with ``Retry-After``: JSON
``{code, message, field}`` when the client asked for JSON (or called the API), the login page otherwise.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' lockout check for every web login.

    ``authenticate()`` called without a request (management commands, ``Client.login`` in tests) is not a
    request an attacker can send, so it is passed on to the next backend instead of refused.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.path.startswith("/api/")
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
        or ("application/json" in accept and "text/html" not in accept)
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if isinstance(cool_off, timedelta) else 0
    minutes = max(1, (seconds + 59) // 60)
    message = _("Too many failed logins. Try again in %(minutes)d minutes.") % {"minutes": minutes}
    response: HttpResponse
    if _wants_json(request):
        response = JsonResponse({"code": "locked_out", "message": message, "field": None}, status=429)
    else:
        response = render(request, "registration/login.html", {"locked_out": message, "next": ""}, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
