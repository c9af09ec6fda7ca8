"""Recurring schedule pages: the list and its form (bad input changes nothing), one schedule
(next fires in words, UTC beside local time, its fire history), enable/disable/delete, and the
tenant calendar (week, month, blackout dates, pauses, htmx partial), tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.pauses.services import sending_pause
from dashboard.recurring import services
from dashboard.recurring.models import RecurringFire, RecurringSchedule
from dashboard.send_windows.services import send_window_set
from tests.campaigns.conftest import ARSENAL, GOOD_CONTEXT
from tests.dashboard.recurring.conftest import generator_input, make_due

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def form_data(generator, **overrides):
    data = {
        "name": "Weekday kick-off",
        "cron": "0 9 * * 1-5",
        "time_zone": "Europe/Berlin",
        "target": f"event_generator:{generator.pk}",
        "topics": ARSENAL,
        "context": __import__("json").dumps(GOOD_CONTEXT),
        "enabled": "on",
    }
    data.update(overrides)
    return data


@pytest.fixture
def schedule(team, generator):
    return services.schedule_create(
        actor=Actor(user=team.marketer.user), tenant=team.tenant, data=generator_input(generator)
    )


def test_a_marketer_creates_a_schedule_and_sees_its_next_fires_in_words(team, generator) -> None:
    client = team.client_for("marketer")
    response = client.post("/t/acme/recurring/new/", form_data(generator))
    assert response.status_code == 302
    schedule = RecurringSchedule.objects.get()
    page = client.get(response["Location"]).content.decode()
    assert "At 09:00, Monday through Friday" in page
    assert page.count("UTC)") >= 5  # the next five fires, each with UTC beside local time
    assert "Europe/Berlin" in page
    assert AuditEvent.objects.filter(
        action="recurring.created", object_id=str(schedule.pk)
    ).exists()


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 9 30 2 *", "never fires"),
        ("*/10 * * * * *", "no seconds field"),
        ("every day", "five fields"),
    ],
)
def test_a_bad_rule_is_a_form_error_and_nothing_is_saved(team, generator, cron, words) -> None:
    response = team.client_for("marketer").post(
        "/t/acme/recurring/new/", form_data(generator, cron=cron)
    )
    assert response.status_code == 422
    assert words in response.content.decode()
    assert not RecurringSchedule.objects.exists()


def test_an_auditor_cannot_create_and_another_tenant_sees_nothing(
    team, other_team, schedule, generator
) -> None:
    assert (
        team.client_for("auditor").post("/t/acme/recurring/new/", form_data(generator)).status_code
        == 403
    )
    outsider = other_team.client_for("admin")
    assert outsider.get(f"/t/acme/recurring/{schedule.pk}/").status_code in (403, 404)
    assert outsider.get(f"/t/other/recurring/{schedule.pk}/").status_code == 404
    assert "Weekday kick-off" not in outsider.get("/t/other/recurring/calendar/").content.decode()


def test_disable_enable_and_delete_from_the_page(team, schedule) -> None:
    client = team.client_for("operator")
    client.post(f"/t/acme/recurring/{schedule.pk}/enabled/", {"enabled": "0"})
    schedule.refresh_from_db()
    assert not schedule.enabled
    client.post(f"/t/acme/recurring/{schedule.pk}/enabled/", {"enabled": "1"})
    schedule.refresh_from_db()
    assert schedule.enabled
    client.post(f"/t/acme/recurring/{schedule.pk}/delete/")
    assert not RecurringSchedule.objects.exists()


def test_a_skipped_fire_shows_why_on_the_schedule_page(team, schedule) -> None:
    make_due(schedule)
    sending_pause(
        actor=Actor(user=team.operator.user), tenant=team.tenant, connection=None, reason="Audit"
    )
    services.recurring_fire_due()
    assert RecurringFire.objects.get().outcome == "skipped"
    page = team.client_for("marketer").get(f"/t/acme/recurring/{schedule.pk}/").content.decode()
    assert "Skipped" in page and "Sending is paused" in page


def test_the_calendar_shows_fires_blackouts_and_pauses_in_week_and_month(
    team, schedule, generator
) -> None:
    tomorrow = (utc_now() + timedelta(days=1)).date()
    send_window_set(
        actor=Actor(user=team.operator.user),
        connection=generator.connection,
        window=None,
        blackouts=f"{tomorrow} Company holiday",
        reason="Holiday",
    )
    client = team.client_for("marketer")
    week = client.get("/t/acme/recurring/calendar/", {"view": "week", "date": str(tomorrow)})
    page = week.content.decode()
    assert week.status_code == 200
    assert f'id="day-{tomorrow}"' in page
    assert "Blackout: Optimove campaigns: Company holiday" in page
    assert "Weekday kick-off" in page
    month = client.get(
        "/t/acme/recurring/calendar/",
        {"view": "month", "date": str(tomorrow)},
        HTTP_HX_REQUEST="true",
    )
    fragment = month.content.decode()
    assert "<html" not in fragment and 'id="calendar"' in fragment
    assert "Company holiday" in fragment
    sending_pause(
        actor=Actor(user=team.operator.user), tenant=team.tenant, connection=None, reason="Audit"
    )
    paused = client.get("/t/acme/recurring/calendar/", {"view": "week"}).content.decode()
    assert "Sending is paused for" in paused


def test_the_calendar_navigates_and_survives_a_bad_date_or_zone(team, schedule) -> None:
    client = team.client_for("marketer")
    page = client.get(
        "/t/acme/recurring/calendar/",
        {"view": "month", "date": "2031-13-45", "zone": "Nowhere/Land"},
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="calendar-previous"' in text and 'id="calendar-next"' in text
    assert "Europe/Berlin" in text  # the zone most of the tenant's schedules use
