"""Command output: one JSON document on stdout with ``--json``, readable text otherwise."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, indent=2)


class ReportCommand(BaseCommand):
    """A management command that reports a result, as text or (``--json``) as one JSON document."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    def report(self, options: dict[str, Any], result: Any, text: str) -> None:
        if options.get("json"):
            self.stdout.write(dumps(result))
        else:
            self.stdout.write(text)
