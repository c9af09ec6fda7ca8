"""`make demo` end to end: SQLite, kombu's filesystem broker and every demo process, run as a user.

The rest of the suite runs on PostgreSQL and Redis, so nothing else notices SQL that only
PostgreSQL understands. This test does what the Makefile's demo target does (migrate,
collectstatic, `manage.py run_demo`), in its own demo directory, static root and free ports, with
DATABASE_URL and REDIS_URL unset: it logs in as the demo marketer, triggers a demo event generator
for two topics through the real pages, waits until both runs succeeded and the Optimove sandbox
received each exactly once, then stops the demo with SIGTERM and checks that nothing is left.

Everything goes through `manage.py` subprocesses, HTTP and a read-only look at the SQLite file:
no import of the application, so it keeps working when modules move.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import REPO, closed_port, wait_for

pytestmark = pytest.mark.slow

# Generous: a loaded two-core machine starts five Python processes here.
START_TIMEOUT_SECONDS = 120.0
RUNS_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 60.0
STEP_TIMEOUT_SECONDS = 300.0
LOG_TAIL_CHARACTERS = 4000
TENANT = "demo"
GENERATOR = "Match Start Notifications"
TALKIFAI_JOB = "job-scheduled-001"
TERMINAL_STATES = {"succeeded", "failed", "cancelled"}


def _demo_environment(tmp_path: Path, demo_dir: Path, sandbox_port: int) -> dict[str, str]:
    """The environment the Makefile's demo target exports, with everything moved under tmp_path."""
    credentials_key = tmp_path / "credentials.key"
    credentials_key.write_text(_fernet_key() + "\n")
    secret_key = tmp_path / "secret.key"
    secret_key.write_text(os.urandom(40).hex() + "\n")
    for path in (credentials_key, secret_key):
        path.chmod(0o600)
    environment = {
        name: value
        for name, value in os.environ.items()
        # The test run's own PostgreSQL, Redis and Django settings must not reach the demo.
        if name not in {"DATABASE_URL", "REDIS_URL"} and not name.startswith(("DJANGO_", "CELERY_"))
    }
    environment.update(
        DEMO_DIR=str(demo_dir),
        STATIC_ROOT=str(tmp_path / "static"),
        CREDENTIALS_KEYS_FILE=str(credentials_key),
        SECRET_KEY_FILE=str(secret_key),
        SANDBOX_BASE_URL=f"http://127.0.0.1:{sandbox_port}",
        VENDOR_HOST_ALLOWLIST=f"127.0.0.1:{sandbox_port}",
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
        DJANGO_SETTINGS_MODULE="dashboard.project.settings",
        PYTHONUNBUFFERED="1",
    )
    return environment


def _fernet_key() -> str:
    """A new credentials key: what Fernet.generate_key() makes (32 random bytes, URL-safe base64)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _manage(environment: dict[str, str], *arguments: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, f"manage.py {arguments[0]} failed:\n{result.stderr[-2000:]}"


def _process_groups_under(root_pid: int) -> set[int]:
    """The process groups of `root_pid` and of every process below it, read from /proc.

    run_demo starts each of its processes in a group of its own, so its group alone says
    nothing about them.
    """
    children: dict[int, list[int]] = {}
    groups: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        parent, group = (int(field) for field in stat[stat.rindex(")") + 2 :].split()[1:3])
        children.setdefault(parent, []).append(int(entry.name))
        groups[int(entry.name)] = group
    found, pending = set(), [root_pid]
    while pending:
        pid = pending.pop()
        if pid in groups:
            found.add(groups[pid])
        pending.extend(children.get(pid, []))
    return found


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Demo:
    """A running `manage.py run_demo` and the files it writes."""

    def __init__(self, process: subprocess.Popen, output: Path, demo_dir: Path, web_port: int):
        self.process = process
        self.output = output
        self.demo_dir = demo_dir
        self.web = f"http://127.0.0.1:{web_port}"

    def printed(self) -> str:
        return self.output.read_text(errors="replace")

    def logs(self) -> str:
        """run_demo's output and the tail of each process's log, for a failure message."""
        parts = [f"--- run_demo ---\n{self.printed()[-LOG_TAIL_CHARACTERS:]}"]
        for log in sorted(self.demo_dir.glob("*.log")):
            text = log.read_text(errors="replace")
            parts.append(f"--- {log.name} ---\n{text[-LOG_TAIL_CHARACTERS:]}")
        return "\n".join(parts)

    @contextlib.contextmanager
    def database(self) -> Iterator[sqlite3.Connection]:
        """The demo's SQLite file, read-only (the demo's processes are its only writers)."""
        path = self.demo_dir / "triggerdesk.sqlite3"
        with contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        ) as db:
            yield db

    def web_answers(self) -> bool:
        assert self.process.poll() is None, f"run_demo exited early:\n{self.logs()}"
        try:
            return requests.get(f"{self.web}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    demo_dir = tmp_path / "demo"
    for folder in ("out", "processed", "control"):
        (demo_dir / "broker" / folder).mkdir(parents=True)
    web_port, sandbox_port = closed_port(), closed_port()
    while sandbox_port == web_port:
        sandbox_port = closed_port()
    environment = _demo_environment(tmp_path, demo_dir, sandbox_port)
    _manage(environment, "migrate", "--no-input", "-v0")
    _manage(environment, "collectstatic", "--no-input", "-v0")
    output = tmp_path / "run_demo.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_demo",
                "--web-port",
                str(web_port),
                "--sandbox-port",
                str(sandbox_port),
                "--demo-dir",
                str(demo_dir),
            ],
            cwd=REPO,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Demo(process, output, demo_dir, web_port)
    try:
        yield running
    finally:
        # Whatever happened: nothing of this demo may outlive the test.
        for group in _process_groups_under(process.pid) | {process.pid}:
            if _group_alive(group):
                os.killpg(group, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _wait(demo: Demo, condition, *, timeout: float, message: str, details=lambda: ""):
    """`wait_for`, failing with what the demo printed and logged (and `details()`) on a timeout."""
    try:
        return wait_for(condition, timeout=timeout, interval=0.25, message=message)
    except pytest.fail.Exception as timed_out:
        pytest.fail(f"{timed_out}\n{details()}\n{demo.logs()}", pytrace=False)


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _hidden_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html
    )
    assert match, f"no {name} on the page"
    return match.group(1)


def _log_in(demo: Demo, role: str) -> requests.Session:
    """A session logged in as the demo user with `role`, with the login run_demo printed."""
    printed = _wait(
        demo,
        lambda: (
            "password for all:" in demo.printed()
            and "Press Ctrl-C" in demo.printed()
            and demo.printed()
        ),
        timeout=START_TIMEOUT_SECONDS,
        message="run_demo to print the logins",
    )
    password = re.search(r"password for all: (\S+?)\)", printed).group(1)
    username = re.search(rf"^\s+(\w+)\s+{role}\b", printed, re.MULTILINE).group(1)
    session = requests.Session()
    login_page = session.get(f"{demo.web}/login/", timeout=30)
    assert login_page.status_code == 200
    response = session.post(
        f"{demo.web}/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": _csrf_token(login_page.text),
        },
        headers={"Referer": f"{demo.web}/login/"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, f"login as {username} refused ({response.status_code})"
    return session


def _trigger_two_topics(demo: Demo, session: requests.Session) -> list[str]:
    """Send the demo generator to its first two topics through the trigger page; their keys."""
    with demo.database() as database:
        (generator_id,) = database.execute(
            "SELECT id FROM campaigns_eventgenerator WHERE name = ?", (GENERATOR,)
        ).fetchone()
    page_url = f"{demo.web}/t/{TENANT}/campaigns/generators/{generator_id}/trigger/"
    page = session.get(page_url, timeout=30)
    assert page.status_code == 200, page.status_code
    topic_keys = re.findall(r'name="topics" value="([^"]+)"', page.text)[:2]
    assert len(topic_keys) == 2, "the trigger page offers fewer than two topics"
    response = session.post(
        page_url,
        data={
            "csrfmiddlewaretoken": _csrf_token(page.text),
            "idempotency_key": _hidden_value(page.text, "idempotency_key"),
            "topics": topic_keys,
            "when": "now",
            "ctx/match_id": "demo-e2e-1",
            "ctx/match_name": "Arsenal vs Chelsea",
            "ctx/start_time": "2026-02-05T20:00:00",
            "ctx/url": "https://example.com/matches/demo-e2e-1",
        },
        headers={"Referer": page_url},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, (
        f"trigger refused ({response.status_code}):\n{response.text[-2000:]}"
    )
    # Two topics: the trigger group's page, which must open too.
    group_page = session.get(demo.web + response.headers["Location"], timeout=30)
    assert "/campaigns/triggers/" in group_page.url and group_page.status_code == 200
    return topic_keys


def _start_talkifai_job(demo: Demo, session: requests.Session) -> str:
    """Start the demo's scheduled TalkifAI job through its "Start now" page; its TalkifAI id."""
    with demo.database() as database:
        job_pk, batch_job_id = database.execute(
            "SELECT id, batch_job_id FROM batchjobs_batchjob WHERE batch_job_id = ?",
            (TALKIFAI_JOB,),
        ).fetchone()
    page_url = f"{demo.web}/t/{TENANT}/batch/jobs/{job_pk}/start/"
    page = session.get(page_url, timeout=30)
    assert page.status_code == 200, page.status_code
    response = session.post(
        page_url,
        data={
            "csrfmiddlewaretoken": _csrf_token(page.text),
            "idempotency_key": _hidden_value(page.text, "idempotency_key"),
        },
        headers={"Referer": page_url},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, (
        f"start refused ({response.status_code}):\n{response.text[-2000:]}"
    )
    return batch_job_id


def _runs(demo: Demo) -> list[tuple[str, str, str, str]]:
    """(operation, state, parameters, failure message) of every run, oldest first."""
    with demo.database() as database:
        return database.execute(
            "SELECT operation, state, parameters, failure_message FROM dashboard_run ORDER BY id"
        ).fetchall()


def _received(sandbox_root: str, prefix: str, route: str) -> list[dict]:
    """The bodies of the requests one sandbox received on one route, from its control API."""
    state = requests.get(f"{sandbox_root}/{prefix}/__sandbox__/state", timeout=30).json()
    return [
        json.loads(request["body"] or "{}") | {"path": request["path"]}
        for request in state["received"]
        if request["route"] == route
    ]


def test_the_demo_sends_event_generator_runs_and_a_talkifai_start_then_stops_cleanly(demo):
    _wait(demo, demo.web_answers, timeout=START_TIMEOUT_SECONDS, message="the demo's web")
    topic_keys = _trigger_two_topics(demo, _log_in(demo, "marketer"))
    batch_job_id = _start_talkifai_job(demo, _log_in(demo, "operator"))

    runs = _wait(
        demo,
        lambda: (
            (runs := _runs(demo))
            and len(runs) == 3
            and all(state in TERMINAL_STATES for _, state, _, _ in runs)
            and runs
        ),
        timeout=RUNS_TIMEOUT_SECONDS,
        message="the three runs to finish",
        details=lambda: f"runs (operation, state, parameters, failure): {_runs(demo)}",
    )
    assert [(operation, state) for operation, state, _, _ in runs] == [
        ("optimove_run_event_generator", "succeeded"),
        ("optimove_run_event_generator", "succeeded"),
        ("talkifai_start_batch_job", "succeeded"),
    ], runs
    assert sorted(json.loads(parameters)["topic_key"] for _, _, parameters, _ in runs[:2]) == (
        sorted(topic_keys)
    )
    with demo.database() as database:
        sends = database.execute(
            "SELECT status_code FROM dashboard_runattempt WHERE purpose = 'send' ORDER BY run_id"
        ).fetchall()
    assert sends == [(202,), (202,), (200,)]

    # Each request reached its vendor exactly once.
    sandbox_root = re.search(r"Vendor sandboxes: (http://127.0.0.1:\d+)/", demo.printed()).group(1)
    runs_sent = _received(sandbox_root, "optimove-campaigns", "run")
    assert Counter(body["topic_key"] for body in runs_sent) == {key: 1 for key in topic_keys}
    starts_sent = _received(sandbox_root, "talkifai", "start_batch_job")
    assert len(starts_sent) == 1 and batch_job_id in starts_sent[0]["path"], starts_sent

    groups = _process_groups_under(demo.process.pid)
    assert len(groups) >= 5, f"expected run_demo, sandboxes, worker, beat and web: {groups}"
    os.killpg(demo.process.pid, signal.SIGTERM)
    assert demo.process.wait(timeout=STOP_TIMEOUT_SECONDS) == 0, demo.logs()
    _wait(
        demo,
        lambda: not any(_group_alive(group) for group in groups),
        timeout=STOP_TIMEOUT_SECONDS,
        message="every demo process group to be empty",
    )
