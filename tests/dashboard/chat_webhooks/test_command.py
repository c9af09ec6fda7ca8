"""manage.py chat_webhook: show, set (the URL from stdin), test; admins only."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from dashboard.chat_webhooks.models import ChatWebhook
from dashboard.models import AuditEvent
from tests.dashboard.chat_webhooks.conftest import TEAMS_PATH

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def run(*args, stdin: str = "") -> str:
    out = io.StringIO()
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command("chat_webhook", *args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def test_set_from_stdin_show_and_test(
    team, receiver, posts_now, django_capture_on_commit_callbacks
):
    said = run(
        "acme",
        "set",
        "--teams-url",
        "-",
        "--reason",
        "Teams channel",
        "--as",
        "ada",
        stdin=receiver.url(TEAMS_PATH) + "\n",
    )
    assert "Teams: 127.0.0.1/…part" in said and "teams-secret-part" not in said
    assert "Microsoft Teams: 127.0.0.1/…part" in run("acme", "show")
    with django_capture_on_commit_callbacks(execute=True):
        assert "on its way to teams" in run("acme", "test", "--as", "ada")
    assert posts_now == ["posted"]
    event = AuditEvent.objects.get(action="chat_webhook.changed")
    assert event.summary["reason"] == "Teams channel" and "cli:" in event.actor_label


def test_refusals_change_nothing(team):
    with pytest.raises(CommandError, match="cannot manage"):
        run(
            "acme",
            "set",
            "--slack-url",
            "https://hooks.slack.com/x",
            "--reason",
            "r",
            "--as",
            "oscar",
        )
    with pytest.raises(CommandError, match="must be an https"):
        run("acme", "set", "--slack-url", "gopher://x", "--reason", "r", "--as", "ada")
    assert not ChatWebhook.objects.exists()
