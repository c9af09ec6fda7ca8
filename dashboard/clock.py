"""The one place the app reads the time, so tests can move it (UTC day boundaries)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return timezone.now().astimezone(UTC)


def utc_today() -> date:
    return utc_now().date()


def next_utc_midnight(moment: datetime) -> datetime:
    """The start of the UTC day after `moment`."""
    moment = moment.astimezone(UTC)
    return datetime.combine(moment.date() + timedelta(days=1), time.min, tzinfo=UTC)
