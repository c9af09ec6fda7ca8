"""Start a set of long-running processes, and stop every one of them on Ctrl-C or SIGTERM.

`make demo` runs web, worker, beat and the sandboxes side by side. A shell `trap 'kill 0'`
ended in `make: *** Segmentation fault` on SIGTERM and left celery beat running: the shell
signalled its own group while it was still running, and a child that had started its own
session was never reached. Here each child gets its own process group, so a terminal's Ctrl-C
reaches the supervisor only; the supervisor then sends SIGTERM to every child's whole group
(gunicorn's workers included), waits for each group to empty, sends SIGKILL to whatever is left
after a grace period, and returns 0. On Linux it is also the child subreaper, so grandchildren
orphaned by their parent's exit are its children and are reaped, never left behind.

A child started with `restart=True` (the demo's worker and beat) that dies is started again after
a backoff (1 s, doubling to 30 s), with a log line saying so; only if it keeps dying (more than
`max_restarts` times in `restart_window_seconds`) does the supervisor stop everything, as it does
at once when any other child dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_GRACE_SECONDS = 10.0
RESTART_BACKOFF_SECONDS = 1.0
RESTART_BACKOFF_CAP_SECONDS = 30.0
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 600.0
PR_SET_CHILD_SUBREAPER = 36


class Stopped(Exception):
    """A stop signal arrived while the supervisor was starting or running its processes."""


class ProcessExited(Exception):
    """A managed process ended by itself, which a long-running service should never do."""

    def __init__(self, name: str, returncode: int, detail: str = "") -> None:
        super().__init__(f"{name} exited with status {returncode}{detail}")
        self.name = name
        self.returncode = returncode


@dataclass
class ManagedProcess:
    """One child: a name for messages, its Popen, and its log file (closed on stop); how to
    start it again, when it may be restarted."""

    name: str
    popen: subprocess.Popen
    log: IO[bytes] | None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    restart: bool = False
    restarted_at: list[float] = field(default_factory=list)  # monotonic times, recent ones
    restart_due: float | None = None  # when a died child is started again

    @property
    def group(self) -> int:
        """The child's process group id (the child leads its own group)."""
        return self.popen.pid


class ProcessSupervisor:
    """Children in their own process groups, stopped together on a signal.

    Use it as a context manager: signal handlers are installed on entry and restored on exit,
    and every child still alive on exit is stopped.
    """

    def __init__(
        self,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        say: Callable[[str], None] | None = None,
        restart_backoff_seconds: float = RESTART_BACKOFF_SECONDS,
        restart_backoff_cap_seconds: float = RESTART_BACKOFF_CAP_SECONDS,
        max_restarts: int = MAX_RESTARTS,
        restart_window_seconds: float = RESTART_WINDOW_SECONDS,
    ) -> None:
        self.grace_seconds = grace_seconds
        self.restart_backoff_seconds = restart_backoff_seconds
        self.restart_backoff_cap_seconds = restart_backoff_cap_seconds
        self.max_restarts = max_restarts
        self.restart_window_seconds = restart_window_seconds
        self.processes: list[ManagedProcess] = []
        self._stop_requested = threading.Event()
        self._stop_signal: int | None = None
        self._previous_handlers: dict[int, object] = {}
        self._say = say or (lambda message: print(message, flush=True))

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> ProcessSupervisor:
        _become_child_subreaper()
        for number in STOP_SIGNALS:
            self._previous_handlers[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop_all()
        finally:
            for number, handler in self._previous_handlers.items():
                signal.signal(number, handler)  # type: ignore[arg-type]

    def _on_signal(self, number: int, frame: object) -> None:
        self._stop_signal = number
        self._stop_requested.set()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self._stop_requested.is_set()

    # -- starting -------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        restart: bool = False,
    ) -> ManagedProcess:
        """Start a long-running child in its own process group (output to `log_path` if given).

        `restart`: if it dies, start it again after a backoff instead of stopping everything.
        """
        self._raise_if_stopped()
        log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
        child_env = dict(env) if env is not None else None
        popen = _spawn(list(argv), log, child_env)
        process = ManagedProcess(name, popen, log, list(argv), child_env, restart)
        self.processes.append(process)
        return process

    def run_step(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> int:
        """Run a one-shot child to its end (still stoppable by a signal); its return code."""
        process = self.start(name, argv, env=env)
        while process.popen.poll() is None:
            if self._stop_requested.wait(0.1):
                raise Stopped
        self.processes.remove(process)
        return process.popen.returncode

    def wait_until(self, condition: Callable[[], bool], *, timeout_seconds: float) -> bool:
        """Poll `condition` until it holds (True), the timeout passes or a child dies (False)."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            self._raise_if_stopped()
            self._raise_if_a_child_exited()
            if condition():
                return True
            self._stop_requested.wait(0.2)
        return False

    # -- running --------------------------------------------------------------------------------

    def wait(self) -> int:
        """Block until a stop signal (then stop everything and return 0) or a child dies (1)."""
        try:
            while not self._stop_requested.wait(0.5):
                self._raise_if_a_child_exited()
        except ProcessExited as exited:
            self._say(f"{exited}; stopping the others.")
            self.stop_all()
            return 1
        self.stop_all()
        return 0

    def _raise_if_stopped(self) -> None:
        if self._stop_requested.is_set():
            raise Stopped

    def _raise_if_a_child_exited(self) -> None:
        """Raise ProcessExited for a died child, unless it is one to restart: then schedule
        its restart (or carry it out when due)."""
        now = time.monotonic()
        for process in self.processes:
            if process.restart_due is not None:
                if now >= process.restart_due:
                    self._restart(process)
                continue
            returncode = process.popen.poll()
            if returncode is None:
                continue
            if not process.restart:
                raise ProcessExited(process.name, returncode)
            process.restarted_at = [
                at for at in process.restarted_at if now - at < self.restart_window_seconds
            ]
            if len(process.restarted_at) >= self.max_restarts:
                raise ProcessExited(
                    process.name,
                    returncode,
                    f" again, after {len(process.restarted_at)} restarts in "
                    f"{self.restart_window_seconds:g} s; giving up",
                )
            delay = min(
                self.restart_backoff_cap_seconds,
                self.restart_backoff_seconds * 2 ** len(process.restarted_at),
            )
            process.restart_due = now + delay
            self._say(
                f"{process.name} exited with status {returncode}; restarting it in {delay:g} s."
            )

    def _restart(self, process: ManagedProcess) -> None:
        # What the died leader left in its group (e.g. pool children) goes first, so that two
        # generations never consume side by side.
        _signal_group(process.group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=5)
        self._reap()
        process.popen = _spawn(process.argv, process.log, process.env)
        process.restarted_at.append(time.monotonic())
        process.restart_due = None
        self._say(f"{process.name} restarted (pid {process.popen.pid}).")

    # -- stopping -------------------------------------------------------------------------------

    def stop_all(self) -> None:
        """SIGTERM every child's group, wait up to the grace period, then SIGKILL what is left."""
        if not self.processes:
            return
        names = ", ".join(process.name for process in self.processes)
        self._say(f"Stopping {names}...")
        for process in reversed(self.processes):
            _signal_group(process.group, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        while time.monotonic() < deadline and self._any_group_alive():
            self._reap()
            time.sleep(0.05)
        for process in self.processes:
            if _group_alive(process.group):
                self._say(f"{process.name} did not stop in {self.grace_seconds:g} s; killing it.")
                _signal_group(process.group, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)
            if process.log is not None:
                process.log.close()
        self._reap()
        self.processes = []
        self._say("Stopped.")

    def _any_group_alive(self) -> bool:
        return any(_group_alive(process.group) for process in self.processes)

    def _reap(self) -> None:
        # Leaders are reaped through their Popen; orphaned grandchildren (we are their
        # subreaper) through waitpid, so that none lingers as a zombie in its group.
        for process in self.processes:
            process.popen.poll()
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


def _spawn(argv: list[str], log: IO[bytes] | None, env: dict[str, str] | None) -> subprocess.Popen:
    # The argv comes from the caller's code (the demo launcher), never from user input.
    return subprocess.Popen(  # noqa: S603
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log if log is not None else None,
        stderr=subprocess.STDOUT if log is not None else None,
        env=env,
        process_group=0,
    )


def _signal_group(group: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, number)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _become_child_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
