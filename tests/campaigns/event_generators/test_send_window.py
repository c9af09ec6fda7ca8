"""Event generators and their connection's send window: a trigger outside it is refused with
the next allowed time (nothing saved), or scheduled for that time through the schedule service;
a schedule that comes due outside it fails saying why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from campaigns.event_generators import services
from campaigns.event_generators.models import ScheduledTrigger, ScheduleState, TriggerGroup
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.runs.models import Run
from dashboard.send_windows.services import OutsideSendWindow, send_window_set
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT
from tests.campaigns.event_generators.test_views import trigger_data, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def blacked_out(team, generator):
    """The generator's connection blacked out yesterday, today and tomorrow (UTC): closed now
    whatever the time of day, open again two days on at 00:00 UTC."""
    today = utc_now().date()
    send_window_set(
        actor=Actor(user=team.operator.user),
        connection=generator.connection,
        window=None,
        blackouts="\n".join(f"{today + timedelta(days=d)} Freeze" for d in (-1, 0, 1)),
        reason="Freeze",
    )
    return datetime.combine(today + timedelta(days=2), time.min, tzinfo=UTC)


def test_a_trigger_outside_the_window_is_refused_and_saves_nothing(team, generator, blacked_out):
    with pytest.raises(OutsideSendWindow) as raised:
        services.campaign_trigger(
            actor=Actor(user=team.marketer.user),
            generator=generator,
            topic_keys=[ARSENAL],
            context=GOOD_CONTEXT,
            idempotency_key="outside-1",
        )
    assert raised.value.next_allowed_at == blacked_out
    assert not TriggerGroup.objects.exists() and not Run.objects.exists()


def test_the_trigger_form_refuses_then_schedules_for_the_next_allowed_time(
    team, generator, blacked_out
):
    client = team.client_for("marketer")
    response = client.post(
        url("event_generator_trigger", team, generator_id=generator.pk), trigger_data()
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert f"Outside the send window of {generator.connection.name} (Any time; not on" in html
    button = f"Schedule it for {blacked_out:%a %Y-%m-%d} 00:00 UTC"
    assert button in html
    assert not Run.objects.exists() and not ScheduledTrigger.objects.exists()

    response = client.post(
        url("event_generator_trigger", team, generator_id=generator.pk),
        trigger_data(at_next_allowed="on"),
    )
    assert response.status_code == 302
    schedule = ScheduledTrigger.objects.get()
    assert schedule.fire_at == blacked_out and schedule.state == ScheduleState.SCHEDULED
    assert schedule.requested_by == team.marketer.user
    assert AuditEvent.objects.filter(action="schedule.created", object_id=schedule.pk).exists()
    assert not Run.objects.exists()


def test_a_schedule_due_outside_the_window_fails_saying_why(team, generator, blacked_out):
    planned = services.schedule_create(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL, CHELSEA],
        context=GOOD_CONTEXT,
        fire_at=utc_now() + timedelta(hours=1),
    )
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))

    assert services.schedules_fire_due() == 1
    planned.refresh_from_db()
    assert planned.state == ScheduleState.FAILED and not Run.objects.exists()
    assert planned.failure_message.startswith("Outside the send window of ")
    assert f"next allowed {blacked_out:%a %Y-%m-%d} 00:00 UTC" in planned.failure_message


def test_the_campaign_trigger_command_says_outside_the_window_and_sends_nothing(
    team, generator, blacked_out, tmp_path
):
    context = tmp_path / "ctx.json"
    context.write_text(json.dumps(GOOD_CONTEXT))
    with pytest.raises(CommandError) as raised:
        call_command(
            "campaign_trigger", "--generator", generator.external_id, "--topic", ARSENAL,
            "--context-file", str(context), "--as", "mia", stdout=StringIO(),
        )  # fmt: skip
    message = str(raised.value)
    assert message.startswith("Nothing was sent:")
    assert f"Outside the send window of {generator.connection.name}" in message
    assert f"next allowed {blacked_out:%a %Y-%m-%d} 00:00 UTC" in message
    assert not Run.objects.exists()
