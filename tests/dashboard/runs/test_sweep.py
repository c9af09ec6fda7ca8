"""The sweeper against a worker that answers at the same moment: they wait for each other in
one lock order (the attempt, then the run), never deadlock, and the worker's answer wins."""

import threading
from datetime import timedelta

import pytest
from django.db import connection as default_connection
from django.db import connections, transaction

from dashboard.clock import utc_now
from dashboard.runs import services
from dashboard.runs.models import RunAttempt, RunState
from dashboard.runs.operations import SendResult
from dashboard.vendors.http import Exchange
from tests.e2e.conftest import wait_for
from tests.factories import RunAttemptFactory, RunFactory

pytestmark = pytest.mark.django_db(transaction=True)


def backends_waiting_on_a_lock() -> int:
    with default_connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


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
