"""Business-hours arithmetic for SLA clocks.

A :class:`BusinessCalendar` says when a support plan's service hours are open: a weekly schedule in the
calendar's own time zone, a country's public holidays (the ``holidays`` package), and extra closed days.
Opening windows are built per local date and converted to UTC, so a 09:00–17:00 day stays eight hours
long across a daylight-saving change. All inputs and outputs are aware datetimes; results are UTC.

:func:`BusinessCalendar.add` finds when a target (e.g. 4 business hours) falls due, skipping closed
time and any pauses (ticket pending the customer); :func:`BusinessCalendar.elapsed` measures business
time between two instants, minus pauses. The two are inverse to each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from zoneinfo import ZoneInfo

import holidays as holidays_lib

Interval = tuple[dt.datetime, dt.datetime]
ZERO = dt.timedelta(0)
MAX_DAYS_WITHOUT_OPENING = 366


@dataclass(frozen=True)
class BusinessCalendar:
    """Service hours. ``weekly`` maps ISO weekday (1 = Monday … 7 = Sunday) to local (start, end) times;
    an end of ``None`` means midnight at the end of that day."""

    timezone: str
    weekly: dict[int, tuple[tuple[dt.time, dt.time | None], ...]]
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closed_days: frozenset[dt.date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for day, windows in self.weekly.items():
            if day not in range(1, 8):
                raise ValueError(f"weekday {day} is not 1 (Monday) … 7 (Sunday)")
            for start, end in windows:
                if end is not None and end <= start:
                    raise ValueError(f"on weekday {day} the window {start}–{end} ends before it starts")
        if not any(self.weekly.values()):
            raise ValueError("a calendar needs at least one open window a week")

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        return cls("UTC", {d: ((dt.time(0), None),) for d in range(1, 8)})

    @classmethod
    def office_hours(
        cls, timezone: str, start: dt.time, end: dt.time, days: Iterable[int] = (1, 2, 3, 4, 5), **kwargs: object
    ) -> BusinessCalendar:
        return cls(timezone, {d: ((start, end),) for d in days}, **kwargs)  # type: ignore[arg-type]

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _holidays(self) -> holidays_lib.HolidayBase | None:
        if not self.holiday_country:
            return None
        return holidays_lib.country_holidays(self.holiday_country, subdiv=self.holiday_subdivision)

    def is_closed_day(self, day: dt.date) -> bool:
        if day in self.closed_days:
            return True
        return self._holidays is not None and day in self._holidays

    def windows_on(self, day: dt.date) -> list[Interval]:
        """The open windows of a local date, in UTC."""
        if self.is_closed_day(day):
            return []
        out = []
        for start, end in self.weekly.get(day.isoweekday(), ()):
            begin = dt.datetime.combine(day, start, self.zone)
            finish = (
                dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.zone)
                if end is None
                else dt.datetime.combine(day, end, self.zone)
            )
            out.append((begin.astimezone(dt.UTC), finish.astimezone(dt.UTC)))
        return out

    def open_intervals(self, start: dt.datetime) -> Iterator[Interval]:
        """Open time from ``start`` on, as UTC intervals in order (one per window; adjacent ones may touch)."""
        _aware(start)
        day = start.astimezone(self.zone).date() - dt.timedelta(days=1)
        idle_days = 0
        while True:
            windows = self.windows_on(day)
            idle_days = 0 if windows else idle_days + 1
            if idle_days > MAX_DAYS_WITHOUT_OPENING:
                raise ValueError("the calendar has no open time in a whole year")
            for begin, finish in windows:
                if finish > start:
                    yield max(begin, start), finish
            day += dt.timedelta(days=1)

    def add(self, start: dt.datetime, target: dt.timedelta, pauses: Sequence[Interval] = ()) -> dt.datetime:
        """The instant at which ``target`` of business time has run since ``start``, not counting pauses."""
        if target < ZERO:
            raise ValueError("an SLA target cannot be negative")
        remaining = target
        for begin, finish in _subtract(self.open_intervals(start), pauses):
            span = finish - begin
            if remaining <= span:
                return begin + remaining
            remaining -= span
        raise AssertionError("unreachable: open_intervals is endless")

    def elapsed(self, start: dt.datetime, end: dt.datetime, pauses: Sequence[Interval] = ()) -> dt.timedelta:
        """Business time between two instants, not counting pauses."""
        _aware(end)
        if end <= start:
            return ZERO
        total = ZERO
        for begin, finish in _subtract(self.open_intervals(start), pauses):
            if begin >= end:
                break
            total += min(finish, end) - begin
        return total


def _aware(value: dt.datetime) -> None:
    if value.tzinfo is None:
        raise ValueError("SLA arithmetic needs aware datetimes")


def _subtract(intervals: Iterator[Interval], pauses: Sequence[Interval]) -> Iterator[Interval]:
    """``intervals`` minus the (possibly overlapping, unsorted) ``pauses``."""
    cuts = sorted((a.astimezone(dt.UTC), b.astimezone(dt.UTC)) for a, b in pauses if b > a)
    for begin, finish in intervals:
        pieces = [(begin, finish)]
        for cut_start, cut_end in cuts:
            if cut_start >= finish:
                break
            next_pieces = []
            for a, b in pieces:
                if cut_end <= a or cut_start >= b:
                    next_pieces.append((a, b))
                    continue
                if a < cut_start:
                    next_pieces.append((a, cut_start))
                if cut_end < b:
                    next_pieces.append((cut_end, b))
            pieces = next_pieces
        yield from (p for p in pieces if p[1] > p[0])
