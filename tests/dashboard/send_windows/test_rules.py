"""The send-window rules across DST switches: property tests (hypothesis) and named cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.send_windows.rules import (
    DASH,
    Window,
    interval_on,
    is_allowed,
    local_instant,
    next_allowed,
    weekdays_text,
)

# Each zone's 2026 switches, as UTC instants: spring forward, fall back.
SWITCHES = {
    "Europe/Berlin": [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    "America/New_York": [
        datetime(2026, 3, 8, 7, tzinfo=UTC),
        datetime(2026, 11, 1, 6, tzinfo=UTC),
    ],
    # Southern hemisphere: back in April, forward in October.
    "Australia/Sydney": [
        datetime(2026, 4, 4, 16, tzinfo=UTC),
        datetime(2026, 10, 3, 16, tzinfo=UTC),
    ],
}
# How far the "nothing allowed before it" check steps, minute by minute.
STEP_LIMIT = timedelta(days=3)

minutes_of_day = st.integers(min_value=0, max_value=24 * 60 - 1).map(
    lambda m: time(m // 60, m % 60)
)


@st.composite
def windows(draw):
    zone = draw(st.sampled_from(sorted(SWITCHES)))
    start, end = sorted(draw(st.lists(minutes_of_day, min_size=2, max_size=2, unique=True)))
    weekdays = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return Window(weekdays=weekdays, start=start, end=end, zone=zone)


@st.composite
def cases(draw):
    window = draw(windows())
    switch = draw(st.sampled_from(SWITCHES[window.zone]))
    # Anywhere from two days before the switch to two days after, to the second.
    at = switch + timedelta(seconds=draw(st.integers(-2 * 86400, 2 * 86400)))
    around = switch.date()
    blackouts = draw(
        st.frozensets(st.sampled_from([around + timedelta(days=d) for d in range(-3, 4)]))
    )
    return window, blackouts, at


def naive_allowed(window: Window, blackouts, at: datetime) -> bool:
    """The rule read off a wall clock: only right where the local time is unambiguous."""
    local = at.astimezone(window.tz)
    return (
        local.weekday() in window.weekdays
        and local.date() not in blackouts
        and window.start <= local.time() < window.end
    )


def unambiguous(at: datetime, zone: ZoneInfo) -> bool:
    wall = at.astimezone(zone).replace(tzinfo=None)
    return (
        wall.replace(tzinfo=zone, fold=0).utcoffset()
        == wall.replace(tzinfo=zone, fold=1).utcoffset()
    )


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(cases())
def test_next_allowed_is_allowed_not_before_at_and_nothing_earlier_is(case):
    window, blackouts, at = case
    found = next_allowed(window, blackouts, at)
    assert found is not None  # at least one weekday, at most 7 blackout dates in a row
    assert found.tzinfo is not None and found.utcoffset() == timedelta(0)
    assert found >= at
    assert is_allowed(window, blackouts, found)
    step = at
    while step < min(found, at + STEP_LIMIT):
        assert not is_allowed(window, blackouts, step), step
        step += timedelta(minutes=1)


@PROPERTY
@given(cases())
def test_allowed_means_what_the_wall_clock_says_where_it_is_unambiguous(case):
    window, blackouts, at = case
    if unambiguous(at, window.tz):
        assert is_allowed(window, blackouts, at) == naive_allowed(window, blackouts, at)


@PROPERTY
@given(cases())
def test_next_allowed_of_an_allowed_instant_is_itself(case):
    window, blackouts, at = case
    assert (next_allowed(window, blackouts, at) == at) == is_allowed(window, blackouts, at)


@PROPERTY
@given(windows(), st.integers(0, 365 * 86400))
def test_the_window_opens_once_per_open_day_and_is_never_longer_than_a_day(window, seconds):
    day = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).date()
    opens, closes = interval_on(window, day)
    assert opens <= closes <= opens + timedelta(hours=25)
    assert opens.astimezone(window.tz).date() == day


BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def test_a_local_time_skipped_by_spring_forward_moves_to_the_first_valid_minute():
    # Berlin, 2026-03-29: 02:00 jumps to 03:00 local (01:00 UTC).
    assert local_instant(date(2026, 3, 29), time(2, 30), BERLIN) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )
    assert local_instant(date(2026, 3, 29), time(3, 0), BERLIN) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )


def test_an_ambiguous_local_time_on_fall_back_is_its_first_occurrence():
    # New York, 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    assert local_instant(date(2026, 11, 1), time(1, 30), NEW_YORK) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )


def test_weekday_window_in_berlin_across_the_spring_switch():
    window = Window(frozenset(range(5)), time(8), time(21), "Europe/Berlin")
    # Friday 2026-03-27 22:00 Berlin (CET, 21:00 UTC): next is Monday 08:00 CEST = 06:00 UTC.
    friday_night = datetime(2026, 3, 27, 21, tzinfo=UTC)
    assert next_allowed(window, set(), friday_night) == datetime(2026, 3, 30, 6, tzinfo=UTC)
    # ... and with Monday blacked out, Tuesday.
    assert next_allowed(window, {date(2026, 3, 30)}, friday_night) == datetime(
        2026, 3, 31, 6, tzinfo=UTC
    )
    # The Friday before, 08:00 CET is 07:00 UTC.
    assert is_allowed(window, set(), datetime(2026, 3, 27, 7, tzinfo=UTC))
    assert not is_allowed(window, set(), datetime(2026, 3, 27, 6, 59, tzinfo=UTC))


def test_a_window_inside_the_skipped_hour_sends_nothing_that_day():
    window = Window(frozenset(range(7)), time(2, 10), time(2, 50), "Europe/Berlin")
    before = datetime(2026, 3, 29, 0, tzinfo=UTC)
    # The next day's 02:10 CEST (00:10 UTC), not the skipped one.
    assert next_allowed(window, set(), before) == datetime(2026, 3, 30, 0, 10, tzinfo=UTC)


def test_no_window_and_no_weekday():
    at = datetime(2026, 12, 24, 12, tzinfo=UTC)
    assert next_allowed(None, set(), at) == at
    assert next_allowed(None, {date(2026, 12, 24)}, at) == datetime(2026, 12, 25, tzinfo=UTC)
    assert next_allowed(Window(frozenset(), time(8), time(9)), set(), at) is None


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        is_allowed(None, set(), datetime(2026, 1, 1))


def test_weekdays_in_words():
    assert weekdays_text(range(5)) == f"Mon{DASH}Fri"
    assert weekdays_text({0, 2, 5}) == "Mon, Wed, Sat"
    assert weekdays_text({0, 1, 3, 4, 5}) == f"Mon, Tue, Thu{DASH}Sat"
    assert weekdays_text(range(7)) == "Every day"
