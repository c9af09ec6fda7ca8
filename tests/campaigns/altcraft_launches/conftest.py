"""Fixtures for Altcraft launches: an Altcraft connection to the sandbox, a registered trigger,
uploads stored in a temporary directory, and helpers that send a launch's chunks the way a
worker does (run_send / run_poll called directly)."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pytest

from campaigns.altcraft_launches import services
from dashboard.audit import Actor


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.ALTCRAFT_UPLOAD_DIR


@pytest.fixture
def read_by_worker(django_capture_on_commit_callbacks, monkeypatch):
    """A block after which the readings its requests queued on commit run, as a worker runs
    them: after the response, not inside the request. (The task's body is called directly:
    Celery's eager mode would close the test's database connection after the task.)"""
    from campaigns.altcraft_launches import tasks

    def run_now(args=None, kwargs=None, **options):
        tasks.prepare_launch(*(args or ()), **(kwargs or {}))

    @contextlib.contextmanager
    def block():
        with monkeypatch.context() as patched:
            patched.setattr(tasks.prepare_launch, "apply_async", run_now)
            with django_capture_on_commit_callbacks(execute=True):
                yield

    return block


@pytest.fixture
def altcraft(sandboxes):
    return sandboxes["altcraft"]


@pytest.fixture
def connection(team, sandbox_connection):
    return sandbox_connection(team.tenant, "altcraft", name="Altcraft sandbox")


@pytest.fixture
def trigger(team, connection):
    return services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=connection,
        trigger_id=8,
        name="Abandoned cart",
        content_fields=["page"],
    )


def actor_of(membership) -> Actor:
    return Actor(user=membership.user)


def csv_bytes(header: str, values: list[str], *, encoding: str = "utf-8") -> bytes:
    return ("\n".join([header, *values]) + "\n").encode(encoding)


def prepare(
    membership,
    trigger,
    file_content: bytes,
    *,
    name: str = "recipients.csv",
    kind: str = "start_batch",
    mapping: dict | None = None,
    **parameters: Any,
):
    """Upload `content` and read it: the preview (a launch in previewed or discarded)."""
    upload = services.upload_store(pieces=[file_content])
    launch = services.launch_create(
        actor=actor_of(membership),
        trigger=trigger,
        kind=kind,
        upload=upload,
        source_name=name,
        parameters={"matching": "email", **parameters},
        idempotency_key=uuid.uuid4().hex,
    )
    return services.launch_prepare(actor=actor_of(membership), launch=launch, mapping=mapping)


def send_all(launch) -> list[str]:
    """Send each chunk's current run once, as a worker would; the outcomes."""
    from dashboard.runs.services import run_send

    outcomes = []
    for chunk in launch.chunks.order_by("number"):
        if chunk.run_id is not None:
            outcomes.append(run_send(run_id=chunk.run_id))
    return outcomes


def received_values(altcraft, route: str = "start_batch") -> list[str]:
    """Every matching value the sandbox received (processed requests only)."""
    values = []
    for received in altcraft.received_on(route):
        if not received.processed:
            continue
        for item in json.loads(received.body)["data"]:
            values.append(
                item.get("email") or item.get("field_value") or item.get("data", {}).get("email")
            )
    return values
