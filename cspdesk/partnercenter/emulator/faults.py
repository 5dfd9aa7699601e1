"""Fault injection for the emulator, per endpoint.

A fault is ``ENDPOINT:KIND[:OPTION=VALUE,...]``; several are joined with ``;``. Examples::

    customers:429:count=2,retry_after=1      the next 2 calls of "list customers" get 429, Retry-After: 1
    subscription:503:count=1,method=PATCH    the next PATCH of a subscription gets 503
    *:500:p=0.05                             5 % of all calls get 500, until cleared
    invoice_lineitems:slow:delay=3           the next call waits 3 s before answering
    servicerequest_create:drop_after         the next create is carried out, then the socket is closed
    graph_blob:cut                           the next blob download stops half-way: the connection drops

ENDPOINT is a route name (see :data:`cspdesk.partnercenter.emulator.server.ROUTES`) or ``*``.
KIND is one of :data:`KINDS`: ``429``, ``500``, ``503``, ``slow`` (answer normally after ``delay``
seconds), ``drop`` (close the connection without any answer, before doing anything) and ``drop_after``
(do the work, then close without answering: what a lost response looks like to a client) and ``cut``
(answer with the whole body announced, send half of it, then close: a download interrupted mid-way).
OPTIONS: ``count=N`` (the next N matching calls; the default is ``count=1``) or ``p=0.25`` (a
probability, until cleared); ``retry_after=S`` (429/503; default 1); ``delay=S`` (slow; default 2);
``method=GET|POST|PATCH`` (only that method).

The same faults can be given as JSON objects to ``POST /_emulator/faults``:
``{"endpoint": "customers", "kind": "429", "count": 2, "retry_after": 1}`` (or a list of them, or
``{"spec": "customers:429:count=2"}``). ``GET /_emulator/faults`` lists them, ``DELETE`` clears them.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("429", "500", "503", "slow", "drop", "drop_after", "cut")
_ids = itertools.count(1)


class FaultSpecError(ValueError):
    pass


@dataclass
class Fault:
    endpoint: str
    kind: str
    count: int | None = None
    probability: float | None = None
    retry_after: float = 1.0
    delay: float = 2.0
    method: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.count is None and self.probability is None:
            self.count = 1
        if self.count is not None and self.count < 1:
            raise FaultSpecError("count must be at least 1")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise FaultSpecError("p must be between 0 and 1")
        if self.method:
            self.method = self.method.upper()

    def matches(self, endpoint: str, method: str) -> bool:
        return self.endpoint in ("*", endpoint) and (self.method is None or self.method == method)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_spec(spec: str) -> list[Fault]:
    """Parse ``ENDPOINT:KIND[:OPT=V,...][;...]``; raises :class:`FaultSpecError` naming the bad part."""
    faults = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        bits = part.split(":", 2)
        if len(bits) < 2:
            raise FaultSpecError(f"{part!r}: expected ENDPOINT:KIND[:OPTION=VALUE,...]")
        options: dict[str, Any] = {}
        for opt in filter(None, (bits[2].split(",") if len(bits) == 3 else [])):
            key, _, value = opt.partition("=")
            options[key.strip()] = value.strip()
        faults.append(from_dict({"endpoint": bits[0].strip(), "kind": bits[1].strip(), **options}))
    return faults


def from_dict(data: dict[str, Any]) -> Fault:
    probability = data.get("p", data.get("probability"))
    try:
        return Fault(
            endpoint=str(data["endpoint"]),
            kind=str(data["kind"]),
            count=int(data["count"]) if data.get("count") not in (None, "") else None,
            probability=float(str(probability)) if probability not in (None, "") else None,
            retry_after=float(data.get("retry_after", 1.0)),
            delay=float(data.get("delay", 2.0)),
            method=str(data["method"]) if data.get("method") else None,
        )
    except KeyError as exc:
        raise FaultSpecError(f"a fault needs {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FaultSpecError):
            raise
        raise FaultSpecError(f"bad fault {data!r}: {exc}") from None


class FaultPlan:
    """The active faults. Thread-safe; the first matching fault fires."""

    def __init__(self, faults: list[Fault] | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = list(faults or [])
        self._rng = random.Random(seed)  # noqa: S311 (fault sampling, not security)

    def add(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def pick(self, endpoint: str, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if not fault.matches(endpoint, method):
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    fault.fired += 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
                if self._rng.random() < (fault.probability or 0.0):
                    fault.fired += 1
                    return fault
            return None
