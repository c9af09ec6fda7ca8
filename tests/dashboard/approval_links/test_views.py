"""The approval link's page: sign in first (next= kept), see what will be sent, decide once."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.approval_links.models import ApprovalLink
from dashboard.runs.models import Run
from dashboard.runs.states import RunState

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def link_path(token: str) -> str:
    return reverse("approval_link", args=[token])


def test_the_link_asks_to_sign_in_and_comes_back(client, requested):
    _run, tokens = requested
    path = link_path(tokens["oscar@example.com"])
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login")) and "next=" in response["Location"]
    assert path.replace("/", "%2F") in response["Location"] or path in response["Location"]


def test_the_page_shows_exactly_what_will_be_sent(team, requested):
    run, tokens = requested
    response = team.client_for("operator").get(link_path(tokens["oscar@example.com"]))
    assert response.status_code == 200
    page = response.content.decode()
    assert run.parameters_hash in page
    assert "mia" in page  # who asked
    assert "wait_time_for_validation_seconds" in page  # the preview of the parameters
    assert "0 of 1" in page
    assert 'id="approval-link-approve"' in page and 'id="approval-link-reject"' in page
    assert tokens["olga@example.com"] not in page


def test_approve_through_the_page_then_the_link_is_spent(team, requested):
    run, tokens = requested
    client = team.client_for("operator")
    path = link_path(tokens["oscar@example.com"])
    response = client.post(
        path, {"decision": "approve", "fingerprint": run.parameters_hash, "comment": "ok"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("run_detail", args=["acme", run.pk])
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED
    again = client.get(path)
    assert again.status_code == 200
    assert "already used" in again.content.decode()
    assert 'id="approval-link-approve"' not in again.content.decode()
    replay = client.post(path, {"decision": "reject", "comment": "changed my mind"})
    assert replay.status_code == 409 and "already used" in replay.content.decode()
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED


def test_reject_needs_a_reason_and_changes_nothing_without_one(team, requested):
    run, tokens = requested
    client = team.client_for("operator")
    path = link_path(tokens["oscar@example.com"])
    response = client.post(path, {"decision": "reject", "comment": ""})
    assert response.status_code == 400 and "Say why you reject it" in response.content.decode()
    assert Run.objects.get(pk=run.pk).state == RunState.AWAITING_APPROVAL
    response = client.post(path, {"decision": "reject", "comment": "Wrong day"})
    assert response.status_code == 302
    assert Run.objects.get(pk=run.pk).state == RunState.CANCELLED
    assert ApprovalLink.objects.get(recipient=team.operator.user).decision == "rejected"


def test_a_tampered_link_is_a_clear_404(team, requested):
    run, tokens = requested
    token = tokens["oscar@example.com"]
    tampered = ("B" if token[0] != "B" else "C") + token[1:]
    client = team.client_for("operator")
    for response in (
        client.get(link_path(tampered)),
        client.post(
            link_path(tampered), {"decision": "approve", "fingerprint": run.parameters_hash}
        ),
    ):
        assert response.status_code == 404
        assert "This approval link is not valid" in response.content.decode()
    assert Run.objects.get(pk=run.pk).state == RunState.AWAITING_APPROVAL


def test_someone_elses_link_is_forbidden_and_shows_nothing(team, requested):
    run, tokens = requested
    response = team.client_for("second_operator").post(
        link_path(tokens["oscar@example.com"]),
        {"decision": "approve", "fingerprint": run.parameters_hash},
    )
    assert response.status_code == 403
    assert "sent to someone else" in response.content.decode()
    assert run.parameters_hash not in response.content.decode()
    assert Run.objects.get(pk=run.pk).state == RunState.AWAITING_APPROVAL
