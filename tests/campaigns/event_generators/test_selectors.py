"""What a trigger group, an execution and a schedule came to (group_outcome, execution_outcome,
schedule_outcome, past_schedules), from what the Optimove campaigns sandbox answered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.event_generators import selectors, services
from campaigns.event_generators.models import ScheduledTrigger
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.runs.models import Run
from dashboard.runs.selectors import Outcome
from dashboard.runs.services import run_poll, run_send
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

SIZED = "44444444-abcd-abcd-abcd-444444444444"


@pytest.fixture
def sized_generator(sandboxes, make_generator):
    """A generator whose topics the sandbox resolves to 0 (Arsenal) and 3,120 (Chelsea)."""
    sandboxes["optimove_campaigns"].control(
        "add_event_generator",
        {
            "brand": "demo-brand",
            "event_generator_id": SIZED,
            "name": "Sized",
            "audiences": {ARSENAL: 0, CHELSEA: 3120},
        },
    )
    return make_generator(external_id=SIZED, name="Sized")


def trigger(team, generator, topics, key="g"):
    return services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=topics,
        context=GOOD_CONTEXT,
        idempotency_key=key,
    )


def execute(sandboxes, group) -> None:
    """Send each run of the group, and poll it once the sandbox's executions are done."""
    runs = [link.run_id for link in group.campaign_runs.all()]
    for run_id in runs:
        run_send(run_id=run_id)
    sandboxes.clock.advance(10)
    Run.objects.filter(pk__in=runs).update(next_poll_at=None)  # due now
    for run_id in runs:
        run_poll(run_id=run_id)


def outcome_of(group) -> Outcome:
    return selectors.group_outcome(selectors.group_status(group=group))


def test_a_group_published_to_real_audiences_is_published_with_thousands_separators(
    team, sized_generator, sandboxes
) -> None:
    group = trigger(team, sized_generator, [CHELSEA])
    execute(sandboxes, group)

    assert outcome_of(group) == Outcome("Published", "good", "published to an audience of 3,120")


def test_an_execution_published_to_an_audience_of_0_is_a_warning(
    team, sized_generator, sandboxes
) -> None:
    group = trigger(team, sized_generator, [ARSENAL, CHELSEA])
    execute(sandboxes, group)

    assert outcome_of(group) == Outcome(
        "Published", "warn", "published to an audience of 3,120 (1 of 2 topics reached nobody)"
    )
    arsenal = group.campaign_runs.get(topic_key=ARSENAL).run
    assert selectors.execution_outcome(arsenal) == Outcome(
        "Published", "warn", "published to an audience of 0"
    )


def test_a_group_with_some_topics_failed_is_partly_failed(team, make_generator, sandboxes) -> None:
    failing = "55555555-abcd-abcd-abcd-555555555555"
    sandboxes["optimove_campaigns"].control(
        "add_event_generator",
        {
            "brand": "demo-brand",
            "event_generator_id": failing,
            "name": "Half",
            "fail_topics": [CHELSEA],
        },
    )
    generator = make_generator(external_id=failing)
    group = trigger(team, generator, [ARSENAL, CHELSEA])
    execute(sandboxes, group)

    outcome = outcome_of(group)

    assert outcome.word == "Partly failed" and outcome.tone == "warn"
    assert outcome.detail.startswith("1 of 2 topics failed; published to an audience of ")


def test_a_group_whose_topics_all_failed_is_failed_with_the_vendors_reason(
    team, make_generator, sandboxes
) -> None:
    # The sandbox's newsletter generator is not API-triggered: every run is refused (422).
    newsletter = make_generator(external_id="22222222-abcd-abcd-abcd-222222222222")
    group = trigger(team, newsletter, [ARSENAL, CHELSEA])
    execute(sandboxes, group)
    [reason] = {link.run.failure_message for link in group.campaign_runs.select_related("run")}

    assert reason
    assert outcome_of(group) == Outcome("Failed", "bad", reason)


def test_a_fired_schedule_shows_its_runs_and_the_vendors_reason(
    team, make_generator, sandboxes
) -> None:
    newsletter = make_generator(external_id="22222222-abcd-abcd-abcd-222222222222")
    planned = services.schedule_create(
        actor=Actor(user=team.marketer.user),
        generator=newsletter,
        topic_keys=[ARSENAL],
        context=GOOD_CONTEXT,
        fire_at=utc_now() + timedelta(hours=1),
    )
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    assert services.schedules_fire_due() == 1
    planned.refresh_from_db()
    execute(sandboxes, planned.group)

    [past] = selectors.past_schedules(tenant=team.tenant)

    run = planned.group.campaign_runs.get().run
    assert past.outcome == Outcome("Failed", "bad", run.failure_message)
    assert [(link.run_id, outcome) for link, outcome in past.runs] == [
        (run.pk, Outcome("Failed", "bad", run.failure_message))
    ]
