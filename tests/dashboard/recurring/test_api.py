"""The recurring schedule endpoints: create, see (next fires, history), change, enable or
disable, delete; bad input is a 422 naming the field with nothing saved; audited."""

from __future__ import annotations

import pytest

from dashboard.models import AuditEvent
from dashboard.recurring.models import RecurringSchedule
from tests.campaigns.conftest import ARSENAL, GOOD_CONTEXT

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


@pytest.fixture(autouse=True)
def _roomy_rate_limits(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 6000
    settings.API_RATE_LIMIT_BURST = 1000


def body(generator, **overrides):
    values = {
        "name": "Weekday kick-off",
        "cron": "0 9 * * 1-5",
        "time_zone": "Europe/Berlin",
        "target": {
            "kind": "event_generator",
            "id": generator.pk,
            "topics": [ARSENAL],
            "context": GOOD_CONTEXT,
        },
    }
    values.update(overrides)
    return values


def test_create_see_change_disable_and_delete_through_the_api(team, make_token, generator) -> None:
    _, client = make_token("marketer", name="crm-bot")
    created = client.post("recurring-schedules", body(generator))
    assert created.status_code == 201, created.content
    schedule = created.json()
    assert schedule["words"] == "At 09:00, Monday through Friday"
    assert len(schedule["next_fires"]) == 5
    assert schedule["fires"] == []
    path = f"recurring-schedules/{schedule['id']}"
    assert client.get(path).json()["target"].startswith("Event generator Match Start")
    assert [item["name"] for item in client.get("recurring-schedules").json()] == [
        "Weekday kick-off"
    ]
    changed = client.post(path, body(generator, cron="30 7 * * *"))
    assert changed.json()["words"] == "At 07:30"
    disabled = client.post(f"{path}/enabled", {"enabled": False})
    assert disabled.json()["enabled"] is False and disabled.json()["next_fires"] == []
    assert client.post(f"{path}/delete").status_code == 204
    assert not RecurringSchedule.objects.exists()
    calls = AuditEvent.objects.filter(action="api.called").values_list("summary", flat=True)
    assert {call["client"] for call in calls} == {"crm-bot"}
    assert AuditEvent.objects.filter(action__startswith="recurring.").count() == 4


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"cron": "0 9 30 2 *"}, "cron", "never fires"),
        ({"cron": "*/5 * * * * *"}, "cron", "no seconds field"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Unknown time zone"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_nothing_is_saved(
    team, make_token, generator, overrides, field, words
) -> None:
    _, client = make_token("marketer")
    response = client.post("recurring-schedules", body(generator, **overrides))
    assert response.status_code == 422
    problem = response.json()
    assert words in str(problem)
    assert field in str(problem)
    assert not RecurringSchedule.objects.exists()


def test_an_unknown_target_and_an_auditor_are_refused(team, make_token, generator) -> None:
    _, client = make_token("marketer")
    unknown = body(generator)
    unknown["target"]["kind"] = "fax"
    assert client.post("recurring-schedules", unknown).status_code == 422
    _, auditor = make_token("auditor")
    assert auditor.post("recurring-schedules", body(generator)).status_code == 403
    assert not RecurringSchedule.objects.exists()
