"""The automation API on the real stack: a pipeline reports files landed, requests the daily
trigger, an operator's token approves it, a Celery worker sends it to the Optimove sandbox, and
the pipeline's long poll sees it succeed."""

from __future__ import annotations

import pytest
from django.test import Client

from dashboard.api.services import api_token_create
from dashboard.audit import Actor
from dashboard.clock import next_utc_midnight, utc_now
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def bearer(team, role: str) -> dict[str, str]:
    user = getattr(team, role).user
    _, secret = api_token_create(actor=Actor(user=user), user=user, tenant=team.tenant, name=role)
    return {"Authorization": f"Bearer {secret}"}


def test_pipeline_files_landed_request_approve_wait(team, worker, sandboxes, sandbox_connection):
    if (next_utc_midnight(utc_now()) - utc_now()).total_seconds() < 15 * 60:
        pytest.skip("too close to UTC midnight for a TriggerDaily run to stay in its day")
    team.tenant.require_files_landed = True
    team.tenant.save()
    sandbox_connection(team.tenant, "optimove_batch")
    pipeline, operator = bearer(team, "marketer"), bearer(team, "operator")
    api = Client()
    base = "/api/v1/t/acme"

    landed = api.post(
        f"{base}/files-landed",
        {"utc_date": utc_now().date().isoformat()},
        content_type="application/json",
        headers=pipeline,
    )
    assert landed.status_code == 200
    requested = api.post(
        f"{base}/daily-trigger",
        {"files_uploaded_attested": True},
        content_type="application/json",
        headers={**pipeline, "Idempotency-Key": "e2e-daily"},
    )
    assert requested.status_code == 201
    run = requested.json()
    assert run["state"] == "awaiting_approval"

    approved = api.post(
        f"{base}/runs/{run['id']}/approve",
        {"parameters_hash": run["parameters_hash"]},
        content_type="application/json",
        headers=operator,
    )
    assert approved.status_code == 200

    def finished():
        body = api.get(f"{base}/runs/{run['id']}", {"wait": 30}, headers=pipeline).json()
        return body if body["terminal"] else None

    body = wait_for(finished, timeout=90, message="the approved run to finish")
    assert body["state"] == "succeeded", body
    actions = [entry["action"] for entry in body["timeline"]]
    assert actions[:2] == ["run.requested", "run.approved"]
    assert sandboxes["optimove_batch"].state()["tenants"]["demo"]["successful_triggers"] == 1
    replay = api.post(
        f"{base}/daily-trigger",
        {"files_uploaded_attested": True},
        content_type="application/json",
        headers={**pipeline, "Idempotency-Key": "e2e-daily"},
    )
    assert replay.status_code == 200 and replay.json()["state"] == "succeeded"
