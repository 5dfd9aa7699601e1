"""The periodic jobs and the scheduler's tick. Any number of schedulers may run: a job's slot (its day, or
its window of minutes) is a unique :class:`~cspdesk.core.models.ScheduledRun` row, so one of them enqueues
it and the others see the row. Each tick also sweeps split runs (:func:`cspdesk.core.fanout.sweep`) and
e-mails whose task was lost (:func:`cspdesk.core.outbox.sweep`)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from cspdesk.core import clock, fanout, outbox
from cspdesk.core.models import ScheduledRun

log = logging.getLogger(__name__)


def _collections() -> Any:
    from cspdesk.collections import tasks

    return tasks.start_split_run.enqueue()


def _payables() -> Any:
    from cspdesk.payments import tasks

    return tasks.remind_microsoft_payables.enqueue()


def _support() -> Any:
    from cspdesk.support import tasks

    return tasks.upkeep.enqueue()


@dataclass(frozen=True)
class Job:
    name: str
    enqueue: Callable[[], Any]
    at: dt.time | None = None  # daily, at the first tick on or after this time (UTC)
    every_minutes: int | None = None  # or every N minutes

    def slot(self, now: dt.datetime) -> str | None:
        """The slot ``now`` falls in, or ``None`` when the job is not due yet today."""
        if self.every_minutes:
            minute = (now.hour * 60 + now.minute) // self.every_minutes * self.every_minutes
            return f"{now:%Y-%m-%d}T{minute // 60:02d}:{minute % 60:02d}"
        assert self.at is not None
        return now.date().isoformat() if now.time() >= self.at else None


def _time(name: str, default: str) -> dt.time:
    return dt.time.fromisoformat(str(getattr(settings, name, default)))


def jobs() -> list[Job]:
    return [
        Job("collections.run", _collections, at=_time("CSPDESK_COLLECTIONS_AT", "06:00")),
        Job("payments.payables_reminders", _payables, at=_time("CSPDESK_PAYABLES_REMIND_AT", "07:00")),
        Job("support.upkeep", _support, every_minutes=int(getattr(settings, "CSPDESK_SUPPORT_EVERY_MINUTES", 5))),
    ]


def tick(now: dt.datetime | None = None, *, only: set[str] | None = None) -> dict[str, Any]:
    """Enqueue every job whose slot has come and is not taken; then sweep split runs."""
    now = now or clock.now()
    enqueued: list[dict[str, str]] = []
    for job in jobs():
        if only is not None and job.name not in only:
            continue
        slot = job.slot(now)
        if slot is None:
            continue
        try:
            with transaction.atomic():
                row = ScheduledRun.objects.create(job=job.name, slot=slot)
                result = job.enqueue()  # a failed enqueue rolls the slot back: the next tick tries again
                row.task_id = str(getattr(result, "id", ""))[:64]
                row.save(update_fields=["task_id"])
        except IntegrityError:
            continue  # another scheduler (or an earlier tick) took the slot
        except Exception:
            log.exception("could not enqueue %s for %s", job.name, slot)
            continue
        enqueued.append({"job": job.name, "slot": slot, "task_id": row.task_id})
    swept = fanout.sweep().as_dict()
    return {"at": now.isoformat(), "enqueued": enqueued, "swept": swept, "mails": outbox.sweep()}
