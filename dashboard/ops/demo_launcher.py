"""`make demo`'s processes: the sandboxes, the demo data, two workers, beat and the web server.

Every process runs under one `ProcessSupervisor`, so Ctrl-C or SIGTERM stops all of them and
leaves nothing behind (the launcher returns 0 once every process group is empty). A worker or
beat that dies is started again after a short backoff (see ProcessSupervisor); any other process
that dies stops the demo.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from dashboard.ops.process_supervisor import ProcessExited, ProcessSupervisor, Stopped

SANDBOX_READY_TIMEOUT_SECONDS = 30.0
# Worker processes with threads: the demo's filesystem broker and in-process rate limiter. One
# for bursts and polls, one for the single sends a person starts (never behind a burst).
WORKER_OPTIONS = ("--pool", "threads", "-c", "4", "--loglevel", "INFO")
INTERACTIVE_WORKER_OPTIONS = ("--pool", "threads", "-c", "2", "--loglevel", "INFO")
WEB_OPTIONS = ("-w", "2", "--threads", "4", "--access-logfile", "-")


def _sandboxes_answer(sandbox_port: int) -> bool:
    url = f"http://127.0.0.1:{sandbox_port}/talkifai/__sandbox__/state"
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def run_demo(
    *,
    web_port: int,
    sandbox_port: int,
    demo_dir: Path,
    say: Callable[[str], None],
    grace_seconds: float = 10.0,
) -> int:
    """Start the demo's processes and supervise them until a stop signal; the exit status.

    0 after a Ctrl-C or SIGTERM (everything stopped), 1 when a step or a process failed (the
    others are stopped too). Logs go to `demo_dir`.
    """
    bin_dir = Path(sys.executable).parent
    python = sys.executable
    manage = [python, "manage.py"]
    celery = str(bin_dir / "celery")
    gunicorn = str(bin_dir / "gunicorn")
    beat_schedule = str(demo_dir / "celerybeat-schedule")
    with ProcessSupervisor(grace_seconds=grace_seconds, say=say) as supervisor:
        try:
            supervisor.start(
                "sandboxes",
                [*manage, "run_sandboxes", "--port", str(sandbox_port)],
                log_path=demo_dir / "sandboxes.log",
            )
            if not supervisor.wait_until(
                lambda: _sandboxes_answer(sandbox_port),
                timeout_seconds=SANDBOX_READY_TIMEOUT_SECONDS,
            ):
                say(f"The sandboxes did not answer on port {sandbox_port}; see {demo_dir}/.")
                return 1
            if supervisor.run_step("setup_demo", [*manage, "setup_demo"]) != 0:
                say("setup_demo failed; stopping.")
                return 1
            supervisor.start(
                "worker",
                [celery, "-A", "dashboard", "worker", "-Q", "send,poll", *WORKER_OPTIONS],
                log_path=demo_dir / "worker.log",
                restart=True,
            )
            supervisor.start(
                "worker-interactive",
                [
                    celery,
                    "-A",
                    "dashboard",
                    "worker",
                    "-Q",
                    "interactive",
                    "-n",
                    "interactive@%h",
                    *INTERACTIVE_WORKER_OPTIONS,
                ],
                log_path=demo_dir / "worker-interactive.log",
                restart=True,
            )
            supervisor.start(
                "beat",
                [
                    celery,
                    "-A",
                    "dashboard",
                    "beat",
                    "--schedule",
                    beat_schedule,
                    "--loglevel",
                    "INFO",
                ],
                log_path=demo_dir / "beat.log",
                restart=True,
            )
            supervisor.start(
                "web",
                [gunicorn, "dashboard.project.wsgi", "-b", f"127.0.0.1:{web_port}", *WEB_OPTIONS],
                log_path=demo_dir / "web.log",
            )
            say("")
            say(f"TriggerDesk demo is running: http://127.0.0.1:{web_port}/")
            say(f"Vendor sandboxes: http://127.0.0.1:{sandbox_port}/ (logs in {demo_dir}/)")
            if supervisor.run_step("logins", [*manage, "setup_demo", "--print-logins"]) != 0:
                return 1
            say("Press Ctrl-C to stop.")
            return supervisor.wait()
        except Stopped:
            return 0
        except ProcessExited as exited:
            say(f"{exited}; stopping the others (see {demo_dir}/).")
            return 1
