"""The preferences endpoints: the token's person reads and sets their language and time zone;
a language or zone TriggerDesk does not know is a 422 naming the field; problem details follow
the client's Accept-Language."""

from __future__ import annotations

import pytest

from dashboard.models import AuditEvent
from dashboard.preferences.selectors import preferences_for_user

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("clean_redis", "compiled_translations"),
]


def test_read_and_set_through_the_api(team, make_token):
    _, client = make_token("marketer", name="prefs-bot")
    assert client.get("me/preferences").json() == {
        "language": "",
        "time_zone": "",
        "languages": ["en", "ru"],
    }
    response = client.post("me/preferences", {"language": "ru", "time_zone": "Asia/Almaty"})
    assert response.status_code == 200, response.content
    assert response.json()["time_zone"] == "Asia/Almaty"
    assert preferences_for_user(team.marketer.user).language == "ru"
    event = AuditEvent.objects.get(action="preferences.update")
    assert event.actor_label == "mia via API token “prefs-bot”"


def test_an_unknown_zone_is_a_422_naming_the_field_in_the_clients_language(team, make_token):
    _, client = make_token("auditor")
    response = client.post(
        "me/preferences",
        {"language": "", "time_zone": "Europe/Atlantis"},
        HTTP_ACCEPT_LANGUAGE="ru",
    )
    assert response.status_code == 422
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("invalid", "time_zone")
    assert problem["detail"].startswith("«Europe/Atlantis» — не название часового пояса")
    assert preferences_for_user(team.auditor.user).time_zone == ""
