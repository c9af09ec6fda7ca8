"""A vendor's answer survives a database that is briefly unreachable while it is written down
(found by the proofs under faults: such runs became "outcome unknown, ask a person" although the
worker held the vendor's answer)."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError

from dashboard.audit.trail import verify_audit_chains
from dashboard.runs import attempts, dispatch
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.services import run_send
from dashboard.runs.states import RunState
from tests.dashboard.runs.test_dispatch import OPERATION, sent_numbers, submit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_redis")]


def fail_first(monkeypatch, target: str, times: int = 1) -> list[int]:
    """Make `target` (a function the recording calls) raise a lost connection `times` times."""
    module, _, name = target.rpartition(".")
    real = getattr(__import__(module, fromlist=[name]), name)
    calls: list[int] = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, flaky)
    return calls


def test_a_batch_answer_is_recorded_once_the_database_is_back(
    team, sandbox_connection, sandboxes, monkeypatch, caplog
):
    campaigns = sandbox_connection(team.tenant, "optimove_campaigns")
    runs = [submit(team, campaigns, number) for number in range(3)]
    calls = fail_first(monkeypatch, "dashboard.runs.attempts.note_connection", times=2)

    with caplog.at_level(logging.WARNING, logger="dashboard.runs.attempts"):
        dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    assert len(calls) == 3  # two lost connections, then the record
    assert sent_numbers(sandboxes) == [0, 1, 2]  # sent once each, never again
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.ACCEPTED and run.vendor_reference
        assert RunAttempt.objects.get(run=run).status_code == 202
    assert "database unreachable while recording an answer" in caplog.text
    assert verify_audit_chains() == []


def test_a_single_send_is_recorded_once_the_database_is_back(
    team, sandbox_connection, sandboxes, monkeypatch
):
    from dashboard.audit.trail import Actor
    from dashboard.runs.models import Operation
    from dashboard.runs.services import run_submit

    talkifai = sandbox_connection(team.tenant, "talkifai")
    run = run_submit(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        connection=talkifai,
        operation=Operation.TALKIFAI_START_BATCH_JOB,
        parameters={"batch_job_id": "job-pending-001"},
        idempotency_key="start-once",
        approval_required=False,
    )
    fail_first(monkeypatch, "dashboard.runs.services.sending.note_connection")

    assert run_send(run_id=run.pk) == "succeeded"

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert sandboxes["talkifai"].state()["starts"]["job-pending-001"] == 1
    history = [
        (event.summary["from"], event.summary["to"])
        for event in run_audit(run)
        if event.action == "run.state_changed"
    ]
    assert history[-1] == ("sending", "succeeded")  # "from" as it was, not the failed try's


def test_past_the_deadline_the_sweeper_takes_over_as_before(
    team, sandbox_connection, sandboxes, monkeypatch
):
    campaigns = sandbox_connection(team.tenant, "optimove_campaigns")
    run = submit(team, campaigns, 7)
    monkeypatch.setattr(attempts, "RECORD_RETRY_SECONDS", 0.2)
    fail_first(monkeypatch, "dashboard.runs.attempts.note_connection", times=100)

    with pytest.raises(OperationalError):
        dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    run.refresh_from_db()
    assert run.state == RunState.SENDING  # the sweeper's rules decide, with its evidence
    assert sent_numbers(sandboxes) == [7]


def run_audit(run: Run):
    from dashboard.models import AuditEvent

    return AuditEvent.objects.filter(object_type="run", object_id=str(run.pk)).order_by("id")
