"""A fixed-window failure counter in the Django cache (shared across processes when the cache is)."""

from __future__ import annotations

import ipaddress

from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The peer address, or None when the request has none (an in-process request built by hand).

    Behind a proxy, the proxy's trusted header must be copied into REMOTE_ADDR before this runs."""
    raw = str(request.META.get("REMOTE_ADDR") or "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def _key(scope: str, who: str) -> str:
    return f"cspdesk:throttle:{scope}:{who}"


def failures(scope: str, who: str) -> int:
    return int(cache.get(_key(scope, who), 0))


def record_failure(scope: str, who: str, window_seconds: int) -> int:
    """Count one failure in the current window; returns the count."""
    key = _key(scope, who)
    cache.add(key, 0, timeout=window_seconds)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window_seconds)
        return 1


def reset(scope: str, who: str) -> None:
    cache.delete(_key(scope, who))
