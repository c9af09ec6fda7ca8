"""The batched dispatcher (dashboard.runs.dispatch) against the real sandbox, PostgreSQL and Redis.

Optimove event generators are batched (batch_size 100); the dispatcher is called directly here.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection as db_connection

from dashboard.audit.trail import Actor, verify_audit_chains
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.runs import attempts, dispatch, enqueue, services
from dashboard.runs.models import Operation, Run, RunAttempt
from dashboard.runs.states import RunState
from dashboard.vendors.sandbox import Fault
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.usefixtures("clean_redis")]

OPERATION = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
EVENT_GENERATOR = "00000000-abcd-abcd-abcd-000000000000"
UNKNOWN_GENERATOR = "99999999-abcd-abcd-abcd-999999999999"


@pytest.fixture
def campaigns(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_campaigns")


def submit(team, connection, number, *, generator=EVENT_GENERATOR, approval_required=False):
    return services.run_submit(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation=OPERATION,
        parameters={
            "event_generator_id": generator,
            "topic_key": "event_reminders+NFL",
            "context": {"number": number},
        },
        idempotency_key=f"run-{number}",
        approval_required=approval_required,
        check_duplicates=False,
    )


def sent_numbers(sandboxes):
    import json

    return sorted(
        json.loads(r.body)["context"]["number"]
        for r in sandboxes["optimove_campaigns"].received_on("run")
    )


def transitions(run):
    return [
        (event.summary.get("from"), event.summary.get("to"))
        for event in AuditEvent.objects.filter(
            object_type="run", object_id=str(run.pk), action="run.state_changed"
        ).order_by("sequence")
    ]


@pytest.mark.django_db
def test_claims_only_due_queued_runs_and_records_them_like_the_per_run_path(
    team, campaigns, sandboxes
):
    due = [submit(team, campaigns, number) for number in range(3)]
    later = submit(team, campaigns, 3)
    Run.objects.filter(pk=later.pk).update(next_attempt_at=utc_now() + timedelta(minutes=5))
    waiting = submit(team, campaigns, 4, approval_required=True)

    said = dispatch.dispatch_sends(
        connection_id=campaigns.pk, operation=OPERATION, run_id=due[0].pk
    )

    assert said == "accepted"
    assert sent_numbers(sandboxes) == [0, 1, 2]
    for run in due:
        run.refresh_from_db()
        assert run.state == RunState.ACCEPTED and run.vendor_reference.startswith("exec-")
        assert run.attempt_count == 1 and run.next_poll_at is not None
        (attempt,) = run.attempts.all()
        assert (attempt.number, attempt.purpose, attempt.status_code) == (1, "send", 202)
        assert transitions(run) == [("queued", "sending"), ("sending", "accepted")]
    later.refresh_from_db()
    waiting.refresh_from_db()
    assert later.state == RunState.QUEUED and waiting.state == RunState.AWAITING_APPROVAL
    assert verify_audit_chains() == []


@pytest.mark.django_db
def test_answers_are_recorded_by_compare_and_set_per_run(team, campaigns, sandboxes, monkeypatch):
    runs = [submit(team, campaigns, number) for number in range(3)]
    presumed_lost, moved_on, untouched = runs
    record = dispatch._record_sends

    def meanwhile(*args, **kwargs):
        # While the calls were out, the sweeper presumed one run lost (its answer still counts)
        # and another was moved on by someone else (it must not be overwritten).
        Run.objects.filter(pk=presumed_lost.pk).update(state=RunState.OUTCOME_UNKNOWN)
        Run.objects.filter(pk=moved_on.pk).update(state=RunState.FAILED, failure_code="elsewhere")
        return record(*args, **kwargs)

    monkeypatch.setattr(dispatch, "_record_sends", meanwhile)
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    assert sent_numbers(sandboxes) == [0, 1, 2]
    for run in runs:
        run.refresh_from_db()
        (attempt,) = run.attempts.all()  # every call on record, whatever became of its run
        assert attempt.status_code == 202 and attempt.finished_at is not None
    assert presumed_lost.state == RunState.ACCEPTED
    assert presumed_lost.vendor_reference.startswith("exec-")
    assert untouched.state == RunState.ACCEPTED and transitions(untouched)[-1] == (
        "sending",
        "accepted",
    )
    assert moved_on.state == RunState.FAILED and moved_on.failure_code == "elsewhere"
    assert moved_on.vendor_reference == "" and moved_on.next_poll_at is None
    assert transitions(moved_on) == [("queued", "sending")]
    assert verify_audit_chains() == []

    # Polls alike: a run moved on while its status read was out keeps what it was given.
    Run.objects.filter(pk__in=[presumed_lost.pk, untouched.pk]).update(next_poll_at=None)
    sandboxes.clock.advance(5)
    collect = dispatch._collect

    def polled_meanwhile(futures):
        outcomes = collect(futures)
        Run.objects.filter(pk=presumed_lost.pk).update(
            state=RunState.OUTCOME_UNKNOWN, failure_code="poll_deadline"
        )
        return outcomes

    monkeypatch.setattr(dispatch, "_collect", polled_meanwhile)
    dispatch.dispatch_polls(connection_id=campaigns.pk, operation=OPERATION)

    presumed_lost.refresh_from_db()
    untouched.refresh_from_db()
    assert untouched.state == RunState.SUCCEEDED and untouched.audience_size == 127450
    assert transitions(untouched)[-1] == ("accepted", "succeeded")
    assert presumed_lost.state == RunState.OUTCOME_UNKNOWN
    assert presumed_lost.failure_code == "poll_deadline" and presumed_lost.audience_size is None
    assert transitions(presumed_lost)[-1] == ("sending", "accepted")
    assert [a.purpose for a in presumed_lost.attempts.all()] == ["send", "poll"]
    assert verify_audit_chains() == []


@pytest.mark.django_db
def test_a_message_for_one_run_still_reports_that_run(team, campaigns, sandboxes):
    run = submit(team, campaigns, 0)
    assert services.run_send(run_id=run.pk) == "accepted"
    assert services.run_send(run_id=run.pk) == "skipped: already accepted"
    assert len(sandboxes["optimove_campaigns"].received_on("run")) == 1


@pytest.mark.django_db
def test_failure_classes_are_decided_per_run(team, campaigns, sandboxes):
    sandboxes["optimove_campaigns"].inject_fault("run", Fault.SERVER_ERROR)
    good = [submit(team, campaigns, number) for number in range(3)]
    rejected = submit(team, campaigns, 9, generator=UNKNOWN_GENERATOR)

    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    runs = [*good, rejected]
    for run in runs:
        run.refresh_from_db()
    # The sends go out concurrently: whichever reached the sandbox first met the injected 500
    # and is queued for a retry later, as the vendor's docs say.
    (retried,) = [run for run in runs if run.state == RunState.QUEUED]
    assert retried.failure_class == "server_error" and retried.next_attempt_at > utc_now()
    assert [a.failure_class for a in retried.attempts.all()] == ["server_error"]
    if retried.pk != rejected.pk:
        assert rejected.state == RunState.FAILED and rejected.failure_class == "rejected"
        assert transitions(rejected) == [("queued", "sending"), ("sending", "failed")]
    accepted = [run for run in good if run.state == RunState.ACCEPTED]
    assert len(accepted) == len([run for run in good if run.pk != retried.pk])
    assert verify_audit_chains() == []


@pytest.mark.django_db
def test_polls_are_batched_recorded_and_rescheduled(team, campaigns, sandboxes):
    runs = [submit(team, campaigns, number) for number in range(3)]
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    Run.objects.filter(pk__in=[r.pk for r in runs]).update(next_poll_at=None)

    assert (
        dispatch.dispatch_polls(connection_id=campaigns.pk, operation=OPERATION, run_id=runs[0].pk)
        == "queued"
    )
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.ACCEPTED and run.poll_count == 1
        assert run.next_poll_at > utc_now()

    sandboxes.clock.advance(5)
    Run.objects.filter(pk__in=[r.pk for r in runs]).update(next_poll_at=None)
    assert services.run_poll(run_id=runs[1].pk) == "published"
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.SUCCEEDED and run.audience_size == 127450
        assert [(a.number, a.purpose) for a in run.attempts.all()] == [
            (1, "send"),
            (2, "poll"),
            (3, "poll"),
        ]
        assert transitions(run)[-1] == ("accepted", "succeeded")
    assert verify_audit_chains() == []


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_never_send_a_run_twice(team, campaigns, sandboxes):
    count = 250
    for number in range(count):
        submit(team, campaigns, number)
    errors = []
    start = threading.Barrier(2)

    def work():
        try:
            start.wait()
            dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
        except BaseException as error:  # collected and asserted below
            errors.append(error)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sent_numbers(sandboxes) == list(range(count))
    assert Run.objects.filter(state=RunState.ACCEPTED).count() == count
    assert RunAttempt.objects.filter(purpose="send").count() == count
    assert not RunAttempt.objects.exclude(number=1).exists()
    assert AuditEvent.objects.filter(action="run.state_changed").count() == 2 * count
    assert verify_audit_chains() == []


@pytest.mark.django_db
def test_runs_never_sent_for_want_of_the_limiter_go_back_to_queued(
    team, campaigns, sandboxes, monkeypatch
):
    runs = [submit(team, campaigns, number) for number in range(2)]

    def broken(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(type(dispatch.rate_limiter()), "take_slots", broken)
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    assert sandboxes["optimove_campaigns"].received == []
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.QUEUED and run.next_attempt_at > utc_now()
        assert transitions(run) == [("queued", "sending"), ("sending", "queued")]
    assert verify_audit_chains() == []


def test_submissions_wake_at_most_one_dispatcher_per_slot(clean_redis, monkeypatch):
    from dashboard.runs import tasks

    sent = []
    monkeypatch.setattr(
        tasks.send_run, "apply_async", lambda args, kwargs=None, **_: sent.append((args, kwargs))
    )
    for run_id in range(50):
        enqueue.wake_sends(run_id, 7, OPERATION)

    assert sent == [([run_id], {"slot": run_id}) for run_id in range(enqueue.DISPATCH_SLOTS)]
    # A dispatcher that stops clears its flag: the next submission wakes one again.
    dispatch.rate_limiter().clear_flag(enqueue.send_flag(7, OPERATION, 1))
    enqueue.wake_sends(99, 7, OPERATION)
    assert sent[-1] == ([99], {"slot": 1})


@pytest.mark.django_db
def test_a_woken_dispatcher_whose_run_went_out_still_clears_its_flag(team, campaigns, sandboxes):
    run = submit(team, campaigns, 0)
    assert services.run_send(run_id=run.pk) == "accepted"
    limiter = dispatch.rate_limiter()
    flag = enqueue.send_flag(campaigns.pk, OPERATION, 0)
    assert limiter.set_flag(flag, 60)
    later = submit(team, campaigns, 1)  # its wake-up found the flag set (not enqueued here)

    assert services.run_send(run_id=run.pk, slot=0) == "dispatched 1 sends in 1 batches"

    later.refresh_from_db()
    assert later.state == RunState.ACCEPTED
    assert limiter.set_flag(flag, 60)  # cleared by the dispatcher's last look
    assert services.run_send(run_id=run.pk, slot=0) == "skipped: already accepted"


@pytest.mark.django_db
def test_a_long_dispatch_hands_over_to_a_fresh_message(team, campaigns, sandboxes, monkeypatch):
    from dashboard.runs import tasks
    from dashboard.runs.operations import operation_for

    monkeypatch.setattr(operation_for(OPERATION), "batch_size", 2)
    monkeypatch.setattr(dispatch, "DISPATCH_SLICE_SECONDS", -1.0)
    woken = []
    monkeypatch.setattr(
        tasks.send_run, "apply_async", lambda args, kwargs=None, **_: woken.append((args, kwargs))
    )
    runs = [submit(team, campaigns, number) for number in range(3)]

    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    assert sent_numbers(sandboxes) == [0, 1]
    assert woken == [([runs[1].pk], {"slot": 0})]
    runs[2].refresh_from_db()
    assert runs[2].state == RunState.QUEUED


@pytest.mark.django_db
def test_a_long_poll_dispatch_hands_over_to_a_fresh_message(
    team, campaigns, sandboxes, monkeypatch
):
    """After its slice a poll dispatcher stops and wakes a fresh one for the runs still due,
    at the back of the queue: another brand's dispatchers get the worker in between."""
    from dashboard.runs import tasks
    from dashboard.runs.operations import operation_for

    runs = [submit(team, campaigns, number) for number in range(3)]
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    Run.objects.filter(pk__in=[r.pk for r in runs]).update(next_poll_at=None)
    monkeypatch.setattr(operation_for(OPERATION), "batch_size", 2)
    monkeypatch.setattr(dispatch, "DISPATCH_SLICE_SECONDS", -1.0)
    woken = []
    monkeypatch.setattr(
        tasks.dispatch_polls, "apply_async", lambda args, **options: woken.append(args)
    )

    assert dispatch.dispatch_polls(connection_id=campaigns.pk, operation=OPERATION) == "polled 2"

    assert sorted(
        Run.objects.filter(pk__in=[r.pk for r in runs]).values_list("poll_count", flat=True)
    ) == [0, 1, 1]
    assert woken == [[campaigns.pk, OPERATION]]


@pytest.mark.django_db(transaction=True)
def test_a_claimed_run_the_sweeper_put_back_before_its_request_started_is_sent_once(
    team, campaigns, sandboxes, monkeypatch
):
    """The sweeper and the dispatcher race on the run's open attempt: the sweeper put the run
    back in the queue before its grant was marked started, so the dispatcher does not send it
    from that claim; it goes out once, from the queue."""
    from dashboard.runs import tasks

    messages = []
    monkeypatch.setattr(tasks.send_run, "apply_async", lambda args, **kwargs: messages.append(args))
    runs = [submit(team, campaigns, number) for number in range(3)]
    victim = runs[1]
    mark = attempts.mark_requests_started_unless_paused
    swept = []

    def sweeper_first(attempt_ids, **scope):
        if not swept:
            # Claimed long ago as far as the sweeper can tell: it takes the run back.
            Run.objects.filter(pk=victim.pk).update(updated_at=utc_now() - timedelta(hours=1))
            swept.append(services.runs_sweep())
        return mark(attempt_ids, **scope)

    monkeypatch.setattr(attempts, "mark_requests_started_unless_paused", sweeper_first)
    messages.clear()  # the submissions' wake-ups
    try:
        dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    finally:
        db_connection.close()

    assert swept[0]["never_sent"] == 1
    assert sent_numbers(sandboxes) == [0, 2]
    victim.refresh_from_db()
    assert victim.state == RunState.QUEUED
    # The sweeper's message sends it, once.
    assert messages == [[victim.pk]]
    try:
        assert services.run_send(run_id=victim.pk) == "accepted"
    finally:
        db_connection.close()
    assert sent_numbers(sandboxes) == [0, 1, 2]
    victim.refresh_from_db()
    assert victim.state == RunState.ACCEPTED
    first, second = victim.attempts.all()
    assert (first.number, first.failure_code, first.status_code) == (
        1,
        "worker_lost_before_sending",
        None,
    )
    assert (second.number, second.status_code) == (2, 202)
    assert transitions(victim) == [
        ("queued", "sending"),
        ("sending", "queued"),
        ("queued", "sending"),
        ("sending", "accepted"),
    ]
    # Every request that left was marked started before it did.
    sent = RunAttempt.objects.filter(purpose="send", status_code=202)
    assert sent.count() == 3 and not sent.filter(request_started_at__isnull=True).exists()
    assert verify_audit_chains() == []


@pytest.mark.django_db
def test_a_refused_status_read_ends_the_poll_and_puts_the_run_before_a_person(
    team, campaigns, sandboxes
):
    """A 404 "execution not found" will not change by asking again for two hours: the run goes
    before a person at once, with the vendor's words; its neighbour in the batch polls on."""
    lost, kept = [submit(team, campaigns, number) for number in range(2)]
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    Run.objects.filter(pk=lost.pk).update(vendor_reference="exec-unknown")
    Run.objects.filter(pk__in=[lost.pk, kept.pk]).update(next_poll_at=None)

    assert services.run_poll(run_id=lost.pk) == "poll refused: execution_not_found"

    lost.refresh_from_db()
    assert lost.state == RunState.OUTCOME_UNKNOWN and lost.needs_person
    assert lost.failure_class == "rejected" and lost.failure_code == "execution_not_found"
    assert "Execution ID not found" in lost.failure_message
    assert "stopped asking" in lost.failure_message
    assert transitions(lost)[-1] == ("accepted", "outcome_unknown")
    kept.refresh_from_db()
    assert kept.state == RunState.ACCEPTED and kept.next_poll_at > utc_now()
    # Nothing asks about the refused run again.
    sandboxes.clock.advance(5)
    Run.objects.filter(pk=kept.pk).update(next_poll_at=None)
    assert services.run_poll(run_id=kept.pk) == "published"
    assert lost.attempts.filter(purpose="poll").count() == 1
    assert verify_audit_chains() == []


@pytest.mark.django_db
def test_a_server_error_on_a_status_read_is_asked_again_later(team, campaigns, sandboxes):
    run = submit(team, campaigns, 0)
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    Run.objects.filter(pk=run.pk).update(next_poll_at=None)
    sandboxes["optimove_campaigns"].inject_fault("status", Fault.SERVER_ERROR)

    assert services.run_poll(run_id=run.pk).startswith("poll failed: ")

    run.refresh_from_db()
    assert run.state == RunState.ACCEPTED and not run.needs_person
    assert run.next_poll_at > utc_now()


@pytest.mark.django_db(transaction=True)
def test_a_burst_grants_nothing_while_a_persons_click_is_in_flight(
    team, campaigns, sandboxes, monkeypatch, clean_redis
):
    """The bulk lane's dispatcher yields to a click (its send enqueued on the interactive lane)
    until the click's worker ends it; then the burst goes out whole, each run once."""
    from dashboard.runs import rate_limits

    monkeypatch.setattr(rate_limits, "YIELD_CAPACITY_SECONDS", 3600.0)  # not spent in this test
    count = 20
    for number in range(count):
        submit(team, campaigns, number)
    enqueue.begin_interactive(999_999)
    errors = []

    def work():
        try:
            dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
        except BaseException as error:  # collected and asserted below
            errors.append(error)
        finally:
            db_connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        wait_for(
            lambda: clean_redis.hget(rate_limits.YIELD_BUDGET_KEY, "yielding") == b"1",
            timeout=60,
            message="the dispatcher to yield",
        )
        # It has asked for places and been told to wait: not one request has left.
        assert sandboxes["optimove_campaigns"].received_on("run") == []
    finally:
        enqueue.end_interactive(999_999)
        thread.join(timeout=120)

    assert errors == []
    assert sent_numbers(sandboxes) == list(range(count))
    assert Run.objects.filter(state=RunState.ACCEPTED).count() == count
