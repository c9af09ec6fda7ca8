"""Pausing sending on the real stack: a live Celery worker, PostgreSQL, Redis and the Optimove
campaigns sandbox. While paused nothing reaches the sandbox's ledger; resuming sends every held
run exactly once."""

from __future__ import annotations

import pytest

from dashboard.audit.trail import Actor, verify_audit_chains
from dashboard.pauses.services import sending_pause, sending_resume
from dashboard.runs import services
from dashboard.runs.models import Operation, Run, RunAttempt
from dashboard.runs.states import RunState
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EVENT_GENERATOR = "00000000-abcd-abcd-abcd-000000000000"
COUNT = 40


def test_runs_queued_while_paused_never_reach_the_vendor_and_resume_sends_each_once(
    team, worker, sandboxes, sandbox_connection
):
    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    pause = sending_pause(
        actor=Actor(user=team.operator.user), tenant=team.tenant, reason="Wrong audience"
    )
    # Queued as a trigger path queues them (on commit, a dispatcher wake-up), then held: the
    # new-trigger check would refuse them, so they are queued the way a pipeline queued them
    # just before the pause.
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
                parameters_hash=f"paused-{number}",
                idempotency_key=f"paused-{number}",
                state=RunState.QUEUED,
            )
            for number in range(COUNT)
        ]
    )
    for run in runs:
        services.enqueue_send(run)
    # The worker takes the wake-ups and finds every run held (a dispatcher looked and stopped).
    wait_for(
        lambda: "dispatched 0 sends" in worker.log() or None,
        timeout=30,
        message="a dispatcher to look at the held runs",
    )
    assert sandboxes["optimove_campaigns"].received_on("run") == []
    assert set(Run.objects.values_list("state", flat=True)) == {RunState.QUEUED}
    assert not RunAttempt.objects.exists()

    resumed = sending_resume(actor=Actor(user=team.admin.user), tenant=team.tenant)
    assert resumed.pause.pk == pause.pk and resumed.released == COUNT

    wait_for(
        lambda: (
            not Run.objects.exclude(state__in=[RunState.ACCEPTED, RunState.SUCCEEDED]).exists()
            or None
        ),
        timeout=60,
        message=f"{COUNT} runs to be sent",
    )
    received = sandboxes["optimove_campaigns"].received_on("run")
    assert len(received) == COUNT
    assert RunAttempt.objects.filter(purpose="send").count() == COUNT
    assert verify_audit_chains() == []
    assert "ERROR" not in worker.log()
