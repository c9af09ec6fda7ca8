"""The image and the compose stack, checked as files (no Docker engine in CI; README
"Deployment" says how the image was built and run with buildah here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
APP_SERVICES = {"migrate", "web", "worker-send", "worker-poll", "beat", "sandboxes"}


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
    assert commands["beat"].startswith("celery -A dashboard beat")
    assert commands["migrate"] == "python manage.py migrate --no-input"
    assert services["sandboxes"]["profiles"] == ["demo"]


def test_compose_waits_for_health_and_migrations_and_keeps_data_in_named_volumes():
    document = compose()
    services = document["services"]
    for name in ("web", "worker-send", "worker-poll", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis", "web", "worker-send", "worker-poll", "sandboxes"):
        assert services[name]["healthcheck"]["test"], name
    assert set(document["volumes"]) == {"postgres-data", "redis-data", "uploads"}
    # Altcraft recipient files are written by web and read by the send workers.
    for name in ("web", "worker-send"):
        assert "uploads:/var/lib/triggerdesk/uploads" in services[name]["volumes"], name
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["beat"]["deploy"]["replicas"] == 1
