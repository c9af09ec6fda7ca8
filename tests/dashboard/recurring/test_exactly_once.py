"""Each fire happens once: two beats at the same moment (real PostgreSQL, two connections), and
a beat that dies mid-fire (its claim rolls back; the next pass fires it, once)."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connections

from campaigns.event_generators.models import TriggerGroup
from dashboard.audit.trail import Actor
from dashboard.recurring import services, tasks
from dashboard.recurring.models import RecurringFire
from tests.dashboard.recurring.conftest import generator_input, make_due

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_redis")]
DEADLINE_SECONDS = 60


def test_two_beats_at_once_fire_a_due_schedule_once(team, generator, monkeypatch) -> None:
    schedule = services.schedule_create(
        actor=Actor(user=team.marketer.user), tenant=team.tenant, data=generator_input(generator)
    )
    make_due(schedule)
    inside, release = threading.Event(), threading.Event()
    submit = services._submit

    def held_submit(*args, **kwargs):
        inside.set()  # the first beat holds the schedule's row from here
        assert release.wait(DEADLINE_SECONDS)
        return submit(*args, **kwargs)

    monkeypatch.setattr(services, "_submit", held_submit)
    handled: dict[str, int] = {}

    def beat(name: str) -> None:
        try:
            handled[name] = tasks.fire_due_recurring_schedules()
        finally:
            connections.close_all()

    first = threading.Thread(target=beat, args=("first",))
    first.start()
    assert inside.wait(DEADLINE_SECONDS)
    second = threading.Thread(target=beat, args=("second",))
    second.start()
    second.join(DEADLINE_SECONDS)  # skips the locked row: nothing else is due
    release.set()
    first.join(DEADLINE_SECONDS)
    assert handled == {"first": 1, "second": 0}
    assert RecurringFire.objects.filter(outcome="fired").count() == 1
    assert TriggerGroup.objects.count() == 1
    # A third pass later finds nothing due: the fire moved on in the same commit.
    assert services.recurring_fire_due() == 0


def test_a_beat_that_dies_mid_fire_leaves_it_due_and_the_next_pass_fires_it_once(
    team, generator, monkeypatch
) -> None:
    schedule = services.schedule_create(
        actor=Actor(user=team.marketer.user), tenant=team.tenant, data=generator_input(generator)
    )
    fire_at = make_due(schedule)
    submit = services._submit

    def lost_connection(*args, **kwargs):
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_submit", lost_connection)
    with pytest.raises(DatabaseError):
        services.recurring_fire_due()
    assert not RecurringFire.objects.exists()
    schedule.refresh_from_db()
    assert schedule.next_fire_at == fire_at
    monkeypatch.setattr(services, "_submit", submit)
    assert services.recurring_fire_due() == 1
    assert services.recurring_fire_due() == 0
    assert RecurringFire.objects.get().fire_at == fire_at
    assert TriggerGroup.objects.count() == 1
