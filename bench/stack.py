"""The benchmarks' stack: their own database, the sandboxes in-process, the worker processes.

Every benchmark script does the same thing first: create (and at the end drop) the database
`<name>_bench` on the server named by DATABASE_URL, where `<name>` is DATABASE_URL's own
database (`triggerdesk` -> `triggerdesk_bench`, `td_dx` -> `td_dx_bench`), migrate it, empty the Redis database
named by REDIS_URL (it must be a scratch database: `make bench` passes the tests' one), serve
every vendor sandbox on a free loopback port in this process, and start Celery worker processes
(two for the send and poll queues, one for the interactive queue, as in production)
that use the production settings (dashboard.project.settings, through bench/bench_settings.py, which
changes nothing unless asked) against all of that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/triggerdesk"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
BENCH_SUFFIX = "_bench"
READY_TIMEOUT_SECONDS = 30.0

# The sandboxes' well-known fake credentials (not secrets: the demo publishes them).
SANDBOX_SECRETS = {
    "optimove_batch": {"api_key": "sandbox-optimove-daily-key"},
    "optimove_campaigns": {
        "api_key": "sandbox-optimove-api-key",
        "brand_key": "sandbox-optimove-brand-key",
    },
    "altcraft": {"token": "sandbox-altcraft-token"},
    "talkifai": {"api_key": "sandbox-talkifai-key"},
}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin_connection(url: str) -> Any:
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname="postgres",
        autocommit=True,
    )


def bench_database_name(url: str) -> str:
    """The benchmark's own database: DATABASE_URL's database name plus `_bench`.

    Never DATABASE_URL's database itself (the benchmark drops its database WITH (FORCE)), and
    never another helper's or suite's: each base database gets its own bench database.
    """
    name = urlsplit(url).path.lstrip("/")
    if not name or "/" in name:
        raise SystemExit(f"DATABASE_URL must name a database (postgres://host/name), got {url!r}")
    return f"{name}{BENCH_SUFFIX}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _recreate_database(url: str, name: str) -> None:
    with _admin_connection(url) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {_quoted(name)}")


def _drop_database(url: str, name: str) -> None:
    with _admin_connection(url) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@dataclass
class Stack:
    """What a benchmark works with once the stack is up."""

    sandboxes: dict[str, Any]
    server: Any
    clock: Any
    tenant: Any
    user: Any
    actor: Any
    workers: list[WorkerProcess] = field(default_factory=list)
    tmp_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="triggerdesk-bench-"))
    )

    def url(self, kind: str) -> str:
        from dashboard.ops.sandboxes import sandbox_base_url

        return sandbox_base_url(self.server.url(), kind)

    def connection(
        self,
        kind: str,
        *,
        secrets: dict[str, str] | None = None,
        tenant: Any = None,
        **options: Any,
    ) -> Any:
        """A connection of the bench tenant (or of `tenant`, set up by the system) wired to
        that vendor's sandbox (`secrets`: another of its accounts, e.g. a second Optimove brand)."""
        from dashboard.audit.trail import Actor
        from dashboard.tenancy.services import connection_create

        return connection_create(
            actor=self.actor if tenant is None else Actor.system("bench"),
            tenant=tenant or self.tenant,
            kind=kind,
            name=f"{kind} sandbox {uuid.uuid4().hex[:6]}",
            base_url=self.url(kind),
            secrets=secrets or SANDBOX_SECRETS[kind],
            options=options or ({"key_role": "ApiRole"} if kind == "optimove_batch" else {}),
        )

    def start_workers(
        self,
        *,
        count: int = 2,
        pool: str = "prefork",
        concurrency: int = 2,
        queues: str = "send,poll",
    ) -> None:
        """Start `count` worker processes consuming `queues` and wait until all are ready."""
        for _ in range(count):
            name = f"bench-{uuid.uuid4().hex[:6]}"
            log_path = self.tmp_dir / f"{name}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [
                        str(Path(sys.executable).with_name("celery")),
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
                        f"{name}@%h",
                        # Per-task INFO lines would cost the workers more than the tasks do.
                        "--loglevel",
                        "WARNING",
                    ],
                    cwd=REPO,
                    env={**os.environ, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.workers.append(WorkerProcess(name, process, log_path))
        for worker in self.workers:
            _wait_until_answering(worker)

    def create_queued_runs(
        self, connection: Any, operation: str, parameters: list[dict]
    ) -> list[Any]:
        """Queued runs in bulk (one INSERT, committed), nothing enqueued yet: see `wake_sends`.

        Quicker than run_submit per run (no per-run "requested" audit row): the benchmarks
        measure sending, not requesting.
        """
        from django.db import transaction

        from dashboard.clock import utc_now
        from dashboard.runs.models import Run
        from dashboard.runs.operations import operation_for
        from dashboard.runs.services import parameters_hash
        from dashboard.runs.states import RunState

        now = utc_now()
        runner = operation_for(operation)
        rows = []
        for number, raw in enumerate(parameters):
            cleaned = runner.clean_parameters(raw, connection)
            rows.append(
                Run(
                    tenant=connection.tenant,
                    connection=connection,
                    operation=operation,
                    parameters=cleaned,
                    parameters_hash=parameters_hash(
                        operation=operation, connection_id=connection.pk, parameters=cleaned
                    ),
                    idempotency_key=f"bench-{uuid.uuid4().hex[:12]}-{number}",
                    state=RunState.QUEUED,
                    requested_by=self.user,
                    requested_by_label=self.user.get_username(),
                    requested_at=now,
                )
            )
        with transaction.atomic():
            return Run.objects.bulk_create(rows, batch_size=1000)

    def wake_sends(self, runs: list[Any]) -> None:
        """Enqueue the runs' sends as run_submit does, once every run is committed.

        For a batched operation each submission's wake-up takes a free dispatcher slot
        (`enqueue.DISPATCH_SLOTS` of them) or, when every slot is taken, does nothing: the
        dispatchers find every committed run. So waking the first DISPATCH_SLOTS runs sends the
        very messages that waking all of them would, without 4 Redis round trips per run in
        this process while the sends go out (18 s for 5,000, competing with the workers).
        A per-run operation gets one message per run.
        """
        from dashboard.runs.enqueue import DISPATCH_SLOTS
        from dashboard.runs.operations import operation_for
        from dashboard.runs.services import enqueue_send

        batched = bool(runs) and operation_for(runs[0].operation).batch_size > 1
        for run in runs[:DISPATCH_SLOTS] if batched else runs:
            enqueue_send(run)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.workers.clear()

    def dead_workers(self) -> list[str]:
        """Names of worker processes that exited (something else on the machine killed them)."""
        return [worker.name for worker in self.workers if worker.process.poll() is not None]

    def worker_errors(self) -> list[str]:
        """Lines of the workers' logs that speak of an error (empty when all went well)."""
        return [
            line
            for worker in self.workers
            for line in worker.log().splitlines()
            if "ERROR" in line or "Traceback" in line
        ]


def _wait_until_answering(worker: WorkerProcess) -> None:
    # With --loglevel WARNING the "ready." line is not logged: ask the worker itself.
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "dashboard",
                "inspect",
                "ping",
                "-d",
                f"{worker.name}@{os.uname().nodename}",
                "--timeout",
                "1",
            ],
            cwd=REPO,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            check=False,
        )
        if "pong" in result.stdout:
            return
        if worker.process.poll() is not None:
            break
    raise RuntimeError(f"worker {worker.name} did not start:\n{worker.log()[-4000:]}")


@contextlib.contextmanager
def bench_stack(
    *,
    pool: str = "prefork",
    concurrency: int = 2,
    workers: int = 2,
    interactive_workers: int = 1,
    interactive_pool: str = "threads",
    interactive_concurrency: int = 2,
) -> Iterator[Stack]:
    """Bring the whole stack up (see the module docstring); tear everything down afterwards.

    `workers` consume send and poll; `interactive_workers` the single sends a person starts,
    as production runs them (docker-compose.yml). With none, the `workers` consume that queue
    too: a click then waits for a free process like a burst's dispatchers do.
    """
    base_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    database = bench_database_name(base_url)
    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "bench")]),
            "DATABASE_URL": _with_database(base_url, database),
            "REDIS_URL": redis_url,
            "SECRET_KEY": os.environ.get("SECRET_KEY") or uuid.uuid4().hex * 2,
            "CREDENTIALS_KEYS": Fernet.generate_key().decode(),
            "LOG_LEVEL": "WARNING",
            # The sandboxes listen on loopback over http (see dashboard/vendors/destinations.py).
            "VENDOR_HOST_ALLOWLIST": "127.0.0.1",
        }
    )
    # A plain `kill` (or a background job's Ctrl-C) must still clean up: exit through `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"  bench database: {database} (dropped at the end)", flush=True)
    _recreate_database(base_url, database)
    server = None
    stack = None
    try:
        import django

        django.setup()
        import redis
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        redis.Redis.from_url(redis_url).flushdb()

        from dashboard.audit.trail import Actor
        from dashboard.ops.sandboxes import build_sandboxes, sandbox_server
        from dashboard.tenancy.services import tenant_create, user_create
        from dashboard.vendors.sandbox import SandboxClock

        clock = SandboxClock()
        sandboxes = build_sandboxes(clock)
        server = sandbox_server(sandboxes).start()
        system = Actor.system("bench")
        tenant = tenant_create(actor=system, name="Bench Brand", duplicate_window_minutes=0)
        user = user_create(username="bench-marketer", password=None)
        stack = Stack(sandboxes, server, clock, tenant, user, Actor(user=user))
        stack.start_workers(
            count=workers,
            pool=pool,
            concurrency=concurrency,
            queues="send,poll" if interactive_workers else "send,interactive,poll",
        )
        if interactive_workers:
            stack.start_workers(
                count=interactive_workers,
                pool=interactive_pool,
                concurrency=interactive_concurrency,
                queues="interactive",
            )
        yield stack
    finally:
        if stack is not None:
            stack.stop_workers()
        if server is not None:
            server.stop()
        from django.db import connections

        connections.close_all()
        _drop_database(base_url, database)
        with contextlib.suppress(Exception):
            import redis

            redis.Redis.from_url(redis_url).flushdb()


def cpu_snapshot(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far, by group: the workers, PostgreSQL, Redis, this process (the
    sandbox server and the benchmark), and everything else on the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    worker_groups = {worker.process.pid for worker in stack.workers}
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        pid, pgid = int(entry.name), int(fields[2])
        seconds = (int(fields[11]) + int(fields[12])) / ticks
        if comm.startswith("postgres"):
            # Backends that already exited: the postmaster reaped them (cutime, cstime).
            seconds += (int(fields[13]) + int(fields[14])) / ticks
        if pgid in worker_groups:
            group = "celery workers"
        elif pid == os.getpid():
            group = "sandbox server + benchmark process"
        elif comm.startswith("postgres"):
            group = "postgresql"
        elif comm.startswith("redis"):
            group = "redis"
        else:
            group = "other processes"
        totals[group] = totals.get(group, 0.0) + seconds
    return totals


class DatabaseBackendsCpu:
    """CPU of the PostgreSQL backends serving the bench database, this process's own excepted.

    `cpu_snapshot`'s "postgresql" counts every backend on the server, other sessions' included;
    on a shared machine that is mostly theirs. This follows only the backends connected to the
    bench database (the workers keep theirs, CELERY_DB_REUSE_MAX): `sample()` now and then
    remembers each one's CPU so far, so a backend that exits between samples loses only its
    last interval.
    """

    def __init__(self) -> None:
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._started = False

    def _seconds(self, pid: int) -> float | None:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def sample(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            pids = [row[0] for row in cursor.fetchall()]
        for pid in pids:
            seconds = self._seconds(pid)
            if seconds is None:
                continue
            if pid not in self._start:
                # A backend that appears after the first sample started within the measurement.
                self._start[pid] = seconds if not self._started else 0.0
            self._last[pid] = seconds
        self._started = True

    def seconds(self) -> float:
        """CPU seconds the bench database's backends used since the first sample."""
        return sum(self._last[pid] - self._start[pid] for pid in self._last)


@dataclass
class CpuReport:
    """CPU used between two snapshots: the printable lines and milliseconds per run by group."""

    text: str
    ms_per_run: dict[str, float]


def cpu_report(
    before: dict[str, float], after: dict[str, float], runs: int, wall: float
) -> CpuReport:
    """CPU used between two snapshots: seconds, share of the machine, milliseconds per run."""
    cores = os.cpu_count() or 1
    lines = [f"  CPU while running ({cores} cores, {wall:.1f} s wall):"]
    per_run: dict[str, float] = {}
    for group in sorted(after, key=lambda g: -(after[g] - before.get(g, 0.0))):
        used = after[group] - before.get(group, 0.0)
        if used <= 0:
            continue
        per_run[group] = used * 1000 / max(runs, 1)
        lines.append(
            f"    {group:<36} {used:7.1f} s  {used / wall / cores:6.1%} of the machine"
            f"  {per_run[group]:6.1f} ms/run"
        )
    return CpuReport("\n".join(lines), per_run)


FIGURE_PREFIX = "FIGURE"


def print_figure(name: str, value: float) -> None:
    """One figure on a line of its own (`FIGURE name value`), which bench/run_all.py reads."""
    print(f"  {FIGURE_PREFIX} {name} {value:.3f}", flush=True)


def sandbox_seconds(at: str) -> float:
    """A ReceivedRequest's `at` (sandbox clock, ISO 8601) as a Unix timestamp."""
    return datetime.fromisoformat(at).timestamp()


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)
