"""The pause endpoints: see, pause, resume; a paused tenant's triggers are a 409 `paused`."""

from __future__ import annotations

import pytest

from dashboard.models import AuditEvent
from dashboard.pauses.models import SendingPause
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.factories import RunFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


@pytest.fixture(autouse=True)
def _roomy_rate_limits(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 6000
    settings.API_RATE_LIMIT_BURST = 1000


def test_pause_show_and_resume_through_the_api(team, make_token, daily_connection):
    _, client = make_token("operator", name="ops-bot")
    held = RunFactory(
        tenant=team.tenant,
        connection=daily_connection,
        state=RunState.QUEUED,
        approval_required=False,
        operation="optimove_trigger_daily",
    )

    assert client.get("sending-pause").json() == {"paused": False, "pauses": []}
    response = client.post("sending-pause", {"reason": "Vendor incident"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["scope"], body["reason"], body["held_runs"]) == ("tenant", "Vendor incident", 1)
    assert body["paused_by"] == "oscar via API token “ops-bot”"

    state = client.get("sending-pause").json()
    assert state["paused"] is True and [p["id"] for p in state["pauses"]] == [body["id"]]

    response = client.post("sending-pause/resume", {"cancel_held": True})
    assert response.status_code == 200, response.content
    assert (response.json()["released"], response.json()["cancelled"]) == (0, 1)
    held.refresh_from_db()
    assert held.state == RunState.CANCELLED
    calls = AuditEvent.objects.filter(action="api.called").order_by("created_at", "id")
    calls = calls.values_list("summary", flat=True)
    assert [(c["endpoint"], c["status"]) for c in calls] == [
        ("sending_pause", 201),
        ("sending_resume", 200),
    ]


def test_bad_input_gets_clear_problems_and_changes_nothing(team, make_token):
    _, client = make_token("operator")

    empty = client.post("sending-pause", {"reason": "  "})
    assert (empty.status_code, empty.json()["code"], empty.json()["field"]) == (
        422,
        "invalid",
        "reason",
    )
    missing = client.post("sending-pause", {"reason": "x", "connection": "Nope"})
    assert (missing.status_code, missing.json()["code"]) == (404, "connection_not_found")
    assert missing.json()["detail"] == "Acme Sports has no connection 'Nope'."
    not_paused = client.post("sending-pause/resume", {})
    assert (not_paused.status_code, not_paused.json()["code"]) == (409, "not_paused")
    assert not SendingPause.objects.exists()

    client.post("sending-pause", {"reason": "Incident"})
    again = client.post("sending-pause", {"reason": "Incident"})
    assert (again.status_code, again.json()["code"]) == (409, "already_paused")
    assert SendingPause.objects.count() == 1
    assert again.headers["Content-Type"] == "application/problem+json"


def test_a_marketer_token_may_not_pause(team, make_token):
    _, client = make_token("marketer")
    response = client.post("sending-pause", {"reason": "Mine"})
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert not SendingPause.objects.exists()


def test_a_trigger_of_a_paused_tenant_is_a_409_paused(team, make_token, daily_connection):
    _, operator = make_token("operator")
    _, marketer = make_token("marketer")
    operator.post("sending-pause", {"reason": "Wrong files"})

    response = marketer.post("daily-trigger", {"files_uploaded_attested": True})

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "paused"
    assert "Wrong files" in response.json()["detail"]
    assert not Run.objects.exists()
