"""The run engine end to end: real Celery workers, PostgreSQL, Redis and the vendor sandboxes.

Each test states what the vendor saw (the sandbox's received requests and state) and what the
user sees (the Run, its attempts and its audit trail).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from django.db import connection as db_connection

from dashboard.clock import utc_now, utc_today
from dashboard.models import AuditEvent
from dashboard.runs.models import Operation, Run, RunAttempt
from dashboard.runs.states import RunState
from dashboard.vendors.sandbox import Fault
from tests.conftest import SANDBOX_SECRETS
from tests.e2e.conftest import age_run, closed_port, release_windows, sweep, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EVENT_GENERATOR = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
TRIGGER_DAILY = Operation.OPTIMOVE_TRIGGER_DAILY
MATCH_START = "00000000-abcd-abcd-abcd-000000000000"
NFL_AUDIENCE = 127_450
SETTLED = {RunState.SUCCEEDED, RunState.FAILED, RunState.OUTCOME_UNKNOWN, RunState.CANCELLED}


def event_parameters(**overrides: Any) -> dict[str, Any]:
    return {
        "event_generator_id": MATCH_START,
        "topic_key": "event_reminders+NFL",
        "context": {"match": "Jets v Giants", "kickoff": "2026-09-13T17:00:00Z"},
        **overrides,
    }


def settle(run: Run, states: set[str] = SETTLED, *, timeout: float = 30.0) -> Run:
    """Wait until the run reaches one of `states`; the refreshed run."""

    def reached() -> Run | None:
        run.refresh_from_db()
        return run if run.state in states else None

    return wait_for(reached, timeout=timeout, message=f"run {run.pk} to reach {sorted(states)}")


def attempts(run: Run, purpose: str | None = None) -> list[RunAttempt]:
    rows = RunAttempt.objects.filter(run=run).order_by("number")
    return list(rows.filter(purpose=purpose) if purpose else rows)


def transitions(run: Run) -> list[tuple[str, str, str]]:
    """(action, from, to) of every audit row about the run, oldest first."""
    return [
        (event.action, event.summary.get("from", ""), event.summary.get("to", ""))
        for event in AuditEvent.objects.filter(object_type="run", object_id=str(run.pk)).order_by(
            "sequence"
        )
    ]


def assert_no_secrets(run: Run) -> None:
    """Neither the attempts' exchanges nor the audit rows carry a credential."""
    text = repr([a.exchange for a in attempts(run)]) + repr(
        [e.summary for e in AuditEvent.objects.filter(object_type="run", object_id=str(run.pk))]
    )
    for secrets in SANDBOX_SECRETS.values():
        for value in secrets.values():
            assert value not in text


@pytest.fixture
def same_utc_day() -> None:
    """TriggerDaily runs belong to one UTC day; these tests move time by up to ~11 minutes."""
    from dashboard.clock import next_utc_midnight

    if (next_utc_midnight(utc_now()) - utc_now()).total_seconds() < 15 * 60:
        pytest.skip("too close to UTC midnight for a TriggerDaily run to stay in its day")


def trigger_daily_state(sandboxes: Any) -> dict[str, Any]:
    return sandboxes["optimove_batch"].state()["tenants"]["demo"]


# -- polling ----------------------------------------------------------------------------------


def test_event_generator_run_is_polled_to_published(
    team, worker, sandboxes, sandbox_connection, submit
):
    connection = sandbox_connection(team.tenant, "optimove_campaigns")

    run = settle(submit(connection, EVENT_GENERATOR, event_parameters()))

    assert run.state == RunState.SUCCEEDED
    assert run.vendor_status == "published"
    assert run.audience_size == NFL_AUDIENCE
    assert run.progress == 100
    (execution,) = sandboxes["optimove_campaigns"].state()["executions"]
    assert execution["execution_id"] == run.vendor_reference
    assert execution["context"] == event_parameters()["context"]
    assert len(sandboxes["optimove_campaigns"].received_on("run")) == 1
    sends, polls = attempts(run, "send"), attempts(run, "poll")
    assert [a.status_code for a in sends] == [202]
    assert polls and polls[-1].outcome == "published"
    assert all(a.outcome in ("queued", "processing") for a in polls[:-1])
    assert transitions(run) == [
        ("run.requested", "", ""),
        ("run.state_changed", "queued", "sending"),
        ("run.state_changed", "sending", "accepted"),
        ("run.state_changed", "accepted", "succeeded"),
    ]
    assert_no_secrets(run)


def test_a_worker_started_as_compose_starts_it_logs_each_run_in_json_lines(
    team, workers, sandboxes, sandbox_connection, submit
):
    """docker-compose.yml passes no --loglevel and the image sets LOG_FORMAT=json: every line
    the worker writes (its start-up included) is one JSON object, and a run's lines say which
    run and which request they belong to (LOG_LEVEL=INFO, not Celery's default WARNING)."""
    from dashboard.observability import logs

    worker = workers.start(
        pool="threads",
        concurrency=2,
        loglevel=None,
        env={"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"},
    )
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    tokens = logs.bind(request_id="e2e-request-0001", tenant=team.tenant.slug)
    try:
        run = settle(submit(connection, EVENT_GENERATOR, event_parameters()))
    finally:
        logs.unbind(tokens)

    assert run.state == RunState.SUCCEEDED

    def finished_line() -> dict | None:
        for entry in map(json.loads, filter(None, worker.log().splitlines())):
            if entry.get("run_id") == run.pk and "succeeded" in entry["message"]:
                return entry
        return None

    finished = wait_for(finished_line, timeout=30, message="the worker to log the run's end")
    lines = [line for line in worker.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # each one JSON, or this raises
    (start_up,) = [e for e in entries if e["logger"] == "triggerdesk.worker"]
    assert start_up["queues"] == ["interactive", "poll", "send"] and start_up["concurrency"] == 2
    assert finished["request_id"] == "e2e-request-0001"
    assert finished["tenant"] == team.tenant.slug
    run_lines = [e for e in entries if e.get("run_id") == run.pk]
    # The vendor calls too, although a dispatcher makes them from its thread pool.
    (sent,) = [e for e in run_lines if e["message"].startswith("vendor call POST")]
    assert sent["request_id"] == "e2e-request-0001" and sent["task"] == "runs.send"
    assert any(e["message"].startswith("vendor call GET") for e in run_lines)  # its polls


def test_altcraft_import_task_progresses_to_100_and_succeeds(
    team, worker, sandboxes, sandbox_connection, submit
):
    altcraft = sandboxes["altcraft"]
    altcraft.control("set_task_duration", {"seconds": 4})
    connection = sandbox_connection(team.tenant, "altcraft")
    parameters = {
        "trigger_id": 1,
        "matching": "email",
        "data": [
            {"data": {"email": "new.fan@example.com", "_fname": "Nia"}},
            {"data": {"email": "example1@example.com"}},
        ],
    }

    run = settle(submit(connection, Operation.ALTCRAFT_IMPORT_AND_START, parameters))

    assert run.state == RunState.SUCCEEDED, run.failure_message
    assert run.progress == 100
    assert run.vendor_status == "completed"
    assert run.audience_size == 2
    assert len(altcraft.received_on("import_and_start_batch_task")) == 1
    tasks = altcraft.state()["tasks"]
    assert list(tasks) == [run.vendor_reference]
    assert tasks[run.vendor_reference]["status"] == "completed"
    polls = attempts(run, "poll")
    assert polls[-1].outcome == "completed"
    # Polled while the task ran: the user saw it progress before it finished.
    progress = [json.loads(a.exchange["response_body"])["data"]["progress"] for a in polls]
    assert progress == sorted(progress) and progress[-1] == 100
    assert any(0 < value < 100 for value in progress), progress
    assert transitions(run)[-1] == ("run.state_changed", "accepted", "succeeded")
    assert_no_secrets(run)


# -- one form, fifty submissions ----------------------------------------------------------------


def test_fifty_concurrent_submissions_make_one_run_and_one_vendor_call(
    team, worker, sandboxes, sandbox_connection, submit
):
    """Three forms, each submitted by 50 threads at once (a double click, a resubmitted form,
    a retrying proxy): one run and one vendor call per form, and no click is told "duplicate"."""
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    forms = {f"form-{uuid.uuid4().hex}": {"match": f"match {number}"} for number in range(3)}
    run_ids: dict[str, list[int]] = {key: [] for key in forms}
    errors: list[BaseException] = []

    def click(key: str, start: threading.Barrier) -> None:
        try:
            start.wait()
            parameters = event_parameters(context=forms[key])
            run_ids[key].append(
                submit(connection, EVENT_GENERATOR, parameters, idempotency_key=key).pk
            )
        except BaseException as error:  # collected and asserted below
            errors.append(error)
        finally:
            db_connection.close()  # each thread had its own database connection

    for key in forms:  # one form at a time: 50 database connections, not 150
        start = threading.Barrier(50)
        threads = [threading.Thread(target=click, args=(key, start)) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    assert all(len(ids) == 50 and len(set(ids)) == 1 for ids in run_ids.values())
    runs = list(Run.objects.filter(tenant=team.tenant))
    assert sorted(run.pk for run in runs) == sorted(ids[0] for ids in run_ids.values())
    for run in runs:
        assert settle(run).state == RunState.SUCCEEDED
        assert len(attempts(run, "send")) == 1
    campaigns = sandboxes["optimove_campaigns"]
    assert len(campaigns.received_on("run")) == len(forms)
    assert campaigns.state()["runs_accepted"] == {"demo-brand": len(forms)}
    sent = sorted(json.loads(r.body)["context"]["match"] for r in campaigns.received_on("run"))
    assert sent == sorted(context["match"] for context in forms.values())
    assert AuditEvent.objects.filter(action="run.requested", tenant=team.tenant).count() == len(
        forms
    )


# -- a worker killed mid-send -----------------------------------------------------------------

# Short enough that a restarted worker takes the dead worker's unacknowledged message back at
# once, as it would after the real (one hour) visibility timeout.
REDELIVERY = {"CELERY_VISIBILITY_TIMEOUT": "2"}


def kill_while_sending(workers, kill_worker, sandbox, route: str, run: Run) -> None:
    """Wait until the vendor has the request and the run is sending, then SIGKILL the worker."""
    wait_for(lambda: sandbox.received_on(route), timeout=20, message=f"the {route} request")
    settle(run, {RunState.SENDING}, timeout=5)
    (victim,) = workers.started
    kill_worker(victim)
    assert not victim.alive()


def assert_redelivered_and_skipped(worker) -> None:
    """The killed worker's send task came back to the new worker, which did not send again."""
    wait_for(
        lambda: "skipped: already" in worker.log(),
        timeout=20,
        message="the redelivered send task",
    )


def test_worker_killed_while_sending_an_event_generator_never_sends_twice(
    team, workers, kill_worker, sandboxes, sandbox_connection, submit
):
    campaigns = sandboxes["optimove_campaigns"]
    campaigns.inject_fault("run", Fault.DELAY_AFTER_PROCESSING, seconds=30)
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    workers.start(pool="prefork", concurrency=1, env=REDELIVERY)
    run = submit(connection, EVENT_GENERATOR, event_parameters())

    kill_while_sending(workers, kill_worker, campaigns, "run", run)
    time.sleep(2.5)  # past the visibility timeout: the message is the dead worker's no more
    replacement = workers.start(pool="prefork", concurrency=1, env=REDELIVERY)
    assert_redelivered_and_skipped(replacement)

    run.refresh_from_db()
    assert run.state == RunState.SENDING
    assert len(campaigns.received_on("run")) == 1

    # The call that reached the vendor is on record, with the worker that made it, although
    # that worker died before any answer.
    (call,) = attempts(run)
    assert (call.number, call.purpose, call.finished_at) == (1, "send", None)
    assert call.worker and call.request["parameters_hash"] == run.parameters_hash

    # The dead worker's heartbeat lapses: the sweeper presumes it lost without waiting for
    # max_send_seconds (120 s). Polled until then, on a generous deadline.
    wait_for(
        lambda: sweep()["presumed_lost"] == 1,
        timeout=60,
        interval=0.5,
        message="the sweeper to notice the dead worker's heartbeat",
    )
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN
    assert run.needs_person  # Optimove does not deduplicate: only a person can tell
    assert run.failure_code == "worker_lost"
    assert call.worker in run.failure_message
    (call,) = attempts(run)
    assert call.failure_code == "worker_lost" and call.finished_at is not None
    time.sleep(1)
    assert len(campaigns.received_on("run")) == 1
    assert campaigns.state()["runs_accepted"] == {"demo-brand": 1}
    assert transitions(run)[-1] == ("run.state_changed", "sending", "outcome_unknown")
    assert AuditEvent.objects.filter(
        object_id=str(run.pk), action="run.state_changed", actor_label="sweeper"
    ).exists()


def test_worker_killed_while_sending_trigger_daily_is_reconciled_to_one_trigger(
    team, workers, kill_worker, sandboxes, sandbox_connection, submit, same_utc_day
):
    daily = sandboxes["optimove_batch"]
    daily.inject_fault("trigger_daily", Fault.DELAY_AFTER_PROCESSING, seconds=30)
    connection = sandbox_connection(team.tenant, "optimove_batch")
    workers.start(pool="prefork", concurrency=1, env=REDELIVERY)
    run = submit(
        connection,
        TRIGGER_DAILY,
        {"wait_time_for_validation_seconds": None},
        utc_date=utc_today(),
    )

    kill_while_sending(workers, kill_worker, daily, "trigger_daily", run)
    # The call that triggered the batch has its attempt, recorded before it left.
    (first,) = attempts(run)
    assert (first.number, first.purpose, first.finished_at) == (1, "send", None)
    assert first.worker
    time.sleep(2.5)
    replacement = workers.start(pool="prefork", concurrency=1, env=REDELIVERY)
    assert_redelivered_and_skipped(replacement)
    run.refresh_from_db()
    assert run.state == RunState.SENDING
    assert trigger_daily_state(sandboxes)["successful_triggers"] == 1

    # Ten minutes pass (the vendor's window and ours), then the sweeper finds the run.
    sandboxes.clock.advance(601)
    release_windows(run)
    age_run(run, seconds=200, sent_seconds_ago=700)
    assert sweep()["presumed_lost"] == 1

    run = settle(run, {RunState.SUCCEEDED, RunState.FAILED}, timeout=20)
    assert run.state == RunState.SUCCEEDED
    assert not run.needs_person
    assert "went through" in run.result["reconciliation"]
    state = trigger_daily_state(sandboxes)
    assert state["successful_triggers"] == 1
    assert len(daily.received_on("trigger_daily")) == 2
    (reconcile,) = attempts(run, "reconcile")
    assert reconcile.status_code == 400  # "it is already running": the first call went through
    # Both calls on record, numbered without a gap: the one that triggered, then the re-check.
    assert [(a.number, a.purpose, a.failure_code) for a in attempts(run)] == [
        (1, "send", "worker_lost"),
        (2, "reconcile", ""),  # its answer settled it: no failure
    ]
    assert [t[1:] for t in transitions(run) if t[0] == "run.state_changed"] == [
        ("queued", "sending"),
        ("sending", "outcome_unknown"),
        ("outcome_unknown", "sending"),
        ("sending", "succeeded"),
    ]
    assert_no_secrets(run)


def test_a_recheck_that_waited_in_a_killed_worker_is_picked_up_within_seconds(
    team, workers, kill_worker, sandboxes, sandbox_connection, submit, same_utc_day
):
    daily = sandboxes["optimove_batch"]
    daily.inject_fault("trigger_daily", Fault.DROP_AFTER_PROCESSING)
    connection = sandbox_connection(team.tenant, "optimove_batch")
    first = workers.start(pool="prefork", concurrency=1)
    run = settle(
        submit(
            connection,
            TRIGGER_DAILY,
            {"wait_time_for_validation_seconds": None},
            utc_date=utc_today(),
        )
    )
    assert run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person
    # The re-check's countdown message waits in this worker's memory; the worker dies.
    wait_for(lambda: "runs.reconcile[" in first.log(), timeout=20, message="the re-check message")
    kill_worker(first)

    # The re-check comes due (the 10-minute window passes) only a few seconds ago.
    daily.clock.advance(601)
    release_windows(run)
    Run.objects.filter(pk=run.pk).update(reconcile_after=utc_now() - timedelta(seconds=5))
    workers.start(pool="prefork", concurrency=1)
    assert sweep()["reconciles"] == 1

    run = settle(run, {RunState.SUCCEEDED, RunState.FAILED}, timeout=30)
    assert run.state == RunState.SUCCEEDED
    assert trigger_daily_state(sandboxes)["successful_triggers"] == 1
    assert [(a.number, a.purpose) for a in attempts(run)] == [(1, "send"), (2, "reconcile")]


# -- each failure class -----------------------------------------------------------------------


def test_not_sent_is_retried_with_backoff_then_fails(
    team, workers, sandboxes, sandbox_connection, submit
):
    workers.start(env={"RUN_MAX_SEND_ATTEMPTS": "3"})
    connection = sandbox_connection(
        team.tenant,
        "optimove_campaigns",
        base_url=f"http://127.0.0.1:{closed_port()}/optimove-campaigns",
    )

    run = settle(submit(connection, EVENT_GENERATOR, event_parameters()), timeout=30)

    assert run.state == RunState.FAILED
    assert run.failure_class == "not_sent"
    assert run.failure_message.startswith("Gave up after 3 attempts.")
    sends = attempts(run, "send")
    assert [a.failure_class for a in sends] == ["not_sent"] * 3
    assert all(a.status_code is None for a in sends)
    # Backoff of 2 s, then 4 s (dashboard.runs.services.send_backoff); a loaded machine may start
    # the retry a little late, never early.
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(sends)]
    assert 2.0 <= gaps[0] < 3.5, gaps
    assert 4.0 <= gaps[1] < 5.5, gaps
    assert run.attempt_count == 3
    assert sandboxes["optimove_campaigns"].received == []
    states = [t[1:] for t in transitions(run) if t[0] == "run.state_changed"]
    assert states == [
        ("queued", "sending"),
        ("sending", "queued"),
        ("queued", "sending"),
        ("sending", "queued"),
        ("queued", "sending"),
        ("sending", "failed"),
    ]
    connection.refresh_from_db()
    assert connection.last_error.startswith("connection_failed")


def test_rejected_fails_after_one_call(team, worker, sandboxes, sandbox_connection, submit):
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    unknown = "99999999-abcd-abcd-abcd-999999999999"

    run = settle(submit(connection, EVENT_GENERATOR, event_parameters(event_generator_id=unknown)))

    assert run.state == RunState.FAILED
    assert run.failure_class == "rejected"
    assert "not found" in run.failure_message.lower()
    time.sleep(2.5)  # longer than the first retry backoff: nothing else goes out
    (request,) = sandboxes["optimove_campaigns"].received_on("run")
    assert request.status == 404
    assert [a.status_code for a in attempts(run)] == [404]
    assert sandboxes["optimove_campaigns"].state()["executions"] == []


def test_throttled_waits_for_retry_after_then_succeeds(
    team, worker, sandboxes, sandbox_connection, submit
):
    campaigns = sandboxes["optimove_campaigns"]
    campaigns.control("set_rate_limit", {"per_second": 1})
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    # Freeze the sandbox inside one second and spend that second's only request on a status
    # read, so the run's send is certain to meet a 429.
    sandboxes.clock.set_scale(0)
    secrets = SANDBOX_SECRETS["optimove_campaigns"]
    spent = requests.get(
        f"{sandboxes.url('optimove_campaigns')}/executions/exec-none/status",
        headers={"x-api-key": secrets["api_key"], "x-brand-key": secrets["brand_key"]},
        timeout=5,
    )
    assert spent.status_code == 404

    run = submit(connection, EVENT_GENERATOR, event_parameters())
    wait_for(lambda: campaigns.state()["throttled"], timeout=15, message="a 429")
    sandboxes.clock.set_scale(1.0)
    run = settle(run)

    assert run.state == RunState.SUCCEEDED, run.failure_message
    assert run.vendor_status == "published"
    sends = attempts(run, "send")
    assert sends[0].status_code == 429 and sends[0].failure_class == "throttled"
    assert sends[0].exchange["response_headers"]["Retry-After"] == "1"
    assert sends[-1].status_code == 202
    assert all(a.status_code == 429 for a in sends[:-1])
    # The retry waited for the vendor's Retry-After (1 s).
    assert (sends[1].started_at - sends[0].started_at).total_seconds() >= 0.95
    assert campaigns.state()["runs_accepted"] == {"demo-brand": 1}
    assert len(campaigns.state()["executions"]) == 1


def test_event_generator_server_error_is_retried_and_succeeds(
    team, worker, sandboxes, sandbox_connection, submit
):
    campaigns = sandboxes["optimove_campaigns"]
    campaigns.inject_fault("run", Fault.SERVER_ERROR)
    connection = sandbox_connection(team.tenant, "optimove_campaigns")

    run = settle(submit(connection, EVENT_GENERATOR, event_parameters()))

    assert run.state == RunState.SUCCEEDED, run.failure_message
    assert [r.status for r in campaigns.received_on("run")] == [500, 202]
    assert [a.failure_class for a in attempts(run, "send")] == ["server_error", ""]
    assert len(campaigns.state()["executions"]) == 1
    assert run.attempt_count == 2


def test_trigger_daily_server_error_is_outcome_unknown_then_reconciled(
    team, worker, sandboxes, sandbox_connection, submit, same_utc_day
):
    daily = sandboxes["optimove_batch"]
    daily.inject_fault("trigger_daily", Fault.SERVER_ERROR)
    connection = sandbox_connection(team.tenant, "optimove_batch")

    run = settle(
        submit(
            connection,
            TRIGGER_DAILY,
            {"wait_time_for_validation_seconds": None},
            utc_date=utc_today(),
        )
    )

    # A 5xx from TriggerDaily may hide a trigger: never resent blindly, reconciled after the window.
    assert run.state == RunState.OUTCOME_UNKNOWN
    assert not run.needs_person
    assert run.failure_class == "server_error"
    assert run.reconcile_after >= run.sent_at + timedelta(seconds=600)
    time.sleep(2.5)
    assert len(daily.received_on("trigger_daily")) == 1

    reconcile_now(run)
    run = settle(run, {RunState.SUCCEEDED, RunState.FAILED}, timeout=20)

    assert run.state == RunState.SUCCEEDED
    assert "this call triggered" in run.result["reconciliation"]
    assert [r.status for r in daily.received_on("trigger_daily")] == [500, 200]
    assert trigger_daily_state(sandboxes)["successful_triggers"] == 1


def reconcile_now(run: Run) -> None:
    """Let the 10-minute window pass at once: release it, make the run due, and sweep."""
    release_windows(run)
    Run.objects.filter(pk=run.pk).update(reconcile_after=utc_now() - timedelta(seconds=60))
    assert sweep()["reconciles"] == 1


def test_answer_dropped_after_processing_is_outcome_unknown_and_not_retried(
    team, worker, sandboxes, sandbox_connection, submit
):
    campaigns = sandboxes["optimove_campaigns"]
    campaigns.inject_fault("run", Fault.DROP_AFTER_PROCESSING)
    connection = sandbox_connection(team.tenant, "optimove_campaigns")

    run = settle(submit(connection, EVENT_GENERATOR, event_parameters()))

    assert run.state == RunState.OUTCOME_UNKNOWN
    assert run.needs_person
    assert run.failure_class == "outcome_unknown"
    time.sleep(3)  # past any retry backoff: still exactly one call
    (request,) = campaigns.received_on("run")
    assert request.processed and request.status is None
    # The vendor did act: the person who checks will find the execution.
    assert len(campaigns.state()["executions"]) == 1
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN
    assert AuditEvent.objects.filter(object_id=str(run.pk), action="run.state_changed").count() == 2


def test_trigger_daily_dropped_before_processing_is_reconciled_by_triggering_once(
    team, worker, sandboxes, sandbox_connection, submit, same_utc_day
):
    daily = sandboxes["optimove_batch"]
    daily.inject_fault("trigger_daily", Fault.DROP_BEFORE_PROCESSING)
    connection = sandbox_connection(team.tenant, "optimove_batch")

    run = settle(
        submit(
            connection,
            TRIGGER_DAILY,
            {"wait_time_for_validation_seconds": None},
            utc_date=utc_today(),
        )
    )
    assert run.state == RunState.OUTCOME_UNKNOWN
    assert not run.needs_person
    assert trigger_daily_state(sandboxes)["successful_triggers"] == 0

    reconcile_now(run)
    run = settle(run, {RunState.SUCCEEDED, RunState.FAILED}, timeout=20)

    assert run.state == RunState.SUCCEEDED
    assert "this call triggered" in run.result["reconciliation"]
    assert trigger_daily_state(sandboxes)["successful_triggers"] == 1
    assert [r.processed for r in daily.received_on("trigger_daily")] == [False, True]
    assert [a.purpose for a in attempts(run)] == ["send", "reconcile"]


# -- a burst against the brand's rate limit ---------------------------------------------------

BURST = 2000


def queue_runs(connection: Any, count: int) -> list[int]:
    """`count` queued event-generator runs in one INSERT; their send tasks enqueued after it.

    run_submit per run costs ~10 ms (audit row, duplicate checks); the burst is about sending.
    """
    from dashboard.runs.operations import operation_for
    from dashboard.runs.services import parameters_hash
    from dashboard.runs.tasks import send_run

    operation = operation_for(EVENT_GENERATOR)
    now = utc_now()
    rows = []
    for number in range(count):
        cleaned = operation.clean_parameters(
            event_parameters(context={"burst": number}), connection
        )
        rows.append(
            Run(
                tenant=connection.tenant,
                connection=connection,
                operation=EVENT_GENERATOR,
                parameters=cleaned,
                parameters_hash=parameters_hash(
                    operation=EVENT_GENERATOR, connection_id=connection.pk, parameters=cleaned
                ),
                idempotency_key=f"burst-{number}",
                state=RunState.QUEUED,
                requested_at=now,
            )
        )
    ids = [run.pk for run in Run.objects.bulk_create(rows)]
    for run_id in ids:
        send_run.apply_async(args=[run_id])
    return ids


def run_burst(team, workers, sandboxes, connection, count: int, timeout: float) -> dict[str, Any]:
    """Two worker processes work off `count` runs; the sandbox's state once all settled."""
    for _ in range(2):
        workers.start(pool="threads", concurrency=8, wait=False)
    for started in workers.started:
        started.wait_ready()
    queue_runs(connection, count)

    def settled() -> bool:
        return not Run.objects.filter(tenant=team.tenant).exclude(state__in=SETTLED).exists()

    wait_for(settled, timeout=timeout, interval=0.5, message=f"{count} runs to settle")
    # No task died on the way (a deadlock between two workers once left runs stuck in sending).
    assert [line for w in workers.started for line in w.log().splitlines() if "ERROR" in line] == []
    return sandboxes["optimove_campaigns"].state()


def test_burst_of_2000_runs_through_two_workers_is_accepted_once_each(
    team, workers, sandboxes, sandbox_connection
):
    """At 98 % of the brand's 500/s, every run reaches the vendor once and is accepted once,
    and the vendor never refuses one.

    The sandbox counts a sliding second at arrival, as the vendor would. Each request holds its
    place in the shared window from its grant until a second after its answer, so however a
    starved CI machine stalls a worker or the sandbox, no second at the vendor sees more than
    the limit: zero 429s is a guarantee, not a matter of timing.
    """
    connection = sandbox_connection(team.tenant, "optimove_campaigns")

    state = run_burst(team, workers, sandboxes, connection, BURST, timeout=240)

    assert state["throttled"] == {}
    assert state["runs_accepted"] == {"demo-brand": BURST}
    assert Run.objects.filter(tenant=team.tenant, state=RunState.SUCCEEDED).count() == BURST
    assert not RunAttempt.objects.filter(run__tenant=team.tenant).exclude(failure_class="").exists()
    # Every run was sent once and read until published.
    assert RunAttempt.objects.filter(run__tenant=team.tenant, purpose="send").count() == BURST


def test_a_vendor_stricter_than_the_bucket_gets_every_429_waited_out_never_a_double_send(
    team, workers, sandboxes, sandbox_connection
):
    """The engine believes 500/s; the vendor enforces 20/s (a sliding second): many 429s.

    Each 429 is a refusal (the vendor did nothing): the run waits the Retry-After and goes
    again, until it is accepted once or gives up after RUN_MAX_SEND_ATTEMPTS, saying why.
    """
    sandboxes["optimove_campaigns"].control("set_rate_limit", {"per_second": 20})
    connection = sandbox_connection(team.tenant, "optimove_campaigns")

    state = run_burst(team, workers, sandboxes, connection, 100, timeout=180)

    throttled = state["throttled"].get("demo-brand", 0)
    assert throttled > 0
    runs = Run.objects.filter(tenant=team.tenant)
    succeeded = runs.filter(state=RunState.SUCCEEDED).count()
    gave_up = runs.filter(state=RunState.FAILED)
    assert succeeded + gave_up.count() == 100
    assert state["runs_accepted"] == {"demo-brand": succeeded}
    for run in gave_up:
        assert run.failure_class == "throttled"
        assert run.failure_message.startswith("Gave up after")
    # Status reads are throttled too; every refused send or poll is an attempt that says so.
    failed_attempts = RunAttempt.objects.filter(run__tenant=team.tenant).exclude(failure_class="")
    assert set(failed_attempts.values_list("failure_class", flat=True)) == {"throttled"}
    assert failed_attempts.count() == throttled
    accepted_sends = RunAttempt.objects.filter(
        run__tenant=team.tenant, purpose="send", failure_class=""
    )
    assert accepted_sends.count() == succeeded


def test_two_workers_share_one_brand_budget_when_it_binds(
    team, workers, sandboxes, sandbox_connection
):
    """With a limit the workers can exceed, the shared window in Redis keeps them under it."""
    limit = 20
    sandboxes["optimove_campaigns"].control("set_rate_limit", {"per_second": limit})
    connection = sandbox_connection(
        team.tenant, "optimove_campaigns", options={"rate_limit_per_second": limit}
    )

    state = run_burst(team, workers, sandboxes, connection, 100, timeout=60)

    assert state["throttled"] == {}
    assert state["runs_accepted"] == {"demo-brand": 100}
    received = sandboxes["optimove_campaigns"].received
    per_second: dict[int, int] = {}
    for request in received:
        second = int(datetime.fromisoformat(request.at).timestamp())
        per_second[second] = per_second.get(second, 0) + 1
    assert max(per_second.values()) <= limit
    # How much of the budget was used depends on the machine's load: bench/ measures that.


# -- a person's click and other brands during a burst -----------------------------------------

OTHER_BRAND_SECRETS = {
    "api_key": "sandbox-optimove-other-api-key",
    "brand_key": "sandbox-optimove-other-brand-key",
}
OTHER_BRAND_GENERATOR = "33333333-abcd-abcd-abcd-333333333333"


def woken_burst(connection: Any, count: int, *, generator: str = MATCH_START) -> Any:
    """`count` queued runs of one brand, woken as run_submit wakes them (a few dispatchers)."""
    from dashboard.runs.services import enqueue_send

    created = Run.objects.bulk_create(
        [
            Run(
                tenant=connection.tenant,
                connection=connection,
                operation=EVENT_GENERATOR,
                parameters=event_parameters(event_generator_id=generator, context={"n": number}),
                parameters_hash=f"{connection.pk}-{number}",
                idempotency_key=f"{connection.pk}-{number}",
                state=RunState.QUEUED,
                requested_at=utc_now(),
            )
            for number in range(count)
        ]
    )
    for run in created:
        enqueue_send(run)
    return Run.objects.filter(connection=connection)


def slow_brand(sandbox_connection, team) -> Any:
    """demo-brand, held to 50 requests/s by its connection: 2,000 runs take 40 s or more."""
    return sandbox_connection(
        team.tenant, "optimove_campaigns", name="Big brand", options={"rate_limit_per_second": 50}
    )


def test_a_small_brands_runs_go_out_while_a_big_brands_burst_is_still_going(
    team, workers, sandboxes, sandbox_connection
):
    """The big brand's dispatchers take every thread of the only worker; they work in slices
    and hand over at the back of the queue, so the small brand's 100 runs are all accepted
    while the big brand still has runs waiting in the queue (not after its whole burst)."""
    campaigns = sandboxes["optimove_campaigns"]
    big = woken_burst(slow_brand(sandbox_connection, team), 2000)
    small_connection = sandbox_connection(
        team.tenant, "optimove_campaigns", name="Small brand", secret_values=OTHER_BRAND_SECRETS
    )
    workers.start(pool="threads", concurrency=4)
    wait_for(lambda: campaigns.received_on("run"), timeout=30, message="the big burst to start")
    small = woken_burst(small_connection, 100, generator=OTHER_BRAND_GENERATOR)

    def small_all_accepted() -> bool:
        return not small.filter(state__in=[RunState.QUEUED, RunState.SENDING]).exists()

    wait_for(small_all_accepted, timeout=120, interval=0.2, message="the small brand's runs")
    assert big.filter(state=RunState.QUEUED).exists()
    assert campaigns.state()["runs_accepted"]["other-brand"] == 100
    assert campaigns.state()["throttled"] == {}
    assert small.exclude(state__in=[RunState.ACCEPTED, RunState.SUCCEEDED]).count() == 0
    assert RunAttempt.objects.filter(run__in=small, purpose="send").count() == 100


def test_an_approved_start_goes_out_on_the_interactive_worker_during_a_burst(
    team, workers, sandboxes, sandbox_connection, submit
):
    """A burst holds every thread of the send worker; the operator's approval of a TalkifAI
    start is sent by the interactive worker, while the burst still has runs in the queue."""
    import socket

    from dashboard.audit.trail import Actor
    from dashboard.runs.services import run_approve

    campaigns = sandboxes["optimove_campaigns"]
    big = woken_burst(slow_brand(sandbox_connection, team), 2000)
    workers.start(pool="threads", concurrency=4, queues="send,poll")
    interactive = workers.start(pool="threads", concurrency=2, queues="interactive")
    wait_for(lambda: campaigns.received_on("run"), timeout=30, message="the burst to start")
    sandboxes["talkifai"].control("add_job", {"id": "job-click", "status": "pending"})
    run = submit(
        sandbox_connection(team.tenant, "talkifai"),
        Operation.TALKIFAI_START_BATCH_JOB,
        {"batch_job_id": "job-click", "batch_job_name": "Click"},
        approval_required=True,
    )

    run_approve(
        actor=Actor(user=team.operator.user), run=run, parameters_hash_seen=run.parameters_hash
    )

    run = settle(run, {RunState.ACCEPTED, *SETTLED}, timeout=60)
    assert big.filter(state=RunState.QUEUED).exists()
    assert run.state in {RunState.ACCEPTED, RunState.SUCCEEDED}
    (send,) = attempts(run, "send")
    assert send.worker == f"{socket.gethostname()}:{interactive.process.pid}"
    assert len(sandboxes["talkifai"].received_on("start_batch_job")) == 1


def test_burst_submitted_through_dispatch_wake_ups_is_sent_once_each(
    team, workers, sandboxes, sandbox_connection, e2e_redis, monkeypatch
):
    """Runs queued as run_submit queues them: a few dispatcher messages, not one per run.

    The wake-ups are all made before any worker consumes, so how many messages they make does
    not depend on how fast the workers drain the queue (with workers draining while the test
    still enqueues, a slow test process could find every slot free again after each run went
    out: one message per run, and the count was a race). The flags outlive any slow loop here.
    """
    from dashboard.audit.trail import verify_audit_chains
    from dashboard.runs import enqueue
    from dashboard.runs.services import enqueue_send

    monkeypatch.setattr(enqueue, "FLAG_SECONDS", 3600.0)
    count = 600
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    runs = Run.objects.filter(tenant=team.tenant)
    created = Run.objects.bulk_create(
        [
            Run(
                tenant=connection.tenant,
                connection=connection,
                operation=EVENT_GENERATOR,
                parameters=event_parameters(context={"woken": number}),
                parameters_hash=f"woken-{number}",
                idempotency_key=f"woken-{number}",
                state=RunState.QUEUED,
                requested_at=utc_now(),
            )
            for number in range(count)
        ]
    )
    for run in created:
        enqueue_send(run)
    # One message per dispatch slot, whatever the number of runs.
    assert e2e_redis.llen("send") == enqueue.DISPATCH_SLOTS
    for _ in range(2):
        workers.start(pool="threads", concurrency=8, wait=False)
    for started in workers.started:
        started.wait_ready()

    def settled() -> bool:
        return not runs.exclude(state__in=SETTLED).exists()

    wait_for(settled, timeout=120, interval=0.5, message=f"{count} runs to settle")
    state = sandboxes["optimove_campaigns"].state()
    assert state["throttled"] == {}
    assert state["runs_accepted"] == {"demo-brand": count}
    assert runs.filter(state=RunState.SUCCEEDED).count() == count
    assert RunAttempt.objects.filter(run__tenant=team.tenant, purpose="send").count() == count
    assert not RunAttempt.objects.filter(run__tenant=team.tenant).exclude(failure_class="").exists()
    assert verify_audit_chains() == []
    logs = "\n".join(w.log() for w in workers.started)
    assert "ERROR" not in logs
    # Received + succeeded lines of the slots' dispatchers and of their hand-overs (one per
    # slot every DISPATCH_SLICE_SECONDS of sending, so their number follows the machine's
    # speed): far fewer messages than runs, however slow (at 2 s a slice, the 120 s above
    # allow at most ~4 x 60 hand-overs).
    assert logs.count("runs.send[") < count


def test_a_send_worker_killed_mid_group_puts_before_a_person_only_requests_that_left(
    team, workers, kill_worker, sandboxes, sandbox_connection
):
    """SIGKILL a send worker (-c 4) while its dispatchers hold a 500-run group in sending.

    The vendor holds every answer, so at the kill each dispatcher has as many requests out as it
    has send threads and the rest of its claimed batches waiting for a free one. After the
    sweep, only runs whose requests the vendor received (and never answered) are before a
    person; every other run goes back to the queue and is sent once. None is lost, none is sent
    twice: the sandbox's ledger has each run exactly once.
    """
    from dashboard.audit.trail import verify_audit_chains
    from dashboard.runs import dispatch
    from dashboard.runs.services import enqueue_send

    count = 500
    campaigns = sandboxes["optimove_campaigns"]
    # Held answers (shorter than the client's 30 s read timeout): requests stay in flight.
    campaigns.inject_fault("run", Fault.DELAY_AFTER_PROCESSING, times=count, seconds=25)
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    runs = Run.objects.filter(tenant=team.tenant)
    created = Run.objects.bulk_create(
        [
            Run(
                tenant=connection.tenant,
                connection=connection,
                operation=EVENT_GENERATOR,
                parameters=event_parameters(context={"topic": number}),
                parameters_hash=f"topic-{number}",
                idempotency_key=f"topic-{number}",
                state=RunState.QUEUED,
                requested_at=utc_now(),
            )
            for number in range(count)
        ]
    )
    for run in created:
        enqueue_send(run)
    victim = workers.start(pool="prefork", concurrency=4)

    def topics(requests) -> list[int]:
        return [json.loads(request.body)["context"]["topic"] for request in requests]

    def every_dispatcher_waits_for_answers() -> list[int] | None:
        """The ledger once every run is claimed (in sending) and the vendor has received as
        many requests from each dispatcher as it has send threads (or all it claimed): nothing
        more can start until an answer comes back."""
        if runs.filter(state=RunState.QUEUED).exists():
            return None
        claims = Counter(
            RunAttempt.objects.filter(
                run__in=runs, purpose="send", finished_at__isnull=True
            ).values_list("worker", flat=True)
        )
        most = sum(min(dispatch.SEND_THREADS, claimed) for claimed in claims.values())
        received = topics(campaigns.received_on("run"))
        return received if received and len(received) == most else None

    in_flight = set(
        wait_for(
            every_dispatcher_waits_for_answers,
            timeout=20,
            interval=0.1,
            message="every dispatcher to wait for held answers",
        )
    )
    kill_worker(victim)
    assert not victim.alive()
    assert 0 < len(in_flight) < count
    assert runs.filter(state=RunState.SENDING).count() == count
    campaigns.clear_faults()

    # The dead worker's heartbeat lapses; then the sweeper settles every run it left in sending.
    def swept() -> bool:
        sweep()
        return not runs.filter(state=RunState.SENDING).exists()

    wait_for(swept, timeout=90, interval=0.5, message="the sweeper to settle the dead sends")
    before_a_person = runs.filter(state=RunState.OUTCOME_UNKNOWN)
    assert all(run.needs_person for run in before_a_person)
    person_topics = {run.parameters["context"]["topic"] for run in before_a_person}
    # The bound: only requests the vendor received, with no answer recorded, need a person.
    assert person_topics <= in_flight
    for run in before_a_person:
        (call,) = attempts(run)
        assert call.request_started_at is not None and call.failure_code == "worker_lost"
        assert "request started at" in run.failure_message and call.worker in run.failure_message
    put_back = runs.filter(state=RunState.QUEUED)
    assert put_back.count() == count - len(person_topics)
    assert RunAttempt.objects.filter(
        run__in=runs, failure_code="worker_lost_before_sending", request_started_at__isnull=True
    ).count() == count - len(person_topics)

    workers.start(pool="prefork", concurrency=4)

    def settled() -> bool:
        return not runs.exclude(state__in=SETTLED).exists()

    wait_for(settled, timeout=180, interval=0.5, message=f"{count} runs to settle")
    assert runs.filter(state=RunState.SUCCEEDED).count() == count - len(person_topics)
    assert runs.filter(state=RunState.OUTCOME_UNKNOWN).count() == len(person_topics)
    # Each run reached the vendor exactly once: none lost, none sent twice.
    assert sorted(topics(campaigns.received_on("run"))) == list(range(count))
    for run in runs.filter(state=RunState.SUCCEEDED, attempt_count=2):
        never_sent, sent = attempts(run, "send")
        assert never_sent.failure_code == "worker_lost_before_sending"
        assert sent.status_code == 202
    assert verify_audit_chains() == []
