"""The run engine's services against the real sandboxes over HTTP, real PostgreSQL and Redis.

The worker's steps (run_send, run_poll, run_reconcile, runs_sweep) are called directly here; the
end-to-end tests in tests/e2e run them through real Celery workers.
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection as db_connection

from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent
from dashboard.runs import services
from dashboard.runs.enqueue import begin_interactive
from dashboard.runs.models import Approval, Operation, Run, RunAttempt
from dashboard.runs.operations import operation_for
from dashboard.runs.rate_limits import INTERACTIVE_KEY, rate_limiter
from dashboard.runs.states import RunState
from dashboard.tenancy.credentials import connection_secrets
from dashboard.vendors.sandbox import Fault

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

EVENT_GENERATOR = "00000000-abcd-abcd-abcd-000000000000"


def actor(membership):
    return Actor(user=membership.user, ip_address="10.0.0.1")


def submit_daily(team, connection, *, key="k1", wait=None, approval_required=True):
    from dashboard.clock import utc_now

    return services.run_submit(
        actor=actor(team.marketer),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_trigger_daily",
        parameters={"wait_time_for_validation_seconds": wait},
        idempotency_key=key,
        approval_required=approval_required,
        attestation="All of today's files have finished uploading.",
        utc_date=utc_now().date(),
        check_duplicates=False,
    )


def submit_campaign(team, connection, *, key="c1", topic="event_reminders+NFL", send_anyway=False):
    return services.run_submit(
        actor=actor(team.marketer),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_run_event_generator",
        parameters={
            "event_generator_id": EVENT_GENERATOR,
            "topic_key": topic,
            "context": {"match_id": "m1"},
        },
        idempotency_key=key,
        approval_required=False,
        send_anyway=send_anyway,
    )


def release_daily_window(connection):
    operation = operation_for("optimove_trigger_daily")
    for rule in operation.rate_rules(connection, connection_secrets(connection)):
        rate_limiter().release_window(rule)


@pytest.fixture
def daily(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_batch")


@pytest.fixture
def campaigns(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_campaigns")


def test_same_idempotency_key_makes_one_run(team, daily):
    first = submit_daily(team, daily)
    second = submit_daily(team, daily)
    assert first.pk == second.pk
    assert Run.objects.count() == 1
    event = AuditEvent.objects.get(action="run.requested")
    assert event.summary["parameters"] == {"wait_time_for_validation_seconds": None}


def test_bad_parameters_are_refused_and_nothing_is_saved(team, daily):
    with pytest.raises(ValidationError):
        submit_daily(team, daily, wait=31)
    with pytest.raises(ValidationError):
        submit_daily(team, daily, wait="abc")
    assert Run.objects.count() == 0


def test_identical_campaign_is_flagged_as_probable_duplicate(team, campaigns):
    first = submit_campaign(team, campaigns, key="a")
    with pytest.raises(services.ProbableDuplicate) as found:
        submit_campaign(team, campaigns, key="b")
    assert found.value.existing.pk == first.pk
    second = submit_campaign(team, campaigns, key="b", send_anyway=True)
    assert second.send_anyway and second.duplicate_of_id == first.pk


def test_approval_rules(team, daily):
    run = submit_daily(team, daily)
    assert run.state == RunState.AWAITING_APPROVAL
    with pytest.raises(services.RunActionError, match="cannot approve their own"):
        services.run_approve(
            actor=actor(team.marketer), run=run, parameters_hash_seen=run.parameters_hash
        )
    with pytest.raises(services.RunActionError, match="Only an operator"):
        services.run_approve(
            actor=actor(team.auditor), run=run, parameters_hash_seen=run.parameters_hash
        )
    with pytest.raises(services.RunActionError, match="parameters changed"):
        services.run_approve(actor=actor(team.operator), run=run, parameters_hash_seen="0" * 64)
    services.run_approve(
        actor=actor(team.operator), run=run, parameters_hash_seen=run.parameters_hash
    )
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    assert Approval.objects.get(run=run).decided_by == team.operator.user
    with pytest.raises(services.RunActionError, match="nothing to approve"):
        services.run_approve(
            actor=actor(team.second_operator), run=run, parameters_hash_seen=run.parameters_hash
        )


def test_changed_parameters_need_a_new_approval(team, daily):
    run = submit_daily(team, daily)
    seen = run.parameters_hash
    services.run_change_parameters(
        actor=actor(team.marketer), run=run, parameters={"wait_time_for_validation_seconds": 20}
    )
    with pytest.raises(services.RunActionError, match="parameters changed"):
        services.run_approve(actor=actor(team.operator), run=run, parameters_hash_seen=seen)


def test_only_the_requester_changes_a_request_so_nobody_approves_their_own_change(team, daily):
    run = submit_daily(team, daily)
    with pytest.raises(services.RunActionError, match="Only the requester can change"):
        services.run_change_parameters(
            actor=actor(team.operator), run=run, parameters={"wait_time_for_validation_seconds": 20}
        )
    run.refresh_from_db()
    assert run.parameters.get("wait_time_for_validation_seconds") != 20


def test_expired_request_cannot_be_approved(team, daily):
    run = submit_daily(team, daily)
    Run.objects.filter(pk=run.pk).update(
        approval_expires_at=run.requested_at - timedelta(seconds=1)
    )
    with pytest.raises(services.RunActionError, match="expired"):
        services.run_approve(
            actor=actor(team.operator), run=run, parameters_hash_seen=run.parameters_hash
        )
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and run.failure_code == "approval_expired"


def test_daily_trigger_sends_once_and_records_a_redacted_attempt(team, daily, sandboxes):
    run = submit_daily(team, daily)
    services.run_approve(
        actor=actor(team.operator), run=run, parameters_hash_seen=run.parameters_hash
    )
    assert services.run_send(run_id=run.pk) == "succeeded"
    assert services.run_send(run_id=run.pk).startswith("skipped")
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    received = sandboxes["optimove_batch"].received_on("trigger_daily")
    assert len(received) == 1
    assert received[0].body == '{"WaitTimeForValidationSeconds":null}'
    attempt = RunAttempt.objects.get(run=run)
    assert attempt.status_code == 200
    assert attempt.exchange["request_headers"]["X-API-KEY"] == "[redacted]"
    assert "sandbox-optimove-daily-key" not in str(attempt.exchange)
    transitions = list(
        AuditEvent.objects.filter(object_type="run", object_id=str(run.pk))
        .order_by("sequence")
        .values_list("action", "summary")
    )
    assert [s.get("to") for a, s in transitions if a in ("run.state_changed", "run.approved")] == [
        "queued",
        "sending",
        "succeeded",
    ]


def submit_talkifai_start(team, sandbox_connection):
    """A TalkifAI "start now" run, queued without approval: a single run's send, as a click's."""
    return services.run_submit(
        actor=actor(team.operator),
        tenant=team.tenant,
        connection=sandbox_connection(team.tenant, "talkifai"),
        operation=Operation.TALKIFAI_START_BATCH_JOB,
        parameters={"batch_job_id": "job-pending-001"},
        idempotency_key="start-now",
        approval_required=False,
    )


def test_a_clicked_send_reads_no_send_rules_its_connection_does_not_have(
    team, sandbox_connection, sandboxes, django_assert_max_num_queries
):
    """A person waits on this send while bursts hold the CPU: the run's first read also says
    whether its connection has a send window or blackout dates, and no event generator is read
    for an operation that has none. Before: 19 statements, 13 of them before the request."""
    run = submit_talkifai_start(team, sandbox_connection)

    with django_assert_max_num_queries(16):
        assert services.run_send(run_id=run.pk) == "succeeded"

    assert len(sandboxes["talkifai"].received_on("start_batch_job")) == 1


def test_a_clicks_send_ends_its_claim_on_the_bulk_lane_whatever_became_of_it(
    team, sandbox_connection, sandboxes, clean_redis
):
    """Sent, or skipped as already sent: the bulk lane stops yielding to the click at once
    (not after its entry lapses)."""
    run = submit_talkifai_start(team, sandbox_connection)
    begin_interactive(run.pk)
    assert clean_redis.zcard(INTERACTIVE_KEY) == 1

    assert services.run_send(run_id=run.pk) == "succeeded"
    assert clean_redis.zcard(INTERACTIVE_KEY) == 0

    begin_interactive(run.pk)  # a redelivered message
    assert services.run_send(run_id=run.pk) == "skipped: already succeeded"
    assert clean_redis.zcard(INTERACTIVE_KEY) == 0
    assert len(sandboxes["talkifai"].received_on("start_batch_job")) == 1


def test_second_daily_request_inside_the_window_waits_and_is_not_sent(team, daily, sandboxes):
    run = submit_daily(team, daily, approval_required=False)
    assert services.run_send(run_id=run.pk) == "succeeded"
    # A second, independent request for the same key is held by the shared Redis window.
    other = submit_daily(team, daily, key="k2", approval_required=False)
    assert other.state == RunState.QUEUED
    result = services.run_send(run_id=other.pk)
    assert result in ("guardrail",) or result.startswith("rate limited")
    assert len(sandboxes["optimove_batch"].received_on("trigger_daily")) == 1


def test_rejected_daily_trigger_fails_with_plain_words(team, daily, sandboxes):
    sandboxes["optimove_batch"].control(
        "set_task_condition", {"tenant": "demo", "condition": "not_found"}
    )
    run = submit_daily(team, daily, approval_required=False)
    assert services.run_send(run_id=run.pk) == "failed: task_not_found"
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert run.failure_class == "rejected" and run.failure_code == "task_not_found"
    assert "task not found" in run.failure_message
    assert len(sandboxes["optimove_batch"].received_on("trigger_daily")) == 1


def test_third_party_key_is_blocked_before_anything_is_sent(team, sandbox_connection, sandboxes):
    connection = sandbox_connection(team.tenant, "optimove_batch", options={"key_role": "3rdParty"})
    run = submit_daily(team, connection, approval_required=False)
    assert services.run_send(run_id=run.pk) == "guardrail"
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "3rdParty" in run.failure_message
    assert sandboxes["optimove_batch"].received == []


def test_not_sent_is_retried_then_fails(team, sandbox_connection, settings):
    settings.RUN_MAX_SEND_ATTEMPTS = 2
    connection = sandbox_connection(team.tenant, "optimove_batch", base_url="http://127.0.0.1:9")
    run = submit_daily(team, connection, approval_required=False)
    assert services.run_send(run_id=run.pk) == "retry after not_sent"
    run.refresh_from_db()
    assert run.state == RunState.QUEUED and run.next_attempt_at is not None
    assert run.failure_class == "not_sent"
    # The window taken for a request that never left is given back.
    assert (
        rate_limiter().window_remaining(
            operation_for(run.operation).rate_rules(connection, connection_secrets(connection))[0]
        )
        == 0
    )
    Run.objects.filter(pk=run.pk).update(next_attempt_at=None)
    assert services.run_send(run_id=run.pk) == "failed: connection_failed"
    run.refresh_from_db()
    assert run.state == RunState.FAILED and run.attempt_count == 2
    assert "Gave up after 2 attempts" in run.failure_message


def test_throttled_campaign_waits_for_retry_after(team, campaigns, sandboxes):
    sandboxes.clock.set_scale(0)  # one frozen second: the window never rolls over
    sandboxes["optimove_campaigns"].control("set_rate_limit", {"per_second": 1})
    first = submit_campaign(team, campaigns, key="first", topic="other-topic")
    assert services.run_send(run_id=first.pk) == "accepted"
    run = submit_campaign(team, campaigns)
    assert services.run_send(run_id=run.pk) == "retry after throttled"
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    assert run.failure_code == "rate_limited"
    assert run.next_attempt_at > run.updated_at


def test_campaign_server_error_is_retried_as_the_docs_say(team, campaigns, sandboxes):
    sandboxes["optimove_campaigns"].inject_fault("run", Fault.SERVER_ERROR)
    run = submit_campaign(team, campaigns)
    assert services.run_send(run_id=run.pk) == "retry after server_error"
    Run.objects.filter(pk=run.pk).update(next_attempt_at=None)
    assert services.run_send(run_id=run.pk) == "accepted"
    assert len(sandboxes["optimove_campaigns"].received_on("run")) == 2


def test_campaign_with_lost_answer_is_not_retried_and_goes_to_a_person(team, campaigns, sandboxes):
    sandboxes["optimove_campaigns"].inject_fault("run", Fault.DROP_AFTER_PROCESSING)
    run = submit_campaign(team, campaigns)
    assert services.run_send(run_id=run.pk).startswith("outcome unknown")
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN and run.needs_person
    assert services.run_send(run_id=run.pk).startswith("skipped")
    assert len(sandboxes["optimove_campaigns"].received_on("run")) == 1
    with pytest.raises(services.RunActionError, match="Say how you know"):
        services.run_mark_as_sent(actor=actor(team.operator), run=run, comment=" ")
    services.run_mark_as_sent(
        actor=actor(team.operator), run=run, comment="Mission Control shows the execution"
    )
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert (
        AuditEvent.objects.get(action="run.marked_as_sent").summary["reason"]
        == "Mission Control shows the execution"
    )


def test_send_again_after_a_person_checked(team, campaigns, sandboxes):
    sandboxes["optimove_campaigns"].inject_fault("run", Fault.DROP_BEFORE_PROCESSING)
    run = submit_campaign(team, campaigns)
    services.run_send(run_id=run.pk)
    services.run_send_again(
        actor=actor(team.operator), run=run, comment="No execution in Mission Control"
    )
    assert services.run_send(run_id=run.pk) == "accepted"
    state = sandboxes["optimove_campaigns"].state()
    assert len(state["executions"]) == 1


def test_daily_lost_answer_is_reconciled_by_asking_again(team, daily, sandboxes):
    sandbox = sandboxes["optimove_batch"]
    sandbox.inject_fault("trigger_daily", Fault.DROP_AFTER_PROCESSING)
    run = submit_daily(team, daily, approval_required=False)
    assert services.run_send(run_id=run.pk).startswith("outcome unknown")
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person
    assert run.reconcile_after >= run.sent_at + timedelta(seconds=600)
    # Ten minutes pass: in the sandbox, in Redis, and for the run.
    sandbox.clock.advance(601)
    release_daily_window(daily)
    Run.objects.filter(pk=run.pk).update(reconcile_after=run.sent_at)
    assert services.run_reconcile(run_id=run.pk) == "reconciled: succeeded"
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert "went through" in run.result["reconciliation"]
    assert sandbox.state()["tenants"]["demo"]["successful_triggers"] == 1


def test_daily_dropped_before_processing_is_sent_by_reconciliation(team, daily, sandboxes):
    sandbox = sandboxes["optimove_batch"]
    sandbox.inject_fault("trigger_daily", Fault.DROP_BEFORE_PROCESSING)
    run = submit_daily(team, daily, approval_required=False)
    services.run_send(run_id=run.pk)
    sandbox.clock.advance(601)
    release_daily_window(daily)
    Run.objects.filter(pk=run.pk).update(reconcile_after=run.sent_at)
    assert services.run_reconcile(run_id=run.pk) == "reconciled: succeeded"
    run.refresh_from_db()
    assert "this call triggered" in run.result["reconciliation"]
    assert sandbox.state()["tenants"]["demo"]["successful_triggers"] == 1


def test_daily_reconciliation_after_the_utc_day_goes_to_a_person(
    team, daily, sandboxes, monkeypatch
):
    sandboxes["optimove_batch"].inject_fault("trigger_daily", Fault.DROP_AFTER_PROCESSING)
    run = submit_daily(team, daily, approval_required=False)
    services.run_send(run_id=run.pk)
    run.refresh_from_db()
    tomorrow = run.sent_at + timedelta(days=1)
    monkeypatch.setattr(services.sending, "utc_now", lambda: tomorrow)
    assert services.run_reconcile(run_id=run.pk) == "day ended"
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN and run.needs_person
    assert "UTC day ended" in run.failure_message
    assert len(sandboxes["optimove_batch"].received_on("trigger_daily")) == 1


def test_campaign_is_polled_to_published(team, campaigns, sandboxes):
    run = submit_campaign(team, campaigns)
    assert services.run_send(run_id=run.pk) == "accepted"
    run.refresh_from_db()
    assert run.state == RunState.ACCEPTED and run.vendor_reference.startswith("exec-")
    Run.objects.filter(pk=run.pk).update(next_poll_at=None)
    assert services.run_poll(run_id=run.pk) == "queued"
    sandboxes.clock.advance(5)
    Run.objects.filter(pk=run.pk).update(next_poll_at=None)
    assert services.run_poll(run_id=run.pk) == "published"
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED and run.audience_size == 127450
    assert run.attempts.filter(purpose="poll").count() == 2


def test_failed_execution_fails_the_run_with_the_vendors_reason(team, campaigns, sandboxes):
    run = submit_campaign(team, campaigns, topic="will-fail")
    services.run_send(run_id=run.pk)
    sandboxes.clock.advance(5)
    Run.objects.filter(pk=run.pk).update(next_poll_at=None)
    assert services.run_poll(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert run.state == RunState.FAILED and run.failure_code
    assert run.failure_message


def test_sweeper_presumes_a_stuck_send_lost_without_resending(team, campaigns, sandboxes):
    run = submit_campaign(team, campaigns)
    Run.objects.filter(pk=run.pk).update(state=RunState.SENDING)
    with db_connection.cursor() as cursor:
        cursor.execute(
            "UPDATE dashboard_run SET updated_at = now() - interval '10 minutes' WHERE id = %s",
            [run.pk],
        )
    report = services.runs_sweep()
    assert report["presumed_lost"] == 1
    run.refresh_from_db()
    assert (
        run.state == RunState.OUTCOME_UNKNOWN
        and run.failure_code == "worker_lost"
        and run.needs_person
    )
    assert sandboxes["optimove_campaigns"].received == []


def test_sweeper_expires_unapproved_requests(team, daily):
    run = submit_daily(team, daily)
    Run.objects.filter(pk=run.pk).update(approval_expires_at=run.requested_at)
    assert services.runs_sweep()["expired"] == 1
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED


def test_only_one_daily_trigger_in_flight_per_tenant(team, daily):
    first = submit_daily(team, daily, key="a", approval_required=False)
    with pytest.raises(services.RunActionError, match="already in flight"):
        submit_daily(team, daily, key="b", approval_required=False)
    assert Run.objects.get().pk == first.pk


# -- who may cancel -----------------------------------------------------------------------------


def test_only_the_requester_or_an_operator_or_admin_may_cancel(team, daily):
    from dashboard.models import Role
    from tests.factories import MembershipFactory

    other_marketer = MembershipFactory(tenant=team.tenant, role=Role.MARKETER)
    refused = [
        actor(other_marketer),
        actor(team.auditor),
        Actor.system("sweeper"),
    ]
    allowed = [team.marketer, team.operator, team.admin]
    for number, person in enumerate(allowed):
        run = submit_daily(team, daily, key=f"cancel-{number}")
        for someone in refused:
            with pytest.raises(services.RunActionError):
                services.run_cancel(actor=someone, run=run)
            run.refresh_from_db()
            assert run.state == RunState.AWAITING_APPROVAL
        services.run_cancel(actor=actor(person), run=run)
        run.refresh_from_db()
        assert run.state == RunState.CANCELLED
        assert not AuditEvent.objects.filter(
            object_id=str(run.pk), action="run.cancelled", actor=other_marketer.user
        ).exists()


# -- send again while TriggerDesk reconciles ----------------------------------------------------


def test_send_again_is_refused_while_a_reconciliation_is_scheduled(team, daily, sandboxes):
    sandbox = sandboxes["optimove_batch"]
    sandbox.inject_fault("trigger_daily", Fault.DROP_AFTER_PROCESSING)
    run = submit_daily(team, daily, approval_required=False)
    services.run_send(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person
    # The stored message says what happened, not the advice to re-send meant for a person.
    assert "Re-send" not in run.failure_message and "window" not in run.failure_message

    with pytest.raises(services.RunActionError, match="checks with the vendor itself"):
        services.run_send_again(
            actor=actor(team.operator), run=run, comment="Nothing in Optimove's UI"
        )

    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person
    assert not AuditEvent.objects.filter(action="run.send_again").exists()
    assert len(sandbox.received_on("trigger_daily")) == 1
    # Marking it as sent, with evidence, stays possible.
    services.run_mark_as_sent(
        actor=actor(team.operator), run=run, comment="Optimove shows today's batch running"
    )
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED


def test_send_again_answered_already_triggered_today_proves_the_first_call(team, daily, sandboxes):
    sandbox = sandboxes["optimove_batch"]
    sandbox.inject_fault("trigger_daily", Fault.DROP_AFTER_PROCESSING)
    run = submit_daily(team, daily, approval_required=False)
    services.run_send(run_id=run.pk)
    # The automatic re-check could not settle it: a person decides.
    Run.objects.filter(pk=run.pk).update(needs_person=True)
    run.refresh_from_db()
    sandbox.clock.advance(601)
    release_daily_window(daily)

    services.run_send_again(
        actor=actor(team.operator), run=run, comment="Optimove's UI shows no batch yet"
    )
    assert services.run_send(run_id=run.pk) == "succeeded: an earlier call went through"

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.failure_message
    assert "the first call went through" in run.result["reconciliation"]
    assert sandbox.state()["tenants"]["demo"]["successful_triggers"] == 1
    assert len(sandbox.received_on("trigger_daily")) == 2
    daily.refresh_from_db()
    assert daily.last_error == ""  # a refusal of a duplicate is not a connection fault
    assert list(run.attempts.values_list("number", "purpose")) == [(1, "send"), (2, "send")]


# -- the attempt is on record before the call leaves --------------------------------------------


def _watch_send(monkeypatch, operation_name):
    """Wrap the operation's send: what the database holds (committed, as the tests using it
    are transactional) for the run when the call leaves."""
    import os
    import socket

    seen = []
    operation = operation_for(operation_name)
    original = operation.send

    def send(connection, secrets, run):
        import threading

        seen.append(
            list(
                RunAttempt.objects.filter(run_id=run.pk).values_list(
                    "number", "purpose", "finished_at", "worker"
                )
            )
        )
        if threading.current_thread() is not threading.main_thread():
            db_connection.close()  # a send thread's own connection must not outlive the test
        return original(connection, secrets, run)

    monkeypatch.setattr(operation, "send", send)
    return seen, f"{socket.gethostname()}:{os.getpid()}"


@pytest.mark.django_db(transaction=True)
def test_the_attempt_is_recorded_before_the_call_leaves(team, daily, sandboxes, monkeypatch):
    seen, me = _watch_send(monkeypatch, "optimove_trigger_daily")
    run = submit_daily(team, daily, approval_required=False)

    assert services.run_send(run_id=run.pk) == "succeeded"

    assert seen == [[(1, "send", None, me)]]
    (attempt,) = RunAttempt.objects.filter(run=run)
    assert attempt.finished_at is not None and attempt.status_code == 200
    assert attempt.worker == me
    assert attempt.request["parameters_hash"] == run.parameters_hash


@pytest.mark.django_db(transaction=True)
def test_a_batched_send_is_on_record_before_it_leaves(team, campaigns, sandboxes, monkeypatch):
    """Committed, too: the dispatcher's send thread reads through its own connection."""
    seen, me = _watch_send(monkeypatch, "optimove_run_event_generator")
    run = submit_campaign(team, campaigns)

    assert services.run_send(run_id=run.pk) == "accepted"

    assert seen == [[(1, "send", None, me)]]
    (attempt,) = RunAttempt.objects.filter(run=run)
    assert attempt.finished_at is not None and attempt.status_code == 202
    assert attempt.worker == me


# -- the sweeper and worker heartbeats ----------------------------------------------------------


def _sending_since(team, seconds, *, worker):
    from dashboard.clock import utc_now
    from tests.factories import RunAttemptFactory, RunFactory

    run = RunFactory(
        tenant=team.tenant, state=RunState.SENDING, attempt_count=1, approval_required=False
    )
    RunAttemptFactory(
        run=run, number=1, exchange={}, status_code=None, finished_at=None, worker=worker
    )
    Run.objects.filter(pk=run.pk).update(updated_at=utc_now() - timedelta(seconds=seconds))
    return run


def test_sweeper_presumes_lost_a_send_whose_worker_heartbeat_is_gone(team):
    from dashboard.runs.heartbeat import beat_now

    me = beat_now()
    dead = _sending_since(team, 20, worker="gone-host:4242")
    alive = _sending_since(team, 20, worker=me)
    fresh = _sending_since(team, 1, worker="gone-host:4343")

    assert services.runs_sweep()["presumed_lost"] == 1

    dead.refresh_from_db()
    assert dead.state == RunState.OUTCOME_UNKNOWN and dead.failure_code == "worker_lost"
    assert "gone-host:4242" in dead.failure_message
    (attempt,) = dead.attempts.all()
    assert attempt.finished_at is not None and attempt.failure_code == "worker_lost"
    for run in (alive, fresh):
        run.refresh_from_db()
        assert run.state == RunState.SENDING


def test_sweeper_picks_up_an_overdue_reconciliation_within_seconds(team, daily, sandboxes):
    from dashboard.clock import utc_now

    sandboxes["optimove_batch"].inject_fault("trigger_daily", Fault.DROP_AFTER_PROCESSING)
    run = submit_daily(team, daily, approval_required=False)
    services.run_send(run_id=run.pk)
    Run.objects.filter(pk=run.pk).update(reconcile_after=utc_now() - timedelta(seconds=5))

    assert services.runs_sweep()["reconciles"] == 1


# -- a status read that fails ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "gives_up"),
    [
        ("campaigns.vendors.optimove_campaigns.client:Unauthorized", True),
        ("campaigns.vendors.optimove_campaigns.client:Forbidden", True),
        ("campaigns.vendors.optimove_campaigns.client:ExecutionNotFound", True),
        ("campaigns.vendors.optimove_campaigns.client:RateLimited", False),
        ("campaigns.vendors.optimove_campaigns.client:OptimoveServerError", False),
        ("campaigns.vendors.optimove_campaigns.client:NoAnswer", False),
        ("campaigns.vendors.optimove_campaigns.client:ConnectionFailed", False),
    ],
)
def test_a_failed_status_read_is_sorted_by_its_class_as_a_send_is(error, gives_up):
    from django.utils.module_loading import import_string

    from dashboard.clock import utc_now

    error_class = import_string(error.replace(":", "."))
    failure = error_class(
        "The vendor refused.", code="some_code", vendor_message="in its own words", retry_after=7
    )
    run = Run(poll_count=3, state=RunState.ACCEPTED)
    now = utc_now()

    to_state, fields = services.poll_failure_outcome(run, failure, now)

    if gives_up:
        assert to_state == RunState.OUTCOME_UNKNOWN and fields["needs_person"]
        assert fields["failure_class"] == "rejected" and fields["failure_code"] == "some_code"
        assert "in its own words" in fields["failure_message"]
    else:
        assert to_state is None
        assert fields == {"next_poll_at": now + timedelta(seconds=7)}
