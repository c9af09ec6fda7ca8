"""The automation API on the real stack: a pipeline reports files landed, requests the daily
trigger, an operator's token approves it, a Celery worker sends it to the Optimove sandbox, and
the pipeline's long poll sees it succeed."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from dashboard.api import webhooks
from dashboard.api.models import WebhookDelivery
from dashboard.api.services import api_token_create
from dashboard.api.tasks import webhooks_dispatch
from dashboard.audit.trail import Actor
from dashboard.clock import next_utc_midnight, utc_now
from tests.dashboard.api.test_webhooks import Receiver
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def webhook_receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def bearer(team, role: str) -> dict[str, str]:
    user = getattr(team, role).user
    _, secret = api_token_create(actor=Actor(user=user), user=user, tenant=team.tenant, name=role)
    return {"Authorization": f"Bearer {secret}"}


def test_pipeline_files_landed_request_approve_wait(
    team, worker, sandboxes, sandbox_connection, webhook_receiver
):
    if (next_utc_midnight(utc_now()) - utc_now()).total_seconds() < 15 * 60:
        pytest.skip("too close to UTC midnight for a TriggerDaily run to stay in its day")
    team.tenant.require_files_landed = True
    team.tenant.save()
    sandbox_connection(team.tenant, "optimove_batch")
    secret = webhooks.webhook_set(
        actor=Actor(user=team.admin.user), tenant=team.tenant, url=webhook_receiver.url
    )
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

    # The beat's dispatcher, run by the worker: the webhook hears of the run's end, signed.
    webhooks_dispatch.delay()
    wait_for(
        lambda: WebhookDelivery.objects.filter(status_code=200).exists(),
        timeout=60,
        message="the webhook delivery, recorded",
    )
    headers, body = webhook_receiver.received[0]
    assert json.loads(body)["run"]["id"] == run["id"]
    timestamp = int(headers["TriggerDesk-Signature"].split(",")[0].removeprefix("t="))
    assert headers["TriggerDesk-Signature"] == webhooks.signature(secret, timestamp, body)
    assert len(webhook_receiver.received) == 1
