"""Saving a person's preferences: the page and the API both come here."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.preferences import selectors
from dashboard.preferences.models import PersonalPreference
from dashboard.preferences.selectors import SESSION_KEY, Preferences


def preferences_update(*, actor: Actor, language: str, time_zone: str) -> Preferences:
    """Save the acting person's language ("" for the browser's, or one of settings.LANGUAGES)
    and time zone ("" for the browser's, or an IANA name); audited with the old and new values.
    A bad value raises ValidationError on its field ("language" or "time_zone", with that code)
    and changes nothing."""
    user = actor.user
    if user is None or not user.is_authenticated:
        raise ValidationError(_("Only a signed-in person has preferences."), code="anonymous")
    language = (language or "").strip()
    time_zone = (time_zone or "").strip()
    if language and language not in selectors.language_codes():
        message = _(
            "“%(language)s” is not a language TriggerDesk speaks (English: en, Russian: ru)."
        ) % {"language": language[:20]}
        raise ValidationError({"language": ValidationError(message, code="language")})
    if time_zone and not selectors.is_time_zone(time_zone):
        message = _("“%(zone)s” is not a time zone name (an IANA name such as Europe/Moscow).") % {
            "zone": time_zone[:64]
        }
        raise ValidationError({"time_zone": ValidationError(message, code="time_zone")})
    with transaction.atomic():
        row, _created = PersonalPreference.objects.select_for_update().get_or_create(user=user)
        before = Preferences(language=row.language, time_zone=row.time_zone)
        after = Preferences(language=language, time_zone=time_zone)
        if before != after:
            row.language, row.time_zone = language, time_zone
            row.save(update_fields=["language", "time_zone", "updated_at"])
            record_audit_event(
                actor=actor,
                action="preferences.update",
                object_type="user",
                object_id=user.pk,
                summary={"before": before.as_session(), "after": after.as_session()},
            )
    return after


def preferences_remember(session, preferences: Preferences) -> None:
    """Keep `preferences` in the session, where each request reads them without a query."""
    session[SESSION_KEY] = preferences.as_session()
