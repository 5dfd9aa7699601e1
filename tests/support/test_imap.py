"""`cspdesk mail fetch` against a local IMAP server: unseen messages are filed once and marked seen."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from cspdesk.core.actor import Actor
from cspdesk.support import imap
from cspdesk.support.models import HeldEmail, Ticket
from tests.fixtures import DemoWorld
from tests.support.imap_server import Mailbox, serve

pytestmark = pytest.mark.django_db


def _raw(sender: str, subject: str, message_id: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("Hej! Vi behöver hjälp med Azure-fakturan.")
    return msg.as_bytes()


@pytest.fixture
def mailbox():
    box = Mailbox()
    server, port = serve(box)
    yield box, imap.ImapSettings("127.0.0.1", port, box.user, box.password, ssl=False)
    server.shutdown()
    server.server_close()


def test_unseen_messages_are_filed_once_and_marked_seen(demo: DemoWorld, mailbox) -> None:
    box, cfg = mailbox
    box.add(_raw("ekonomi@angstrom.example", "Fakturafråga", "imap1@angstrom.example"))
    box.add(_raw("nobody@nowhere.example", "Spam", "imap2@nowhere.example"))
    outcomes = imap.fetch(Actor.system("test"), cfg)
    assert [(o["uid"], o["action"]) for o in outcomes] == [("1", "opened"), ("2", "held")]
    assert all("\\Seen" in flags for _, flags in box.messages.values())
    assert Ticket.objects.get().subject == "Fakturafråga"
    assert HeldEmail.objects.count() == 1
    assert imap.fetch(Actor.system("test"), cfg) == []  # nothing new
    box.messages[1][1].discard("\\Seen")  # e.g. a crash before the flag was stored: fetched again, filed once
    assert [o["action"] for o in imap.fetch(Actor.system("test"), cfg)] == ["duplicate"]
    assert Ticket.objects.count() == 1


def test_wrong_credentials_fail_clearly(demo: DemoWorld, mailbox) -> None:
    from imap_tools.errors import MailboxLoginError

    _, cfg = mailbox
    with pytest.raises(MailboxLoginError):
        imap.fetch(Actor.system("test"), imap.ImapSettings(cfg.host, cfg.port, cfg.user, "wrong", ssl=False))
