"""Send windows on the real stack: a live Celery worker, PostgreSQL, Redis and the Optimove
campaigns sandbox. Runs queued on a blackout date never reach the sandbox's ledger; lifting the
blackout sends every held run exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard.audit.trail import Actor, verify_audit_chains
from dashboard.clock import utc_now
from dashboard.runs import services
from dashboard.runs.models import Operation, Run, RunAttempt
from dashboard.runs.states import RunState
from dashboard.send_windows.services import send_window_set
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EVENT_GENERATOR = "00000000-abcd-abcd-abcd-000000000000"
COUNT = 20


def test_runs_queued_in_a_blackout_wait_and_go_once_when_it_is_lifted(
    team, worker, sandboxes, sandbox_connection
):
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    today = utc_now().date()
    send_window_set(
        actor=Actor(user=team.operator.user),
        connection=connection,
        window=None,
        blackouts="\n".join(f"{today + timedelta(days=d)} Freeze" for d in (-1, 0, 1)),
        reason="Freeze",
    )
    # Queued as an approval granted late would leave them (the trigger check would refuse them).
    runs = Run.objects.bulk_create(
        [
            Run(
                tenant=team.tenant,
                connection=connection,
                operation=Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
                parameters={
                    "event_generator_id": EVENT_GENERATOR,
                    "topic_key": "event_reminders+NFL",
                    "context": {"number": number},
                },
                parameters_hash=f"held-{number}",
                idempotency_key=f"held-{number}",
                state=RunState.QUEUED,
            )
            for number in range(COUNT)
        ]
    )
    for run in runs:
        services.enqueue_send(run)
    # The worker's dispatcher finds them outside the window: each is due at the next opening.
    wait_for(
        lambda: not Run.objects.filter(next_attempt_at__isnull=True).exists() or None,
        timeout=30,
        message="the dispatcher to hold the runs until the window opens",
    )
    assert sandboxes["optimove_campaigns"].received_on("run") == []
    assert set(Run.objects.values_list("state", flat=True)) == {RunState.QUEUED}
    assert not RunAttempt.objects.exists()

    send_window_set(
        actor=Actor(user=team.admin.user),
        connection=connection,
        window=None,
        blackouts="",
        reason="Freeze lifted",
    )
    wait_for(
        lambda: (
            not Run.objects.exclude(state__in=[RunState.ACCEPTED, RunState.SUCCEEDED]).exists()
            or None
        ),
        timeout=60,
        message=f"{COUNT} runs to be sent",
    )
    assert len(sandboxes["optimove_campaigns"].received_on("run")) == COUNT
    assert RunAttempt.objects.filter(purpose="send").count() == COUNT
    assert verify_audit_chains() == []
    assert "ERROR" not in worker.log()
