"""The table of allowed moves (dashboard.runs.states) is checked by every write of a run's state:
one run's compare-and-set, the dispatcher's claim and set-based outcomes, the sweeper, creation."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.runs import dispatch, services, states
from dashboard.runs.models import Operation, Run, RunAttempt
from dashboard.runs.states import ALLOWED, IllegalTransition, RunState
from tests.factories import RunAttemptFactory, RunFactory

OPERATION = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
EVENT_GENERATOR = "00000000-abcd-abcd-abcd-000000000000"
ILLEGAL = [
    (source, target)
    for target in RunState.values
    for source in RunState.values
    if source not in ALLOWED.get(target, frozenset())
]


def without(monkeypatch, source: str, target: str) -> None:
    """ALLOWED as if the move source -> target were not in it (for this test only)."""
    monkeypatch.setitem(states.ALLOWED, target, ALLOWED[target] - {source})


def submit(team, connection, number):
    return services.run_submit(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation=OPERATION,
        parameters={
            "event_generator_id": EVENT_GENERATOR,
            "topic_key": "event_reminders+NFL",
            "context": {"number": number},
        },
        idempotency_key=f"run-{number}",
        approval_required=False,
        check_duplicates=False,
    )


def test_every_state_has_its_moves_listed_and_only_known_states_appear():
    assert set(ALLOWED) <= set(RunState.values)
    for sources in ALLOWED.values():
        assert sources <= set(RunState.values)
    # draft is never written; a run can only leave it by being cancelled
    assert [target for target, sources in ALLOWED.items() if RunState.DRAFT in sources] == [
        RunState.CANCELLED
    ]


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_sources_refuses_a_move_not_in_the_table(source, target):
    with pytest.raises(IllegalTransition, match=f"from {source} to {target}"):
        states.sources(target, {source})


@pytest.mark.django_db
def test_transition_refuses_every_illegal_move_and_leaves_the_row_alone(team):
    run = RunFactory(tenant=team.tenant, state=RunState.QUEUED, operation=OPERATION)
    before = Run.objects.values("state", "updated_at").get(pk=run.pk)
    for source, target in ILLEGAL:
        with pytest.raises(IllegalTransition):
            services.transition(run, target, from_states={source}, actor=services.WORKER)
        assert Run.objects.values("state", "updated_at").get(pk=run.pk) == before, (source, target)


def test_a_run_is_created_only_in_an_initial_state():
    assert states.check_initial(RunState.QUEUED) == RunState.QUEUED
    for state in set(RunState.values) - {RunState.QUEUED, RunState.AWAITING_APPROVAL}:
        with pytest.raises(IllegalTransition):
            states.check_initial(state)


@pytest.mark.django_db
def test_the_dispatchers_claim_refuses_a_move_the_table_does_not_list(
    team, sandbox_connection, sandboxes, clean_redis, monkeypatch
):
    campaigns = sandbox_connection(team.tenant, "optimove_campaigns")
    run = submit(team, campaigns, 0)
    without(monkeypatch, RunState.QUEUED, RunState.SENDING)

    with pytest.raises(IllegalTransition):
        dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    run.refresh_from_db()
    assert run.state == RunState.QUEUED and run.attempt_count == 0
    assert sandboxes["optimove_campaigns"].received_on("run") == []


@pytest.mark.django_db
def test_the_dispatchers_recorded_answers_refuse_a_move_the_table_does_not_list(
    team, sandbox_connection, sandboxes, clean_redis, monkeypatch
):
    campaigns = sandbox_connection(team.tenant, "optimove_campaigns")
    run = submit(team, campaigns, 0)
    without(monkeypatch, RunState.SENDING, RunState.ACCEPTED)

    with pytest.raises(IllegalTransition):
        dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    run.refresh_from_db()
    assert run.state == RunState.SENDING


@pytest.mark.django_db
def test_the_dispatchers_poll_outcomes_refuse_a_move_the_table_does_not_list(
    team, sandbox_connection, sandboxes, clean_redis, monkeypatch
):
    campaigns = sandbox_connection(team.tenant, "optimove_campaigns")
    run = submit(team, campaigns, 0)
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    sandboxes.clock.advance(5)
    Run.objects.filter(pk=run.pk).update(next_poll_at=None)
    without(monkeypatch, RunState.ACCEPTED, RunState.SUCCEEDED)

    with pytest.raises(IllegalTransition):
        dispatch.dispatch_polls(connection_id=campaigns.pk, operation=OPERATION)

    run.refresh_from_db()
    assert run.state == RunState.ACCEPTED


@pytest.mark.django_db
def test_the_sweeper_refuses_a_move_the_table_does_not_list(clean_redis, monkeypatch):
    run = RunFactory(
        state=RunState.SENDING, attempt_count=1, operation=OPERATION, approval_required=False
    )
    RunAttemptFactory(
        run=run,
        number=1,
        exchange={},
        status_code=None,
        latency_ms=None,
        finished_at=None,
        worker="gone-host:4242",
        request_started_at=utc_now() - timedelta(seconds=20),
    )
    then = utc_now() - timedelta(seconds=20)
    Run.objects.filter(pk=run.pk).update(updated_at=then, sent_at=then)
    without(monkeypatch, RunState.SENDING, RunState.OUTCOME_UNKNOWN)

    with pytest.raises(IllegalTransition):
        services.runs_sweep()

    run.refresh_from_db()
    assert run.state == RunState.SENDING and not run.needs_person
    assert RunAttempt.objects.get(run=run).finished_at is None


def test_the_engine_doc_draws_exactly_the_allowed_moves():
    doc = (Path(settings.BASE_DIR) / "docs" / "engine.md").read_text()
    drawn = doc.split("```mermaid\n", 1)[1].split("```", 1)[0].strip()
    assert drawn == states.mermaid_diagram()
    moves = {
        tuple(line.strip().split(" --> ")) for line in drawn.splitlines()[1:] if "[*]" not in line
    }
    assert moves == {(source, target) for target, froms in ALLOWED.items() for source in froms}
