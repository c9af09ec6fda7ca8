"""Reads of send windows: a connection's rules, and whether (and until when) they hold sending."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from django.db.models import Exists, OuterRef
from django.utils.translation import gettext as _

from dashboard import plugins
from dashboard.send_windows import rules
from dashboard.send_windows.models import BlackoutDate, SendWindow

DAY_NAMES = rules.WEEKDAY_LABELS


@dataclass(frozen=True)
class SendRules:
    """A connection's window (None: any time) and blackout dates (date -> reason)."""

    connection_name: str
    window: rules.Window | None = None
    blackouts: dict[date, str] = field(default_factory=dict)

    @property
    def is_set(self) -> bool:
        return self.window is not None or bool(self.blackouts)

    @property
    def zone(self) -> ZoneInfo:
        return self.window.tz if self.window is not None else ZoneInfo("UTC")

    def describe(self) -> str:
        """In words, e.g. Mon to Fri 08:00 to 21:00 Europe/Berlin; not on 2026-12-24, 2026-12-31."""
        text = self.window.describe() if self.window is not None else _("Any time")
        if self.blackouts:
            days = ", ".join(f"{day:%Y-%m-%d}" for day in sorted(self.blackouts))
            if self.window is None:
                text += _("; not on %(days)s (UTC dates)") % {"days": days}
            else:
                text += _("; not on %(days)s") % {"days": days}
        return text

    def is_allowed(self, at: datetime) -> bool:
        return rules.is_allowed(self.window, self.blackouts, at)

    def next_allowed(self, at: datetime) -> datetime | None:
        return rules.next_allowed(self.window, self.blackouts, at)

    def when(self, at: datetime | None) -> str:
        """An instant as the brand reads it: "Tue 2026-03-31 08:00 Europe/Berlin (06:00 UTC)"."""
        if at is None:
            return _("no allowed time in the next two years")
        local = at.astimezone(self.zone)
        utc = at.astimezone(UTC)
        text = f"{DAY_NAMES[local.weekday()]} {local:%Y-%m-%d %H:%M} {self.zone.key}"
        if self.zone.key != "UTC":
            same_day = utc.date() == local.date()
            text += f" ({utc:%H:%M} UTC)" if same_day else f" ({utc:%Y-%m-%d %H:%M} UTC)"
        return text


def next_allowed_for_all(found: list[SendRules], at: datetime) -> datetime | None:
    """The first instant at or after `at` that every one of these rules allows (a connection's
    and an event generator's), None when there is none ahead. Each step moves to the next
    opening of a rule that is closed, so it ends at the first common instant."""
    moment: datetime | None = at
    for _attempt in range(200):
        if moment is None:
            return None
        moved = moment
        for one in found:
            moved = one.next_allowed(moved) if moved is not None else None
        if moved == moment:
            return moment
        moment = moved
    return None


def send_rules_exist(connection_field: str = "connection_id") -> dict[str, Exists]:
    """Annotations for a read of rows that name a connection in `connection_field`: whether
    that connection has a send window (`has_send_window`) and any blackout date
    (`has_blackout_dates`). A hot path that reads its row anyway learns in the same round trip
    whether the rules need reading at all: most connections have none."""
    return {
        "has_send_window": Exists(
            SendWindow.objects.filter(connection_id=OuterRef(connection_field))
        ),
        "has_blackout_dates": Exists(
            BlackoutDate.objects.filter(connection_id=OuterRef(connection_field))
        ),
    }


def send_rules_for(*, connection_id: int, connection_name: str = "") -> SendRules:
    """The connection's send window and blackout dates (two small indexed reads)."""
    window = SendWindow.objects.filter(connection_id=connection_id).first()
    blackouts = dict(
        BlackoutDate.objects.filter(connection_id=connection_id).values_list("day", "reason")
    )
    return SendRules(
        connection_name=connection_name,
        window=window.rule if window is not None else None,
        blackouts=blackouts,
    )


@dataclass(frozen=True)
class SendHold:
    """Sending through a connection waits for its window: until when, and why in words."""

    rules: SendRules
    until: datetime | None

    def held_reason(self) -> str:
        """Why a queued run waits, as shown beside it."""
        return _(
            "Held: outside the send window of %(connection)s (%(rules)s); it goes at %(when)s"
        ) % {
            "connection": self.rules.connection_name,
            "rules": self.rules.describe(),
            "when": self.rules.when(self.until),
        }


def send_hold_for(
    *, connection_id: int, at: datetime, connection_name: str = ""
) -> SendHold | None:
    """None when the connection's rules allow sending at `at`; else the hold, with the next
    allowed instant (None when none is ahead)."""
    found = send_rules_for(connection_id=connection_id, connection_name=connection_name)
    if not found.is_set or found.is_allowed(at):
        return None
    return SendHold(rules=found, until=found.next_allowed(at))


def hold_by_feature_windows(*, connection_id: int, operation: str, now: datetime) -> None:
    """Let feature apps hold queued runs by windows of their own (an event generator's):
    each `AppConfig.send_holds` function moves the due time (next_attempt_at) of the runs of
    this connection and operation it holds to its window's next opening, so the claim that
    follows skips them and the sweeper wakes them then."""
    for hold in plugins.contributions("send_holds"):
        hold(connection_id=connection_id, operation=operation, now=now)
