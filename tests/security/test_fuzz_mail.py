"""Fuzzing the inbound e-mail parser and intake: broken MIME, bad charsets, missing and huge headers, nested
multiparts, random bytes. Every message becomes a ticket, a reply, a duplicate or a held e-mail, or
``mail.parse`` refuses it with a ``DomainError`` naming the header; never an unhandled exception, and never a
value the database would refuse (too long for its column, or holding a NUL character)."""

from __future__ import annotations

import itertools

import pytest
from django.db import models
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cspdesk.core.errors import DomainError
from cspdesk.support import mail, services
from cspdesk.support.models import Attachment, HeldEmail, Ticket, TicketMessage
from tests.fixtures import DemoWorld

CONTACT = "amministrazione@bellavista.example"  # a billing contact of a demo customer
_ids = itertools.count(1)

HEADER_NAMES = ("From", "Subject", "Message-ID", "In-Reply-To", "References", "Content-Type",
                "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version", "To", "Date")  # fmt: skip
NASTY_VALUES = (
    '"a@b" <', "<", "<<<>>>", "a@", "@", "<a@b>", 'a@b, "c', '"\\', "=?utf-8?b?w6k=?=", "=?x-unknown?q?abc?=",
    "=?utf-8?q?=ZZ?=", "=?utf-8?b?!!!?=", 'multipart/mixed; boundary="b"', "multipart/mixed", "multipart/alternative",
    'text/plain; charset="x-bogus"', "text/plain; charset=utf-7", "text/html; charset=iso-8859-1", "message/rfc822",
    "base64", "quoted-printable", "x-uuencode", "8bit", "attachment; filename*=x''%ff%fe",
    'attachment; filename="=?utf-8?b?!!?="', "attachment; filename*0*=utf-8''a; filename*2=b", "inline; filename=",
)  # fmt: skip

header_value = st.one_of(st.sampled_from(NASTY_VALUES), st.text(max_size=40))
header_lines = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value), max_size=6)
charsets = st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "utf-16", "x-bogus", "", "utf-7", "koi8-r"])
encodings = st.sampled_from(["", "base64", "quoted-printable", "7bit", "8bit", "x-uuencode", "bogus"])
leaf_types = st.sampled_from(["text/plain", "text/html", "application/pdf", "image/png", "message/rfc822", "x/y"])


def _leaf(ctype: str, charset: str, cte: str, payload: bytes, filename: str | None) -> bytes:
    head = f"Content-Type: {ctype}" + (f'; charset="{charset}"' if charset else "")
    lines = [head.encode("utf-8", "surrogateescape")]
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}".encode())
    if filename is not None:
        lines.append(f'Content-Disposition: attachment; filename="{filename}"'.encode("utf-8", "surrogatepass"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


leaves = st.builds(_leaf, leaf_types, charsets, encodings, st.binary(max_size=120),
                   st.none() | st.text(max_size=20))  # fmt: skip


def _multipart(children: list[bytes], subtype: str, boundary: str, closed: bool) -> bytes:
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + c + b"\r\n" for c in children)
    return head + body + ((b"--" + boundary.encode() + b"--\r\n") if closed else b"")


parts = st.recursive(
    leaves,
    lambda inner: st.builds(
        _multipart,
        st.lists(inner, max_size=3),
        st.sampled_from(["mixed", "alternative", "related", "weird"]),
        st.sampled_from(["b", "b1", "=_x", ""]),
        st.booleans(),
    ),
    max_leaves=6,
)


def _message(sender: str | None, headers: list[tuple[str, str]], part: bytes) -> bytes:
    lines = [f"From: {sender}".encode()] if sender is not None else []
    lines += [f"{name}: {value}".encode("utf-8", "surrogatepass") for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n" + part


messages = st.one_of(
    st.builds(
        _message,
        st.sampled_from([CONTACT, f"Amministrazione <{CONTACT}>", "stranger@elsewhere.example"]),
        header_lines,
        parts,
    ),
    st.builds(_message, st.none() | st.text(max_size=30), header_lines, parts),
    st.binary(max_size=300),
)


def _no_nul(text: str) -> bool:
    return "\x00" not in text


def _assert_parsed_is_storable(m: mail.InboundMessage) -> None:
    assert "@" in m.sender and len(m.sender) <= mail.MAX_SENDER
    assert len(m.message_id) <= mail.MAX_MESSAGE_ID
    for text in (m.sender, m.sender_name, m.subject, m.message_id, m.body, *m.references):
        assert _no_nul(text)
        text.encode("utf-8")  # no lone surrogates either
    for a in m.attachments:
        assert a.filename and _no_nul(a.filename)
        assert isinstance(a.data, bytes)


def _assert_fits(obj: models.Model) -> None:
    """Every text value fits its column and holds no NUL (PostgreSQL refuses both; SQLite would not say)."""
    for f in obj._meta.concrete_fields:
        value = getattr(obj, f.attname)
        if isinstance(value, str):
            assert _no_nul(value), f"{type(obj).__name__}.{f.name} holds a NUL"
            if f.max_length is not None:
                assert len(value) <= f.max_length, f"{type(obj).__name__}.{f.name}: {len(value)} > {f.max_length}"


REGRESSIONS = (
    b'From: "a@b" <\r\n\r\nhi',  # IndexError in the modern address-header parser
    b"From: a@b.example\r\nMessage-ID: <\r\n\r\nhi",  # IndexError in the Message-ID parser
    b"From: a@b.example\r\nMessage-ID: <<<>>>\r\n\r\nhi",
    b'From: a@b.example\r\nTo: "a@b" <\r\n\r\nhi',
    b"From: a@b.example\r\nSubject: caf\xe9 \x00x\r\n\r\nbody\x00",  # NUL bytes a database column refuses
)


@settings(max_examples=300)
@given(messages)
@example(REGRESSIONS[0])
@example(REGRESSIONS[1])
@example(REGRESSIONS[2])
@example(REGRESSIONS[3])
@example(REGRESSIONS[4])
@example(b"From: a@b.example\r\nSubject: " + b"x" * 200_000 + b"\r\nReferences: " + b"<r@x> " * 20_000 + b"\r\n\r\n")
@example(b"From: " + b"a" * 400 + b"@b.example\r\n\r\nhi")
def test_parse_returns_a_message_or_a_clear_error(raw: bytes) -> None:
    try:
        parsed = mail.parse(raw)
    except DomainError as exc:
        assert exc.field in {"message", "From", "Content-Type"}
        assert exc.message
        return
    _assert_parsed_is_storable(parsed)


def test_a_broken_address_header_is_read_as_its_raw_text() -> None:
    parsed = mail.parse(b'From: "Anna" <anna@bellavista.example\r\nMessage-ID: <m1@x\r\nSubject: x\r\n\r\nciao')
    assert (parsed.sender, parsed.sender_name, parsed.message_id, parsed.body) == (
        "anna@bellavista.example", "Anna", "m1@x", "ciao")  # fmt: skip


def test_nul_characters_are_dropped_from_text() -> None:
    parsed = mail.parse(REGRESSIONS[4])
    assert (parsed.subject, parsed.body) == ("caf\ufffd x", "body")


def test_an_overlong_sender_address_is_refused_naming_the_header() -> None:
    with pytest.raises(DomainError, match="longer than 254") as exc:
        mail.parse(b"From: " + b"a" * 300 + b"@b.example\r\n\r\nhi")
    assert exc.value.field == "From"


@pytest.mark.django_db
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=messages, fresh_id=st.booleans())
@example(raw=REGRESSIONS[0], fresh_id=False)
@example(raw=REGRESSIONS[4], fresh_id=False)
@example(raw=b"From: " + b"s" * 230 + b"@elsewhere.example\r\n\r\nhi", fresh_id=False)  # reason over 200 chars
@example(raw=f"From: {CONTACT}\r\nSubject: {'S' * 600}\r\nMessage-ID: <{'m' * 300}@x>\r\n\r\n".encode(), fresh_id=False)
def test_take_in_email_files_or_holds_every_message(demo: DemoWorld, raw: bytes, fresh_id: bool) -> None:
    if fresh_id:  # a new Message-ID, so that the message is not a duplicate of an earlier example
        raw = f"Message-ID: <fuzz-{next(_ids)}@x>\r\n".encode() + raw
    agent = demo.actor("nuvola.helpdesk")
    tickets, messages_before, held_before = (
        Ticket.objects.count(),
        TicketMessage.objects.count(),
        HeldEmail.objects.count(),
    )
    outcome = services.take_in_email(agent, raw)
    assert outcome.action in {"opened", "replied", "duplicate", "held"}
    if outcome.action == "held":
        assert outcome.reason
        held = HeldEmail.objects.get(pk=outcome.held_id)
        assert bytes(held.raw) == raw
        _assert_fits(held)
    elif outcome.action == "duplicate":
        assert (Ticket.objects.count(), TicketMessage.objects.count()) == (tickets, messages_before)
    else:
        assert HeldEmail.objects.count() == held_before
        ticket = Ticket.objects.get(pk=outcome.ticket_id)
        _assert_fits(ticket)
        for message in TicketMessage.objects.filter(ticket=ticket):
            _assert_fits(message)
        for attachment in Attachment.objects.filter(message__ticket=ticket):
            _assert_fits(attachment)
        assert TicketMessage.objects.count() > messages_before
