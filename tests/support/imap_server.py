"""A small IMAP4rev1 server on 127.0.0.1 for tests: LOGIN, SELECT, UID SEARCH, UID FETCH, UID STORE, LOGOUT
over an in-memory mailbox — enough for imap-tools to talk to as it talks to a real server."""

from __future__ import annotations

import re
import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class Mailbox:
    user: str = "desk@nuvola.example"
    password: str = "imap-secret"
    messages: dict[int, tuple[bytes, set[str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, raw: bytes) -> int:
        with self.lock:
            uid = max(self.messages, default=0) + 1
            self.messages[uid] = (raw, set())
            return uid


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def send(self, line: str | bytes) -> None:
        self.wfile.write((line.encode() if isinstance(line, str) else line) + b"\r\n")

    def handle(self) -> None:
        box = self.server.mailbox
        self.send("* OK [CAPABILITY IMAP4rev1] cspdesk test IMAP ready")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                self.send("* CAPABILITY IMAP4rev1")
            elif command == "LOGIN":
                user, password = (a.strip('"') for a in args.split(" ", 1))
                if (user, password) != (box.user, box.password):
                    self.send(f"{tag} NO [AUTHENTICATIONFAILED] invalid credentials")
                    continue
            elif command == "SELECT":
                self.send(f"* {len(box.messages)} EXISTS")
                self.send("* OK [UIDVALIDITY 1] ok")
                self.send(f"{tag} OK [READ-WRITE] selected")
                continue
            elif command == "UID":
                self._uid(tag, args, box)
                continue
            elif command == "LOGOUT":
                self.send("* BYE bye")
                self.send(f"{tag} OK bye")
                return
            self.send(f"{tag} OK done")

    def _uid(self, tag: str, args: str, box: Mailbox) -> None:
        sub, _, rest = args.partition(" ")
        sub = sub.upper()
        with box.lock:
            if sub == "SEARCH":
                unseen = "UNSEEN" in rest.upper()
                uids = [str(u) for u, (_, flags) in sorted(box.messages.items()) if not (unseen and "\\Seen" in flags)]
                self.send("* SEARCH " + " ".join(uids))
            elif sub == "FETCH":
                for uid in (int(u) for u in rest.split(" ", 1)[0].split(",")):
                    raw, flags = box.messages[uid]
                    head = f"* {uid} FETCH (UID {uid} FLAGS ({' '.join(sorted(flags))}) RFC822.SIZE {len(raw)} "
                    self.send(head.encode() + f"BODY[] {{{len(raw)}}}".encode())
                    self.wfile.write(raw)
                    self.send(")")
            elif sub == "STORE":
                uid_text, _, change = rest.partition(" ")
                for uid in (int(u) for u in uid_text.split(",")):
                    flags = box.messages[uid][1]
                    names = set(re.findall(r"\\\w+", change))
                    if change.startswith("+"):
                        flags |= names
                    elif change.startswith("-"):
                        flags -= names
                    self.send(f"* {uid} FETCH (UID {uid} FLAGS ({' '.join(sorted(flags))}))")
        self.send(f"{tag} OK UID {sub} done")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    mailbox: Mailbox


def serve(mailbox: Mailbox) -> tuple[_Server, int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.mailbox = mailbox
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])
