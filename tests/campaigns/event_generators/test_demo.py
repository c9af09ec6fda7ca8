"""The demo's event generators are valid, registered once, and can be triggered."""

from __future__ import annotations

import pytest

from campaigns.event_generators import services
from campaigns.event_generators.demo import register_demo_event_generators
from campaigns.event_generators.models import EventGenerator
from dashboard.audit.trail import Actor

pytestmark = pytest.mark.django_db


def test_demo_generators_are_registered_once_and_can_be_triggered(team, campaigns_connection):
    assert register_demo_event_generators(team.tenant, campaigns_connection) == 3
    assert register_demo_event_generators(team.tenant, campaigns_connection) == 0
    match = EventGenerator.objects.get(name="Match Start Notifications")
    assert match.topics.count() == 5
    group = services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=match,
        topic_keys=list(match.topics.values_list("key", flat=True)),
        context={
            "match_id": "epl-1",
            "match_name": "Arsenal vs Chelsea",
            "start_time": "2026-02-05T20:00:00Z",
            "url": "https://example.com/e/1",
        },
        idempotency_key="demo",
    )
    assert group.campaign_runs.count() == 5
