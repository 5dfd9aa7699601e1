"""E-mail written with a change goes out after the change commits, once: a rollback takes it back, a refused
send is retried and then given up for a person to look at, and a sender that died holding it is taken over."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.db import transaction

from cspdesk.audit.models import AuditEvent
from cspdesk.core import clock, outbox
from cspdesk.core.models import MailStatus, OutboundMail

pytestmark = pytest.mark.django_db


class RefusingBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("smtp.example.test:25 refused the connection")


def _queue(key: str = "test.event:1") -> OutboundMail:
    return outbox.queue(key, subject="Reminder: invoice IT-2026-0001", body="Please pay.", to=["ap@example.com"],
                        source="test.reminder", organisation_id=1, customer_id=2)  # fmt: skip


def test_a_rolled_back_change_takes_its_mail_with_it() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        _queue()
        raise RuntimeError("the change failed after writing its e-mail")
    assert outbox.flush() == {}
    assert mail.outbox == [] and not OutboundMail.objects.exists()


def test_a_queued_mail_goes_once_with_a_message_id_fixed_when_it_was_written() -> None:
    queued = _queue()
    assert _queue().pk == queued.pk  # the same event queued again is the same mail
    assert outbox.flush() == {"sent": 1}
    assert outbox.flush() == {} and outbox.deliver(queued.pk) == "skipped"
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["ap@example.com"] and sent.subject == "Reminder: invoice IT-2026-0001"
    assert sent.extra_headers["Message-ID"] == queued.message_id
    assert queued.message_id.startswith("<") and queued.message_id.endswith("@cspdesk.localhost>")
    assert ".outbox." in queued.message_id  # and unique: one queued for another event has its own
    assert outbox.queue("test:other", subject="S", body="B", to=["a@example.com"], source="test").message_id != (
        queued.message_id
    )
    queued.refresh_from_db()
    assert queued.status == MailStatus.SENT and queued.sent_at is not None and queued.attempts == 1
    event = AuditEvent.objects.get(action="mail.sent")
    assert (event.customer_id, event.object_id, event.after["to"]) == (2, str(queued.pk), ["ap@example.com"])


def test_a_refused_mail_is_retried_then_given_up_until_someone_retries_it(settings: Any) -> None:
    settings.CSPDESK_MAIL_MAX_ATTEMPTS = 2
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    queued = _queue()
    assert outbox.flush() == {"retry": 1}
    queued.refresh_from_db()
    assert queued.status == MailStatus.PENDING
    assert queued.last_error == "ConnectionRefusedError: smtp.example.test:25 refused the connection"
    assert outbox.flush() == {"failed": 1}
    assert OutboundMail.objects.get().status == MailStatus.FAILED
    assert AuditEvent.objects.get(action="mail.failed").after["attempts"] == 2

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert outbox.flush() == {}  # given up: nothing goes out by itself
    out = StringIO()
    call_command("outbox", "--json", stdout=out)
    listed = json.loads(out.getvalue())["mails"]
    assert [(m["key"], m["status"], m["attempts"]) for m in listed] == [("test.event:1", "failed", 2)]
    out = StringIO()
    call_command("outbox", "--retry-failed", "--send", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert (data["requeued"], data["sent"], data["mails"]) == (1, {"sent": 1}, [])
    assert [m.subject for m in mail.outbox] == ["Reminder: invoice IT-2026-0001"]
    assert AuditEvent.objects.filter(action="mail.requeued").count() == 1


def test_a_mail_held_by_a_sender_that_died_is_taken_over_after_the_claim_runs_out() -> None:
    queued = _queue()
    assert outbox._claim(queued.pk)  # a worker took it and was killed before it sent
    assert outbox.flush() == {}
    later = clock.now() + outbox.claim_timeout() + dt.timedelta(seconds=1)
    with clock.frozen(later):
        assert outbox.flush() == {"sent": 1}
    assert mail.outbox[0].extra_headers["Message-ID"] == queued.message_id
    assert OutboundMail.objects.get().attempts == 2


def test_the_sweep_enqueues_only_mails_whose_own_task_was_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = _queue("test.event:fresh")
    old = _queue("test.event:old")
    OutboundMail.objects.filter(pk=old.pk).update(created_at=clock.now() - dt.timedelta(minutes=5))
    sent = _queue("test.event:sent")
    outbox.deliver(sent.pk)
    enqueued: list[int] = []
    monkeypatch.setattr(outbox, "_enqueue", enqueued.append)
    assert outbox.sweep() == 1
    assert enqueued == [old.pk]
    assert {m.key for m in outbox.due()} == {fresh.key, old.key}
