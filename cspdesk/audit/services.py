"""Recording audit events: the only write path into the log."""

from __future__ import annotations

from typing import Any

from django.db import models

from cspdesk.core.actor import Actor
from cspdesk.core.output import to_jsonable

from .models import AuditEvent


def snapshot(instance: models.Model, fields: list[str] | None = None) -> dict[str, Any]:
    """The concrete field values of ``instance`` as JSON-ready data (foreign keys as ids)."""
    data: dict[str, Any] = {}
    for f in instance._meta.concrete_fields:
        if fields is not None and f.name not in fields:
            continue
        data[f.name] = to_jsonable(getattr(instance, f.attname))
    return data


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose values differ."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def _event(actor: Actor, action: str, *, obj: models.Model | None = None, object_type: str | None = None,
           object_id: Any = None, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           organisation_id: int | None = None, customer_id: int | None = None) -> AuditEvent:  # fmt: skip
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = obj.pk if object_id is None else object_id
    return AuditEvent(
        actor_kind=actor.kind.value,
        actor_user_id=actor.user_id,
        actor_username=actor.username,
        organisation_id=organisation_id if organisation_id is not None else actor.organisation_id,
        customer_id=customer_id if customer_id is not None else actor.customer_id,
        action=action,
        object_type=object_type or "",
        object_id="" if object_id is None else str(object_id),
        before=to_jsonable(before) if before is not None else None,
        after=to_jsonable(after) if after is not None else None,
        request_id=actor.request_id or "",
    )


def record_many(actor: Actor, action: str, events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append one event per entry of ``events`` (the keyword arguments of :func:`record`) in one statement.

    For the same change made to many objects at once, e.g. a billing run's invoices finalized together.
    Call inside the same transaction as the change.
    """
    return AuditEvent.objects.bulk_create([_event(actor, action, **e) for e in events], batch_size=500)


def record(
    actor: Actor,
    action: str,
    *,
    obj: models.Model | None = None,
    object_type: str | None = None,
    object_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    organisation_id: int | None = None,
    customer_id: int | None = None,
) -> AuditEvent:
    """Append one event. Call inside the same transaction as the change it describes."""
    event = _event(actor, action, obj=obj, object_type=object_type, object_id=object_id, before=before, after=after,
                   organisation_id=organisation_id, customer_id=customer_id)  # fmt: skip
    event.save(force_insert=True)
    return event
