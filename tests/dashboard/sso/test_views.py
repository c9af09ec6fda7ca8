"""Single sign-on end to end through Django's test client and the local OpenID Connect provider
(discovery, PKCE, RS256 ID tokens, userinfo), with no mock of mozilla-django-oidc: matching by
verified email, group → role mapping at each login, "no access", local passwords off, and every
bad ID token or state refused, audited as sso.login_refused and granting nothing."""

from __future__ import annotations

import pytest

from dashboard.models import AuditEvent, Membership, MembershipSource, Role
from dashboard.sso.models import SsoGroupMapping, SsoIdentity
from dashboard.tenancy.crypto import decrypt_secret
from tests.dashboard.sso.helpers import finish, sign_in, start
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def refusals() -> list[str]:
    return [
        event.summary["reason"]
        for event in AuditEvent.objects.filter(action="sso.login_refused").order_by("id")
    ]


def map_group(tenant, group, role):
    from django.utils import timezone

    return SsoGroupMapping.objects.create(
        tenant=tenant, group=group, role=role, created_by_label="ada", created_at=timezone.now()
    )


def test_login_page_offers_the_provider(client, provider):
    page = client.get("/login/")
    assert b"Sign in with Test IdP" in page.content
    assert b'name="password"' in page.content


def test_a_known_verified_email_signs_in_and_gets_the_mapped_role(client, provider):
    tenant = TenantFactory(name="Acme", slug="acme")
    map_group(tenant, "Marketing", Role.MARKETER)
    map_group(tenant, "ops", Role.OPERATOR)
    user = UserFactory(username="mia", email="Mia@Example.com")
    provider.add("mia", email="mia@example.com", groups=["marketing", "ops", "cafeteria"])

    response = sign_in(client, provider, "mia")

    assert response.status_code == 302 and response["Location"] == "/"
    membership = Membership.objects.get(user=user, tenant=tenant)
    assert (membership.role, membership.source) == (Role.OPERATOR, MembershipSource.SSO)
    identity = SsoIdentity.objects.get(user=user)
    assert identity.subject == "sub-mia" and identity.issuer == provider.issuer
    # The refresh token is kept for the sync, encrypted.
    assert decrypt_secret(identity.encrypted_refresh_token) in provider.refresh_tokens
    assert "sso.role_granted" in AuditEvent.objects.values_list("action", flat=True)
    unmapped = AuditEvent.objects.get(action="sso.groups_unmapped")
    assert unmapped.summary["groups"] == ["cafeteria"]
    # PKCE: the verifier went to the token endpoint (the provider checked it against S256).
    assert provider.token_requests[-1]["code_verifier"]
    home = client.get("/", follow=True)
    assert home.status_code == 200


def test_removed_from_the_group_loses_the_role_at_next_login_but_manual_roles_stay(
    client, provider
):
    acme = TenantFactory(name="Acme", slug="acme")
    other = TenantFactory(name="Other", slug="other")
    map_group(acme, "ops", Role.OPERATOR)
    map_group(other, "ops", Role.ADMIN)
    user = UserFactory(username="oscar", email="oscar@example.com")
    MembershipFactory(user=user, tenant=other, role=Role.AUDITOR)  # made by hand
    person = provider.add("oscar", email="oscar@example.com", groups=["ops"])

    sign_in(client, provider, "oscar")
    assert Membership.objects.get(user=user, tenant=acme).role == Role.OPERATOR
    assert Membership.objects.get(user=user, tenant=other).role == Role.AUDITOR

    client.logout()
    person.groups = []
    response = sign_in(client, provider, "oscar")

    assert response.status_code == 302
    assert not Membership.objects.filter(user=user, tenant=acme).exists()
    # The hand-made membership is left alone.
    assert Membership.objects.get(user=user, tenant=other).role == Role.AUDITOR
    removed = AuditEvent.objects.get(action="sso.role_removed")
    assert removed.tenant == acme and removed.summary["role"] == Role.OPERATOR


def test_an_unknown_email_with_a_mapped_group_gets_an_account_without_a_password(client, provider):
    tenant = TenantFactory(name="Acme", slug="acme")
    map_group(tenant, "auditors", Role.AUDITOR)
    provider.add("nina", email="nina@example.com", groups=["auditors"])

    response = sign_in(client, provider, "nina")

    assert response.status_code == 302
    membership = Membership.objects.select_related("user").get(tenant=tenant)
    assert membership.user.username == "nina@example.com"
    assert not membership.user.has_usable_password()
    assert membership.role == Role.AUDITOR


def test_an_unknown_email_with_no_mapped_group_gets_no_access_and_nothing_is_created(
    client, provider
):
    from django.contrib.auth import get_user_model

    provider.add("stranger", email="stranger@example.com", groups=["cafeteria"])
    users_before = get_user_model().objects.count()

    response = sign_in(client, provider, "stranger")

    assert response.status_code == 403
    assert b"No access" in response.content
    assert b"none of your groups gives access" in response.content
    assert get_user_model().objects.count() == users_before
    assert not SsoIdentity.objects.exists()
    event = AuditEvent.objects.get(action="sso.no_access")
    assert event.summary["email"] == "stranger@example.com"
    assert "_auth_user_id" not in client.session


def test_an_unverified_email_is_refused_even_for_a_known_account(client, provider):
    tenant = TenantFactory(name="Acme", slug="acme")
    map_group(tenant, "ops", Role.OPERATOR)
    UserFactory(username="ada", email="ada@example.com")
    provider.add("ada", email="ada@example.com", groups=["ops"], email_verified=False)

    response = sign_in(client, provider, "ada")

    assert response.status_code == 403
    assert b"has not verified your email" in response.content
    assert refusals() == ["email_not_verified"]
    assert not Membership.objects.exists()


@pytest.mark.parametrize("fault", ["bad_signature", "wrong_audience", "wrong_nonce", "expired"])
def test_a_bad_id_token_is_refused_audited_and_grants_nothing(client, provider, fault):
    tenant = TenantFactory(name="Acme", slug="acme")
    map_group(tenant, "ops", Role.ADMIN)
    UserFactory(username="eve", email="eve@example.com")
    provider.add("eve", email="eve@example.com", groups=["ops"])
    provider.fault = fault

    response = sign_in(client, provider, "eve")

    assert response.status_code == 403
    assert b"Sign-in refused" in response.content
    assert b"Nothing was granted" in response.content
    expected = {"wrong_nonce": "nonce_mismatch"}.get(fault, fault)
    assert refusals() == [expected]
    assert not Membership.objects.exists() and not SsoIdentity.objects.exists()
    assert "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_a_callback_with_a_state_this_browser_was_not_given_is_refused(client, provider):
    UserFactory(username="eve", email="eve@example.com")
    provider.add("eve", email="eve@example.com")
    callback = start(client, provider, "eve")
    other_browser = client.__class__()

    response = finish(other_browser, callback)

    assert response.status_code == 403
    assert b"did not start in this browser" in response.content
    assert refusals() == ["state_mismatch"]
    # Replaying the callback in the right browser after it was used: refused too.
    assert finish(client, callback).status_code == 302
    client.logout()
    assert finish(client, callback).status_code == 403
    assert refusals() == ["state_mismatch", "state_mismatch"]


def test_secrets_stay_out_of_the_audit_trail(client, provider):
    tenant = TenantFactory(name="Acme", slug="acme")
    map_group(tenant, "ops", Role.OPERATOR)
    provider.add("olga", email="olga@example.com", groups=["ops"])
    sign_in(client, provider, "olga")
    trail = str(list(AuditEvent.objects.values_list("summary", flat=True)))
    assert "provider-test-client-secret" not in trail
    for token in [*provider.refresh_tokens, *provider.access_tokens]:
        assert token not in trail


class TestLocalPasswordsOff:
    @pytest.fixture(autouse=True)
    def passwords_off(self, provider, settings):
        settings.SSO_LOCAL_PASSWORDS = False

    def test_the_login_page_shows_only_the_provider(self, client):
        page = client.get("/login/")
        assert b"Sign in with Test IdP" in page.content
        assert b'name="password"' not in page.content
        assert b"Forgot your password" not in page.content

    def test_a_password_login_is_refused_even_with_the_right_password(self, client):
        UserFactory(username="mia")
        response = client.post(
            "/login/", {"username": "mia", "password": "correct horse battery staple"}
        )
        assert response.status_code == 403
        assert b"Local passwords are switched off" in response.content
        assert "_auth_user_id" not in client.session
        # Also behind the login page (/admin/, anything calling authenticate()).
        from django.contrib.auth import authenticate
        from django.test import RequestFactory

        request = RequestFactory().post("/admin/login/")
        assert (
            authenticate(request, username="mia", password="correct horse battery staple") is None
        )

    def test_password_reset_and_invitations_refuse(self, client):
        assert client.get("/account/password/forgot/").status_code == 403
        response = client.post("/account/password/forgot/", {"email": "mia@example.com"})
        assert response.status_code == 403
        assert b"Local passwords are switched off" in response.content

    def test_inviting_by_password_refuses_with_a_clear_error(self, client):
        from django.core import mail

        admin = MembershipFactory(role=Role.ADMIN)
        client.force_login(admin.user)
        response = client.post(
            f"/t/{admin.tenant.slug}/members/invite/",
            {"email": "new@example.com", "role": Role.MARKETER, "username": ""},
        )
        assert response.status_code == 400
        assert b"Local passwords are switched off" in response.content
        assert len(mail.outbox) == 0
        assert Membership.objects.count() == 1

    def test_single_sign_on_still_works(self, client, provider):
        tenant = TenantFactory(name="Acme", slug="acme")
        map_group(tenant, "ops", Role.OPERATOR)
        provider.add("oscar", email="oscar@example.com", groups=["ops"])
        assert sign_in(client, provider, "oscar").status_code == 302
        assert Membership.objects.get(tenant=tenant).role == Role.OPERATOR


def test_a_second_idp_account_with_the_same_email_cannot_take_over_the_account(client, provider):
    tenant = TenantFactory(name="Acme", slug="acme")
    map_group(tenant, "ops", Role.OPERATOR)
    user = UserFactory(username="ada", email="ada@example.com")
    provider.add("ada", email="ada@example.com", groups=["ops"])
    sign_in(client, provider, "ada")
    client.logout()
    # Another IdP account (another subject) that now claims ada's address.
    provider.add("impostor", sub="sub-other", email="ADA@example.com", groups=["ops"])

    response = sign_in(client, provider, "impostor")

    assert response.status_code == 403
    assert refusals() == ["subject_mismatch"]
    assert SsoIdentity.objects.get().user == user


def test_an_email_of_two_accounts_is_refused(client, provider):
    UserFactory(username="a1", email="shared@example.com")
    UserFactory(username="a2", email="Shared@example.com")
    provider.add("shared", email="shared@example.com")
    assert sign_in(client, provider, "shared").status_code == 403
    assert refusals() == ["ambiguous_email"]
