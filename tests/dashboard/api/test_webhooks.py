"""The per-tenant webhook: one signed notification per ended run, retried, every attempt kept."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from dashboard.api import webhooks
from dashboard.api.models import Webhook, WebhookDelivery, WebhookNotification
from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent
from dashboard.runs.states import RunState
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


class Receiver:
    """A pipeline's webhook endpoint on loopback: answers `statuses` in turn, records requests."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/triggerdesk"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def ended_run(team, state=RunState.SUCCEEDED):
    from dashboard.clock import utc_now

    return RunFactory(
        tenant=team.tenant, connection__tenant=team.tenant, state=state, finished_at=utc_now()
    )


def test_a_finished_run_is_notified_once_with_a_valid_signature(team, receiver):
    secret = webhooks.webhook_set(
        actor=Actor(user=team.admin.user), tenant=team.tenant, url=receiver.url
    )
    assert secret.startswith("whsec_")
    assert secret not in str(Webhook.objects.values().first())
    run = ended_run(team)
    RunFactory(tenant=team.tenant, connection__tenant=team.tenant, state=RunState.QUEUED)
    created = webhooks.webhooks_dispatch()
    assert len(created) == 1
    assert webhooks.webhooks_dispatch() == []  # found again: not notified twice
    assert webhooks.webhook_deliver(notification_id=created[0]) == "delivered"
    headers, body = receiver.received[0]
    timestamp, digest = (
        part.split("=", 1)[1] for part in headers["TriggerDesk-Signature"].split(",")
    )
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(digest, expected.hexdigest())
    payload = json.loads(body)
    assert payload["event"] == "run.finished" and payload["run"]["id"] == run.pk
    assert payload["run"]["state"] == "succeeded"
    assert headers["TriggerDesk-Delivery"] == str(created[0])
    assert webhooks.webhook_deliver(notification_id=created[0]) == "skipped"
    assert WebhookDelivery.objects.get().status_code == 200


def test_failures_are_recorded_and_retried_until_the_limit(team, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    webhooks.webhook_set(actor=Actor(user=team.admin.user), tenant=team.tenant, url=receiver.url)
    ended_run(team, RunState.FAILED)
    (notification_id,) = webhooks.webhooks_dispatch()
    receiver.statuses = [500, 503, 500]
    outcomes = [webhooks.webhook_deliver(notification_id=notification_id) for _ in range(4)]
    assert outcomes == ["retry", "retry", "failed", "skipped"]
    deliveries = WebhookDelivery.objects.order_by("attempt")
    assert [(d.attempt, d.status_code) for d in deliveries] == [(1, 500), (2, 503), (3, 500)]
    assert WebhookNotification.objects.get().state == "failed"
    assert [webhooks.retry_countdown(n) for n in (1, 2, 3, 20)] == [10, 20, 40, 3600]


def test_an_unreachable_receiver_is_a_recorded_attempt(team, receiver):
    webhooks.webhook_set(actor=Actor(user=team.admin.user), tenant=team.tenant, url=receiver.url)
    receiver.server.shutdown()
    receiver.server.server_close()
    ended_run(team)
    (notification_id,) = webhooks.webhooks_dispatch()
    assert webhooks.webhook_deliver(notification_id=notification_id) == "retry"
    assert "could not reach" in WebhookDelivery.objects.get().error


def test_webhook_url_must_be_a_public_https_host(team):
    from django.core.exceptions import ValidationError

    for url in ("http://10.0.0.5/hook", "https://192.168.1.1/x", "ftp://example.com"):
        with pytest.raises(ValidationError):
            webhooks.webhook_set(actor=Actor(user=team.admin.user), tenant=team.tenant, url=url)


def test_admins_set_the_webhook_in_the_page_and_see_the_secret_once(team, receiver):
    admin = Client()
    admin.force_login(team.admin.user)
    page = admin.post("/t/acme/api-tokens/webhook/", {"url": receiver.url})
    assert page.status_code == 201
    assert 'class="webhook-secret">whsec_' in page.content.decode()
    # The webhook section sits once in the page's content, never inside its <title>.
    title = page.content.decode().split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.strip() == "API tokens · Acme Sports"
    assert page.content.decode().count("Webhook when a run ends") == 1
    assert "whsec_" not in admin.get("/t/acme/api-tokens/").content.decode()
    assert AuditEvent.objects.filter(action="api_webhook.set").exists()
    marketer = Client()
    marketer.force_login(team.marketer.user)
    assert marketer.post("/t/acme/api-tokens/webhook/", {"url": receiver.url}).status_code == 403
    assert admin.post("/t/acme/api-tokens/webhook/remove/").status_code == 302
    assert not Webhook.objects.exists()
