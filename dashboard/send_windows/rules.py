"""When sending is allowed: a pure function of a window, blackout dates and an instant.

Each allowed local date (its weekday in the window, not a blackout date) has one allowed
interval, from its start to its end local time, both resolved to instants in the window's zone:
a local time that does not exist (the hour skipped when clocks spring forward) moves to the first
minute that does; an ambiguous one (the hour repeated when they fall back) is its first
occurrence. So a window always opens and closes once a day, even on a DST switch day, and the
interval may be an hour longer or shorter that day (or empty, for a window inside the skipped
hour: nothing is sent that day).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

DASH = "\u2013"  # an en dash between the ends of a range: "Mon-Fri" reads as a hyphenated word
# What the API, the command and the form's text read ("Mon-Fri"): always English.
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# What a person reads, in their language.
WEEKDAY_LABELS = (
    pgettext_lazy("weekday", "Mon"),
    pgettext_lazy("weekday", "Tue"),
    pgettext_lazy("weekday", "Wed"),
    pgettext_lazy("weekday", "Thu"),
    pgettext_lazy("weekday", "Fri"),
    pgettext_lazy("weekday", "Sat"),
    pgettext_lazy("weekday", "Sun"),
)
# How far ahead next_allowed looks: a window that opens at least once a week never needs more
# than a few days, however many blackout dates follow each other (a year of them is refused).
LOOKAHEAD_DAYS = 800


@dataclass(frozen=True)
class Window:
    """Weekdays (0 = Monday) and [start, end) local times in an IANA zone; start < end."""

    weekdays: frozenset[int]
    start: time
    end: time
    zone: str = "UTC"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def describe(self) -> str:
        """The window in words, e.g. Mon to Fri 08:00 to 21:00 Europe/Berlin (en dashes)."""
        return (
            f"{weekdays_text(self.weekdays)} {self.start:%H:%M}{DASH}{self.end:%H:%M} {self.zone}"
        )


def weekdays_text(weekdays: Collection[int]) -> str:
    """Three or more consecutive days as a range ({0,1,2,3,4}: Mon to Fri), others listed."""
    days = sorted(set(weekdays))
    if len(days) == 7:
        return _("Every day")
    parts: list[str] = []
    run: list[int] = []
    for day in [*days, None]:
        if run and (day is None or day != run[-1] + 1):
            if len(run) >= 3:
                parts.append(f"{WEEKDAY_LABELS[run[0]]}{DASH}{WEEKDAY_LABELS[run[-1]]}")
            else:
                parts.extend(str(WEEKDAY_LABELS[d]) for d in run)
            run = []
        if day is not None:
            run.append(day)
    return ", ".join(parts)


def local_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of the local time `wall` on `day` in `zone`: a time skipped by a
    spring-forward switch moves to the first minute that exists; an ambiguous one (fall-back)
    is its first occurrence."""
    naive = datetime.combine(day, wall)
    for minutes in range(0, 24 * 60):
        candidate = naive + timedelta(minutes=minutes)
        aware = candidate.replace(tzinfo=zone)  # fold=0: the first occurrence
        instant = aware.astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == candidate:
            return instant
    raise ValueError(f"{zone.key} has no valid local time after {naive}")  # pragma: no cover


def interval_on(window: Window, day: date) -> tuple[datetime, datetime]:
    """The allowed interval [opens, closes) of local date `day` (weekday and blackouts aside);
    empty (opens == closes) when the whole window lies in a skipped hour."""
    zone = window.tz
    opens = local_instant(day, window.start, zone)
    closes = local_instant(day, window.end, zone)
    return opens, max(opens, closes)


def _open_day(window: Window, blackouts: Collection[date], day: date) -> bool:
    return day.weekday() in window.weekdays and day not in blackouts


def _check(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("An aware datetime is needed (UTC), not a naive one.")
    return at.astimezone(UTC)


def is_allowed(window: Window | None, blackouts: Collection[date], at: datetime) -> bool:
    """Whether sending is allowed at instant `at` (aware). No window: every time of a day that
    is not a blackout date (local dates in UTC)."""
    at = _check(at)
    if window is None:
        return at.date() not in blackouts
    local_day = at.astimezone(window.tz).date()
    # The neighbouring days too: a resolved end may cross local midnight in a zone whose switch
    # is at midnight.
    for day in (local_day - timedelta(days=1), local_day, local_day + timedelta(days=1)):
        if _open_day(window, blackouts, day):
            opens, closes = interval_on(window, day)
            if opens <= at < closes:
                return True
    return False


def next_allowed(
    window: Window | None, blackouts: Collection[date], at: datetime
) -> datetime | None:
    """The first instant at or after `at` when sending is allowed (aware UTC), `at` itself when
    it is; None when nothing is allowed within LOOKAHEAD_DAYS (no weekday, or blackouts all
    the way)."""
    at = _check(at)
    if window is None:
        day = at.date()
        for offset in range(LOOKAHEAD_DAYS):
            candidate = day + timedelta(days=offset)
            if candidate not in blackouts:
                return at if offset == 0 else datetime.combine(candidate, time.min, tzinfo=UTC)
        return None
    if not window.weekdays:
        return None
    local_day = at.astimezone(window.tz).date()
    for offset in range(-1, LOOKAHEAD_DAYS):
        day = local_day + timedelta(days=offset)
        if not _open_day(window, blackouts, day):
            continue
        opens, closes = interval_on(window, day)
        if closes > at and opens < closes:
            return max(opens, at)
    return None
