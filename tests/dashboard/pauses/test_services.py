"""Pausing and resuming sending: the rules, the audit rows, and what the engine then does (the
dispatcher and the per-run send against the real sandbox, PostgreSQL and Redis)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent
from dashboard.pauses import selectors
from dashboard.pauses.models import SendingPause
from dashboard.pauses.services import (
    SendingPaused,
    connection_for_pause,
    sending_pause,
    sending_resume,
)
from dashboard.runs import dispatch, services
from dashboard.runs.models import Operation, Run, RunAttempt
from dashboard.runs.states import RunState
from tests.factories import RunFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

OPERATION = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
EVENT_GENERATOR = "00000000-abcd-abcd-abcd-000000000000"


@pytest.fixture
def campaigns(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_campaigns", name="Optimove")


def oscar(team):
    return Actor(user=team.operator.user)


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


def sent_numbers(sandboxes):
    return sorted(
        json.loads(r.body)["context"]["number"]
        for r in sandboxes["optimove_campaigns"].received_on("run")
    )


# -- the rules --------------------------------------------------------------------------------


def test_a_pause_is_recorded_and_audited_with_who_and_why(team):
    pause = sending_pause(actor=oscar(team), tenant=team.tenant, reason="  Wrong audience  ")

    assert (pause.reason, pause.paused_by_label, pause.resumed_at) == (
        "Wrong audience",
        "oscar",
        None,
    )
    event = AuditEvent.objects.get(action="sending.paused")
    assert event.actor_label == "oscar" and event.tenant == team.tenant
    assert event.summary["reason"] == "Wrong audience" and event.summary["scope"] == "tenant"
    assert selectors.open_pauses(tenant=team.tenant) == [pause]


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_a_pause_without_a_reason_is_refused_and_changes_nothing(team, reason):
    with pytest.raises(ValidationError) as raised:
        sending_pause(actor=oscar(team), tenant=team.tenant, reason=reason)
    assert raised.value.message_dict["reason"] == ["Say why sending is paused."]
    assert not SendingPause.objects.exists()
    assert not AuditEvent.objects.filter(action="sending.paused").exists()


def test_pausing_what_is_paused_is_refused_and_changes_nothing(team):
    first = sending_pause(actor=oscar(team), tenant=team.tenant, reason="Incident")
    with pytest.raises(ValidationError) as raised:
        sending_pause(actor=Actor(user=team.admin.user), tenant=team.tenant, reason="Again")
    assert raised.value.code == "already_paused"
    assert "already paused for Acme Sports (by oscar" in raised.value.messages[0]
    assert list(SendingPause.objects.all()) == [first]
    assert AuditEvent.objects.filter(action="sending.paused").count() == 1


def test_resuming_what_is_not_paused_is_refused_and_changes_nothing(team, campaigns):
    sending_pause(actor=oscar(team), tenant=team.tenant, reason="Incident", connection=campaigns)
    with pytest.raises(ValidationError) as raised:
        sending_resume(actor=oscar(team), tenant=team.tenant)  # the tenant is not paused
    assert raised.value.code == "not_paused"
    assert "not paused for Acme Sports" in raised.value.messages[0]
    assert not AuditEvent.objects.filter(action="sending.resumed").exists()
    assert selectors.open_pause(tenant=team.tenant, connection_id=campaigns.pk) is not None


def test_a_connection_that_does_not_exist_is_a_clear_error(team, other_team):
    from tests.factories import VendorConnectionFactory

    theirs = VendorConnectionFactory(tenant=other_team.tenant, name="Theirs")
    for missing in ("Nope", str(theirs.pk)):
        with pytest.raises(ValidationError) as raised:
            connection_for_pause(tenant=team.tenant, name_or_id=missing)
        assert raised.value.message_dict["connection"] == [
            f"Acme Sports has no connection '{missing}'."
        ]
    assert connection_for_pause(tenant=team.tenant, name_or_id="") is None


@pytest.mark.parametrize("role", ["marketer", "auditor"])
def test_only_operators_and_admins_pause_or_resume(team, role):
    actor = Actor(user=getattr(team, role).user)
    with pytest.raises(PermissionDenied):
        sending_pause(actor=actor, tenant=team.tenant, reason="No")
    sending_pause(actor=Actor(user=team.admin.user), tenant=team.tenant, reason="Yes")
    with pytest.raises(PermissionDenied):
        sending_resume(actor=actor, tenant=team.tenant)
    assert selectors.open_pauses(tenant=team.tenant)


def test_new_triggers_on_a_paused_connection_are_refused_with_the_reason(team, campaigns):
    before = submit(team, campaigns, 0)
    sending_pause(actor=oscar(team), tenant=team.tenant, reason="Bad copy", connection=campaigns)

    with pytest.raises(SendingPaused) as raised:
        submit(team, campaigns, 1)
    assert raised.value.code == "paused"
    assert "Sending is paused for Optimove (Acme Sports) (by oscar" in raised.value.messages[0]
    assert "Bad copy" in raised.value.messages[0]
    # A retry of a request made before the pause answers with its run, as ever.
    assert submit(team, campaigns, 0) == before
    assert Run.objects.count() == 1


# -- the engine -------------------------------------------------------------------------------


def test_the_dispatcher_holds_queued_runs_and_resume_sends_each_once(team, campaigns, sandboxes):
    runs = [submit(team, campaigns, number) for number in range(3)]
    pause = sending_pause(actor=oscar(team), tenant=team.tenant, reason="Stop everything")

    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION, run_id=runs[0].pk)

    assert sent_numbers(sandboxes) == []
    assert set(Run.objects.values_list("state", flat=True)) == {RunState.QUEUED}
    assert not RunAttempt.objects.exists()
    assert [run.pk for run in selectors.held_runs(pause=pause)] == [run.pk for run in runs]
    assert pause.held_reason().startswith("Held: sending paused for Acme Sports by oscar at ")

    resumed = sending_resume(actor=Actor(user=team.admin.user), tenant=team.tenant)
    assert (resumed.released, resumed.cancelled) == (3, 0)
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION, run_id=runs[0].pk)

    assert sent_numbers(sandboxes) == [0, 1, 2]
    assert set(Run.objects.values_list("state", flat=True)) == {RunState.ACCEPTED}
    event = AuditEvent.objects.get(action="sending.resumed")
    assert event.actor_label == "ada" and event.summary["released"] == 3


def test_a_pause_committed_after_the_claim_stops_the_batch_before_its_requests(
    team, campaigns, sandboxes
):
    runs = [submit(team, campaigns, number) for number in range(2)]
    connection, secrets, claimed, _guarded = dispatch.claim_sends(
        connection_id=campaigns.pk, operation=dispatch.operation_for(OPERATION)
    )
    assert len(claimed) == 2
    sending_pause(actor=oscar(team), tenant=team.tenant, reason="Late stop")

    fed = dispatch._submit(
        None, dispatch._feed_sends, connection, dispatch.operation_for(OPERATION), secrets, claimed
    )
    said = dispatch._finish_sends(
        connection, secrets, fed, operation=dispatch.operation_for(OPERATION)
    )

    assert said == {run.pk: "held: sending paused" for run in runs}
    assert sent_numbers(sandboxes) == []
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.QUEUED and run.next_attempt_at is None
        (attempt,) = run.attempts.all()
        assert attempt.failure_code == "paused" and attempt.request_started_at is None
        assert "Held: sending paused for Acme Sports by oscar" in attempt.outcome


@pytest.mark.parametrize("scope", ["tenant", "this connection", "another connection"])
def test_a_grant_is_marked_started_unless_a_pause_stops_its_connection(
    team, campaigns, sandbox_connection, scope
):
    """The mark of a grant's requests (one statement with its pause check): an open pause of
    the tenant or of this connection marks nothing; another connection's pause is no matter."""
    other = sandbox_connection(team.tenant, "optimove_campaigns", name="Optimove 2")
    submit(team, campaigns, 0)
    _connection, _secrets, claimed, _guarded = dispatch.claim_sends(
        connection_id=campaigns.pk, operation=dispatch.operation_for(OPERATION)
    )
    attempt_ids = [run.open_attempt.pk for run in claimed]
    paused = {"tenant": None, "this connection": campaigns, "another connection": other}
    sending_pause(actor=oscar(team), tenant=team.tenant, reason="Stop", connection=paused[scope])

    marked = services.mark_requests_started_unless_paused(
        attempt_ids, tenant_id=team.tenant.pk, connection_id=campaigns.pk
    )

    if scope == "another connection":
        assert marked == set(attempt_ids)
        assert RunAttempt.objects.get(pk=attempt_ids[0]).request_started_at is not None
    else:
        assert marked is None
        assert RunAttempt.objects.get(pk=attempt_ids[0]).request_started_at is None


def test_the_per_run_send_holds_a_run_of_a_paused_tenant(team):
    run = RunFactory(tenant=team.tenant, state=RunState.QUEUED, approval_required=False)
    sending_pause(actor=oscar(team), tenant=team.tenant, reason="Stop")

    assert services.run_send(run_id=run.pk) == "held: sending paused"
    run.refresh_from_db()
    assert run.state == RunState.QUEUED and not run.attempts.exists()


def test_resume_may_cancel_the_held_runs_first(team, campaigns, sandboxes):
    runs = [submit(team, campaigns, number) for number in range(2)]
    sending_pause(actor=oscar(team), tenant=team.tenant, reason="Wrong", connection=campaigns)

    resumed = sending_resume(
        actor=oscar(team), tenant=team.tenant, connection=campaigns, cancel_held=True
    )

    assert (resumed.released, resumed.cancelled) == (0, 2)
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.CANCELLED
        assert run.failure_message == "Cancelled by oscar while sending was paused (Wrong)."
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    assert sent_numbers(sandboxes) == []


def test_the_sweeper_leaves_held_runs_queued(team, campaigns):
    from datetime import timedelta

    from dashboard.clock import utc_now

    run = submit(team, campaigns, 0)
    sending_pause(actor=oscar(team), tenant=team.tenant, reason="Stop")
    Run.objects.filter(pk=run.pk).update(updated_at=utc_now() - timedelta(minutes=10))

    assert services.runs_sweep()["requeued"] == 0
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
