"""Inviting people by email (admins only), the one-time set-password link under SITE_URL, and
changing one's own password without /admin/. Every step is audited; no password reaches an email
or an audit row."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from dashboard.accounts.invitations import invite_token_generator
from dashboard.models import AuditEvent, Membership
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
NEW_PASSWORD = "a-long-new-passphrase-42"
SITE = "https://triggerdesk.example"


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE


def invite(client, tenant, **data):
    return client.post(reverse("member_invite", kwargs={"tenant_slug": tenant.slug}), data)


def link_in(message) -> str:
    match = re.search(re.escape(SITE) + r"(/invite/[^\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def accept(link: str, password: str = NEW_PASSWORD) -> tuple[Client, object]:
    client = Client(REMOTE_ADDR="10.0.0.9")
    form_page = client.get(link, follow=True)
    response = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
        {"new_password1": password, "new_password2": password},
    )
    return client, response


def test_an_admin_invites_a_new_person_who_sets_a_password_and_is_in(team):
    response = invite(
        team.client_for("admin"), team.tenant, email="Nina@Example.org", role="operator"
    )
    assert response.status_code == 302
    nina = User.objects.get(email="Nina@example.org")
    assert nina.username == "Nina@example.org" and not nina.has_usable_password()
    assert Membership.objects.get(user=nina, tenant=team.tenant).role == "operator"
    (message,) = mail.outbox
    assert message.to == ["Nina@example.org"]
    assert "Acme Sports" in message.subject and "as operator" in message.body

    link = link_in(message)
    client, response = accept(link)
    assert response.status_code == 302
    nina.refresh_from_db()
    assert nina.check_password(NEW_PASSWORD)
    # Logged in at once, and the tenant is there.
    home = client.get(reverse("tenant_home", kwargs={"tenant_slug": team.tenant.slug}))
    assert home.status_code == 200

    invited = AuditEvent.objects.get(action="member.invited")
    assert invited.actor == team.admin.user and invited.tenant == team.tenant
    assert invited.summary["new_account"] is True
    joined = AuditEvent.objects.get(action="member.joined")
    assert joined.actor == nina and joined.ip_address == "10.0.0.9"
    assert AuditEvent.objects.filter(action="user.created", summary__username=nina.username)
    assert NEW_PASSWORD not in str(list(AuditEvent.objects.values_list("summary", flat=True)))


def test_the_links_start_with_site_url_whatever_the_host_header(team, other_team):
    # "localhost" is in ALLOWED_HOSTS: Django accepts the header, and it is the requester's choice.
    admin = team.client_for("admin")
    for email, host in (("nina@example.org", "localhost"), (other_team.marketer.user.email, None)):
        headers = {"HTTP_HOST": host} if host else {}
        response = admin.post(
            reverse("member_invite", kwargs={"tenant_slug": team.tenant.slug}),
            {"email": email, "role": "marketer"},
            **headers,
        )
        assert response.status_code == 302
    new_account, existing_account = mail.outbox
    assert link_in(new_account).startswith("/invite/")
    assert f"Log in as usual: {SITE}/login/" in existing_account.body
    for message in mail.outbox:
        assert "localhost" not in message.body and "testserver" not in message.body


def test_the_link_works_once(team):
    invite(team.client_for("admin"), team.tenant, email="nina@example.org", role="marketer")
    link = link_in(mail.outbox[0])
    accept(link)
    _, response = accept(link, password="another-long-passphrase-7")
    assert "This link cannot be used" in response.content.decode()
    assert User.objects.get(email="nina@example.org").check_password(NEW_PASSWORD)


def test_an_expired_link_is_refused_and_a_new_invitation_sends_a_fresh_one(
    team, monkeypatch, settings
):
    settings.INVITE_VALID_HOURS = 1
    invite(team.client_for("admin"), team.tenant, email="nina@example.org", role="marketer")
    link = link_in(mail.outbox[0])
    later = datetime.now() + timedelta(hours=1, minutes=1)
    monkeypatch.setattr(invite_token_generator, "_now", lambda: later)
    page = Client().get(link, follow=True)
    assert "This link cannot be used" in page.content.decode()
    monkeypatch.undo()

    response = invite(
        team.client_for("admin"), team.tenant, email="nina@example.org", role="marketer"
    )
    assert response.status_code == 302
    assert User.objects.filter(email="nina@example.org").count() == 1
    fresh = link_in(mail.outbox[1])
    _, response = accept(fresh)
    assert response.status_code == 302
    assert User.objects.get(email="nina@example.org").check_password(NEW_PASSWORD)


def test_inviting_again_revokes_the_earlier_link(team, monkeypatch):
    admin = team.client_for("admin")
    invite(admin, team.tenant, email="nina@example.org", role="marketer")
    earlier = link_in(mail.outbox[0])
    # The admin invites again an hour later (both links within INVITE_VALID_HOURS).
    later = datetime.now() + timedelta(hours=1)
    monkeypatch.setattr(invite_token_generator, "_now", lambda: later)
    invite(admin, team.tenant, email="nina@example.org", role="marketer")
    newest = link_in(mail.outbox[1])

    _, response = accept(earlier)
    assert "This link cannot be used" in response.content.decode()
    nina = User.objects.get(email="nina@example.org")
    assert not nina.has_usable_password()
    _, response = accept(newest)
    assert response.status_code == 302
    nina.refresh_from_db()
    assert nina.check_password(NEW_PASSWORD)


def test_a_tampered_or_wrong_user_link_is_refused(team):
    invite(team.client_for("admin"), team.tenant, email="nina@example.org", role="marketer")
    link = link_in(mail.outbox[0])
    tampered = link[:-3] + ("a" if link[-3] != "a" else "b") + link[-2:]
    assert "This link cannot be used" in Client().get(tampered, follow=True).content.decode()
    # A password-reset token of the same user is no invitation (another salt).
    from django.contrib.auth.tokens import default_token_generator

    nina = User.objects.get(email="nina@example.org")
    uid = link.split("/")[2]
    reset_token_link = f"/invite/{uid}/{default_token_generator.make_token(nina)}/"
    assert (
        "This link cannot be used" in Client().get(reset_token_link, follow=True).content.decode()
    )


def test_inviting_an_existing_account_adds_it_and_tells_it(team, other_team):
    outsider = other_team.marketer.user  # has a password and logs in already
    response = invite(team.client_for("admin"), team.tenant, email=outsider.email, role="auditor")
    assert response.status_code == 302
    assert Membership.objects.get(user=outsider, tenant=team.tenant).role == "auditor"
    assert User.objects.filter(email=outsider.email).count() == 1
    (message,) = mail.outbox
    assert "/invite/" not in message.body and "Log in as usual" in message.body
    assert AuditEvent.objects.get(action="member.invited").summary["new_account"] is False


def test_inviting_a_member_again_is_refused(team):
    response = invite(
        team.client_for("admin"), team.tenant, email=team.marketer.user.email, role="marketer"
    )
    assert response.status_code == 400
    assert "already a member" in response.content.decode()
    assert mail.outbox == []


def test_bad_email_or_taken_user_name_is_a_form_error(team):
    admin = team.client_for("admin")
    assert invite(admin, team.tenant, email="not-an-address", role="marketer").status_code == 400
    response = invite(admin, team.tenant, email="new@example.org", role="marketer", username="mia")
    assert response.status_code == 400 and "is taken" in response.content.decode()
    assert not User.objects.filter(email="new@example.org").exists()


@pytest.mark.parametrize("role", ["marketer", "operator", "auditor"])
def test_only_admins_invite(team, role):
    response = invite(team.client_for(role), team.tenant, email="x@example.org", role="admin")
    assert response.status_code == 403
    assert not User.objects.filter(email="x@example.org").exists() and mail.outbox == []


def test_an_admin_of_another_tenant_cannot_invite_here(team, other_team):
    response = invite(
        other_team.client_for("admin"), team.tenant, email="x@example.org", role="admin"
    )
    assert response.status_code == 404
    assert not User.objects.filter(email="x@example.org").exists()


def test_the_service_refuses_a_non_admin_whatever_calls_it(team):
    from django.core.exceptions import PermissionDenied

    from dashboard.accounts.invitations import member_invite
    from dashboard.audit.trail import Actor

    with pytest.raises(PermissionDenied):
        member_invite(
            actor=Actor(user=team.operator.user),
            tenant=team.tenant,
            email="x@example.org",
            role="admin",
        )


def test_the_members_page_shows_the_invite_form_to_admins_only(team):
    url = reverse("member_list", kwargs={"tenant_slug": team.tenant.slug})
    assert "Invite by email" in team.client_for("admin").get(url).content.decode()
    assert "Invite by email" not in team.client_for("operator").get(url).content.decode()


# -- changing one's own password ---------------------------------------------------------------


def test_every_user_changes_their_own_password_in_the_app(team):
    client = Client()
    client.force_login(team.marketer.user)
    page = client.get(reverse("password_change"))
    assert page.status_code == 200 and 'class="topbar"' in page.content.decode()
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    team.marketer.user.refresh_from_db()
    assert team.marketer.user.check_password(NEW_PASSWORD)
    # Still logged in on this session.
    assert client.get(reverse("tenant_home", kwargs={"tenant_slug": "acme"})).status_code == 200
    event = AuditEvent.objects.get(action="user.password_changed")
    assert event.actor == team.marketer.user
    assert NEW_PASSWORD not in str(event.summary) and PASSWORD not in str(event.summary)


def test_a_wrong_current_password_changes_nothing(team):
    client = Client()
    client.force_login(team.marketer.user)
    response = client.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "incorrect" in response.content.decode()
    team.marketer.user.refresh_from_db()
    assert team.marketer.user.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action="user.password_changed").exists()


def test_password_change_needs_a_login():
    response = Client().get(reverse("password_change"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_navigation_links_to_the_password_page(team):
    page = team.client_for("auditor").get(reverse("tenant_home", kwargs={"tenant_slug": "acme"}))
    assert reverse("password_change") in page.content.decode()


def test_a_user_without_a_tenant_still_sees_the_link():
    UserFactory(username="solo")
    client = Client()
    client.force_login(User.objects.get(username="solo"))
    assert reverse("password_change") in client.get("/").content.decode()
