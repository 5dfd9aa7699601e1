"""E-mail intake with real RFC 822 messages: new tickets, threaded replies, non-UTF-8 text, attachments,
unknown senders held for review, and the same message twice taken in once."""

from __future__ import annotations

from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from cspdesk.support import services
from cspdesk.support.models import Attachment, HeldEmail, Status, Ticket, TicketMessage
from tests.fixtures import DemoWorld

pytestmark = pytest.mark.django_db


def _message(sender: str, subject: str, body: str, message_id: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@nuvola.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def test_a_contact_opens_a_ticket_and_replies_thread_into_it(demo: DemoWorld) -> None:
    agent = demo.actor("nuvola.helpdesk")
    first = services.take_in_email(agent, _message(
        "Amministrazione <amministrazione@bellavista.example>", "Fattura di ottobre", "Perché l'importo è cambiato?",
        "m1@bellavista.example"))  # fmt: skip
    assert first.action == "opened"
    ticket = Ticket.objects.get(pk=first.ticket_id)
    assert (ticket.customer, ticket.channel, ticket.requester_email) == (
        demo.customer("bellavista"), "email", "amministrazione@bellavista.example")  # fmt: skip
    services.change_status(agent, ticket.pk, Status.PENDING_CUSTOMER)
    by_subject = services.take_in_email(
        agent,
        _message(
            "amministrazione@bellavista.example",
            f"Re: [{ticket.reference}] Fattura di ottobre",
            "Grazie, ecco i dettagli.\n\nIl giorno 20 nov 2026 Nuvola ha scritto:\n> vecchio testo",
            "m2@bellavista.example",
        ),
    )
    by_header = services.take_in_email(agent, _message(
        "amministrazione@bellavista.example", "Re: Fattura", "Un'altra domanda.", "m3@bellavista.example",
        In_Reply_To="<m1@bellavista.example>", References="<m1@bellavista.example>"))  # fmt: skip
    assert (by_subject.action, by_subject.ticket_id) == ("replied", ticket.pk)
    assert (by_header.action, by_header.ticket_id) == ("replied", ticket.pk)
    bodies = list(TicketMessage.objects.filter(ticket=ticket, kind="public").values_list("body", flat=True))
    assert bodies == ["Perché l'importo è cambiato?", "Grazie, ecco i dettagli.", "Un'altra domanda."]
    ticket.refresh_from_db()
    assert ticket.status == Status.OPEN  # the customer's answer ends "pending customer"


def test_the_same_message_twice_is_taken_in_once(demo: DemoWorld) -> None:
    agent = demo.actor("nuvola.helpdesk")
    raw = _message("ap@prairie.example", "Invoice copy", "Please resend.", "dup@prairie.example")
    first = services.take_in_email(agent, raw)
    again = services.take_in_email(agent, raw)
    assert again.action == "duplicate" and again.ticket_id == first.ticket_id
    assert Ticket.objects.count() == 1 and TicketMessage.objects.count() == 1


def test_a_hungarian_message_in_iso_8859_2_keeps_its_letters(demo: DemoWorld) -> None:
    body = "Tisztelt Ügyfélszolgálat! A számlán szereplő összeg hibás: kérjük ellenőrizzék. Győr, ő ű"
    msg = MIMEText(body, "plain", "iso-8859-2")
    msg["From"] = "penzugy@gyorigep.example"
    msg["Subject"] = "=?iso-8859-2?q?Sz=E1mla_hib=E1s?="
    msg["Message-ID"] = "<hu1@gyorigep.example>"
    raw = msg.as_bytes()
    assert "ő".encode() not in raw  # really not UTF-8 on the wire
    outcome = services.take_in_email(demo.actor("fjall.helpdesk"), raw)
    ticket = Ticket.objects.get(pk=outcome.ticket_id)
    assert ticket.subject == "Számla hibás"
    assert ticket.organisation == demo.org("fjall")
    assert TicketMessage.objects.get(ticket=ticket).body == body


def test_attachments_are_kept_and_refused_ones_are_explained(demo: DemoWorld, settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    msg = MIMEMultipart()
    msg["From"] = "ekonomi@angstrom.example"
    msg["Subject"] = "Skärmbild"
    msg["Message-ID"] = "<att1@angstrom.example>"
    msg.attach(MIMEText("Se bilagan.", "plain", "utf-8"))
    pdf = MIMEApplication(b"%PDF-1.4 fake", "pdf")
    pdf.add_header("Content-Disposition", "attachment", filename="faktura.pdf")
    exe = MIMEApplication(b"MZ\x90\x00", "x-msdownload")
    exe.add_header("Content-Disposition", "attachment", filename="setup.exe")
    msg.attach(pdf)
    msg.attach(exe)
    outcome = services.take_in_email(demo.actor("fjall.helpdesk"), msg.as_bytes())
    kept = Attachment.objects.get()
    assert (kept.filename, kept.content_type, kept.size) == ("faktura.pdf", "application/pdf", 13)
    assert (tmp_path / kept.path).read_bytes() == b"%PDF-1.4 fake"
    note = TicketMessage.objects.get(ticket_id=outcome.ticket_id, kind="system")
    assert "setup.exe: files of type application/x-msdownload are not accepted" in note.body


def test_unknown_senders_are_held_whole_for_review(demo: DemoWorld) -> None:
    raw = _message("stranger@elsewhere.example", "Hello", "Sell me Azure", "s1@elsewhere.example")
    outcome = services.take_in_email(demo.actor("nuvola.helpdesk"), raw)
    assert outcome.action == "held"
    held = HeldEmail.objects.get(pk=outcome.held_id)
    assert bytes(held.raw) == raw
    assert held.reason == "stranger@elsewhere.example is not a known customer contact"
    assert Ticket.objects.count() == 0


def test_another_partners_customer_is_not_placed_under_this_partner(demo: DemoWorld) -> None:
    raw = _message("penzugy@gyorigep.example", "Számla", "?", "x1@gyorigep.example")
    assert services.take_in_email(demo.actor("nuvola.helpdesk"), raw).action == "held"


def test_garbage_is_held_not_crashed(demo: DemoWorld) -> None:
    outcome = services.take_in_email(demo.actor("nuvola.helpdesk"), b"\x00\x01 not a message")
    assert outcome.action == "held"
    assert "no sender address" in outcome.reason


def test_inbound_endpoint_takes_a_raw_message(demo: DemoWorld) -> None:
    raw = _message("accounts@liffey.example", "Licence count", "We need 5 more E3.", "api1@liffey.example")
    response = demo.api("nuvola.helpdesk").post("/api/v1/mail/inbound", data=raw, content_type="message/rfc822")
    assert response.status_code == 200
    assert response.json()["action"] == "opened"


def test_mail_ingest_and_tickets_commands(demo: DemoWorld, tmp_path) -> None:
    import io
    import json

    from django.core.management import call_command

    path = tmp_path / "m.eml"
    path.write_bytes(_message("accounts@liffey.example", "Need help", "Hello", "cli1@liffey.example"))
    out = io.StringIO()
    call_command("mail", "ingest", str(path), json=True, stdout=out)
    [result] = json.loads(out.getvalue())
    assert result["action"] == "opened"
    out = io.StringIO()
    call_command("tickets", json=True, status="new", stdout=out)
    rows = json.loads(out.getvalue())
    assert [(r["reference"], r["customer"], r["escalation_vehicle"]) for r in rows] == [
        (result["reference"], "Liffey Analytics Ltd", None)]  # fmt: skip
