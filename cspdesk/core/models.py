"""Shared bookkeeping for background work: a run split into parts (fan-out) and the daily schedule."""

from __future__ import annotations

from django.db import models


class BatchStatus(models.TextChoices):
    RUNNING = "running"
    DONE = "done"


class PartState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class WorkBatch(models.Model):
    """One run split into parts (a billing run's buyers, a collections run's customers). ``handler`` does one
    part, ``finisher`` sums the parts up once every part is done; both are dotted paths into the code."""

    kind = models.CharField(max_length=64)
    key = models.CharField(max_length=200)
    handler = models.CharField(max_length=200)
    finisher = models.CharField(max_length=200, blank=True)
    atomic = models.BooleanField(default=True, help_text="the part's writes and its 'done' commit together")
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.RUNNING)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counter = models.IntegerField(default=0, help_text="a run-wide count the parts share (e.g. suspensions)")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="core_workbatch_kind_key")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} ({self.status})"


class WorkPart(models.Model):
    """One part of a batch, done exactly once: claimed with a lease, its writes committed with ``state=done``."""

    batch = models.ForeignKey(WorkBatch, on_delete=models.CASCADE, related_name="parts")
    key = models.CharField(max_length=200)
    args = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=PartState.choices, default=PartState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "key"], name="core_workpart_batch_key")]
        indexes = [models.Index(fields=["state", "leased_until"], name="core_workpart_state_lease")]

    def __str__(self) -> str:
        return f"{self.batch_id}/{self.key} ({self.state})"


class ScheduledRun(models.Model):
    """A periodic job's slot (a day, or a window of minutes), taken by one scheduler: the unique row decides."""

    job = models.CharField(max_length=64)
    slot = models.CharField(max_length=32)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "slot"], name="core_scheduledrun_job_slot")]

    def __str__(self) -> str:
        return f"{self.job} {self.slot}"


class MailStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboundMail(models.Model):
    """An e-mail written in the same transaction as the change it reports, sent after that commits.

    A rolled-back change takes its e-mail with it; a committed one is sent by whoever claims the row first (the
    task enqueued on commit, a run's flush, the scheduler's sweep). ``key`` names the event the e-mail is about,
    so one event queues one e-mail; ``message_id`` is fixed when the row is written, so a resend after a sender
    died between the server's acceptance and its own commit carries the same Message-ID.
    """

    key = models.CharField(max_length=200, unique=True)
    source = models.CharField(max_length=64, help_text="what wrote it, e.g. collections.reminder")
    organisation_id = models.IntegerField(null=True, blank=True)
    customer_id = models.IntegerField(null=True, blank=True)
    from_email = models.CharField(max_length=254, blank=True)
    to = models.JSONField(default=list)
    subject = models.CharField(max_length=998)
    body = models.TextField()
    message_id = models.CharField(max_length=254)
    status = models.CharField(max_length=16, choices=MailStatus.choices, default=MailStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "claimed_at"], name="core_outboundmail_status_claim")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"
