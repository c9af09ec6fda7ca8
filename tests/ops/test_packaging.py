"""The image and the compose stack, checked as files (no Docker engine in CI; README
"Deployment" says how the image was built and run with buildah here)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.ops.test_settings import documented_environment

REPO = Path(__file__).resolve().parents[2]
APP_SERVICES = {
    "migrate",
    "web",
    "worker-send",
    "worker-interactive",
    "worker-poll",
    "beat",
    "sandboxes",
}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck():
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, re.MULTILINE)
    assert [name for _, name in stages] == ["build", "runtime"]
    assert "python:3.12-slim" in text
    assert re.search(r"^USER\s+10001", text, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*healthz", text, re.MULTILINE | re.DOTALL)
    build_stage = text.split("AS runtime")[0]
    assert "collectstatic" in build_stage  # static files collected at build time
    assert "compilemessages" in build_stage  # the translations compiled at build time
    assert "DJANGO_ENV=production" in text


def test_dockerignore_is_an_allow_list_without_secrets_or_local_state():
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything out, then only what the image needs back in
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "manage.py",
        "dashboard",
        "campaigns",
        "batchjobs",
        "templates",
        "static",
        "locale",
    }
    assert "**/*.key" in lines and "**/.env" in lines


def test_compose_has_every_role_from_one_image():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    images = {services[name].get("image") for name in APP_SERVICES}
    assert len(images) == 1
    commands = {name: " ".join(map(str, services[name]["command"])) for name in APP_SERVICES}
    assert "-Q send " in commands["worker-send"] and "poll" not in commands["worker-send"]
    assert "-Q poll " in commands["worker-poll"] and "send" not in commands["worker-poll"]
    # A person's click never waits behind a burst: its queue has workers of its own.
    assert "-Q interactive " in commands["worker-interactive"]
    assert commands["beat"].startswith("celery -A dashboard --quiet beat")
    assert commands["migrate"] == "python manage.py migrate --no-input"
    assert services["sandboxes"]["profiles"] == ["demo"]


def test_compose_waits_for_health_and_migrations_and_keeps_data_in_named_volumes():
    document = compose()
    services = document["services"]
    for name in ("web", "worker-send", "worker-interactive", "worker-poll", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    for name in (
        "postgres",
        "redis",
        "web",
        "worker-send",
        "worker-interactive",
        "worker-poll",
        "sandboxes",
    ):
        assert services[name]["healthcheck"]["test"], name
    assert set(document["volumes"]) == {"postgres-data", "redis-data", "uploads"}
    # Altcraft recipient files are written by web and read by the send workers.
    for name in ("web", "worker-send", "worker-interactive"):
        assert "uploads:/var/lib/triggerdesk/uploads" in services[name]["volumes"], name
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["beat"]["deploy"]["replicas"] == 1


# -- the web role as compose runs it, with the documented settings --------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dockerfile_healthcheck() -> list[str]:
    text = (REPO / "Dockerfile").read_text()
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])\s*$", text, re.MULTILINE | re.DOTALL)
    return json.loads(match[1])


def web_command(port: int) -> list[str]:
    """compose's `web` command, bound to a free loopback port with one worker process."""
    command = []
    for part in map(str, compose()["services"]["web"]["command"]):
        if part.startswith("--bind="):
            part = f"--bind=127.0.0.1:{port}"
        elif part.startswith("--workers="):
            part = "--workers=1"
        assert "${" not in part, part  # every compose variable is replaced above
        command.append(part)
    assert command[0] == "gunicorn"
    return [str(Path(sys.executable).with_name("gunicorn")), *command[1:]]


@dataclass
class Web:
    port: int
    environ: dict[str, str]
    log_path: Path
    process: subprocess.Popen

    def log_lines(self) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        """SIGTERM, as `docker compose stop` sends, and wait for gunicorn to exit."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def production_environment(home: Path) -> dict[str, str]:
    """.env.example's settings (secrets filled in), with this machine's database and Redis."""
    return {
        **documented_environment(),
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "DJANGO_SETTINGS_MODULE": "dashboard.project.settings",
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> None:
    """collectstatic as the image's build stage runs it (into the ignored staticfiles/)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=REPO,
        env=production_environment(tmp_path_factory.mktemp("home")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def web(tmp_path, collected_static) -> Iterator[Web]:
    """gunicorn started as compose starts it, with the documented settings, on a free port."""
    port = free_port()
    environ = production_environment(tmp_path)
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            web_command(port),
            cwd=REPO,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    web = Web(port, environ, log_path, process)
    try:
        deadline = time.monotonic() + 60
        while "Booting worker" not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield web
    finally:
        web.stop()


def run_probe(command: list[str], web: Web, **environ: str) -> subprocess.CompletedProcess:
    """Run a health check command against `web` (its port instead of 8000)."""
    command = [sys.executable if part == "python" else part for part in command]
    command = [part.replace("127.0.0.1:8000", f"127.0.0.1:{web.port}") for part in command]
    deadline = time.monotonic() + 60
    while True:  # the worker has booted; wait until it accepts connections
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", web.port), 1):
            break
        assert time.monotonic() < deadline, "\n".join(web.log_lines())
        time.sleep(0.1)
    return subprocess.run(
        command,
        cwd=REPO,
        env={**web.environ, **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_health_checks_pass_with_the_documented_settings(web):
    """Django answers 400 to a Host outside ALLOWED_HOSTS on every path (the host check is a
    security control and stays on): the probe names the site, so the container is healthy."""
    compose_test = compose()["services"]["web"]["healthcheck"]["test"]
    assert compose_test[0] == "CMD" and compose_test[1:] == dockerfile_healthcheck()

    probed = run_probe(dockerfile_healthcheck(), web)
    other_host = run_probe(dockerfile_healthcheck(), web, ALLOWED_HOSTS="elsewhere.example")

    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert other_host.returncode == 1 and "HTTP 400" in other_host.stderr


@pytest.mark.slow
def test_web_writes_only_json_lines_from_start_up_to_shut_down(web):
    assert run_probe(dockerfile_healthcheck(), web).returncode == 0

    web.stop()

    entries = [json.loads(line) for line in web.log_lines()]  # each one JSON, or this raises
    messages = [entry["message"] for entry in entries if entry["logger"] == "gunicorn.error"]
    assert any(message.startswith("Starting gunicorn") for message in messages)
    assert any(message.startswith("Booting worker") for message in messages)
    assert any(message.startswith("Shutting down") for message in messages)
