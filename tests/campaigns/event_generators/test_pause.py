"""Event generators while sending is paused: a schedule waits (still scheduled) and fires on the
first pass after the resume; a trigger is refused with the pause's reason, nothing saved."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.event_generators import services
from campaigns.event_generators.models import ScheduledTrigger, ScheduleState, TriggerGroup
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.pauses.services import SendingPaused, sending_pause, sending_resume
from dashboard.runs.models import Run
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT

pytestmark = pytest.mark.django_db


def test_a_due_schedule_waits_while_paused_and_fires_after_the_resume(team, generator):
    planned = services.schedule_create(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL, CHELSEA],
        context=GOOD_CONTEXT,
        fire_at=utc_now() + timedelta(hours=1),
    )
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    sending_pause(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        connection=generator.connection,
        reason="Odds feed wrong",
    )

    assert services.schedules_fire_due() == 0
    planned.refresh_from_db()
    assert planned.state == ScheduleState.SCHEDULED and not Run.objects.exists()

    sending_resume(
        actor=Actor(user=team.operator.user), tenant=team.tenant, connection=generator.connection
    )
    assert services.schedules_fire_due() == 1
    planned.refresh_from_db()
    assert planned.state == ScheduleState.FIRED and Run.objects.count() == 2


def test_a_trigger_of_a_paused_tenant_is_refused_and_saves_nothing(team, generator):
    sending_pause(actor=Actor(user=team.admin.user), tenant=team.tenant, reason="Stop all")
    with pytest.raises(SendingPaused) as raised:
        services.campaign_trigger(
            actor=Actor(user=team.marketer.user),
            generator=generator,
            topic_keys=[ARSENAL],
            context=GOOD_CONTEXT,
            idempotency_key="paused-1",
        )
    assert "Stop all" in raised.value.messages[0]
    assert not TriggerGroup.objects.exists() and not Run.objects.exists()
