"""Real-stack harness: Celery worker processes against the test database, the sandboxes over HTTP.

A test that uses `workers` is `@pytest.mark.django_db(transaction=True)` (a worker is another
process: it only sees committed rows) and `@pytest.mark.slow`. Each test starts its own workers
after emptying the Redis database (broker queues and rate-limit keys alike), so no message of an
earlier test can reach it; every worker is SIGKILLed at teardown, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")
READY_TIMEOUT_SECONDS = 30.0
LOG_TAIL_LINES = 80


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Keep each phase's report on the item, so fixtures can tell a failed test at teardown."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def wait_for(
    condition: Callable[[], Any], *, timeout: float, interval: float = 0.05, message: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {message or condition}")
        time.sleep(interval)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The pytest-django test database, as a URL a worker process can be given."""
    from django.db import connection

    settings = connection.settings_dict
    credentials = settings["USER"] or ""
    if settings["PASSWORD"]:
        credentials += f":{settings['PASSWORD']}"
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or "5432"
    return f"postgres://{credentials}@{host}:{port}/{settings['NAME']}"


@dataclass
class Worker:
    """One `celery worker` process (and, for prefork, its pool children: one process group)."""

    name: str
    pool: str
    concurrency: int
    log_path: Path
    process: subprocess.Popen
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f"{self.name}@" in self.log() and " ready." in self.log():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"worker {self.name} did not become ready:\n{self.tail()}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and every pool child at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class Workers:
    """Starts worker processes for one test and kills them all at teardown."""

    def __init__(self, tmp_dir: Path, base_env: dict[str, str]) -> None:
        self.tmp_dir = tmp_dir
        self.base_env = base_env
        self.started: list[Worker] = []

    def start(
        self,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        env: dict[str, str] | None = None,
        wait: bool = True,
        hostname: str = "%h",
        prefix: list[str] | None = None,
        loglevel: str | None = "INFO",
        queues: str = "send,interactive,poll",
    ) -> Worker:
        """Start `celery worker -Q send,interactive,poll` (`queues`) with the given pool; wait
        until it is ready.

        `hostname` names the worker's host (`-n e2e-…@<hostname>`, as on another machine);
        `prefix` runs the command under another, e.g. `ip netns exec <namespace>`; `loglevel`
        None passes no `--loglevel`, as docker-compose.yml does."""
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        log_path = self.tmp_dir / f"{name}.log"
        command = [
            *(prefix or []),
            str(CELERY),
            "-A",
            "dashboard",
            "worker",
            "-Q",
            queues,
            "--pool",
            pool,
            "-c",
            str(concurrency),
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"{name}@{hostname}",
            *(["--loglevel", loglevel] if loglevel else []),
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**self.base_env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so one killpg reaches the pool children too.
                start_new_session=True,
            )
        worker = Worker(name, pool, concurrency, log_path, process)
        self.started.append(worker)
        return worker.wait_ready() if wait else worker

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


@pytest.fixture
def e2e_redis(settings) -> Iterator[Any]:
    """The tests' Redis database emptied before (and after) the test: broker and rate limits."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def workers(request, transactional_db, e2e_redis, settings) -> Iterator[Workers]:
    """Start real Celery workers for this test: `workers.start(pool=..., concurrency=...)`."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "COV_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashboard.project.test_settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    with tempfile.TemporaryDirectory(prefix="triggerdesk-e2e-") as tmp:
        manager = Workers(Path(tmp), env)
        try:
            yield manager
        finally:
            manager.kill_all()
            call = getattr(request.node, "report_call", None)
            if call is None or call.failed:
                for worker in manager.started:
                    print(f"\n----- worker {worker.name} ({worker.pool}) log tail -----")
                    print(worker.tail())


@pytest.fixture
def worker(workers: Workers) -> Worker:
    """One prefork worker with two pool processes, ready."""
    return workers.start(pool="prefork", concurrency=2)


@pytest.fixture
def kill_worker() -> Callable[[Worker], None]:
    """kill_worker(worker): SIGKILL a worker's whole process group, as a machine crash would."""
    return Worker.kill


def sweep() -> dict[str, int]:
    """One pass of the sweeper, run in the test process (what beat's runs.sweep does)."""
    from dashboard.runs.services import runs_sweep

    return runs_sweep()


def age_run(run: Any, *, seconds: float, sent_seconds_ago: float | None = None) -> None:
    """Make a run look untouched for `seconds` (the sweeper's staleness test reads updated_at)."""
    from datetime import timedelta

    from dashboard.clock import utc_now
    from dashboard.runs.models import Run

    now = utc_now()
    fields: dict[str, Any] = {"updated_at": now - timedelta(seconds=seconds)}
    if sent_seconds_ago is not None:
        fields["sent_at"] = now - timedelta(seconds=sent_seconds_ago)
    Run.objects.filter(pk=run.pk).update(**fields)


def release_windows(run: Any) -> None:
    """Give back the run's rate-limit windows in Redis (TriggerDaily's 10 minutes)."""
    from dashboard.runs.operations import operation_for
    from dashboard.runs.rate_limits import rate_limiter
    from dashboard.tenancy.credentials import connection_secrets

    operation = operation_for(run.operation)
    for rule in operation.rate_rules(run.connection, connection_secrets(run.connection)):
        if rule.window:
            rate_limiter().release_window(rule)


@pytest.fixture
def submit(team) -> Callable[..., Any]:
    """submit(connection, operation, parameters, **options): run_submit as the team's marketer."""
    from dashboard.audit.trail import Actor
    from dashboard.runs.services import run_submit

    def make(connection: Any, operation: str, parameters: dict[str, Any], **options: Any) -> Any:
        options.setdefault("idempotency_key", uuid.uuid4().hex)
        options.setdefault("approval_required", False)
        return run_submit(
            actor=Actor(user=team.marketer.user),
            tenant=connection.tenant,
            connection=connection,
            operation=operation,
            parameters=parameters,
            **options,
        )

    return make
