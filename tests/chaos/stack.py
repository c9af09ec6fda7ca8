"""The real stack the proofs run against, with a handle on every part a fault can hit.

- a private `redis-server` (never the machine's shared one) that can be restarted, losing
  everything a broker holds, as a crashed Redis without persistence does;
- TCP proxies in front of that Redis and of PostgreSQL, so either can be made unreachable for a
  while (connections cut, new ones refused) without losing its data;
- Celery worker processes, one or two beats, and a gunicorn web process, each in its own
  process group, so SIGKILL reaches a process and all its children at once.

The sandboxes run in the test process (tests/conftest.py `sandbox_stack`): their ledgers are
the ground truth of what each vendor received.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
READY_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, *, seconds: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it is true; fail loudly with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise TimeoutError(f"not within {seconds:.0f} s: {what}")


class TcpProxy:
    """A loopback TCP proxy that can be cut: `block(seconds)` drops every open connection and
    refuses new ones until the time is up (the server behind it keeps running)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.blocked_until = 0.0
        self.lock = threading.Lock()
        self.pairs: set[tuple[socket.socket, socket.socket]] = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.blocked_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = (client, upstream)
            with self.lock:
                self.pairs.add(pair)
            threading.Thread(target=self._pipe, args=(pair,), daemon=True).start()

    def _pipe(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select(timeout=1.0):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                if self.closed:
                    return
        except OSError:
            return
        finally:
            selector.close()
            self._close(pair)

    def _close(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self.lock:
            self.pairs.discard(pair)
        for end in pair:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def cut(self) -> None:
        """Drop every connection now (a network failure between the app and the server)."""
        with self.lock:
            pairs = list(self.pairs)
        for pair in pairs:
            self._close(pair)

    def block(self, seconds: float) -> None:
        """Unreachable for `seconds`: open connections dropped, new ones refused."""
        self.blocked_until = time.monotonic() + seconds
        self.cut()

    def upstream_ports(self) -> list[int]:
        """The local ports of the connections to the server: how the server names them (e.g.
        pg_stat_activity.client_port), so a fault can hit the stack's and no one else's."""
        with self.lock:
            ports = []
            for _, upstream in self.pairs:
                with contextlib.suppress(OSError):
                    ports.append(upstream.getsockname()[1])
            return ports

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut()


@dataclass
class Process:
    """One child process (and its children: its own process group), with its log."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> Process:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, as a machine crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def lines_with(self, *texts: str, limit: int = 40) -> list[str]:
        """This process's log lines that contain any of `texts` (the first `limit`)."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if any(text in line for text in texts)][:limit]


@dataclass
class Stack:
    """Redis, the proxies, workers, beats and web of one proof run (see the module docstring)."""

    directory: Path
    database_url_direct: str  # the test database, straight to PostgreSQL
    environment: dict[str, str]
    redis_port: int = field(default_factory=free_port)
    redis: Process | None = None
    redis_proxy: TcpProxy | None = None
    database_proxy: TcpProxy | None = None
    workers: list[Process] = field(default_factory=list)
    beats: list[Process] = field(default_factory=list)
    web: Process | None = None
    web_port: int = field(default_factory=free_port)

    # -- Redis ---------------------------------------------------------------------------------

    def start_redis(self) -> None:
        if self.redis is None:
            self.redis = Process(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                dict(os.environ),
                self.directory / "redis.log",
            )
        self.redis.start()
        wait_until(self._redis_answers, seconds=READY_SECONDS, what="the private Redis answers")

    def _redis_answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")

    def restart_redis(self) -> None:
        """SIGKILL Redis and start it again, empty: every queued message is gone."""
        assert self.redis is not None
        self.redis.kill()
        self.start_redis()

    @property
    def redis_url(self) -> str:
        assert self.redis_proxy is not None
        return f"redis://127.0.0.1:{self.redis_proxy.port}/0"

    @property
    def database_url(self) -> str:
        assert self.database_proxy is not None
        head, _, tail = self.database_url_direct.rpartition("@")
        _host, _, rest = tail.partition("/")
        return f"{head}@127.0.0.1:{self.database_proxy.port}/{rest}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.start_redis()
        self.redis_proxy = TcpProxy(self.redis_port)
        database_port = int(self.database_url_direct.rpartition(":")[2].split("/")[0])
        self.database_proxy = TcpProxy(database_port)

    def child_environment(self) -> dict[str, str]:
        return {
            **self.environment,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
        }

    # -- workers, beats, web -------------------------------------------------------------------

    def start_worker(self, *, concurrency: int = 4) -> Process:
        name = f"proof-{uuid.uuid4().hex[:6]}"
        worker = Process(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "dashboard",
                "worker",
                "-Q",
                "send,interactive,poll",
                "--pool",
                "threads",
                "-c",
                str(concurrency),
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{name}@%h",
                "--loglevel",
                "WARNING",
            ],
            self.child_environment(),
            self.directory / f"{name}.log",
        ).start()
        self.workers.append(worker)
        return worker

    def start_beat(self) -> Process:
        name = f"beat-{uuid.uuid4().hex[:6]}"
        beat = Process(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "dashboard",
                "beat",
                "--schedule",
                str(self.directory / f"{name}-schedule"),
                "--loglevel",
                "WARNING",
            ],
            self.child_environment(),
            self.directory / f"{name}.log",
        ).start()
        self.beats.append(beat)
        return beat

    def start_web(self) -> Process:
        if self.web is None:
            self.web = Process(
                "web",
                [
                    str(BIN / "gunicorn"),
                    "dashboard.project.wsgi",
                    "-b",
                    f"127.0.0.1:{self.web_port}",
                    "-w",
                    "2",
                    "--threads",
                    "4",
                    "--timeout",
                    "60",
                ],
                self.child_environment(),
                self.directory / "web.log",
            )
        self.web.start()
        wait_until(self._web_answers, seconds=READY_SECONDS, what="the web process answers")
        return self.web

    def _web_answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.web_port), timeout=1):
            return True

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def live_workers(self) -> list[Process]:
        return [worker for worker in self.workers if worker.alive()]

    def live_beats(self) -> list[Process]:
        return [beat for beat in self.beats if beat.alive()]

    def stop(self) -> None:
        for process in [*self.workers, *self.beats, self.web, self.redis]:
            if process is not None:
                process.kill()
        for proxy in (self.redis_proxy, self.database_proxy):
            if proxy is not None:
                proxy.close()
