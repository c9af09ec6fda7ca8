"""Recording login sessions and ending them (dashboard/login_sessions/services.py): what a
person, an admin and the browsers they end see."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from dashboard.api.models import ApiToken
from dashboard.audit.trail import Actor
from dashboard.login_sessions import services
from dashboard.login_sessions.devices import device_label, device_parts
from dashboard.login_sessions.models import LoginSession
from dashboard.models import AuditEvent, Role
from dashboard.tenancy.services import membership_remove
from tests.dashboard.login_sessions.conftest import WINDOWS_FIREFOX, session_cookie
from tests.factories import PASSWORD, MembershipFactory

pytestmark = pytest.mark.django_db

HOME = "/t/acme/"


def logged_in(client) -> bool:
    return client.get(HOME).status_code == 200


def row_of(client) -> LoginSession:
    key_hash = hashlib.sha256(session_cookie(client).encode()).hexdigest()
    return LoginSession.objects.get(key_hash=key_hash)


def test_a_login_records_its_session_by_hash_with_device_and_address(team, browser_login):
    client = browser_login("oscar", WINDOWS_FIREFOX, "203.0.113.9")
    session = LoginSession.objects.get()
    key = session_cookie(client)
    assert session.user == team.operator.user
    assert session.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {session.key_hash, session.user_agent, session.browser}
    assert (session.browser, session.operating_system) == ("Firefox", "Windows")
    assert session.device == "Firefox on Windows"
    assert str(session.ip_address) == "203.0.113.9"
    assert session.created_at == session.last_seen_at


def test_last_seen_moves_at_most_once_a_minute(team, browser_login, monkeypatch):
    client = browser_login("oscar")
    first = row_of(client).last_seen_at
    later = first + timedelta(minutes=3)
    monkeypatch.setattr(services, "utc_now", lambda: later)
    client.defaults["REMOTE_ADDR"] = "192.0.2.44"
    assert logged_in(client)
    # Marked seen at login a moment ago: no write for this request.
    assert row_of(client).last_seen_at == first
    services._seen.clear()  # the process forgets its minute's mark: as a minute later
    assert logged_in(client)
    session = row_of(client)
    assert session.last_seen_at == later and str(session.ip_address) == "192.0.2.44"
    assert logged_in(client)
    assert row_of(client).last_seen_at == later


def test_a_session_from_before_recording_is_recorded_at_its_first_use(team, browser_login):
    client = browser_login("oscar")
    LoginSession.objects.all().delete()
    caches["sessions"].clear()
    services._seen.clear()  # and the web process has not seen it either
    assert logged_in(client)
    assert row_of(client).user == team.operator.user


def test_a_person_ends_one_of_their_sessions_and_that_browser_is_logged_out(team, browser_login):
    laptop = browser_login("oscar")
    phone = browser_login("oscar", WINDOWS_FIREFOX, "203.0.113.5")
    phone_session = row_of(phone)
    assert logged_in(phone)  # its session is in Redis now

    services.session_end(
        actor=Actor(user=team.operator.user),
        session_id=phone_session.pk,
        current_session_key=session_cookie(laptop),
    )

    assert not Session.objects.filter(session_key=session_cookie(phone)).exists()
    assert (
        caches["sessions"].get(f"django.contrib.sessions.cached_db{session_cookie(phone)}") is None
    )
    response = phone.get(HOME)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert logged_in(laptop)
    assert list(LoginSession.objects.values_list("pk", flat=True)) == [row_of(laptop).pk]
    event = AuditEvent.objects.get(action="session.ended")
    assert (
        event.actor_label == "oscar" and event.summary["ended"][0]["device"] == "Firefox on Windows"
    )


def test_another_persons_session_id_is_refused_audited_and_nothing_ends(team, browser_login):
    victim = browser_login("olga")
    attacker = browser_login("oscar")
    victim_session = row_of(victim)

    with pytest.raises(services.SessionEndRefused) as refused:
        services.session_end(
            actor=Actor(user=team.operator.user, ip_address="192.0.2.66"),
            session_id=victim_session.pk,
            current_session_key=session_cookie(attacker),
        )

    assert "is not one of your sessions" in str(refused.value)
    assert logged_in(victim)
    assert LoginSession.objects.filter(pk=victim_session.pk).exists()
    event = AuditEvent.objects.get(action="session.end_refused")
    assert (
        event.summary["owner"] == "olga" and event.summary["refused"] == "another person's session"
    )
    assert event.ip_address == "192.0.2.66"
    # An id that does not exist is refused in the same words (nothing tells them apart).
    with pytest.raises(services.SessionEndRefused) as unknown:
        services.session_end(actor=Actor(user=team.operator.user), session_id=999_999)
    assert str(unknown.value).replace("999999", "N") == str(refused.value).replace(
        str(victim_session.pk), "N"
    )


def test_the_session_in_use_is_not_ended_by_id(team, browser_login):
    client = browser_login("oscar")
    with pytest.raises(ValidationError, match="log out to end it"):
        services.session_end(
            actor=Actor(user=team.operator.user),
            session_id=row_of(client).pk,
            current_session_key=session_cookie(client),
        )
    assert logged_in(client)


def test_ending_all_other_sessions_keeps_this_one(team, browser_login):
    here = browser_login("oscar")
    elsewhere = [browser_login("oscar", WINDOWS_FIREFOX, f"203.0.113.{n}") for n in (1, 2)]
    someone_else = browser_login("olga")

    ended = services.sessions_end_others(
        actor=Actor(user=team.operator.user), current_session_key=session_cookie(here)
    )

    assert ended == 2
    assert logged_in(here) and logged_in(someone_else)
    assert not any(logged_in(client) for client in elsewhere)
    assert AuditEvent.objects.get(action="session.ended_others").summary["sessions"] == 2


def test_an_admin_ends_all_sessions_of_a_member_audited_in_their_tenant(team, browser_login):
    member = [browser_login("oscar"), browser_login("oscar", WINDOWS_FIREFOX)]
    admin = browser_login("ada")

    ended = services.member_sessions_end(
        actor=Actor(user=team.admin.user), membership=team.operator
    )

    assert ended == 2 and not any(logged_in(client) for client in member)
    assert logged_in(admin)
    event = AuditEvent.objects.get(action="member.sessions_ended")
    assert event.tenant == team.tenant and event.summary["user"] == "oscar"


@pytest.mark.parametrize("role", ["operator", "auditor", "marketer"])
def test_only_an_admin_ends_a_members_sessions(team, browser_login, role):
    member = browser_login("olga")
    with pytest.raises(PermissionDenied, match="Only an admin of Acme Sports"):
        services.member_sessions_end(
            actor=Actor(user=getattr(team, role).user), membership=team.second_operator
        )
    assert logged_in(member)
    assert not AuditEvent.objects.filter(action="member.sessions_ended").exists()


def test_an_admin_of_another_tenant_cannot_end_sessions_of_a_member_here(
    team, other_team, browser_login
):
    member = browser_login("oscar")
    with pytest.raises(PermissionDenied):
        services.member_sessions_end(
            actor=Actor(user=other_team.admin.user), membership=team.operator
        )
    assert logged_in(member)


def test_a_person_in_two_tenants_has_their_sessions_ended_by_the_admin_of_either(
    team, other_team, browser_login
):
    # oscar also belongs to Other Brand: its admin may end his sessions (everywhere), audited
    # in Other Brand; the admin of Acme Sports is not told.
    shared = MembershipFactory(
        tenant=other_team.tenant, user=team.operator.user, role=Role.MARKETER
    )
    oscar = browser_login("oscar")

    assert (
        services.member_sessions_end(actor=Actor(user=other_team.admin.user), membership=shared)
        == 1
    )

    assert not logged_in(oscar)
    event = AuditEvent.objects.get(action="member.sessions_ended")
    assert event.tenant == other_team.tenant


def test_removing_a_member_ends_their_sessions_and_revokes_their_tokens_at_once(
    team, browser_login, make_token
):
    oscar = browser_login("oscar")
    token, api = make_token("operator")
    assert api.get("sessions").status_code == 200

    removed = membership_remove(actor=Actor(user=team.admin.user), membership=team.operator)

    assert (removed.sessions_ended, removed.api_tokens_revoked) == (1, 1)
    assert oscar.get(HOME).status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert api.get("sessions").json()["code"] == "token_revoked"
    removal = AuditEvent.objects.get(action="member.removed")
    assert removal.summary["sessions_ended"] == 1 and removal.summary["api_clients_revoked"] == 1
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1


def test_logout_forgets_the_session(team, browser_login):
    client = browser_login("oscar")
    client.post(reverse("logout"))
    assert not LoginSession.objects.exists()


def test_a_password_change_keeps_this_session_and_ends_the_others(team, browser_login):
    here = browser_login("oscar")
    recorded = row_of(here)
    other = browser_login("oscar", WINDOWS_FIREFOX)

    response = here.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a new horse 4 staples",
            "new_password2": "a new horse 4 staples",
        },
    )

    assert response.status_code == 302
    # A new key for this browser, the same recorded login.
    assert row_of(here).pk == recorded.pk
    assert logged_in(here) and other.get(HOME).status_code == 302
    assert LoginSession.objects.count() == 1
    assert (
        AuditEvent.objects.get(action="session.ended_others").summary["why"] == "password changed"
    )


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        ("", "Unknown device"),
        ("not a browser at all", "Unknown device"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
            "like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Safari on iPhone",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        ("curl/8.5.0", "curl"),
    ],
)
def test_devices_are_named_as_people_name_them(user_agent, device):
    assert device_label(*device_parts(user_agent)) == device


def test_lists_leave_out_sessions_the_store_no_longer_holds(team, browser_login):
    here = browser_login("oscar")
    flushed = browser_login("oscar", WINDOWS_FIREFOX)
    expired = browser_login("oscar", WINDOWS_FIREFOX, "203.0.113.77")
    # One left the store without a logout (Django flushes a session when another person logs
    # in on that browser through an invitation or reset link; clearsessions), one expired.
    Session.objects.filter(session_key=session_cookie(flushed)).delete()
    Session.objects.filter(session_key=session_cookie(expired)).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    live = services.live_sessions(user=team.operator.user)

    assert [session.pk for session in live] == [row_of(here).pk]
    assert LoginSession.objects.count() == 1
