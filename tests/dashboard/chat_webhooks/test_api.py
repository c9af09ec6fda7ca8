"""The chat webhook endpoints: the same services as the page, problems with codes."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.dashboard.chat_webhooks.conftest import SLACK_PATH

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def put(api, body):
    return Client().put(
        api.url("chat-webhooks"),
        json.dumps(body),
        content_type="application/json",
        headers=api.headers(),
    )


def test_set_show_and_test_through_the_api(
    make_token, receiver, posts_now, django_capture_on_commit_callbacks
):
    _token, api = make_token("admin")
    assert api.get("chat-webhooks").json() == {"slack": None, "teams": None}
    response = put(api, {"slack_url": receiver.url(SLACK_PATH), "reason": "Approvals in chat"})
    assert response.status_code == 200, response.content
    assert response.json() == {"slack": "127.0.0.1/…part", "teams": None}
    assert "slack-secret-part" not in api.get("chat-webhooks").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("chat-webhooks/test")
    assert response.status_code == 202 and response.json() == {"targets": ["slack"]}
    assert posts_now == ["posted"]


def test_bad_input_is_a_problem_with_a_code_and_changes_nothing(make_token):
    _token, api = make_token("admin")
    response = put(api, {"slack_url": "https://10.0.0.1/hook", "reason": "x"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid" and "internal address" in problem["detail"]
    response = put(api, {"teams_url": "https://example.com/hook", "reason": ""})
    assert response.status_code == 422 and response.json()["code"] == "invalid"
    assert put(api, {"reason": "x", "colour": "red"}).status_code in (400, 422)
    response = api.post("chat-webhooks/test")
    assert response.status_code == 409 and response.json()["code"] == "not_set"
    assert api.get("chat-webhooks").json() == {"slack": None, "teams": None}


def test_an_operator_token_cannot_change_them(make_token):
    _token, api = make_token("operator")
    response = put(api, {"slack_url": "https://hooks.slack.com/services/x", "reason": "x"})
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
