"""A worker against a broker that restarts: a private redis-server the test stops and starts."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.runs.models import Operation
from dashboard.runs.states import RunState
from tests.e2e.conftest import closed_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_SERVER = shutil.which("redis-server")


class PrivateRedis:
    """A redis-server of this test alone, on a free port, keeping nothing on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = closed_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        command = [REDIS_SERVER, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.directory)]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.ConnectionError:
                return False

        wait_for(answers, timeout=30, message="the private redis-server to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def publish(url: str, task: str, args: list[Any], *, countdown: float | None = None) -> None:
    """Send a task to the broker at `url` (the app's routes say to which queue)."""
    from dashboard.project.celery import app

    with app.connection_for_write(url) as connection:
        app.send_task(task, args=args, countdown=countdown, connection=connection)


def test_a_worker_survives_a_broker_restart_and_sends_the_next_run(
    team, workers, private_redis, sandboxes, sandbox_connection, submit
):
    worker = workers.start(pool="threads", concurrency=2, env={"REDIS_URL": private_redis.url})
    # A poll waiting for its countdown: a poll worker nearly always holds such messages
    # unacknowledged, and handing them back when the connection broke killed the worker.
    publish(private_redis.url, "runs.poll", [0], countdown=3600)
    wait_for(lambda: "runs.poll[" in worker.log(), timeout=30, message="the poll to be received")

    private_redis.stop()
    wait_for(
        lambda: "Connection to broker lost" in worker.log(),
        timeout=60,
        message="the worker to notice the broker is gone",
    )
    private_redis.start()
    wait_for(
        lambda: worker.log().count("Connected to ") >= 2 or not worker.alive(),
        timeout=120,
        message="the worker to reconnect",
    )
    assert worker.alive(), worker.tail()
    assert "Unrecoverable error" not in worker.log()

    connection = sandbox_connection(team.tenant, "optimove_campaigns")
    run = submit(
        connection,
        Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
        {
            "event_generator_id": "00000000-abcd-abcd-abcd-000000000000",
            "topic_key": "event_reminders+NFL",
            "context": {"match": "after the restart"},
        },
    )
    # The test's own app publishes to the tests' Redis; the worker listens on the private one.
    publish(private_redis.url, "runs.send", [run.pk])

    def sent_and_polled() -> bool:
        run.refresh_from_db()
        return run.state == RunState.SUCCEEDED

    wait_for(sent_and_polled, timeout=120, message="the run to be sent and polled to the end")
    assert run.vendor_status == "published"
    assert len(sandboxes["optimove_campaigns"].received_on("run")) == 1
    assert worker.alive()
