"""Reads of recurring schedules: the tenant's list, one schedule with its next fires and its
history, and the tenant's calendar of upcoming fires with its blackout dates and pauses."""

from __future__ import annotations

import calendar as month_calendar
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from zoneinfo import ZoneInfo

from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from dashboard.clock import utc_now
from dashboard.models import Tenant
from dashboard.pauses.models import SendingPause
from dashboard.pauses.selectors import open_pauses
from dashboard.recurring import cron
from dashboard.recurring.models import RecurringFire, RecurringSchedule
from dashboard.send_windows.models import BlackoutDate
from dashboard.send_windows.rules import local_instant
from dashboard.send_windows.selectors import SendRules, send_rules_for

NEXT_FIRES = 5
# Fires listed per day; the rest are counted ("and 940 more"), so a month of a thousand daily
# schedules stays a page a browser can show.
WEEK_DAY_LIMIT = 25
MONTH_DAY_LIMIT = 4


def schedule_list(*, tenant: Tenant) -> QuerySet[RecurringSchedule]:
    """The tenant's recurring schedules, by name."""
    return RecurringSchedule.objects.filter(tenant=tenant).order_by("name", "id")


def schedule_get(*, tenant: Tenant, schedule_id: int) -> RecurringSchedule:
    """One of the tenant's schedules; Http404 for another tenant's or none."""
    found = (
        schedule_list(tenant=tenant).filter(pk=schedule_id).first()
        if 0 < schedule_id < 2**63
        else None
    )
    if found is None:
        raise Http404("No such recurring schedule.")
    return found


@dataclass(frozen=True)
class Fire:
    """An upcoming fire: its instant in the rule's zone and in UTC."""

    local: datetime
    utc: datetime


def next_fires(*, schedule: RecurringSchedule, count: int = NEXT_FIRES) -> list[Fire]:
    """The schedule's next `count` fires (none while it is disabled)."""
    if not schedule.enabled or schedule.next_fire_at is None:
        return []
    rule = cron.rule_of(expression=schedule.cron, time_zone=schedule.time_zone)
    instants = [schedule.next_fire_at, *rule.upcoming(schedule.next_fire_at, count - 1)]
    return [
        Fire(local=instant.astimezone(rule.zone), utc=instant.astimezone(UTC))
        for instant in instants
    ]


def fire_history(*, schedule: RecurringSchedule, limit: int = 50) -> list[RecurringFire]:
    """The schedule's recorded fires, newest first: fired, skipped (and why) or failed."""
    return list(schedule.fires.order_by("-fire_at", "-id")[:limit])


# -- the calendar ------------------------------------------------------------------------------


@dataclass
class CalendarEntry:
    schedule_id: int
    name: str
    target: str
    local: datetime
    utc: datetime
    # Why it will be skipped as things stand (a pause, the window, a blackout date), or "".
    warning: str = ""

    @property
    def local_time(self) -> str:
        return f"{self.local:%H:%M}"

    @property
    def utc_time(self) -> str:
        return f"{self.utc:%H:%M}"


@dataclass
class CalendarDay:
    day: date
    in_range: bool
    is_today: bool
    entries: list[CalendarEntry] = field(default_factory=list)
    more: int = 0
    blackouts: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.entries) + self.more


@dataclass
class Calendar:
    view: str
    zone: str
    title: str
    anchor: date
    previous: date
    following: date
    weeks: list[list[CalendarDay]]
    pauses: list[SendingPause]
    total: int


def calendar_zone(*, tenant: Tenant, requested: str = "") -> str:
    """The zone the calendar is drawn in: the one asked for when it is a real IANA name, else
    the zone most of the tenant's schedules use, else UTC."""
    if requested:
        try:
            cron.rule_check(expression="0 0 * * *", time_zone=requested, now=utc_now())
        except Exception:  # an unknown zone in the address: fall back, the page says which
            requested = ""
        else:
            return requested
    zones = Counter(
        schedule_list(tenant=tenant).filter(enabled=True).values_list("time_zone", flat=True)
    )
    return zones.most_common(1)[0][0] if zones else "UTC"


def _range(view: str, anchor: date) -> tuple[date, date, date, date, str]:
    """(first day shown, last day shown, previous anchor, next anchor, title)."""
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        last = first + timedelta(days=6)
        title = _("Week of %(day)s") % {"day": f"{first:%Y-%m-%d}"}
        return first, last, first - timedelta(days=7), first + timedelta(days=7), title
    first_of_month = anchor.replace(day=1)
    days_in_month = month_calendar.monthrange(anchor.year, anchor.month)[1]
    last_of_month = first_of_month + timedelta(days=days_in_month - 1)
    first = first_of_month - timedelta(days=first_of_month.weekday())
    last = last_of_month + timedelta(days=6 - last_of_month.weekday())
    previous = (first_of_month - timedelta(days=1)).replace(day=1)
    following = last_of_month + timedelta(days=1)
    return first, last, previous, following, f"{first_of_month:%B %Y}"


def tenant_calendar(
    *, tenant: Tenant, view: str = "week", anchor: date | None = None, zone_name: str = "UTC"
) -> Calendar:
    """Every upcoming fire of the tenant's enabled schedules in a week or a month (drawn in
    `zone_name`), each day's blackout dates, and the open pauses; a fire that a pause, its
    connection's window or a blackout date would skip says so. Three queries plus one per
    connection with schedules, whatever the number of schedules: fires are computed once per
    distinct rule and zone."""
    view = "month" if view == "month" else "week"
    zone = ZoneInfo(zone_name)
    now = utc_now()
    today = now.astimezone(zone).date()
    anchor = anchor or today
    first, last, previous, following, title = _range(view, anchor)
    start = max(local_instant(first, time.min, zone), now)
    end = local_instant(last + timedelta(days=1), time.min, zone)
    schedules = list(
        schedule_list(tenant=tenant)
        .filter(enabled=True)
        .values_list("pk", "name", "target_label", "cron", "time_zone", "connection_id")
    )
    by_rule: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for row in schedules:
        by_rule[(row[3], row[4])].append(row)
    # Per local day: (instant, the schedules of one rule), one item per rule's fire, so a
    # thousand schedules sharing rules are not a thousand items per fire.
    per_day: dict[date, list[tuple[datetime, int, list[tuple]]]] = defaultdict(list)
    for order, ((expression, rule_zone), rows) in enumerate(by_rule.items()):
        rule = cron.rule_of(expression=expression, time_zone=rule_zone)
        for instant in rule.fires_between(start, end) if start < end else ():
            per_day[instant.astimezone(zone).date()].append((instant, order, rows))
    limit = WEEK_DAY_LIMIT if view == "week" else MONTH_DAY_LIMIT
    pauses = open_pauses(tenant=tenant)
    rules_by_connection: dict[int, SendRules] = {}
    blackouts_by_day: dict[date, list[str]] = defaultdict(list)
    for day, reason, connection_name in BlackoutDate.objects.filter(
        connection__tenant=tenant, day__gte=first, day__lte=last
    ).values_list("day", "reason", "connection__name"):
        blackouts_by_day[day].append(f"{connection_name}: {reason}" if reason else connection_name)

    def warning(connection_id: int | None, instant: datetime) -> str:
        for pause in pauses:
            if pause.connection_id is None or pause.connection_id == connection_id:
                return _("Paused: %(scope)s") % {"scope": pause.scope_label}
        if connection_id is None:
            return ""
        if connection_id not in rules_by_connection:
            rules_by_connection[connection_id] = send_rules_for(connection_id=connection_id)
        found = rules_by_connection[connection_id]
        if found.is_set and not found.is_allowed(instant):
            return _("Outside the send window or on a blackout date: it will be skipped")
        return ""

    weeks: list[list[CalendarDay]] = []
    total = 0
    day = first
    while day <= last:
        fires = per_day.get(day, [])
        count = sum(len(rows) for _instant, _order, rows in fires)
        total += count
        cell = CalendarDay(
            day=day,
            in_range=view == "week" or day.month == anchor.month,
            is_today=day == today,
            more=max(0, count - limit),
            blackouts=blackouts_by_day.get(day, []),
        )
        fires.sort(key=itemgetter(0, 1))
        for instant, _order, rows in fires:
            if len(cell.entries) >= limit:
                break
            local = instant.astimezone(zone)
            for row in rows[: limit - len(cell.entries)]:
                cell.entries.append(
                    CalendarEntry(
                        schedule_id=row[0],
                        name=row[1],
                        target=row[2],
                        local=local,
                        utc=instant,
                        warning=warning(row[5], instant),
                    )
                )
        if day.weekday() == 0:
            weeks.append([])
        weeks[-1].append(cell)
        day += timedelta(days=1)
    return Calendar(
        view=view,
        zone=zone_name,
        title=title,
        anchor=anchor,
        previous=previous,
        following=following,
        weeks=weeks,
        pauses=pauses,
        total=total,
    )
