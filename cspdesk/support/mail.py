"""Reading inbound e-mail (RFC 822 / MIME): who sent it, what it is about, the text, the attachments.

Pure parsing with the standard library's ``email`` package (modern policy): any charset the message
declares is decoded (ISO-8859-x, Windows-125x, …); an undeclared or broken one falls back with
replacement characters rather than failing. The modern header parser raises on some malformed headers
(an unclosed ``<`` in an address list, for one); such a header is read as its raw text instead, and a
message whose MIME structure cannot be walked is refused with :class:`ValidationFailed`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import errors, policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

from cspdesk.core.errors import ValidationFailed

REFERENCE = re.compile(r"\[#?([A-Z]{2,12}-\d{1,10})\]")
_QUOTE_MARKERS = (
    re.compile(r"^On .+ wrote:$"),
    re.compile(r"^Il giorno .+ ha scritto:$"),
    re.compile(r"^Den .+ skrev .+:$"),
    re.compile(r"^Em .+ escreveu:$"),
    re.compile(r"^.+ ezt írta.*:$"),
    re.compile(r"^-----Original Message-----$"),
)


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InboundMessage:
    sender: str
    sender_name: str
    subject: str
    message_id: str
    references: tuple[str, ...]
    body: str
    attachments: tuple[InboundAttachment, ...] = field(default=())

    @property
    def ticket_reference(self) -> str | None:
        found = REFERENCE.search(self.subject)
        return found.group(1) if found else None


# What the standard library's header and MIME parsers raise on input they do not expect.
_PARSE_ERRORS = (LookupError, ValueError, TypeError, AttributeError, errors.MessageError)
MAX_SENDER = 254  # RFC 5321's limit on a forward path, and the length of an EmailField
MAX_MESSAGE_ID = 255


def _clean(text: str) -> str:
    """Text without NUL characters, which no database text column takes."""
    return text.replace("\x00", "")


def _header(msg: EmailMessage, name: str) -> str:
    """The first ``name`` header as text; its raw (unfolded) value when the header parser chokes on it."""
    try:
        return _clean(str(msg.get(name, "")))
    except _PARSE_ERRORS:
        for key, value in msg.raw_items():
            if key.lower() == name.lower():
                return _clean(re.sub(r"\r?\n[ \t]", " ", str(value)).strip())
        return ""


def _text_of(part: MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True) or b""
        return bytes(payload).decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)


def strip_quoted(text: str) -> str:
    """The new part of a reply: up to the first quote marker or run of '>' lines."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if stripped.startswith(">") or any(m.match(stripped) for m in _QUOTE_MARKERS):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def parse(raw: bytes) -> InboundMessage:
    if not raw or not raw.strip():
        raise ValidationFailed("the message is empty", field="message")
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(msg, EmailMessage):  # pragma: no cover - policy.default always gives EmailMessage
        raise ValidationFailed("not an e-mail message", field="message")
    name, address = parseaddr(_header(msg, "From"))
    if "@" not in address:
        raise ValidationFailed("the message has no sender address (From header)", field="From")
    if len(address) > MAX_SENDER:
        raise ValidationFailed(f"the sender address is longer than {MAX_SENDER} characters", field="From")
    try:
        body, attachments = _content(msg)
    except _PARSE_ERRORS as exc:
        raise ValidationFailed(f"the MIME structure cannot be read ({type(exc).__name__}: {exc})"[:150],
                               field="Content-Type") from None  # fmt: skip
    refs = [a for _, a in getaddresses([_header(msg, "In-Reply-To"), _header(msg, "References")])]
    return InboundMessage(
        sender=address.lower(),
        sender_name=name,
        subject=_header(msg, "Subject").strip(),
        message_id=_header(msg, "Message-ID").strip().strip("<>")[:MAX_MESSAGE_ID],
        references=tuple(r.strip("<>") for r in refs if r),
        body=strip_quoted(_clean(body)),
        attachments=tuple(attachments),
    )


def _content(msg: EmailMessage) -> tuple[str, list[InboundAttachment]]:
    """The body text (plain preferred, else HTML without tags) and the attachments."""
    body_part = msg.get_body(preferencelist=("plain", "html"))
    body = _text_of(body_part) if body_part is not None else ""
    if body_part is not None and body_part.get_content_type() == "text/html":
        body = re.sub(r"<[^>]+>", " ", body)
    attachments = []
    for part in msg.iter_attachments():
        data = part.get_payload(decode=True)
        attachments.append(
            InboundAttachment(
                filename=_clean(part.get_filename() or "") or "attachment",
                content_type=part.get_content_type(),
                data=data if isinstance(data, bytes) else b"",
            )
        )
    return body, attachments
