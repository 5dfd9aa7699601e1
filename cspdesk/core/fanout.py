"""A run split into parts that workers do in parallel, each exactly once, and summed up when all are done.

:func:`start` (inside the caller's transaction) writes a :class:`~cspdesk.core.models.WorkBatch` and one
:class:`~cspdesk.core.models.WorkPart` per key and enqueues one task per part after the commit.
:func:`run_part` claims a part with a lease, runs the batch's handler and marks the part done; for an
``atomic`` batch the handler's writes and ``done`` commit together, so a worker killed in the middle leaves
nothing behind and the retry starts clean. The last part to finish runs the finisher (under a lock on the
batch row, once). :func:`sweep` — run by ``cspdesk scheduler`` every tick — re-enqueues parts whose worker
died (lease expired), that failed (up to ``CSPDESK_WORK_MAX_ATTEMPTS``) or whose enqueue was lost, and
finishes batches whose last part died between its commit and the finisher. Nothing lives in process memory:
any worker may do any part, any scheduler may sweep.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils.module_loading import import_string

from . import clock
from .actor import Actor, ActorKind
from .models import BatchStatus, PartState, WorkBatch, WorkPart
from .output import to_jsonable

log = logging.getLogger(__name__)


class PartHandler(Protocol):
    def __call__(self, batch: WorkBatch, part: WorkPart) -> dict[str, Any]: ...


class Finisher(Protocol):
    def __call__(self, batch: WorkBatch) -> dict[str, Any]: ...


def lease() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "CSPDESK_WORK_LEASE_SECONDS", 600)))


def max_attempts() -> int:
    return int(getattr(settings, "CSPDESK_WORK_MAX_ATTEMPTS", 5))


def actor_json(actor: Actor) -> dict[str, Any]:
    return {"kind": actor.kind.value, "user_id": actor.user_id, "username": actor.username,
            "organisation_id": actor.organisation_id, "customer_id": actor.customer_id,
            "roles": sorted(actor.roles), "request_id": actor.request_id}  # fmt: skip


def actor_of(data: dict[str, Any]) -> Actor:
    return Actor(kind=ActorKind(data["kind"]), user_id=data.get("user_id"), username=data.get("username", "system"),
                 organisation_id=data.get("organisation_id"), customer_id=data.get("customer_id"),
                 roles=frozenset(data.get("roles", [])), request_id=data.get("request_id"))  # fmt: skip


def start(
    kind: str,
    key: str,
    parts: Iterable[tuple[str, dict[str, Any]]],
    *,
    handler: str,
    finisher: str = "",
    params: dict[str, Any] | None = None,
    atomic: bool = True,
) -> WorkBatch:
    """Write the batch and its parts in the caller's transaction; their tasks are enqueued after the commit."""
    batch = WorkBatch.objects.create(kind=kind, key=key, handler=handler, finisher=finisher, atomic=atomic,
                                     params=to_jsonable(params or {}))  # fmt: skip
    WorkPart.objects.bulk_create([WorkPart(batch=batch, key=k, args=to_jsonable(a)) for k, a in parts])
    ids = list(batch.parts.order_by("key").values_list("pk", flat=True))
    if ids:
        transaction.on_commit(lambda: enqueue(ids))
    else:
        transaction.on_commit(lambda: finish_if_complete(batch.pk))
    return batch


def enqueue(part_ids: list[int]) -> int:
    """Put one task per part on the queue; a failed enqueue is left to the sweep."""
    from . import tasks

    sent = 0
    for pk in part_ids:
        try:
            WorkPart.objects.filter(pk=pk).update(enqueued_at=clock.now())
            tasks.run_part.enqueue(pk)
            sent += 1
        except Exception:  # the queue is down: the sweep enqueues it again later
            log.exception("could not enqueue work part %s", pk)
    return sent


def _claim(part_id: int) -> bool:
    now = clock.now()
    claimable = (
        Q(state=PartState.PENDING)
        | Q(state=PartState.RUNNING, leased_until__lt=now)
        | Q(state=PartState.FAILED, attempts__lt=max_attempts())
    )
    return bool(
        WorkPart.objects.filter(claimable, pk=part_id).update(
            state=PartState.RUNNING, leased_until=now + lease(), attempts=F("attempts") + 1
        )
    )


def run_part(part_id: int) -> dict[str, Any]:
    """Do one part (the task body). A part done, running elsewhere or out of attempts is left alone."""
    if not _claim(part_id):
        return {"part": part_id, "skipped": True}
    part = WorkPart.objects.select_related("batch").get(pk=part_id)
    handler: PartHandler = import_string(part.batch.handler)
    try:
        if part.batch.atomic:
            with transaction.atomic():
                part = WorkPart.objects.select_for_update().select_related("batch").get(pk=part_id)
                if part.state == PartState.DONE:
                    return {"part": part_id, "skipped": True}
                result = _done(part, handler(part.batch, part))
        else:
            result = handler(part.batch, part)
            with transaction.atomic():
                _done(WorkPart.objects.select_for_update().select_related("batch").get(pk=part_id), result)
    except Exception as exc:
        try:
            WorkPart.objects.filter(pk=part_id, state=PartState.RUNNING).update(
                state=PartState.FAILED, leased_until=None, error=f"{type(exc).__name__}: {exc}"[:4000]
            )
        except DatabaseError:  # the database itself is gone: the lease runs out and the sweep retries
            log.warning("work part %s failed and could not be marked failed", part_id)
        raise
    finish_if_complete(part.batch_id)
    return {"part": part_id, **result}


def _done(part: WorkPart, result: dict[str, Any]) -> dict[str, Any]:
    part.state, part.result, part.error = PartState.DONE, to_jsonable(result), ""
    part.leased_until, part.finished_at = None, clock.now()
    part.save(update_fields=["state", "result", "error", "leased_until", "finished_at"])
    return result


def finish_if_complete(batch_id: int) -> bool:
    """Run the finisher once every part is done (the batch row's lock makes it once)."""
    with transaction.atomic():
        batch = WorkBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == BatchStatus.DONE:
            return True
        if batch.parts.exclude(state=PartState.DONE).exists():
            return False
        finisher: Finisher | None = import_string(batch.finisher) if batch.finisher else None
        batch.result = to_jsonable(finisher(batch)) if finisher else {}
        batch.status, batch.finished_at = BatchStatus.DONE, clock.now()
        batch.save(update_fields=["result", "status", "finished_at"])
    return True


@dataclass
class Swept:
    requeued: list[int]
    finished: list[int]
    stuck: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"requeued": self.requeued, "finished": self.finished, "stuck": self.stuck}


def sweep() -> Swept:
    """Re-enqueue parts a dead worker held, failed parts with attempts left, and parts whose enqueue was
    lost; finish batches that are complete. Safe to run anywhere, any time, twice at once."""
    now = clock.now()
    stale = now - lease()
    due = WorkPart.objects.filter(batch__status=BatchStatus.RUNNING).filter(
        Q(state=PartState.RUNNING, leased_until__lt=now)
        | Q(state=PartState.FAILED, attempts__lt=max_attempts(), enqueued_at__lt=now - retry_delay())
        | Q(state=PartState.PENDING, enqueued_at__isnull=True)
        | Q(state=PartState.PENDING, enqueued_at__lt=stale)
    )
    ids = sorted(due.values_list("pk", flat=True))
    enqueue(ids)
    finished = [
        pk
        for pk in WorkBatch.objects.filter(status=BatchStatus.RUNNING)
        .exclude(parts__state__in=[PartState.PENDING, PartState.RUNNING, PartState.FAILED])
        .values_list("pk", flat=True)
        if finish_if_complete(pk)
    ]
    stuck = sorted(
        WorkPart.objects.filter(batch__status=BatchStatus.RUNNING, state=PartState.FAILED,
                                attempts__gte=max_attempts()).values_list("pk", flat=True)
    )  # fmt: skip
    return Swept(ids, finished, stuck)


def retry_delay() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "CSPDESK_WORK_RETRY_SECONDS", 30)))


def drain(batch_id: int) -> None:
    """Do every part still open in this process (the single-process path: a demo, a test, no worker)."""
    open_parts = WorkPart.objects.filter(batch_id=batch_id).exclude(state=PartState.DONE).order_by("key")
    for pk in list(open_parts.values_list("pk", flat=True)):
        run_part(pk)
    finish_if_complete(batch_id)


def wait(batch_id: int, *, timeout: float, poll: float = 0.5, sweep_every: float = 10.0) -> WorkBatch:
    """Block until the batch is done (sweeping now and then so a dead worker's part is picked up again)."""
    deadline = time.monotonic() + timeout
    next_sweep = time.monotonic() + sweep_every
    while True:
        batch = WorkBatch.objects.get(pk=batch_id)
        if batch.status == BatchStatus.DONE:
            return batch
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{batch} is not done after {timeout:.0f}s: {progress(batch_id)}")
        if time.monotonic() >= next_sweep:
            sweep()
            next_sweep = time.monotonic() + sweep_every
        time.sleep(poll)


def progress(batch_id: int) -> dict[str, int]:
    counts = {state: 0 for state in PartState.values}
    for state in WorkPart.objects.filter(batch_id=batch_id).values_list("state", flat=True):
        counts[state] += 1
    return counts
