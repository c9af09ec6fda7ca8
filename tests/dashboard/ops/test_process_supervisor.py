"""The supervisor behind `make demo`: a signal stops every process it started, and nothing stays.

Each test runs a small driver (a real `ProcessSupervisor` in its own Python process) with fake
children: a plain sleeper, a shell that leaves a grandchild behind, and one that ignores
SIGTERM. The children write their process ids to files, so the test can check that not one
of them is still alive after the driver returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEADLINE_SECONDS = 60.0

DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dashboard.ops.process_supervisor import ProcessSupervisor, Stopped

    pids = Path(sys.argv[1])
    mode = sys.argv[2]
    with ProcessSupervisor(grace_seconds=1.0) as supervisor:
        supervisor.start("sleeper", ["sh", "-c", f"echo $$ > {pids}/sleeper; exec sleep 300"])
        supervisor.start(
            "parent",
            ["sh", "-c", f"sleep 300 & echo $! > {pids}/grandchild; echo $$ > {pids}/parent; wait"],
        )
        supervisor.start(
            "stubborn",
            [
                sys.executable,
                "-c",
                "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"open('{pids}/stubborn', 'w').write(str(os.getpid())); time.sleep(300)",
            ],
        )
        if mode == "one-dies":
            # It dies only once the others are up, so that every pid is on file.
            others = " ".join(f"{pids}/{name}" for name in ("sleeper", "parent", "grandchild", "stubborn"))
            supervisor.start(
                "short",
                [
                    "sh",
                    "-c",
                    f"echo $$ > {pids}/short; "
                    f"for f in {others}; do while [ ! -s $f ]; do sleep 0.05; done; done; exit 3",
                ],
            )
        print("ready", flush=True)
        sys.exit(supervisor.wait())
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for every purpose that matters here.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _start_driver(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, list[str]]:
    names = ["sleeper", "parent", "grandchild", "stubborn"]
    if mode == "one-dies":
        names.append("short")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(
        lambda: all((tmp_path / name).exists() and (tmp_path / name).read_text() for name in names),
        "every child to write its pid",
    )
    return driver, names


def _pids(tmp_path: Path, names: list[str]) -> dict[str, int]:
    return {name: int((tmp_path / name).read_text()) for name in names}


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_every_process_and_the_supervisor_exits_0(tmp_path, stop_signal):
    driver, names = _start_driver(tmp_path, "run")
    pids = _pids(tmp_path, names)
    assert all(_alive(pid) for pid in pids.values())

    driver.send_signal(stop_signal)
    output, _ = driver.communicate(timeout=DEADLINE_SECONDS)

    assert driver.returncode == 0, output
    assert "Stopping sleeper, parent, stubborn..." in output
    # The one that ignored SIGTERM was killed after the grace period.
    assert "stubborn did not stop in 1 s; killing it." in output
    _wait_for(lambda: not any(_alive(pid) for pid in pids.values()), "no process left")


@pytest.mark.slow
def test_a_process_that_dies_stops_the_others_and_the_supervisor_exits_1(tmp_path):
    driver, names = _start_driver(tmp_path, "one-dies")
    pids = _pids(tmp_path, names)

    output, _ = driver.communicate(timeout=DEADLINE_SECONDS)

    assert driver.returncode == 1, output
    assert "short exited with status 3; stopping the others." in output
    _wait_for(lambda: not any(_alive(pid) for pid in pids.values()), "no process left")


RESTARTING_DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dashboard.ops.process_supervisor import ProcessSupervisor

    pids = Path(sys.argv[1])
    mode = sys.argv[2]
    with ProcessSupervisor(
        grace_seconds=1.0, restart_backoff_seconds=0.1, max_restarts=2
    ) as supervisor:
        supervisor.start("web", ["sh", "-c", f"echo $$ > {pids}/web; exec sleep 300"])
        if mode == "killed":
            command = f"echo $$ >> {pids}/worker; exec sleep 300"
        else:
            command = f"echo $$ >> {pids}/worker; exit 3"
        supervisor.start("worker", ["sh", "-c", command], restart=True)
        print("ready", flush=True)
        sys.exit(supervisor.wait())
    """
)


def _worker_pids(tmp_path: Path) -> list[int]:
    path = tmp_path / "worker"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _start_restarting_driver(tmp_path: Path, mode: str) -> subprocess.Popen:
    driver = subprocess.Popen(
        [sys.executable, "-c", RESTARTING_DRIVER, str(tmp_path), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(lambda: (tmp_path / "web").exists() and _worker_pids(tmp_path), "the children")
    return driver


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_a_stop_signal_still_ends_everything(tmp_path):
    """The demo's worker died (a broker error) and took the whole demo down with it."""
    driver = _start_restarting_driver(tmp_path, "killed")
    (first,) = _worker_pids(tmp_path)
    web = int((tmp_path / "web").read_text())

    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: len(_worker_pids(tmp_path)) == 2, "the worker to be started again")
    second = _worker_pids(tmp_path)[1]
    assert _alive(second) and _alive(web) and driver.poll() is None

    driver.send_signal(signal.SIGTERM)
    output, _ = driver.communicate(timeout=DEADLINE_SECONDS)

    assert driver.returncode == 0, output
    assert "worker exited with status -9; restarting it in 0.1 s." in output
    assert f"worker restarted (pid {second})." in output
    _wait_for(lambda: not any(_alive(pid) for pid in (first, second, web)), "no process left")


@pytest.mark.slow
def test_a_worker_that_keeps_dying_is_given_up_on_and_stops_the_others(tmp_path):
    driver = _start_restarting_driver(tmp_path, "keeps-dying")

    output, _ = driver.communicate(timeout=DEADLINE_SECONDS)

    assert driver.returncode == 1, output
    # Started once, restarted twice (after 0.1 s, then 0.2 s), then given up on.
    assert len(_worker_pids(tmp_path)) == 3
    assert "restarting it in 0.1 s." in output and "restarting it in 0.2 s." in output
    assert "worker exited with status 3 again, after 2 restarts in 600 s; giving up" in output
    assert not _alive(int((tmp_path / "web").read_text()))
