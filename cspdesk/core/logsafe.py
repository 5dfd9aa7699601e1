"""Secrets never reach a log: a filter that redacts tokens, passwords, Authorization headers and SECRET_KEY.

Attach it to handlers (handler filters see every record that reaches the handler, propagated ones too).
The message is formatted once, redacted, and stored back without its arguments; an exception's text is
formatted and redacted the same way.
"""

from __future__ import annotations

import logging
import re
import traceback
from functools import cache

REDACTED = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization / Proxy-Authorization headers in any spelling (raw header, WSGI META key, dict repr).
    (
        re.compile(r"(?i)((?:proxy[-_])?authorization['\"]?\s*[:=]\s*['\"]?)(?:bearer|basic|token)?\s*[^\s'\",}]+"),
        r"\1" + REDACTED,
    ),
    # cspdesk API tokens: csp_<prefix>_<secret>
    (re.compile(r"\bcsp_[0-9a-f]+_[A-Za-z0-9_\-]+"), "csp_" + REDACTED),
    # Other bearer credentials written without the header name.
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1" + REDACTED),
    # password=…, "password": "…", client_secret=…, refresh_token: …, api_key=…
    (
        re.compile(
            r"(?i)(\b(?:password|passwd|pwd|secret|client_secret|refresh_token|access_token|api_key|secret_key|"
            r"token)\b['\"]?\s*[:=]\s*['\"]?)([^\s'\"&,}]+)"
        ),
        r"\1" + REDACTED,
    ),
)


@cache
def _secret_key() -> str:
    try:
        from django.conf import settings

        return str(getattr(settings, "SECRET_KEY", "") or "")
    except Exception:  # settings not configured: nothing to redact by value
        return ""


def redact(text: str) -> str:
    """``text`` with every secret it carries replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    key = _secret_key()
    if key and len(key) >= 8 and key in text:
        text = text.replace(key, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw template, never the arguments
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
