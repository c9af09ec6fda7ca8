"""Chat webhooks: validated, encrypted URLs; Slack JSON and Teams Adaptive Cards posted to a
local receiver after the commit; never a secret nor a one-time token; never in an approval's
way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from dashboard.approval_links import services as link_services
from dashboard.audit.trail import Actor
from dashboard.chat_webhooks import services
from dashboard.chat_webhooks.messages import ADAPTIVE_CARD
from dashboard.chat_webhooks.models import ChatWebhook
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.runs import services as run_services
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from dashboard.runs.transitions import RunActionError
from tests.dashboard.approval_links.conftest import tokens_in_outbox
from tests.dashboard.chat_webhooks.conftest import SLACK_PATH, TEAMS_PATH

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def set_both(team, receiver):
    return services.chat_webhooks_set(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        reason="Approvals in #launches",
        slack_url=receiver.url(SLACK_PATH),
        teams_url=receiver.url(TEAMS_PATH),
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/x", "must be an https:// address"),
        ("not a url", "must be an https:// address"),
        ("http://hooks.example.com/x", "must use https"),
        ("https://10.1.2.3/hook", "private or internal address"),
        ("https://169.254.169.254/latest", "private or internal address"),
    ],
)
def test_a_bad_url_is_refused_clearly_and_nothing_changes(team, url, says):
    with pytest.raises(ValidationError) as refused:
        services.chat_webhooks_set(
            actor=Actor(user=team.admin.user), tenant=team.tenant, reason="r", slack_url=url
        )
    assert says in " ".join(refused.value.messages)
    assert not ChatWebhook.objects.exists()
    assert not AuditEvent.objects.filter(action="chat_webhook.changed").exists()


def test_the_urls_are_stored_encrypted_shown_as_hints_and_audited_without_them(team, receiver):
    webhook = set_both(team, receiver)
    assert SLACK_PATH not in webhook.slack_url_encrypted
    assert webhook.slack_url_hint == "127.0.0.1/…part"
    event = AuditEvent.objects.get(action="chat_webhook.changed")
    assert event.summary["reason"] == "Approvals in #launches"
    assert "secret" not in str(event.summary)
    services.chat_webhooks_set(
        actor=Actor(user=team.admin.user), tenant=team.tenant, reason="Teams only", slack_url=""
    )
    assert ChatWebhook.objects.get().targets == ["teams"]


def test_an_approval_request_and_its_outcome_reach_slack_and_teams(
    team, requested_with_chat, receiver, posts_now, django_capture_on_commit_callbacks
):
    run, tokens = requested_with_chat
    slack, teams = receiver.bodies(SLACK_PATH), receiver.bodies(TEAMS_PATH)
    assert len(slack) == 1 and len(teams) == 1
    requested = slack[0]
    assert f"Run #{run.pk}" in requested["text"] and "mia" in requested["text"]
    assert requested["blocks"][0]["type"] == "section"
    button = requested["blocks"][-1]["elements"][0]
    assert button["url"] == f"http://testserver.example/t/acme/runs/{run.pk}/"
    card = teams[0]
    assert card["type"] == "message"
    attachment = card["attachments"][0]
    assert attachment["contentType"] == ADAPTIVE_CARD
    content = attachment["content"]
    assert content["type"] == "AdaptiveCard" and content["body"][0]["type"] == "TextBlock"
    assert content["actions"][0] == {
        "type": "Action.OpenUrl",
        "title": "Open the request",
        "url": f"http://testserver.example/t/acme/runs/{run.pk}/",
    }
    with django_capture_on_commit_callbacks(execute=True):
        link_services.approval_link_decide(
            token=tokens["oscar@example.com"],
            actor=Actor(user=team.operator.user),
            approve=True,
            comment="Files checked",
            fingerprint_seen=run.parameters_hash,
        )
    approved = receiver.bodies(SLACK_PATH)[-1]
    assert approved["text"].startswith("Approved by oscar")
    assert "Files checked" in approved["blocks"][1]["text"]["text"]
    assert (
        "Approved by oscar"
        in receiver.bodies(TEAMS_PATH)[-1]["attachments"][0]["content"]["body"][0]["text"]
    )
    everything = " ".join(raw for _path, _body, raw in receiver.posts)
    for token in tokens.values():
        assert token not in everything
    assert "approval-links" not in everything
    assert "slack-secret-part" not in everything and "teams-secret-part" not in everything
    assert posts_now == ["posted"] * 4


def test_an_expiry_is_posted(
    team, requested_with_chat, receiver, posts_now, django_capture_on_commit_callbacks
):
    run, _tokens = requested_with_chat
    Run.objects.filter(pk=run.pk).update(approval_expires_at=utc_now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RunActionError):
        run_services.run_approve(
            actor=Actor(user=team.operator.user), run=run, parameters_hash_seen=run.parameters_hash
        )
    assert receiver.bodies(SLACK_PATH)[-1]["text"].startswith("Expired unapproved")


def test_a_rejection_is_posted_with_who(
    team, requested_with_chat, receiver, posts_now, django_capture_on_commit_callbacks
):
    run, _tokens = requested_with_chat
    with django_capture_on_commit_callbacks(execute=True):
        run_services.run_reject(actor=Actor(user=team.operator.user), run=run, comment="No")
    assert receiver.bodies(SLACK_PATH)[-1]["text"].startswith("Rejected by oscar")


def test_a_failing_receiver_or_broker_never_fails_the_approval(
    team, requested_with_chat, receiver, posts_now, django_capture_on_commit_callbacks, monkeypatch
):
    run, _tokens = requested_with_chat
    receiver.status = 500
    assert services.chat_post(tenant_id=team.tenant.pk, target="slack", news={}) == "retry"
    receiver.status = 404
    assert services.chat_post(tenant_id=team.tenant.pk, target="teams", news={}) == "failed"

    def broker_down(*args):
        raise ConnectionError("the broker is down")

    from dashboard.chat_webhooks import tasks

    monkeypatch.setattr(tasks.chat_post, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        run_services.run_approve(
            actor=Actor(user=team.operator.user), run=run, parameters_hash_seen=run.parameters_hash
        )
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED


def test_a_test_message_goes_to_every_webhook(
    team, receiver, posts_now, django_capture_on_commit_callbacks
):
    with pytest.raises(ValidationError):
        services.chat_webhook_test(actor=Actor(user=team.admin.user), tenant=team.tenant)
    set_both(team, receiver)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.chat_webhook_test(
            actor=Actor(user=team.admin.user), tenant=team.tenant
        ) == ["slack", "teams"]
    assert "test message" in receiver.bodies(SLACK_PATH)[0]["text"]
    assert AuditEvent.objects.filter(action="chat_webhook.test_requested").exists()


@pytest.fixture
def requested_with_chat(
    team, connection, receiver, posts_now, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "http://testserver.example"
    set_both(team, receiver)
    with django_capture_on_commit_callbacks(execute=True):
        run = run_services.run_submit(
            actor=Actor(user=team.marketer.user),
            tenant=team.tenant,
            connection=connection,
            operation="optimove_trigger_daily",
            parameters={"wait_time_for_validation_seconds": None},
            idempotency_key="link-1",
            approval_required=True,
            attestation="All of today's files have finished uploading.",
            utc_date=utc_now().date(),
            check_duplicates=False,
        )
    return run, tokens_in_outbox()


@pytest.fixture
def connection(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_batch", name="Optimove EU")


def test_a_key_rotation_reencrypts_the_urls(team, receiver, settings):
    from cryptography.fernet import Fernet

    from dashboard.tenancy.services import credentials_rotate_key

    set_both(team, receiver)
    newest = Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [newest, *settings.CREDENTIALS_KEYS]
    rotation = credentials_rotate_key(actor=Actor(label="ops"))
    assert rotation.chat_webhook_urls == 2
    settings.CREDENTIALS_KEYS = [newest]  # the old keys removed: the URLs still decrypt
    assert services.chat_post(tenant_id=team.tenant.pk, target="teams", news={}) == "posted"
