"""services.update_rows: one set-based compare-and-set for many rows, each with its own values."""

from datetime import timedelta

import pytest
from django.db import connection as db_connection

from dashboard.clock import utc_now
from dashboard.runs import services
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.states import RunState
from tests.factories import RunAttemptFactory, RunFactory


@pytest.fixture(params=["postgresql", "one_by_one"])
def path(request, monkeypatch):
    """The PostgreSQL statement, and the per-row path other databases (make demo's SQLite) take."""
    if request.param == "one_by_one":
        monkeypatch.setattr(db_connection, "vendor", "sqlite")
    return request.param


@pytest.mark.django_db
def test_each_row_gets_its_own_values_and_a_row_changed_meanwhile_is_left_alone(path):
    now = utc_now()
    accepted = RunFactory(state=RunState.SENDING)
    succeeded = RunFactory(state=RunState.OUTCOME_UNKNOWN)
    # Someone else moved this one on before the answer was recorded: it must not be overwritten.
    cancelled_meanwhile = RunFactory(state=RunState.CANCELLED, vendor_reference="")

    changed = services.update_rows(
        Run,
        [
            (
                accepted.pk,
                {
                    "state": RunState.ACCEPTED,
                    "vendor_reference": "exec-1",
                    "result": {"channel": "email", "nested": {"n": 1}},
                    "progress": None,
                    "next_poll_at": now + timedelta(seconds=1),
                    "needs_person": False,
                },
            ),
            (
                succeeded.pk,
                {"state": RunState.SUCCEEDED, "vendor_reference": "exec-2", "finished_at": now},
            ),
            (
                cancelled_meanwhile.pk,
                {"state": RunState.SUCCEEDED, "vendor_reference": "exec-3", "finished_at": now},
            ),
        ],
        expected={"state": [RunState.SENDING, RunState.OUTCOME_UNKNOWN]},
    )

    assert changed == {accepted.pk, succeeded.pk}
    accepted.refresh_from_db()
    assert accepted.state == RunState.ACCEPTED and accepted.vendor_reference == "exec-1"
    assert accepted.result == {"channel": "email", "nested": {"n": 1}}
    assert accepted.progress is None and accepted.next_poll_at == now + timedelta(seconds=1)
    succeeded.refresh_from_db()
    assert succeeded.state == RunState.SUCCEEDED and succeeded.finished_at == now
    assert succeeded.next_poll_at is None  # a field this row did not set stays as it was
    cancelled_meanwhile.refresh_from_db()
    assert cancelled_meanwhile.state == RunState.CANCELLED
    assert cancelled_meanwhile.vendor_reference == "" and cancelled_meanwhile.finished_at is None


@pytest.mark.django_db
def test_without_a_guard_every_named_row_is_written(path):
    attempts = [RunAttemptFactory(status_code=None, exchange={}, outcome="") for _ in range(3)]
    finished = utc_now()

    changed = services.update_rows(
        RunAttempt,
        [
            (
                attempt.pk,
                {
                    "status_code": 200 + index,
                    "exchange": {"response": {"status": 200 + index}},
                    "outcome": f"answer {index}",
                    "finished_at": finished,
                },
            )
            for index, attempt in enumerate(attempts)
        ],
    )

    assert changed == {attempt.pk for attempt in attempts}
    for index, attempt in enumerate(attempts):
        attempt.refresh_from_db()
        assert attempt.status_code == 200 + index and attempt.outcome == f"answer {index}"
        assert attempt.exchange == {"response": {"status": 200 + index}}
        assert attempt.finished_at == finished


@pytest.mark.django_db
def test_nothing_to_write_changes_nothing(path):
    run = RunFactory(state=RunState.ACCEPTED)
    assert services.update_rows(Run, [], expected={"state": [RunState.ACCEPTED]}) == set()
    assert services.update_rows(Run, [(run.pk, {"state": RunState.FAILED})], expected={}) == {
        run.pk
    }
    assert (
        services.update_rows(Run, [(run.pk, {"state": RunState.SUCCEEDED})], expected={"state": []})
        == set()
    )
    run.refresh_from_db()
    assert run.state == RunState.FAILED


@pytest.mark.django_db
def test_inserted_rows_get_their_keys_values_and_the_database_defaults_of_fields_left_out(path):
    runs = [RunFactory(), RunFactory()]
    started = utc_now().replace(microsecond=123456)
    attempts = [
        RunAttempt(
            run=run,
            number=1,
            purpose=RunAttempt.Purpose.POLL,
            started_at=started,
            request={"description": "é \u2028 %s", "n": [1, None]},
            worker="host:1",
        )
        for run in runs
    ]
    # Every field but request_started_at, as the dispatcher opens a poll's attempts.
    names = [
        field.name
        for field in RunAttempt._meta.concrete_fields
        if not field.primary_key and field.name != "request_started_at"
    ]

    services.insert_rows(RunAttempt, attempts, names)

    for run, attempt in zip(runs, attempts, strict=True):
        stored = RunAttempt.objects.get(pk=attempt.pk)
        assert stored.run_id == run.pk and stored.started_at == started
        assert stored.request == {"description": "é \u2028 %s", "n": [1, None]}
        assert stored.exchange == {} and stored.finished_at is None
        if path == "postgresql":
            # Left out: the database's default (the insert time), as for any other writer.
            assert stored.request_started_at is not None


@pytest.mark.django_db
def test_text_numbers_and_flags_are_written_as_they_are(path):
    """Plain values skip the fields' own preparation: what is read back is what was written."""
    run = RunFactory(state=RunState.SENDING)
    text = 'exec "7" \\ ü — 🚀'

    changed = services.update_rows(
        Run,
        [
            (
                run.pk,
                {
                    "state": RunState.ACCEPTED,
                    "vendor_reference": text,
                    "poll_count": 3,
                    "needs_person": True,
                    "failure_message": "",
                },
            )
        ],
        expected={"state": [RunState.SENDING]},
    )

    assert changed == {run.pk}
    run.refresh_from_db()
    assert run.state == RunState.ACCEPTED
    assert run.vendor_reference == text
    assert run.poll_count == 3 and run.needs_person is True
