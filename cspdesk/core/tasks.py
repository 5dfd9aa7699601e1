"""Background entry points of the shared kit: one part of a split run, and the sweep. Thin, safe to retry."""

from __future__ import annotations

from typing import Any

from django_tasks import task

from . import fanout


@task()
def run_part(part_id: int) -> dict[str, Any]:
    """Do one part of a split run (a billing run's buyer, a collections run's customer) exactly once."""
    return fanout.run_part(part_id)


@task()
def sweep() -> dict[str, Any]:
    """Re-enqueue parts whose worker died or failed; finish complete batches."""
    return fanout.sweep().as_dict()


@task()
def deliver_mail(mail_id: int) -> str:
    """Send one queued e-mail (see :mod:`cspdesk.core.outbox`); a mail already sent or held elsewhere is skipped."""
    from . import outbox

    return outbox.deliver(mail_id)
