"""The automation API's preferences endpoints: the token's person's language and time zone
(the same service as the Preferences page)."""

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Schema, Status
from pydantic import Field

from dashboard.api.endpoints.common import ERRORS, acting, router, token_use
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import Strict
from dashboard.preferences import selectors, services
from dashboard.tenancy.scoping import client_ip


class PreferencesIn(Strict):
    language: str = Field(
        "", max_length=10, description='"en", "ru", or "" for the browser\'s language.'
    )
    time_zone: str = Field(
        "",
        max_length=64,
        description='An IANA time zone (e.g. "Europe/Moscow"), or "" for the browser\'s zone.',
    )


class PreferencesOut(Schema):
    language: str = Field(description='"en", "ru", or "" (the browser\'s language).')
    time_zone: str = Field(description='An IANA time zone, or "" (the browser\'s zone).')
    languages: list[str] = Field(description="The languages TriggerDesk speaks.")


def _out(preferences: selectors.Preferences) -> dict:
    return {**preferences.as_session(), "languages": selectors.language_codes()}


@router.get(
    "/t/{tenant_slug}/me/preferences",
    response={200: PreferencesOut, **ERRORS},
    operation_id="preferences_state",
    summary="The token's person's language and time zone",
)
def preferences_state(request: HttpRequest, tenant_slug: str):
    return _out(selectors.preferences_for_user(token_use(request).membership.user))


@router.post(
    "/t/{tenant_slug}/me/preferences",
    response={200: PreferencesOut, **ERRORS},
    operation_id="preferences_set",
    summary="Set the token's person's language and time zone (empty: as the browser says)",
)
@acting("preferences_set")
def preferences_set(request: HttpRequest, tenant_slug: str, payload: PreferencesIn):
    """200 with the saved preferences (audited, with the old and new values); 422 `invalid`
    naming the field (`language`, `time_zone`) for a language or zone TriggerDesk does not
    know."""
    use = token_use(request)
    try:
        saved = services.preferences_update(
            actor=use.actor(client_ip(request)),
            language=payload.language,
            time_zone=payload.time_zone,
        )
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise ApiProblem(422, "invalid", messages[0] or _("Invalid value."), field=field) from None
    return Status(200, _out(saved))
