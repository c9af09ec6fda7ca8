"""An Altcraft launch awaiting approval: each approver's mail carries their one-time link, the
link's page shows the exact file, and deciding there goes through launch_approve /
launch_reject; the tenant's chat hears of it."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.models import AltcraftLaunch, LaunchState
from dashboard.audit.trail import Actor
from dashboard.chat_webhooks.services import chat_webhooks_set
from dashboard.models import AuditEvent
from tests.campaigns.altcraft_launches.conftest import actor_of, csv_bytes, prepare
from tests.dashboard.approval_links.conftest import tokens_in_outbox
from tests.dashboard.chat_webhooks.conftest import SLACK_PATH, posts_now, receiver  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


@pytest.fixture
def awaiting(team, trigger, django_capture_on_commit_callbacks, receiver, posts_now):  # noqa: F811
    services.altcraft_settings_update(
        actor=actor_of(team.admin), tenant=team.tenant, approval_required=True, retention_hours=24
    )
    chat_webhooks_set(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        reason="Launch approvals in chat",
        slack_url=receiver.url(SLACK_PATH),
    )
    launch = prepare(team.marketer, trigger, csv_bytes("email", ["a@example.com", "b@example.com"]))
    with django_capture_on_commit_callbacks(execute=True):
        launch = services.launch_confirm(
            actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
        )
    assert launch.state == LaunchState.AWAITING_APPROVAL
    return launch, tokens_in_outbox()


def test_approvers_get_a_link_and_approve_the_exact_file_there(
    team,
    awaiting,
    receiver,  # noqa: F811
    posts_now,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    launch, tokens = awaiting
    assert set(tokens) == {"oscar@example.com", "olga@example.com", "ada@example.com"}
    assert all(f"Altcraft launch #{launch.pk}" in message.subject for message in mail.outbox)
    client = team.client_for("operator")
    path = reverse("approval_link", args=[tokens["oscar@example.com"]])
    page = client.get(path).content.decode()
    assert launch.source_sha256 in page and "Recipients" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            path, {"decision": "approve", "fingerprint": launch.source_sha256, "comment": "ok"}
        )
    assert response.status_code == 302
    launch = AltcraftLaunch.objects.get(pk=launch.pk)
    assert launch.state == LaunchState.SENDING and launch.approved_by == team.operator.user
    assert AuditEvent.objects.filter(
        action="approval_link.used", object_type="altcraft_launch", summary__via="email link"
    ).exists()
    texts = [body["text"] for body in receiver.bodies(SLACK_PATH)]
    assert texts[0].startswith("Approval needed: Altcraft launch") and "mia" in texts[0]
    assert texts[-1].startswith("Approved by oscar")
    everything = " ".join(raw for _path, _body, raw in receiver.posts)
    assert not any(token in everything for token in tokens.values())
    replay = client.post(path, {"decision": "reject", "comment": "no"})
    assert replay.status_code == 409
    assert AltcraftLaunch.objects.get(pk=launch.pk).state == LaunchState.SENDING


def test_a_rejection_through_the_link_and_a_wrong_file_refused(
    team,
    awaiting,
    receiver,  # noqa: F811
    posts_now,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    launch, tokens = awaiting
    client = team.client_for("second_operator")
    path = reverse("approval_link", args=[tokens["olga@example.com"]])
    response = client.post(path, {"decision": "approve", "fingerprint": "0" * 64})
    assert response.status_code == 409 and "SHA-256" in response.content.decode()
    assert AltcraftLaunch.objects.get(pk=launch.pk).state == LaunchState.AWAITING_APPROVAL
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(path, {"decision": "reject", "comment": "Wrong list"})
    assert response.status_code == 302
    assert AltcraftLaunch.objects.get(pk=launch.pk).state == LaunchState.REJECTED
    assert receiver.bodies(SLACK_PATH)[-1]["text"].startswith("Rejected by olga")
