"""The sso_group_mapping and sso_sync commands; the sync against the local provider with the
refresh token stored at login."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from dashboard.models import AuditEvent, Membership, Role
from dashboard.sso.models import SsoGroupMapping, SsoIdentity
from tests.dashboard.sso.helpers import sign_in
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_set_list_and_remove_a_mapping():
    admin = MembershipFactory(role=Role.ADMIN, user=UserFactory(username="ada"))
    slug = admin.tenant.slug
    assert "gives the role operator" in run(
        "sso_group_mapping", slug, "set", "ops", "operator", "--as", "ada"
    )
    assert run("sso_group_mapping", slug, "list").startswith("ops\toperator")
    run("sso_group_mapping", slug, "remove", "ops", "--as", "ada")
    assert not SsoGroupMapping.objects.exists()


def test_bad_input_and_non_admins_change_nothing():
    admin = MembershipFactory(role=Role.ADMIN, user=UserFactory(username="ada"))
    MembershipFactory(tenant=admin.tenant, role=Role.OPERATOR, user=UserFactory(username="oscar"))
    slug = admin.tenant.slug
    with pytest.raises(CommandError, match="Unknown role"):
        run("sso_group_mapping", slug, "set", "ops", "root", "--as", "ada")
    with pytest.raises(CommandError, match="Only an admin"):
        run("sso_group_mapping", slug, "set", "ops", "admin", "--as", "oscar")
    with pytest.raises(CommandError, match="--as"):
        run("sso_group_mapping", slug, "set", "ops", "admin")
    assert not SsoGroupMapping.objects.exists()


def test_sync_applies_the_groups_at_once_and_removes_roles_the_idp_no_longer_vouches_for(
    client, provider
):
    acme = TenantFactory(name="Acme", slug="acme")
    SsoGroupMapping.objects.create(
        tenant=acme,
        group="ops",
        role=Role.OPERATOR,
        created_by_label="ada",
        created_at="2026-01-01T00:00Z",
    )
    SsoGroupMapping.objects.create(
        tenant=acme,
        group="leads",
        role=Role.ADMIN,
        created_by_label="ada",
        created_at="2026-01-01T00:00Z",
    )
    oscar = provider.add("oscar", email="oscar@example.com", groups=["ops"])
    mia = provider.add("mia", email="mia@example.com", groups=["ops"])
    sign_in(client, provider, "oscar")
    client.logout()
    sign_in(client, provider, "mia")
    assert Membership.objects.filter(tenant=acme, role=Role.OPERATOR).count() == 2

    oscar.groups = ["leads"]
    mia.disabled = True
    output = run("sso_sync")

    assert "oscar@example.com: applied" in output
    assert "mia@example.com: refused (the identity provider refused (invalid_grant)" in output
    memberships = dict(Membership.objects.filter(tenant=acme).values_list("user__username", "role"))
    assert memberships == {"oscar@example.com": Role.ADMIN}
    assert SsoIdentity.objects.get(user__username="mia@example.com").encrypted_refresh_token == ""
    refused = AuditEvent.objects.get(action="sso.sync_refused")
    assert refused.summary["reason"] == "invalid_grant"
    removed = AuditEvent.objects.get(action="sso.role_removed")
    assert removed.actor_label.startswith("cli:") and removed.actor_label.endswith(":sso_sync")

    # Nobody to sync by that email: a clear error.
    with pytest.raises(CommandError, match="Nobody with the email"):
        run("sso_sync", "--email", "nobody@example.com")


def test_sync_when_the_idp_is_down_changes_nothing(client, provider):
    acme = TenantFactory(name="Acme", slug="acme")
    SsoGroupMapping.objects.create(
        tenant=acme,
        group="ops",
        role=Role.OPERATOR,
        created_by_label="ada",
        created_at="2026-01-01T00:00Z",
    )
    provider.add("oscar", email="oscar@example.com", groups=["ops"])
    sign_in(client, provider, "oscar")
    provider.stop()
    from dashboard.sso import configuration

    configuration.forget_discovery()
    with pytest.raises(CommandError, match="could not be synced"):
        run("sso_sync")
    assert Membership.objects.get(tenant=acme).role == Role.OPERATOR
