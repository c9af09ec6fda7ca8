"""The "Your sessions" page and an admin's view of a member's sessions: what each person sees,
what the buttons do, and what a guessed id or another tenant gets."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.login_sessions.models import LoginSession
from dashboard.models import AuditEvent
from tests.dashboard.login_sessions.conftest import WINDOWS_FIREFOX, session_cookie

pytestmark = pytest.mark.django_db

HOME = "/t/acme/"


def test_your_sessions_lists_every_browser_and_marks_this_one(team, browser_login):
    here = browser_login("oscar")
    browser_login("oscar", WINDOWS_FIREFOX, "203.0.113.5")
    browser_login("olga", WINDOWS_FIREFOX, "192.0.2.99")  # someone else's

    page = here.get(reverse("account_sessions"))

    html = page.content.decode()
    assert page.status_code == 200
    assert "Chrome on macOS" in html and "Firefox on Windows" in html
    assert "203.0.113.5" in html and "192.0.2.99" not in html
    assert html.count("This session") == 1
    assert "End all other sessions" in html
    # Neither the key nor its hash is on the page.
    for session in LoginSession.objects.all():
        assert session.key_hash not in html
    assert session_cookie(here) not in html


def test_ending_a_session_from_the_page_logs_that_browser_out(team, browser_login):
    here = browser_login("oscar")
    other = browser_login("oscar", WINDOWS_FIREFOX)
    other_id = LoginSession.objects.get(browser="Firefox").pk

    response = here.post(reverse("account_session_end", args=[other_id]), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="sessions"' in html and "<html" not in html  # the list, in place
    assert "Session on Firefox on Windows ended" in html
    assert other.get(HOME).status_code == 302
    assert here.get(HOME).status_code == 200


def test_without_htmx_the_page_redirects_with_a_message(team, browser_login):
    here = browser_login("oscar")
    browser_login("oscar", WINDOWS_FIREFOX)
    response = here.post(reverse("account_sessions_end_others"), follow=True)
    assert response.redirect_chain == [(reverse("account_sessions"), 302)]
    assert "1 other session(s) ended; this one stays." in response.content.decode()


def test_a_guessed_id_of_another_persons_session_is_refused_on_the_page(team, browser_login):
    victim = browser_login("olga")
    attacker = browser_login("oscar")
    victim_id = LoginSession.objects.get(user=team.second_operator.user).pk

    response = attacker.post(
        reverse("account_session_end", args=[victim_id]), HTTP_HX_REQUEST="true"
    )

    assert "is not one of your sessions (or has ended already). Nothing was ended." in (
        response.content.decode()
    )
    assert victim.get(HOME).status_code == 200
    assert AuditEvent.objects.filter(action="session.end_refused").count() == 1


def test_the_current_session_cannot_be_ended_by_id(team, browser_login):
    here = browser_login("oscar")
    mine = LoginSession.objects.get().pk
    response = here.post(reverse("account_session_end", args=[mine]), follow=True)
    assert "This is the session you are using now; log out to end it." in response.content.decode()
    assert here.get(HOME).status_code == 200


def test_signed_out_visitors_go_to_the_login_page(db, client):
    response = client.get(reverse("account_sessions"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert client.post(reverse("account_sessions_end_others")).status_code == 302


def test_an_admin_sees_a_members_sessions_and_ends_them(team, browser_login):
    member = browser_login("oscar", WINDOWS_FIREFOX, "203.0.113.8")
    admin = browser_login("ada")
    url = reverse("member_sessions", args=["acme", team.operator.pk])

    page = admin.get(url).content.decode()
    assert "Sessions of oscar" in page and "Firefox on Windows" in page and "203.0.113.8" in page
    assert "Chrome on macOS" not in page  # the admin's own session is not the member's

    response = admin.post(
        reverse("member_sessions_end", args=["acme", team.operator.pk]), HTTP_HX_REQUEST="true"
    )

    assert "1 session(s) of oscar ended: they must log in again." in response.content.decode()
    assert member.get(HOME).status_code == 302
    assert admin.get(HOME).status_code == 200


def test_the_members_page_links_each_members_sessions_for_admins(team, browser_login):
    admin = browser_login("ada")
    html = admin.get(reverse("member_list", args=["acme"])).content.decode()
    assert reverse("member_sessions", args=["acme", team.operator.pk]) in html


@pytest.mark.parametrize("role", ["operator", "auditor", "marketer"])
def test_only_admins_see_or_end_a_members_sessions(team, browser_login, role):
    member = browser_login("olga")
    client = team.client_for(role)
    assert (
        client.get(reverse("member_sessions", args=["acme", team.second_operator.pk])).status_code
        == 403
    )
    response = client.post(reverse("member_sessions_end", args=["acme", team.second_operator.pk]))
    assert response.status_code == 403
    assert member.get(HOME).status_code == 200


def test_a_member_of_another_tenant_is_not_found(team, other_team, browser_login):
    outsider = browser_login("zed-operator")
    admin = team.client_for("admin")
    assert (
        admin.get(reverse("member_sessions", args=["acme", other_team.operator.pk])).status_code
        == 404
    )
    response = admin.post(reverse("member_sessions_end", args=["acme", other_team.operator.pk]))
    assert response.status_code == 404
    assert outsider.get("/t/other/").status_code == 200


def test_removing_a_member_on_the_members_page_says_what_ended(team, browser_login):
    browser_login("oscar")
    admin = team.client_for("admin")
    response = admin.post(reverse("member_remove", args=["acme", team.operator.pk]), follow=True)
    assert (
        "oscar removed: 1 session(s) ended and 0 API token(s) revoked." in response.content.decode()
    )
