"""Altcraft bulk launches on real Celery workers: a worker SIGKILLed mid-launch sends no chunk
twice and loses none; the chunk it held goes to a person, never resent blindly."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.models import LaunchState
from dashboard.audit.trail import Actor
from dashboard.runs.services import RunActionError
from dashboard.runs.states import RunState
from dashboard.vendors.sandbox import Fault
from tests.e2e.conftest import age_run, sweep, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDELIVERY = {"CELERY_VISIBILITY_TIMEOUT": "2"}


def received_emails(altcraft) -> list[str]:
    return [
        item["email"]
        for received in altcraft.received_on("start_batch")
        if received.processed
        for item in json.loads(received.body)["data"]
    ]


def test_worker_killed_mid_launch_sends_no_chunk_twice_and_loses_none(
    team, workers, kill_worker, sandboxes, sandbox_connection, settings, tmp_path
):
    upload_dir = tmp_path / "uploads"
    settings.ALTCRAFT_UPLOAD_DIR = upload_dir
    env = {**REDELIVERY, "ALTCRAFT_UPLOAD_DIR": str(upload_dir)}
    altcraft = sandboxes["altcraft"]
    altcraft.control("set_body_limit", {"bytes": 3000})
    connection = sandbox_connection(team.tenant, "altcraft", options={"body_limit_bytes": 3000})
    actor = Actor(user=team.marketer.user)
    trigger = services.trigger_register(
        actor=actor, tenant=team.tenant, connection=connection, trigger_id=8, name="Cart"
    )
    emails = [f"person{index:04d}@example.com" for index in range(200)]
    stored = services.upload_store(pieces=[("email\n" + "\n".join(emails) + "\n").encode()])
    launch = services.launch_create(
        actor=actor,
        trigger=trigger,
        kind="start_batch",
        upload=stored,
        source_name="list.csv",
        parameters={"matching": "email"},
        idempotency_key=uuid.uuid4().hex,
    )
    launch = services.launch_prepare(actor=actor, launch=launch)
    chunk_count = launch.chunks.count()
    assert chunk_count >= 3

    # The first request reaches Altcraft, which acts, then holds its answer: the worker dies.
    altcraft.inject_fault("start_batch", Fault.DELAY_AFTER_PROCESSING, seconds=30)
    victim = workers.start(pool="prefork", concurrency=1, env=env)
    launch = services.launch_confirm(actor=actor, launch=launch, sha256_seen=launch.source_sha256)
    assert launch.state == LaunchState.SENDING
    wait_for(lambda: altcraft.received_on("start_batch"), timeout=30, message="the first request")
    kill_worker(victim)
    time.sleep(2.5)  # past the visibility timeout: the message is the dead worker's no more

    replacement = workers.start(pool="prefork", concurrency=1, env=env)

    def others_done() -> bool:
        runs = [chunk.run for chunk in launch.chunks.select_related("run")]
        return sum(run.state == RunState.SUCCEEDED for run in runs) == chunk_count - 1

    wait_for(others_done, timeout=90, message="the other chunks to be sent")
    wait_for(lambda: "skipped: already" in replacement.log(), timeout=30, message="redelivery")
    held = next(
        chunk for chunk in launch.chunks.select_related("run") if chunk.run.state != "succeeded"
    )
    assert held.run.state == RunState.SENDING

    age_run(held.run, seconds=200)
    assert sweep()["presumed_lost"] == 1
    held.refresh_from_db()
    held.run.refresh_from_db()
    assert held.run.state == RunState.OUTCOME_UNKNOWN and held.run.needs_person
    with pytest.raises(RunActionError, match="only a failed chunk"):
        services.chunk_retry(actor=actor, chunk=held)

    # Every chunk reached Altcraft exactly once: no row twice, none lost.
    assert len(altcraft.received_on("start_batch")) == chunk_count
    assert sorted(received_emails(altcraft)) == sorted(emails)
