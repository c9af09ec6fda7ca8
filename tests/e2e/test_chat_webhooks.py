"""Chat webhooks on the real stack: a live Celery worker posts a request's approval news to a
local receiver after the commit, Slack JSON and a Teams Adaptive Card, without any token."""

from __future__ import annotations

import pytest
from django.core import mail

from dashboard.approval_links.services import approval_link_decide
from dashboard.audit.trail import Actor
from dashboard.chat_webhooks.services import chat_webhooks_set
from dashboard.clock import utc_now
from dashboard.runs import services
from tests.dashboard.approval_links.conftest import tokens_in_outbox
from tests.dashboard.chat_webhooks.receiver import ChatReceiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    receiver = ChatReceiver().start()
    yield receiver
    receiver.stop()


def test_a_worker_posts_the_request_and_its_approval_to_slack_and_teams(
    team, worker, sandboxes, sandbox_connection, receiver
):
    connection = sandbox_connection(team.tenant, "optimove_batch", name="Optimove EU")
    chat_webhooks_set(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        reason="Approvals in chat",
        slack_url=receiver.url("/slack/secret-part"),
        teams_url=receiver.url("/teams/secret-part"),
    )
    run = services.run_submit(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_trigger_daily",
        parameters={"wait_time_for_validation_seconds": None},
        idempotency_key="chat-e2e",
        approval_required=True,
        attestation="All of today's files have finished uploading.",
        utc_date=utc_now().date(),
        check_duplicates=False,
    )
    posts = receiver.wait_for(2)
    assert {path for path, _body, _raw in posts} == {"/slack/secret-part", "/teams/secret-part"}
    tokens = tokens_in_outbox()
    assert len(mail.outbox) == 3 and len(tokens) == 3
    approval_link_decide(
        token=tokens["oscar@example.com"],
        actor=Actor(user=team.operator.user),
        approve=True,
        comment="Checked",
        fingerprint_seen=run.parameters_hash,
    )
    posts = receiver.wait_for(4)
    slack = [body for path, body, _raw in posts if path == "/slack/secret-part"]
    teams = [body for path, body, _raw in posts if path == "/teams/secret-part"]
    assert any(body["text"].startswith("Approved by oscar") for body in slack)
    assert all(
        body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        for body in teams
    )
    everything = " ".join(raw for _path, _body, raw in posts)
    assert not any(token in everything for token in tokens.values())
    assert "secret-part" not in everything
