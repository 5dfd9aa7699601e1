from __future__ import annotations

from typing import Any, NoReturn

from django.db import models

from cspdesk.core import clock


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit event."""


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise AppendOnlyError("audit events are append-only: they cannot be changed or deleted")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    update = _refuse
    delete = _refuse
    bulk_update = _refuse
    update_or_create = _refuse


class AuditEvent(models.Model):
    """One thing that happened, who did it, and the object before and after.

    Append-only three times over: this class refuses save-after-create and delete, its queryset
    refuses update/delete, and database triggers (migration 0002) refuse UPDATE and DELETE.
    Organisation and customer are plain ids, not foreign keys, so no cascade can ever touch a row.
    """

    created_at = models.DateTimeField(default=clock.now, db_index=True)
    actor_kind = models.CharField(max_length=16)
    actor_user_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_username = models.CharField(max_length=150)
    organisation_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    customer_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.actor_username} {self.action} {self.object_type}#{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()
