"""Reading a person's preferences, the time zones offered, and the zone of this request."""

from __future__ import annotations

import zoneinfo
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from functools import cache
from zoneinfo import ZoneInfo

from django.conf import settings

from dashboard.preferences.models import PersonalPreference

# The session keeps a person's choice, so a page reads no extra row (tests/dashboard/
# test_query_budgets.py); it is written at login and whenever the person saves the page.
SESSION_KEY = "personal_preferences"

# The zone the person chose, for this request (PersonalPreferencesMiddleware sets it). Django's
# own current time zone stays UTC on purpose: every time the pages label "UTC", every UTC input
# (a campaign's "Send at (UTC)") and every export stays in UTC; the person's zone is shown
# beside them (the `local_time` filter, static/js/app.js).
_request_zone: ContextVar[ZoneInfo | None] = ContextVar("person_time_zone", default=None)


@dataclass(frozen=True)
class Preferences:
    """A person's choice; an empty value means "as the browser says"."""

    language: str = ""
    time_zone: str = ""

    def as_session(self) -> dict[str, str]:
        return asdict(self)


def language_codes() -> list[str]:
    """The languages the product speaks (settings.LANGUAGES)."""
    return [code for code, _name in settings.LANGUAGES]


@cache
def time_zone_names() -> tuple[str, ...]:
    """Every IANA time zone this machine knows, sorted (UTC first)."""
    names = zoneinfo.available_timezones() - {"UTC", "localtime", "Factory"}
    return ("UTC", *sorted(names))


def is_time_zone(name: str) -> bool:
    """True for an IANA zone name the product offers."""
    return name in time_zone_names()


def preferences_for_user(user) -> Preferences:
    """The person's saved preferences (empty ones when they never chose)."""
    return preferences_for_user_id(user.pk)


def preferences_for_user_id(user_id) -> Preferences:
    """The saved preferences of the user with this id (empty ones when they never chose)."""
    row = PersonalPreference.objects.filter(user_id=user_id).first()
    if row is None:
        return Preferences()
    return Preferences(language=row.language, time_zone=row.time_zone)


def language_for_user(user, *, fallback: str = "") -> str:
    """The language to write to `user` in (an email sent off the web request): their own choice,
    else `fallback` (the language of the request that caused it), else the default."""
    chosen = preferences_for_user_id(user.pk).language if user is not None and user.pk else ""
    for language in (chosen, fallback):
        if language and language.split("-")[0] in language_codes():
            return language.split("-")[0]
    return settings.LANGUAGE_CODE


def preferences_from_session(session) -> Preferences | None:
    """What the session remembers, or None when it does not know yet."""
    stored = session.get(SESSION_KEY)
    if not isinstance(stored, dict):
        return None
    language = stored.get("language") or ""
    zone = stored.get("time_zone") or ""
    return Preferences(
        language=language if language in language_codes() else "",
        time_zone=zone if is_time_zone(zone) else "",
    )


def person_time_zone() -> ZoneInfo | None:
    """The zone the person of this request chose, None when their browser's zone applies."""
    return _request_zone.get()


def set_person_time_zone(zone: ZoneInfo | None):
    """Make `zone` this request's person zone; returns the token to reset it with."""
    return _request_zone.set(zone)


def reset_person_time_zone(token) -> None:
    _request_zone.reset(token)
