from __future__ import annotations

import pytest

from tests.dashboard.chat_webhooks.receiver import ChatReceiver

SLACK_PATH = "/services/T000/B000/slack-secret-part"
TEAMS_PATH = "/webhookb2/teams-secret-part"


@pytest.fixture
def receiver():
    receiver = ChatReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def posts_now(monkeypatch):
    """The chat task runs in the test's process, at once (as the worker would after the
    commit): its .delay calls the service."""
    from dashboard.chat_webhooks import services, tasks

    outcomes: list[str] = []

    def delay(tenant_id, target, news):
        outcomes.append(services.chat_post(tenant_id=tenant_id, target=target, news=news))

    monkeypatch.setattr(tasks.chat_post, "delay", delay)
    return outcomes
