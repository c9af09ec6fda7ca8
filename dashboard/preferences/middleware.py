"""Each request speaks the person's language and knows their time zone.

After LocaleMiddleware (which picks the browser's language: Accept-Language, or the language
cookie) and AuthenticationMiddleware: a signed-in person's own choice wins over the browser.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.utils import translation

from dashboard.preferences import selectors, services


class PersonalPreferencesMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        preferences = self._preferences(request)
        if preferences.language:
            translation.activate(preferences.language)
            request.LANGUAGE_CODE = translation.get_language()
        zone = ZoneInfo(preferences.time_zone) if preferences.time_zone else None
        request.person_time_zone = zone
        token = selectors.set_person_time_zone(zone)
        try:
            return self.get_response(request)
        finally:
            selectors.reset_person_time_zone(token)

    @staticmethod
    def _preferences(request) -> selectors.Preferences:
        # From the session alone: reading request.user here would cost each page a query that
        # the tenant views save (dashboard/tenancy/scoping.py loads the user with the membership).
        session = getattr(request, "session", None)
        if session is None:
            return selectors.Preferences()
        remembered = selectors.preferences_from_session(session)
        if remembered is not None:
            return remembered
        user_id = session.get(AUTH_SESSION_KEY)
        if user_id is None:
            return selectors.Preferences()
        # A session from before this feature (login fills it in): read once, then keep.
        remembered = selectors.preferences_for_user_id(user_id)
        services.preferences_remember(session, remembered)
        return remembered
