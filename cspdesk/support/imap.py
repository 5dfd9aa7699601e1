"""`cspdesk mail fetch`: poll an IMAP mailbox with imap-tools and file each unseen message.

A message is marked seen only after it was filed (committed), so a crash in between fetches it again, and
filing is idempotent by Message-ID: every message is taken in exactly once.

Settings (environment): CSPDESK_IMAP_HOST, CSPDESK_IMAP_PORT (993), CSPDESK_IMAP_USER, CSPDESK_IMAP_PASSWORD,
CSPDESK_IMAP_FOLDER (INBOX), CSPDESK_IMAP_SSL (1; 0 for a plain connection, e.g. a local test server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from imap_tools import AND, MailBox, MailBoxUnencrypted, MailMessageFlags

from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError

from . import services


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str
    folder: str = "INBOX"
    ssl: bool = True

    @classmethod
    def from_environment(cls) -> ImapSettings:
        host = os.environ.get("CSPDESK_IMAP_HOST", "")
        if not host:
            raise DomainError("no mailbox configured: set CSPDESK_IMAP_HOST, _USER and _PASSWORD", code="no_mailbox")
        ssl = os.environ.get("CSPDESK_IMAP_SSL", "1").lower() not in {"0", "false", "no"}
        return cls(
            host=host,
            port=int(os.environ.get("CSPDESK_IMAP_PORT", "993" if ssl else "143")),
            user=os.environ.get("CSPDESK_IMAP_USER", ""),
            password=os.environ.get("CSPDESK_IMAP_PASSWORD", ""),
            folder=os.environ.get("CSPDESK_IMAP_FOLDER", "INBOX"),
            ssl=ssl,
        )


def fetch(actor: Actor, cfg: ImapSettings, limit: int = 200) -> list[dict[str, Any]]:
    """File up to ``limit`` unseen messages; returns one outcome per message."""
    box_class = MailBox if cfg.ssl else MailBoxUnencrypted
    outcomes = []
    with box_class(cfg.host, port=cfg.port).login(cfg.user, cfg.password, initial_folder=cfg.folder) as box:
        for msg in box.fetch(AND(seen=False), mark_seen=False, limit=limit):
            raw = msg.obj.as_bytes()
            outcome = services.take_in_email(actor, raw)
            if msg.uid:
                box.flag(msg.uid, MailMessageFlags.SEEN, True)
            outcomes.append({"uid": msg.uid, **outcome.as_dict()})
    return outcomes
