"""``cspdesk worker [--queues a,b] [--burst]``: a background worker for the configured tasks backend.

With ``CSPDESK_TASKS_BACKEND=rq`` it is RQ's worker on Redis (``rqworker`` with django-tasks-rq's job class
and RQ's scheduler for deferred tasks); with the default database backend it is ``db_worker``. Start as many
as the machines carry: every piece of work a worker does is committed in the database, none kept in memory.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run a background worker for the configured tasks backend (RQ on Redis, or the database queue)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", default=",".join(settings.TASKS_QUEUES),
                            help="queues to work on, comma-separated (default: CSPDESK_TASKS_QUEUES)")  # fmt: skip
        parser.add_argument("--burst", action="store_true", help="do what is queued, then exit")
        parser.add_argument("--name", default=None, help="the worker's name (default: generated, unique)")

    def handle(self, *args: Any, **options: Any) -> None:
        backend = settings.TASKS["default"]["BACKEND"]
        queues = [q.strip() for q in options["queues"].split(",") if q.strip()]
        unknown = sorted(set(queues) - set(settings.TASKS_QUEUES))
        if unknown:
            raise CommandError(f"unknown queue(s) {', '.join(unknown)}; configured: {', '.join(settings.TASKS_QUEUES)}")
        if backend == "django_tasks_rq.RQBackend":
            kwargs: dict[str, Any] = {"job_class": "django_tasks_rq.Job", "with_scheduler": True,
                                      "burst": options["burst"], "verbosity": options["verbosity"]}  # fmt: skip
            if options["name"]:
                kwargs["name"] = options["name"]
            call_command("rqworker", *queues, **kwargs)
        elif backend == "django_tasks_db.DatabaseBackend":
            kwargs = {"queue_name": ",".join(queues), "batch": options["burst"], "reload": False,
                      "verbosity": options["verbosity"]}  # fmt: skip
            if options["name"]:
                kwargs["worker_id"] = options["name"]
            call_command("db_worker", **kwargs)
        else:
            raise CommandError(f"the tasks backend {backend} runs tasks where they are enqueued; there is nothing "
                               "for a worker to do (set CSPDESK_TASKS_BACKEND=rq or db)")  # fmt: skip
