"""SLA arithmetic across nights, weekends, public holidays, DST and pauses, in two time zones."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cspdesk.support.sla import BusinessCalendar

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")
STOCKHOLM = ZoneInfo("Europe/Stockholm")
H = dt.timedelta(hours=1)

rome_office = BusinessCalendar.office_hours("Europe/Rome", dt.time(9), dt.time(18), holiday_country="IT")
ny_office = BusinessCalendar.office_hours("America/New_York", dt.time(8), dt.time(17), holiday_country="US")
stockholm_office = BusinessCalendar.office_hours("Europe/Stockholm", dt.time(9), dt.time(17), holiday_country="SE")


def local(zone: ZoneInfo, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


def test_friday_evening_runs_over_the_weekend() -> None:
    due = rome_office.add(local(ROME, 2026, 11, 20, 17), 4 * H)  # Friday 17:00
    assert due == local(ROME, 2026, 11, 23, 12)  # 1 h on Friday, 3 h on Monday


def test_christmas_and_the_weekend_are_skipped_in_italy() -> None:
    due = rome_office.add(local(ROME, 2026, 12, 24, 17), 4 * H)  # Thursday 24 Dec; 25 Dec is a holiday
    assert due == local(ROME, 2026, 12, 28, 12)
    assert due.tzinfo == dt.UTC


def test_thanksgiving_is_skipped_in_new_york_but_not_in_rome() -> None:
    start_ny = local(NEW_YORK, 2026, 11, 25, 16)  # Wednesday before Thanksgiving (26 Nov)
    assert ny_office.add(start_ny, 8 * H) == local(NEW_YORK, 2026, 11, 27, 15)
    assert rome_office.add(local(ROME, 2026, 11, 25, 17), 8 * H) == local(ROME, 2026, 11, 26, 16)


def test_night_before_opening_counts_nothing() -> None:
    assert rome_office.add(local(ROME, 2026, 11, 24, 2), 30 * dt.timedelta(minutes=1)) == local(
        ROME, 2026, 11, 24, 9, 30
    )
    assert rome_office.elapsed(local(ROME, 2026, 11, 24, 18), local(ROME, 2026, 11, 25, 9)) == dt.timedelta(0)


def test_business_days_stay_eight_hours_across_the_clock_change() -> None:
    start = local(STOCKHOLM, 2026, 10, 23, 16)  # Friday; summer time ends on Sunday 25 October
    due = stockholm_office.add(start, 2 * H)
    assert due == local(STOCKHOLM, 2026, 10, 26, 10)
    assert due == dt.datetime(2026, 10, 26, 9, tzinfo=dt.UTC)
    assert stockholm_office.elapsed(local(STOCKHOLM, 2026, 10, 23, 9), local(STOCKHOLM, 2026, 10, 27, 9)) == 16 * H


def test_pending_customer_pauses_the_clock() -> None:
    start = local(ROME, 2026, 11, 23, 9)  # Monday
    pause = (local(ROME, 2026, 11, 23, 10), local(ROME, 2026, 11, 24, 11))  # waiting on the customer
    assert rome_office.add(start, 4 * H) == local(ROME, 2026, 11, 23, 13)
    assert rome_office.add(start, 4 * H, [pause]) == local(ROME, 2026, 11, 24, 14)
    assert rome_office.elapsed(start, local(ROME, 2026, 11, 24, 14), [pause]) == 4 * H


def test_extra_closed_days() -> None:
    closed = BusinessCalendar.office_hours(
        "Europe/Rome", dt.time(9), dt.time(18), holiday_country="IT", closed_days=frozenset({dt.date(2026, 11, 23)})
    )
    assert closed.add(local(ROME, 2026, 11, 20, 17), 4 * H) == local(ROME, 2026, 11, 24, 12)


def test_split_windows_and_a_lunch_break() -> None:
    cal = BusinessCalendar(
        "Europe/Budapest", {d: ((dt.time(8), dt.time(12)), (dt.time(13), dt.time(16))) for d in range(1, 6)}
    )
    budapest = ZoneInfo("Europe/Budapest")
    assert cal.add(local(budapest, 2026, 11, 23, 11), 2 * H) == local(budapest, 2026, 11, 23, 14)


def test_invalid_calendars_are_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        BusinessCalendar("UTC", {1: ((dt.time(17), dt.time(9)),)})
    with pytest.raises(ValueError, match="at least one open window"):
        BusinessCalendar("UTC", {})
    with pytest.raises(ValueError, match="aware"):
        rome_office.add(dt.datetime(2026, 11, 23, 9), H)


instants = st.datetimes(
    min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(dt.UTC)
)
durations = st.integers(min_value=0, max_value=60 * 24 * 10).map(lambda m: dt.timedelta(minutes=m))
pauses = st.lists(
    st.tuples(instants, st.integers(min_value=1, max_value=60 * 72)).map(
        lambda p: (p[0], p[0] + dt.timedelta(minutes=p[1]))
    ),
    max_size=3,
)
calendars = st.sampled_from([rome_office, ny_office, stockholm_office, BusinessCalendar.always_open()])


@settings(max_examples=150, deadline=None)
@given(calendars, instants, durations, pauses)
def test_elapsed_inverts_add(cal: BusinessCalendar, start: dt.datetime, target: dt.timedelta, stops: list) -> None:
    due = cal.add(start, target, stops)
    assert due >= start
    assert cal.elapsed(start, due, stops) == target


@settings(max_examples=100, deadline=None)
@given(calendars, instants, durations, durations)
def test_more_time_is_never_due_earlier(
    cal: BusinessCalendar, start: dt.datetime, a: dt.timedelta, b: dt.timedelta
) -> None:
    low, high = sorted((a, b))
    assert cal.add(start, low) <= cal.add(start, high)


@settings(max_examples=50, deadline=None)
@given(instants, durations)
def test_always_open_is_plain_clock_time(start: dt.datetime, target: dt.timedelta) -> None:
    assert BusinessCalendar.always_open().add(start, target) == start + target
