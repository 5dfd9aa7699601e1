"""E-mail that goes out only once the change it reports is committed, once.

A service writes the e-mail with :func:`queue` inside its own transaction. A rollback (an error, a worker killed
before the commit) takes the e-mail with it, so the retry that redoes the change writes it again and only that
one is sent. After the commit, :func:`deliver` sends it: the task enqueued on commit, a run's :func:`flush` and
the scheduler's :func:`sweep` may all try; a conditional update (the claim) lets exactly one of them send.

The one window no outbox can close: a sender killed after the mail server accepted the message and before it
marked the row sent. The row's claim then runs out and the message is sent again, with the same Message-ID, so
mail clients show it once. A failed send is retried up to :func:`max_attempts` times, then the row is marked
failed (and audited) for a person to look at (``cspdesk outbox``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
from collections.abc import Sequence
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, Q, QuerySet

from . import clock
from .actor import Actor
from .models import MailStatus, OutboundMail

log = logging.getLogger(__name__)
SYSTEM = Actor.system("outbox")


def claim_timeout() -> dt.timedelta:
    """How long a sender may hold a mail before another one takes it over (it must have died)."""
    return dt.timedelta(seconds=int(getattr(settings, "CSPDESK_MAIL_CLAIM_SECONDS", 600)))


def max_attempts() -> int:
    return int(getattr(settings, "CSPDESK_MAIL_MAX_ATTEMPTS", 5))


def _domain(from_email: str) -> str:
    return from_email.rpartition("@")[2].strip(" >") or "cspdesk.localhost"


def queue(
    key: str,
    *,
    subject: str,
    body: str,
    to: Sequence[str],
    source: str,
    organisation_id: int | None = None,
    customer_id: int | None = None,
) -> OutboundMail:
    """Write the e-mail about event ``key`` in the caller's transaction; it is sent after the commit.

    The same key queued again (a retried step that did commit the first time) gives the row already written.
    """
    existing = OutboundMail.objects.filter(key=key).first()
    if existing is not None:
        return existing
    from_email = str(settings.DEFAULT_FROM_EMAIL)
    mail = OutboundMail.objects.create(
        key=key, source=source, organisation_id=organisation_id, customer_id=customer_id, from_email=from_email,
        to=list(to), subject=subject, body=body,
        message_id=make_msgid(idstring=f"outbox.{secrets.token_hex(8)}", domain=_domain(from_email)),
    )  # fmt: skip
    pk = mail.pk
    transaction.on_commit(lambda: _enqueue(pk))
    return mail


def _enqueue(pk: int) -> None:
    from . import tasks

    try:
        tasks.deliver_mail.enqueue(pk)
    except Exception:  # the queue is down: a run's flush or the scheduler's sweep sends it
        log.exception("could not enqueue outbound mail %s", pk)


def _claimable(now: dt.datetime) -> Q:
    return Q(status=MailStatus.PENDING) & (Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - claim_timeout()))


def _claim(pk: int) -> bool:
    now = clock.now()
    return bool(OutboundMail.objects.filter(_claimable(now), pk=pk).update(claimed_at=now, attempts=F("attempts") + 1))


def deliver(pk: int) -> str:
    """Send one queued e-mail unless another sender has it or it went already. Returns what happened:
    ``sent``, ``retry`` (the server refused; tried again later), ``failed`` (out of attempts) or ``skipped``."""
    if not _claim(pk):
        return "skipped"
    mail = OutboundMail.objects.get(pk=pk)
    message = EmailMessage(subject=mail.subject, body=mail.body, from_email=mail.from_email or None, to=mail.to,
                           headers={"Message-ID": mail.message_id})  # fmt: skip
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # any transport error: the row keeps the reason and the next sender retries
        return _failed(mail, f"{type(exc).__name__}: {exc}")
    with transaction.atomic():
        OutboundMail.objects.filter(pk=pk).update(status=MailStatus.SENT, sent_at=clock.now(), claimed_at=None,
                                                  last_error="")  # fmt: skip
        _audit("mail.sent", mail, {"to": mail.to, "subject": mail.subject, "attempt": mail.attempts})
    return "sent"


def _failed(mail: OutboundMail, error: str) -> str:
    out_of_attempts = mail.attempts >= max_attempts()
    status = MailStatus.FAILED if out_of_attempts else MailStatus.PENDING
    with transaction.atomic():
        OutboundMail.objects.filter(pk=mail.pk).update(status=status, claimed_at=None, last_error=error[:2000])
        if out_of_attempts:
            _audit("mail.failed", mail, {"to": mail.to, "subject": mail.subject, "attempts": mail.attempts,
                                         "error": error})  # fmt: skip
    log.warning("sending mail %s (%s) failed, attempt %s: %s", mail.pk, mail.key, mail.attempts, error)
    return "failed" if out_of_attempts else "retry"


def _audit(action: str, mail: OutboundMail, after: dict[str, Any]) -> None:
    from cspdesk.audit import services as audit

    audit.record(SYSTEM, action, obj=mail, organisation_id=mail.organisation_id, customer_id=mail.customer_id,
                 after=after)  # fmt: skip


def due() -> QuerySet[OutboundMail]:
    """Mails waiting to be sent that nobody holds now."""
    return OutboundMail.objects.filter(_claimable(clock.now())).order_by("pk")


def flush(limit: int | None = None) -> dict[str, int]:
    """Send every mail that is due, here and now (a run's last step; ``cspdesk outbox --send``)."""
    counts: dict[str, int] = {}
    ids = list(due().values_list("pk", flat=True)[:limit] if limit else due().values_list("pk", flat=True))
    for pk in ids:
        outcome = deliver(pk)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def sweep(older_than: dt.timedelta = dt.timedelta(minutes=1)) -> int:
    """Enqueue a task for each due mail queued more than ``older_than`` ago (its own task was lost or failed)."""
    ids = list(due().filter(created_at__lt=clock.now() - older_than).values_list("pk", flat=True))
    for pk in ids:
        _enqueue(pk)
    return len(ids)


def retry_failed() -> int:
    """Give every failed mail a fresh set of attempts (after the mail server was mended); audited."""
    with transaction.atomic():
        failed = list(OutboundMail.objects.select_for_update().filter(status=MailStatus.FAILED))
        OutboundMail.objects.filter(pk__in=[m.pk for m in failed]).update(status=MailStatus.PENDING, attempts=0,
                                                                          claimed_at=None)  # fmt: skip
        for mail in failed:
            _audit("mail.requeued", mail, {"to": mail.to, "subject": mail.subject, "last_error": mail.last_error})
            transaction.on_commit(functools.partial(_enqueue, mail.pk))
    return len(failed)
