"""The send-window endpoints: see and set; a trigger outside the window is a 409
`outside_send_window` with `next_allowed_at`; bad input a 422 naming the field, nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.runs.models import Run
from dashboard.send_windows.models import BlackoutDate, SendWindow

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

PATH = "connections/Optimove batch/send-window"


@pytest.fixture(autouse=True)
def _roomy_rate_limits(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 6000
    settings.API_RATE_LIMIT_BURST = 1000


def test_show_and_set_a_window_through_the_api(team, make_token, daily_connection):
    _, client = make_token("operator", name="ops-bot")

    shown = client.get(PATH).json()
    assert shown["window"] is None and shown["blackouts"] == [] and shown["allowed_now"] is True
    assert shown["text"] == "Any time"

    response = client.post(
        PATH,
        {
            "window": {
                "weekdays": "Mon-Fri",
                "start": "08:00",
                "end": "21:00",
                "time_zone": "Europe/Berlin",
            },
            "blackouts": [{"date": "2026-12-24", "reason": "Christmas Eve"}],
            "reason": "Brand rules",
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["window"] == {
        "weekdays": [0, 1, 2, 3, 4],
        "start": "08:00",
        "end": "21:00",
        "time_zone": "Europe/Berlin",
    }
    assert body["text"] == "Mon\u2013Fri 08:00\u201321:00 Europe/Berlin; not on 2026-12-24"
    assert body["blackouts"] == [{"date": "2026-12-24", "reason": "Christmas Eve"}]
    event = AuditEvent.objects.get(action="send_window.changed")
    assert event.actor_label == "oscar via API token “ops-bot”"
    assert event.summary["reason"] == "Brand rules"
    call = AuditEvent.objects.get(action="api.called")
    assert (call.summary["endpoint"], call.summary["status"]) == ("send_window_set", 200)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"window": {"weekdays": [], "start": "08:00", "end": "21:00"}, "reason": "x"},
            "weekdays",
            "at least one weekday",
        ),
        (
            {"window": {"weekdays": "Mon", "start": "09:00", "end": "09:00"}, "reason": "x"},
            "end",
            "The window is empty",
        ),
        (
            {"window": None, "blackouts": [{"date": "2026-13-01"}], "reason": "x"},
            "blackouts",
            "Blackout date 1 ('2026-13-01') is not a date",
        ),
        (
            {"window": None, "reason": " "},
            "reason",
            "Say why the send window changes.",
        ),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(
    team, make_token, daily_connection, body, field, words
):
    _, client = make_token("operator")
    response = client.post(PATH, body)
    assert response.status_code == 422, response.content
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("invalid", field)
    assert words in problem["detail"]
    assert not SendWindow.objects.exists() and not BlackoutDate.objects.exists()
    assert not AuditEvent.objects.filter(action="send_window.changed").exists()


def test_a_marketer_cannot_set_a_window_and_an_unknown_connection_is_a_404(
    team, make_token, daily_connection
):
    _, marketer = make_token("marketer")
    response = marketer.post(PATH, {"window": None, "reason": "x"})
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    _, operator = make_token("operator")
    response = operator.get("connections/Nope/send-window")
    assert (response.status_code, response.json()["code"]) == (404, "connection_not_found")
    # A digit to str.isdigit() that int() refuses (found by the proofs' fuzzer as a 500).
    response = operator.get("connections/%C2%B9/send-window")
    assert (response.status_code, response.json()["code"]) == (404, "connection_not_found")
    assert not AuditEvent.objects.filter(action="send_window.changed").exists()


def test_a_trigger_outside_the_window_is_a_409_with_the_next_allowed_time(
    team, make_token, daily_connection
):
    _, client = make_token("operator")
    today = utc_now().date()
    days = [today + timedelta(days=d) for d in (-1, 0, 1)]
    client.post(
        PATH,
        {
            "window": None,
            "blackouts": [{"date": f"{day}", "reason": "freeze"} for day in days],
            "reason": "Freeze",
        },
    )
    _, marketer = make_token("marketer")
    response = marketer.post(
        "daily-trigger",
        {"files_uploaded_attested": True},
        HTTP_IDEMPOTENCY_KEY="daily-1",
    )

    assert response.status_code == 409, response.content
    problem = response.json()
    reopens = datetime.combine(today + timedelta(days=2), time.min, tzinfo=UTC)
    assert problem["code"] == "outside_send_window"
    assert problem["next_allowed_at"] == reopens.isoformat().replace("+00:00", "Z")
    assert problem["detail"].startswith("Outside the send window of Optimove batch (Any time;")
    assert not Run.objects.exists()
    call = AuditEvent.objects.filter(action="api.called").order_by("-id").first()
    assert call.summary["status"] == 409
