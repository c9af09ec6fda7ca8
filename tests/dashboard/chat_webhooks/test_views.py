"""The chat webhooks page (tenant settings): admins only, hints only, clear errors."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.chat_webhooks.models import ChatWebhook
from dashboard.models import AuditEvent
from tests.dashboard.chat_webhooks.conftest import SLACK_PATH

pytestmark = [pytest.mark.django_db]


def page(slug: str = "acme") -> str:
    return reverse("chat_webhooks_page", args=[slug])


def test_only_admins_see_the_page_and_the_settings_link_it(team):
    assert team.client_for("marketer").get(page()).status_code == 403
    assert team.client_for("operator").get(page()).status_code == 403
    response = team.client_for("admin").get(page())
    assert response.status_code == 200 and "not set" in response.content.decode()
    settings_page = team.client_for("admin").get(reverse("tenant_settings", args=["acme"]))
    assert page() in settings_page.content.decode()


def test_a_bad_url_is_a_form_error_and_changes_nothing(team):
    response = team.client_for("admin").post(
        reverse("chat_webhooks_save", args=["acme"]),
        {"slack_url": "http://hooks.example.com/x", "reason": "Approvals in chat"},
    )
    assert response.status_code == 400
    assert "must use https" in response.content.decode()
    assert not ChatWebhook.objects.exists()


def test_saving_shows_a_hint_never_the_url_and_the_test_button_posts(
    team, receiver, posts_now, django_capture_on_commit_callbacks
):
    client = team.client_for("admin")
    url = receiver.url(SLACK_PATH)
    response = client.post(
        reverse("chat_webhooks_save", args=["acme"]),
        {"slack_url": url, "reason": "Approvals in chat"},
        follow=True,
    )
    body = response.content.decode()
    assert response.status_code == 200 and "Chat webhooks saved." in body
    assert "127.0.0.1/…part" in body and "slack-secret-part" not in body
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("chat_webhooks_test", args=["acme"]), follow=True)
    assert "A test message is on its way to Slack." in response.content.decode()
    assert posts_now == ["posted"] and len(receiver.posts) == 1
    assert AuditEvent.objects.filter(action="chat_webhook.changed").count() == 1


def test_a_change_needs_a_reason(team):
    response = team.client_for("admin").post(
        reverse("chat_webhooks_save", args=["acme"]),
        {"slack_url": "https://hooks.slack.com/services/T/B/x", "reason": ""},
    )
    assert response.status_code == 400 and "Say why" in response.content.decode()
    assert not ChatWebhook.objects.exists()
