"""The session endpoints of the automation API: a token's person lists and ends their own
sessions; an admin's token ends a member's; guessed ids and other tenants get problems."""

from __future__ import annotations

import pytest

from dashboard.login_sessions.models import LoginSession
from dashboard.models import AuditEvent
from tests.dashboard.login_sessions.conftest import WINDOWS_FIREFOX

pytestmark = pytest.mark.django_db

HOME = "/t/acme/"


def test_a_token_lists_its_persons_sessions(team, browser_login, make_token):
    browser_login("oscar", WINDOWS_FIREFOX, "203.0.113.5")
    browser_login("olga")
    _token, api = make_token("operator")

    response = api.get("sessions")

    assert response.status_code == 200
    [session] = response.json()
    assert session["device"] == "Firefox on Windows" and session["ip_address"] == "203.0.113.5"
    assert (session["browser"], session["operating_system"]) == ("Firefox", "Windows")
    assert set(session) == {
        "id",
        "device",
        "browser",
        "operating_system",
        "ip_address",
        "created_at",
        "last_seen_at",
    }


def test_a_token_ends_one_of_its_persons_sessions(team, browser_login, make_token):
    browser_session = browser_login("oscar")
    _token, api = make_token("operator")
    session_id = LoginSession.objects.get().pk

    response = api.post(f"sessions/{session_id}/end")

    assert response.status_code == 200 and response.json()["ended"]["id"] == session_id
    assert browser_session.get(HOME).status_code == 302
    ended = AuditEvent.objects.get(action="session.ended")
    assert ended.tenant == team.tenant and "via API token" in ended.actor_label


def test_another_persons_session_id_is_a_404_audited_and_nothing_ends(
    team, browser_login, make_token
):
    victim = browser_login("olga")
    _token, api = make_token("operator")
    victim_id = LoginSession.objects.get().pk

    response = api.post(f"sessions/{victim_id}/end")

    assert response.status_code == 404
    problem = response.json()
    assert problem["code"] == "session_not_found"
    assert "is not one of your sessions" in problem["detail"]
    assert victim.get(HOME).status_code == 200
    refused = AuditEvent.objects.get(action="session.end_refused")
    assert refused.tenant == team.tenant and refused.summary["owner"] == "olga"
    assert AuditEvent.objects.get(action="api.called").summary["status"] == 404


@pytest.mark.parametrize("session_id", ["0", "-1", "abc", str(2**64)])
def test_a_malformed_session_id_is_a_422_problem(team, make_token, session_id):
    _token, api = make_token("operator")
    response = api.post(f"sessions/{session_id}/end")
    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"


def test_an_admins_token_ends_every_session_of_a_member(team, browser_login, make_token):
    member = [browser_login("oscar"), browser_login("oscar", WINDOWS_FIREFOX)]
    _token, api = make_token("admin")

    response = api.post("members/oscar/sessions/end")

    assert response.status_code == 200
    assert response.json() == {"user": "oscar", "sessions_ended": 2}
    assert not any(client.get(HOME).status_code == 200 for client in member)
    assert AuditEvent.objects.get(action="member.sessions_ended").tenant == team.tenant


def test_only_an_admins_token_ends_a_members_sessions(team, browser_login, make_token):
    member = browser_login("olga")
    _token, api = make_token("operator")
    response = api.post("members/olga/sessions/end")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert member.get(HOME).status_code == 200


def test_a_person_outside_the_tenant_is_not_a_member_here(
    team, other_team, browser_login, make_token
):
    outsider = browser_login("zed-operator")
    _token, api = make_token("admin")
    for username in ("zed-operator", "nobody-at-all"):
        response = api.post(f"members/{username}/sessions/end")
        assert response.status_code == 404 and response.json()["code"] == "member_not_found"
    assert outsider.get("/t/other/").status_code == 200
