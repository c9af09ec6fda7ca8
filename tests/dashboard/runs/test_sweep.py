"""The sweeper against a worker that answers at the same moment: they wait for each other in
one lock order (the attempt, then the run), never deadlock, and the worker's answer wins."""

import threading
from datetime import timedelta

import pytest
from django.db import connection as default_connection
from django.db import connections, transaction

from dashboard.clock import utc_now
from dashboard.runs import services
from dashboard.runs.models import RunAttempt
from dashboard.runs.operations import SendResult
from dashboard.runs.states import RunState
from dashboard.vendors.http import Exchange
from tests.conftest import backends_on_this_database
from tests.e2e.conftest import wait_for
from tests.factories import RunAttemptFactory, RunFactory

pytestmark = pytest.mark.django_db(transaction=True)


def backends_waiting_on_a_lock() -> int:
    return backends_on_this_database("wait_event_type = 'Lock'")


def in_thread(target, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as error:  # reported by the test, not swallowed
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_sweep_racing_a_late_answer_waits_for_it_instead_of_deadlocking(clean_redis):
    run = RunFactory(state=RunState.SENDING, attempt_count=1)
    RunAttemptFactory(
        run=run,
        number=1,
        purpose=RunAttempt.Purpose.SEND,
        finished_at=None,
        status_code=None,
        latency_ms=None,
    )
    # Its call has taken longer than the operation allows: the sweeper presumes it lost.
    stale = utc_now() - timedelta(hours=1)
    type(run).objects.filter(pk=run.pk).update(updated_at=stale, sent_at=stale)
    run.refresh_from_db()

    attempt_locked, sweeper_waiting = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    answer = SendResult(
        exchange=Exchange(
            method="POST",
            url="https://vendor.example/start",
            request_headers={},
            request_body="{}",
            status_code=200,
        ),
        outcome="The vendor started the batch job.",
    )

    def worker_records_its_answer() -> None:
        # What _perform_send does with an answer: complete the attempt, then move the run.
        with transaction.atomic():
            services.record_attempt(
                run,
                purpose=RunAttempt.Purpose.SEND,
                started_at=stale,
                exchange=answer.exchange,
                outcome=answer.outcome,
            )
            attempt_locked.set()
            assert sweeper_waiting.wait(timeout=120)
            services.transition(
                run,
                RunState.SUCCEEDED,
                from_states={RunState.SENDING, RunState.OUTCOME_UNKNOWN},
                actor=services.WORKER,
                reason=answer.outcome,
            )

    worker = in_thread(worker_records_its_answer, errors)
    assert attempt_locked.wait(timeout=120)
    sweeper = in_thread(services.runs_sweep, errors)
    wait_for(lambda: backends_waiting_on_a_lock() >= 1, timeout=120, message="the sweeper waits")
    sweeper_waiting.set()
    worker.join(timeout=180)
    sweeper.join(timeout=180)

    assert errors == []
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    attempt = RunAttempt.objects.get(run=run)
    assert attempt.status_code == 200 and attempt.failure_code == ""


# -- a claimed send whose request never started ---------------------------------------------


def claimed(*, worker: str, seconds: float, request_started: bool) -> RunAttempt:
    """A run a batched dispatcher moved to sending `seconds` ago, with its open send attempt;
    `request_started`: whether the dispatcher marked its request started before it stopped."""
    from dashboard.runs.models import Operation

    run = RunFactory(
        state=RunState.SENDING,
        attempt_count=1,
        operation=Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
        approval_required=False,
    )
    attempt = RunAttemptFactory(
        run=run,
        number=1,
        exchange={},
        status_code=None,
        latency_ms=None,
        finished_at=None,
        worker=worker,
        request_started_at=utc_now() - timedelta(seconds=seconds) if request_started else None,
    )
    then = utc_now() - timedelta(seconds=seconds)
    type(run).objects.filter(pk=run.pk).update(updated_at=then, sent_at=then)
    return attempt


@pytest.fixture
def sent_messages(monkeypatch) -> list[list]:
    """The args of every runs.send message the sweeper enqueues."""
    from dashboard.runs import tasks

    messages: list[list] = []
    monkeypatch.setattr(
        tasks.send_run, "apply_async", lambda args, **options: messages.append(args)
    )
    return messages


def test_a_dead_workers_claimed_run_whose_request_never_started_goes_back_to_the_queue(
    clean_redis, sent_messages
):
    from dashboard.models import AuditEvent

    attempt = claimed(worker="gone-host:4242", seconds=20, request_started=False)
    run = attempt.run

    report = services.runs_sweep()

    assert (report["never_sent"], report["presumed_lost"]) == (1, 0)
    run.refresh_from_db()
    assert run.state == RunState.QUEUED and not run.needs_person
    assert run.next_attempt_at is not None and run.failure_code == ""
    attempt.refresh_from_db()
    assert attempt.finished_at is not None
    assert (attempt.failure_class, attempt.failure_code) == (
        "not_sent",
        "worker_lost_before_sending",
    )
    assert attempt.outcome.startswith("Never sent: the worker (gone-host:4242) stopped")
    # Not counted as a call that may have reached the vendor.
    assert not services.earlier_call_may_have_reached_vendor(run)
    event = AuditEvent.objects.filter(object_id=str(run.pk)).latest("sequence")
    assert event.actor_label == "sweeper"
    assert (event.summary["from"], event.summary["to"]) == ("sending", "queued")
    # Sent again by a plain message (a dead dispatcher's wake-up flag may still be set).
    assert sent_messages == [[run.pk]]


def test_a_dead_workers_run_whose_request_started_goes_before_a_person_with_evidence(
    clean_redis, sent_messages
):
    attempt = claimed(worker="gone-host:4242", seconds=20, request_started=True)
    run = attempt.run

    report = services.runs_sweep()

    assert (report["never_sent"], report["presumed_lost"]) == (0, 1)
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN and run.needs_person
    assert run.failure_code == "worker_lost"
    started = f"{attempt.request_started_at:%Y-%m-%d %H:%M:%S}"
    assert "gone-host:4242" in run.failure_message
    assert f"request started at {started}." in run.failure_message
    assert "no answer was recorded" in run.failure_message
    attempt.refresh_from_db()
    assert attempt.failure_code == "worker_lost" and attempt.finished_at is not None
    assert f"request started at {started}." in attempt.outcome
    assert sent_messages == []


def test_a_claim_whose_request_never_started_in_time_goes_back_and_cannot_be_sent_late(
    clean_redis, sent_messages
):
    """A live dispatcher that held a claimed run past max_send_seconds without starting its
    request: the sweeper puts it back, and the dispatcher's later mark fails, so it is not sent
    by that dispatcher (only once, from the queue)."""
    from dashboard.runs.heartbeat import beat_now

    attempt = claimed(worker=beat_now(), seconds=600, request_started=False)

    assert services.runs_sweep()["never_sent"] == 1

    attempt.refresh_from_db()
    assert "had not started it after 90 s" in attempt.outcome
    assert services.mark_requests_started([attempt.pk]) == set()
    attempt.refresh_from_db()
    assert attempt.request_started_at is None


def test_other_databases_mark_a_request_started_once_and_never_a_closed_one(
    clean_redis, sent_messages, monkeypatch
):
    """make demo's SQLite has no statement_timestamp() or arrays: the same compare-and-set
    through the ORM (only the mark takes that path here; the audit trail stays PostgreSQL's)."""
    attempt = claimed(worker="gone-host:4242", seconds=20, request_started=False)
    closed = claimed(worker="gone-host:4242", seconds=20, request_started=False)
    RunAttempt.objects.filter(pk=closed.pk).update(finished_at=utc_now())

    def mark(ids):
        with monkeypatch.context() as other_database:
            other_database.setattr(default_connection, "vendor", "sqlite")
            return services.mark_requests_started(ids)

    assert mark([attempt.pk, closed.pk]) == {attempt.pk}
    assert mark([attempt.pk]) == set()
    attempt.refresh_from_db()
    assert attempt.request_started_at is not None


def test_a_marked_request_is_never_put_back_in_the_queue(clean_redis, sent_messages):
    attempt = claimed(worker="gone-host:4242", seconds=20, request_started=False)
    assert services.mark_requests_started([attempt.pk]) == {attempt.pk}
    # Marking twice changes nothing: the first moment stays the evidence.
    assert services.mark_requests_started([attempt.pk]) == set()

    report = services.runs_sweep()

    assert (report["never_sent"], report["presumed_lost"]) == (0, 1)
    attempt.run.refresh_from_db()
    assert attempt.run.state == RunState.OUTCOME_UNKNOWN and attempt.run.needs_person
    assert sent_messages == []


def test_a_live_workers_recent_claim_is_left_alone(clean_redis, sent_messages):
    from dashboard.runs.heartbeat import beat_now

    attempt = claimed(worker=beat_now(), seconds=20, request_started=False)

    report = services.runs_sweep()

    assert (report["never_sent"], report["presumed_lost"]) == (0, 0)
    attempt.run.refresh_from_db()
    assert attempt.run.state == RunState.SENDING


def test_an_open_call_from_before_the_marker_counts_as_started():
    """Any writer that does not set request_started_at (the per-run paths, older code) gets
    the insert time from the database: its call is presumed started, never requeued."""
    run = RunFactory(state=RunState.SENDING, attempt_count=1)
    attempt = services.open_attempt(run, purpose=RunAttempt.Purpose.SEND)
    attempt.refresh_from_db()
    assert attempt.request_started_at is not None
