"""Fixtures of the recurring schedule tests: one target of each kind in the team's tenant (an
event generator, an Altcraft trigger campaign, the Optimove daily connection), each on its
vendor's sandbox, and a helper that creates a schedule and makes its next fire due."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT, MATCH_SCHEMA, MATCH_START


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.ALTCRAFT_UPLOAD_DIR


@pytest.fixture
def campaigns_connection(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_campaigns", name="Optimove campaigns")


@pytest.fixture
def generator(team, campaigns_connection):
    from campaigns.event_generators import services
    from dashboard.audit.trail import Actor

    return services.generator_create(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=campaigns_connection,
        external_id=MATCH_START,
        name="Match Start",
        topics=[(ARSENAL, "Arsenal"), (CHELSEA, "Chelsea")],
        schema=MATCH_SCHEMA,
    )


@pytest.fixture
def altcraft_trigger(team, sandbox_connection):
    from campaigns.altcraft_launches import services
    from dashboard.audit.trail import Actor

    connection = sandbox_connection(team.tenant, "altcraft", name="Altcraft")
    return services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=connection,
        trigger_id=8,
        name="Weekly digest",
    )


@pytest.fixture
def daily_connection(team, sandboxes, sandbox_connection, clean_redis):
    sandboxes["optimove_batch"].control("set_timing", {"real_seconds_per_wait_second": 0.01})
    return sandbox_connection(
        team.tenant,
        "optimove_batch",
        name="Optimove daily",
        options={"key_role": "ApiRole", "real_seconds_per_wait_second": 0.01},
    )


def generator_input(generator, **overrides: Any):
    from dashboard.recurring.services import ScheduleInput

    values = {
        "name": "Weekday kick-off",
        "cron": "0 9 * * 1-5",
        "time_zone": "Europe/Berlin",
        "target_kind": "event_generator",
        "target_input": {"id": generator.pk, "topics": [ARSENAL], "context": GOOD_CONTEXT},
    }
    values.update(overrides)
    return ScheduleInput(**values)


def make_due(schedule, seconds_ago: int = 30):
    """Its next fire `seconds_ago` seconds ago (as if its time had just come)."""
    from dashboard.clock import utc_now
    from dashboard.recurring.models import RecurringSchedule

    fire_at = (utc_now() - timedelta(seconds=seconds_ago)).replace(microsecond=0)
    RecurringSchedule.objects.filter(pk=schedule.pk).update(next_fire_at=fire_at)
    return fire_at
