"""Setting a connection's send window and blackout dates, and the check every trigger path calls.

The pages, the API and the send_window command all come here: the same rules (an operator or
admin of the tenant, a reason, all or nothing) and the same audit row (who, why, before, after).
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import Permission, Tenant, VendorConnection
from dashboard.runs.enqueue import batch_of, enqueue
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from dashboard.send_windows import rules
from dashboard.send_windows.models import BlackoutDate, SendWindow
from dashboard.send_windows.selectors import SendRules, send_rules_for

REASON_MAX_CHARS = 500
BLACKOUT_REASON_MAX_CHARS = 200
# A year of blackout dates and more is a pause, not a calendar.
MAX_BLACKOUTS = 300
DAY_NUMBERS = {name.lower(): number for number, name in enumerate(rules.WEEKDAY_NAMES)}


class OutsideSendWindow(ValidationError):
    """A new trigger refused outside its connection's send window or on a blackout date (code
    "outside_send_window": the API's problem code), with the next allowed instant."""

    def __init__(self, found: SendRules, next_allowed_at: datetime | None) -> None:
        self.rules = found
        self.next_allowed_at = next_allowed_at
        then = (
            _("next allowed %(when)s") % {"when": found.when(next_allowed_at)}
            if next_allowed_at is not None
            else _("no time is allowed in the next two years")
        )
        super().__init__(
            _("Outside the send window of %(connection)s (%(rules)s): %(then)s.")
            % {"connection": found.connection_name, "rules": found.describe(), "then": then},
            code="outside_send_window",
        )


def release_held_runs(runs: Any, until: datetime | None, now: datetime) -> int:
    """Make queued `runs` held until `until` (by rules that changed) due at once, and wake
    their senders after the commit; the worker holds again any the new rules still hold."""
    if until is None:
        return 0
    held = list(runs.filter(state=RunState.QUEUED, next_attempt_at=until))
    Run.objects.filter(pk__in=[run.pk for run in held]).update(next_attempt_at=now)
    woken: set[tuple[int, str]] = set()
    for run in held:
        batch = batch_of(run)
        if batch is not None:
            if batch in woken:
                continue
            woken.add(batch)
        enqueue("send", run.pk, batch=batch)
    return len(held)


def check_send_window(*, connection: VendorConnection, at: datetime | None = None) -> None:
    """Refuse a new trigger through `connection` outside its send window or on a blackout date:
    raises OutsideSendWindow. Called beside the pause check (pauses.check_sending_allowed), so
    every trigger path asks it."""
    at = at or utc_now()
    found = send_rules_for(connection_id=connection.pk, connection_name=connection.name)
    if found.is_set and not found.is_allowed(at):
        raise OutsideSendWindow(found, found.next_allowed(at))


# -- parsing the window's parts (the form, the API and the command give text) -----------------


def parse_weekdays(value: str | list[Any]) -> list[int]:
    """Weekdays from "Mon-Fri", "mon,wed,sat", [0, 1] or ["Mon", "Tue"]; sorted, at least one."""
    items = value if isinstance(value, list) else re.split(r"[\s,]+", value.strip())
    days: set[int] = set()
    for item in items:
        if isinstance(item, bool):
            raise ValidationError(
                {"weekdays": _("'%(item)s' is not a weekday.") % {"item": item}}, code="invalid"
            )
        if isinstance(item, int):
            if not 0 <= item <= 6:
                raise ValidationError(
                    {
                        "weekdays": _("%(item)s is not a weekday (0 = Monday ... 6 = Sunday).")
                        % {"item": item}
                    },
                    code="invalid",
                )
            days.add(item)
            continue
        text = str(item).strip().lower()
        if not text:
            continue
        ends = re.split(r"\s*[-\u2013]\s*", text)
        if len(ends) > 2 or any(end[:3] not in DAY_NUMBERS or len(end) < 3 for end in ends):
            raise ValidationError(
                {
                    "weekdays": _("'%(item)s' is not a weekday: use Mon, Tue, ... Sun or Mon-Fri.")
                    % {"item": item}
                },
                code="invalid",
            )
        first, last = DAY_NUMBERS[ends[0][:3]], DAY_NUMBERS[ends[-1][:3]]
        if last < first:
            raise ValidationError(
                {
                    "weekdays": _(
                        "'%(item)s' runs backwards: write it as %(last)s-Sun, Mon-%(first)s."
                    )
                    % {"item": item, "last": ends[-1], "first": ends[0]}
                },
                code="invalid",
            )
        days.update(range(first, last + 1))
    if not days:
        raise ValidationError(
            {"weekdays": _("Choose at least one weekday: a window with none never opens.")},
            code="empty_window",
        )
    return sorted(days)


def parse_time(value: str | time, field: str) -> time:
    """A local time of day, "HH:MM" (minutes; no seconds)."""
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", str(value or ""))
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValidationError(
            {field: _("'%(value)s' is not a time of day (HH:MM).") % {"value": value}},
            code="invalid",
        )
    return time(int(match[1]), int(match[2]))


def parse_zone(value: str) -> str:
    """An IANA time zone name, e.g. Europe/Berlin."""
    name = (value or "").strip() or "UTC"
    if name not in zoneinfo.available_timezones() and name != "UTC":
        raise ValidationError(
            {
                "time_zone": _("'%(name)s' is not an IANA time zone (e.g. Europe/Berlin).")
                % {"name": name}
            },
            code="invalid",
        )
    return name


def parse_blackouts(value: str | list[Any]) -> list[tuple[date, str]]:
    """Blackout dates from lines "2026-12-24 Christmas Eve" (or [{"date", "reason"}]); one bad
    line fails them all, named by its line number."""
    if isinstance(value, str):
        items: list[Any] = [line for line in value.splitlines() if line.strip()]
    else:
        items = list(value)
    found: dict[date, str] = {}
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            text, reason = str(item.get("date", "")), str(item.get("reason") or "")
        else:
            # "2026-12-24 Christmas Eve", or with a tab or several spaces between.
            text, reason = ([*str(item).split(maxsplit=1), ""])[:2]
        where = (
            _("Blackout date %(number)s ('%(text)s')") % {"number": number, "text": text}
            if text
            else _("Blackout date %(number)s") % {"number": number}
        )
        try:
            day = (
                date.fromisoformat(text.strip())
                if re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", text)
                else None
            )
        except ValueError:
            day = None
        if day is None:
            raise ValidationError(
                {
                    "blackouts": _(
                        "%(where)s is not a date: write it as YYYY-MM-DD, e.g. 2026-12-24."
                    )
                    % {"where": where}
                },
                code="invalid_date",
            )
        reason = reason.strip()
        if len(reason) > BLACKOUT_REASON_MAX_CHARS:
            raise ValidationError(
                {
                    "blackouts": _("%(where)s: keep its reason to %(limit)s characters.")
                    % {"where": where, "limit": BLACKOUT_REASON_MAX_CHARS}
                },
                code="invalid",
            )
        if day in found:
            raise ValidationError(
                {
                    "blackouts": _("%(where)s is listed twice: list each date once.")
                    % {"where": where}
                },
                code="duplicate",
            )
        found[day] = reason
    if len(found) > MAX_BLACKOUTS:
        raise ValidationError(
            {
                "blackouts": _("At most %(limit)s blackout dates; for longer, pause sending.")
                % {"limit": MAX_BLACKOUTS}
            },
            code="invalid",
        )
    return sorted(found.items())


@dataclass(frozen=True)
class WindowInput:
    """A window as given, before it is checked."""

    weekdays: str | list[Any]
    start: str | time
    end: str | time
    time_zone: str = "UTC"


def clean_window(given: WindowInput) -> rules.Window:
    """The window, or a ValidationError naming the field: no weekday, start == end (empty), an
    end before its start (overnight windows are not supported), an unknown zone."""
    weekdays = parse_weekdays(given.weekdays)
    start = parse_time(given.start, "start")
    end = parse_time(given.end, "end")
    zone = parse_zone(given.time_zone)
    if start == end:
        raise ValidationError(
            {
                "end": _("The window is empty: it starts and ends at %(start)s.")
                % {"start": f"{start:%H:%M}"}
            },
            code="empty_window",
        )
    if end < start:
        raise ValidationError(
            {
                "end": _(
                    "The window ends (%(end)s) before it starts (%(start)s); windows "
                    "across midnight are not supported: end it by 23:59."
                )
                % {"end": f"{end:%H:%M}", "start": f"{start:%H:%M}"}
            },
            code="invalid",
        )
    return rules.Window(weekdays=frozenset(weekdays), start=start, end=end, zone=zone)


def check_may_change(actor: Actor, tenant: Tenant) -> None:
    """Only an operator or admin of the tenant may change a send window (a connection's, an
    event generator's)."""
    user = actor.user
    if user is None or not user.is_authenticated:
        raise PermissionDenied(
            _("Only a signed-in operator or admin of %(tenant)s can change a send window.")
            % {"tenant": tenant.name}
        )
    membership = user.memberships.filter(tenant=tenant).first()
    if membership is None:
        raise PermissionDenied(
            _("A non-member cannot change send windows in %(tenant)s.") % {"tenant": tenant.name}
        )
    if not membership.can(Permission.APPROVE):
        raise PermissionDenied(
            _("Your role (%(role)s) cannot change send windows in %(tenant)s.")
            % {"role": membership.get_role_display(), "tenant": tenant.name}
        )


def rules_summary(found: SendRules) -> dict[str, Any]:
    """The rules as the audit trail and the API show them."""
    window = found.window
    return {
        "window": None
        if window is None
        else {
            "weekdays": sorted(window.weekdays),
            "start": f"{window.start:%H:%M}",
            "end": f"{window.end:%H:%M}",
            "time_zone": window.zone,
        },
        "blackouts": [
            {"date": f"{day:%Y-%m-%d}", "reason": reason}
            for day, reason in sorted(found.blackouts.items())
        ],
        "text": found.describe(),
    }


def send_window_set(
    *,
    actor: Actor,
    connection: VendorConnection,
    window: WindowInput | None,
    blackouts: str | list[Any],
    reason: str,
) -> SendRules:
    """Set the connection's send window (None: any time) and its blackout dates (replacing the
    list), all or nothing: any bad part is a ValidationError naming it, and nothing changes.
    Audited as send_window.changed with who, why, before and after."""
    check_may_change(actor, connection.tenant)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the send window changes.")}, code="required")
    if len(reason) > REASON_MAX_CHARS:
        raise ValidationError(
            {"reason": _("Keep the reason to %(limit)s characters.") % {"limit": REASON_MAX_CHARS}},
            code="max_length",
        )
    cleaned = clean_window(window) if window is not None else None
    days = parse_blackouts(blackouts)
    with transaction.atomic():
        # The connection's row lock: two editors' changes apply one after the other, each
        # audited against what the other left.
        VendorConnection.objects.select_for_update().filter(pk=connection.pk).first()
        before = send_rules_for(connection_id=connection.pk, connection_name=connection.name)
        if cleaned is None:
            SendWindow.objects.filter(connection=connection).delete()
        else:
            SendWindow.objects.update_or_create(
                connection=connection,
                defaults={
                    "weekdays": sorted(cleaned.weekdays),
                    "start_time": cleaned.start,
                    "end_time": cleaned.end,
                    "time_zone": cleaned.zone,
                    "updated_by_label": actor.display,
                },
            )
        BlackoutDate.objects.filter(connection=connection).delete()
        BlackoutDate.objects.bulk_create(
            BlackoutDate(connection=connection, day=day, reason=text) for day, text in days
        )
        after = send_rules_for(connection_id=connection.pk, connection_name=connection.name)
        released = _release_held(connection, before, after)
        record_audit_event(
            actor=actor,
            tenant=connection.tenant,
            action="send_window.changed",
            object_type="connection",
            object_id=connection.pk,
            summary={
                "connection": connection.name,
                "reason": reason,
                "from": rules_summary(before),
                "to": rules_summary(after),
                "released": released,
            },
        )
    return after


def _release_held(connection: VendorConnection, before: SendRules, after: SendRules) -> int:
    """The connection's queued runs the old rules held until their next opening become due
    again under the new ones (a blackout lifted, a window widened). Runs waiting for another
    reason (a retry's back-off) keep their time."""
    now = utc_now()
    until = before.next_allowed(now) if before.is_set and not before.is_allowed(now) else None
    if until is None or until == after.next_allowed(now):
        return 0
    return release_held_runs(Run.objects.filter(connection=connection), until, now)
