"""Cron rules: checking a five-field rule, its fires between two instants, and its words.

croniter parses and checks the fields (its error messages are not shown: they name columns by
number); the fires themselves are computed here, day by day in the rule's zone, because the
calendar needs every fire of a thousand rules in a month and croniter's iterator takes about half
a millisecond per fire, and because its answers around a DST switch are not what a brand means:

- a local time skipped when clocks spring forward fires at the first minute that exists (02:30
  on the switch day fires at 03:00; several skipped times fire once);
- a local time repeated when clocks fall back fires once, at its first occurrence.

So every local wall time of the rule fires exactly once (the rule of dashboard.send_windows).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import gettext as _

from dashboard.send_windows.rules import local_instant

# A rule that does not fire within this many days never fires (29 February fires every four
# years; a rule that fires less often than that is a mistake).
NEVER_FIRES_DAYS = 4 * 366 + 1
EXPRESSION_MAX_CHARS = 100
# Digits, names (mon, jan), ranges, steps and lists: no seconds field, no L, W, # or ? (which
# mean different things in different crons) and no @daily-style macros.
_ALLOWED = re.compile(r"^[0-9a-z*,/\- ]+$")
# L (last) and W (nearest weekday) read like names to the expander, which would drop them.
_LAST_OR_NEAREST = re.compile(r"(?<![a-z])(l|lw|\d+w|\d+l)(?![a-z])")


# Each rule's fires by local date, computed once per process (at most this many dates a rule).
DAYS_REMEMBERED = 800
_DAY_FIRES: dict[tuple[str, str], dict[date, list[datetime]]] = {}


@dataclass(frozen=True)
class Rule:
    """A checked rule: the expanded fields (None for "every") in its IANA zone."""

    expression: str
    zone_name: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 0 = Sunday, as cron counts

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)

    def fires_on(self, day: date) -> bool:
        """Whether the rule fires on local date `day` (cron's rule: when both the day of the
        month and the weekday are restricted, either one matching is enough)."""
        if self.months is not None and day.month not in self.months:
            return False
        day_matches = self.days is None or day.day in self.days
        weekday_matches = self.weekdays is None or (day.isoweekday() % 7) in self.weekdays
        if self.days is not None and self.weekdays is not None:
            return day_matches or weekday_matches
        return day_matches and weekday_matches

    def fires_of_day(self, day: date) -> list[datetime]:
        """The UTC instants the rule fires on local date `day`, in order, each once.

        Remembered per rule (rules are parsed once per process): the calendar asks for the
        same days of the same rules on every request."""
        known = _DAY_FIRES.setdefault((self.expression, self.zone_name), {})
        found = known.get(day)
        if found is None:
            if len(known) > DAYS_REMEMBERED:
                known.clear()
            found = known[day] = self._compute_fires_of_day(day)
        return found

    def _compute_fires_of_day(self, day: date) -> list[datetime]:
        if not self.fires_on(day):
            return []
        zone = self.zone
        found: list[datetime] = []
        for hour in self.hours:
            for minute in self.minutes:
                instant = local_instant(day, time(hour, minute), zone)
                if not found or instant > found[-1]:
                    found.append(instant)
        return found

    def fires_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every fire in [start, end) (aware instants), in order."""
        zone = self.zone
        day = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date() + timedelta(days=1)
        while day <= last:
            for instant in self.fires_of_day(day):
                if start <= instant < end:
                    yield instant
            day += timedelta(days=1)

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire strictly after `after`, None when there is none within four years."""
        zone = self.zone
        day = after.astimezone(zone).date() - timedelta(days=1)
        for _offset in range(NEVER_FIRES_DAYS + 2):
            for instant in self.fires_of_day(day):
                if instant > after:
                    return instant
            day += timedelta(days=1)
        return None

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` fires strictly after `after` (fewer when it stops firing)."""
        found: list[datetime] = []
        moment = after
        while len(found) < count:
            following = self.next_after(moment)
            if following is None:
                break
            found.append(following)
            moment = following
        return found


def _zone(name: str) -> str:
    name = (name or "").strip()
    try:
        if not name or name.startswith("/") or ".." in name:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            {
                "time_zone": _("Unknown time zone %(zone)s: give an IANA name like Europe/Berlin.")
                % {"zone": repr(name[:64])}
            }
        ) from None
    return name


def _field(values: list, low: int, high: int) -> frozenset[int] | None:
    if values == ["*"]:
        return None
    return frozenset(int(value) for value in values if low <= int(value) <= high)


def _forms_refused() -> str:
    return _(
        "Use numbers, names (mon, jan), *, ranges (1-5), steps (*/15) and lists (1,15) "
        "only: L, W, #, ? and @ rules are not accepted."
    )


@lru_cache(maxsize=4096)
def _parse(expression: str, zone_name: str) -> Rule:
    from croniter import croniter  # only where rules are checked (not at web start)
    from croniter.croniter import CroniterError

    fields = expression.split()
    if len(fields) != 5:
        if len(fields) in (6, 7):
            message = _(
                "Give five fields (minute hour day month weekday): schedules fire at most once "
                "a minute, so there is no seconds field."
            )
        else:
            message = _(
                "Give five fields separated by spaces: minute hour day month weekday, e.g. "
                "“0 9 * * 1-5” for every weekday at 09:00."
            )
        raise ValidationError({"cron": message})
    if not _ALLOWED.match(expression.lower()) or _LAST_OR_NEAREST.search(expression.lower()):
        raise ValidationError({"cron": _forms_refused()})
    try:
        expanded, nth_weekdays = croniter.expand(expression.lower())
    except (CroniterError, ValueError, KeyError, IndexError):
        raise ValidationError(
            {
                "cron": _(
                    "This is not a valid cron rule: check each field's range (minute 0-59, "
                    "hour 0-23, day 1-31, month 1-12, weekday 0-7) and that steps are not 0."
                )
            }
        ) from None
    if nth_weekdays or any(
        not isinstance(value, int) and value != "*" for values in expanded for value in values
    ):
        raise ValidationError({"cron": _forms_refused()})
    minutes, hours, days, months, weekdays = expanded
    return Rule(
        expression=" ".join(fields),
        zone_name=zone_name,
        minutes=tuple(sorted(range(60) if minutes == ["*"] else set(minutes))),
        hours=tuple(sorted(range(24) if hours == ["*"] else set(hours))),
        days=_field(days, 1, 31),
        months=_field(months, 1, 12),
        weekdays=None if weekdays == ["*"] else frozenset(int(value) % 7 for value in weekdays),
    )


def rule_check(*, expression: str, time_zone: str, now: datetime) -> Rule:
    """The rule of a five-field cron `expression` in IANA `time_zone`; ValidationError naming
    "cron" or "time_zone" for a bad field, a seconds field, or a rule that never fires."""
    expression = " ".join((expression or "").split())
    if not expression:
        raise ValidationError({"cron": _("Give a cron rule, e.g. “0 9 * * 1-5”.")})
    if len(expression) > EXPRESSION_MAX_CHARS:
        raise ValidationError(
            {"cron": _("A cron rule has at most %(count)d characters.") % {"count": 100}}
        )
    zone_name = _zone(time_zone)
    rule = _parse(expression, zone_name)
    if rule.next_after(now) is None:
        raise ValidationError(
            {
                "cron": _(
                    "This rule never fires (no date matches it, e.g. 30 February): check the "
                    "day and month fields."
                )
            }
        )
    return rule


def rule_of(*, expression: str, time_zone: str) -> Rule:
    """The rule of a stored (already checked) schedule, parsed once per process."""
    return _parse(" ".join(expression.split()), time_zone)


@lru_cache(maxsize=4096)
def _words(expression: str, language: str) -> str:
    from cron_descriptor import Options, get_description

    options = Options()
    options.use_24hour_time_format = True
    options.locale_code = "ru_RU" if language.startswith("ru") else "en_US"
    try:
        return get_description(expression, options)
    except Exception:  # a describer's gap must not break a page: the rule itself is shown
        return expression


def rule_words(expression: str) -> str:
    """The rule in words in the page's language, e.g. "At 09:00, Monday through Friday"."""
    return _words(expression, translation.get_language() or "en")


def utc_and_local(instant: datetime, zone_name: str) -> dict[str, datetime]:
    """An instant as the pages show it: in the rule's zone and in UTC."""
    return {"local": instant.astimezone(ZoneInfo(zone_name)), "utc": instant.astimezone(UTC)}
