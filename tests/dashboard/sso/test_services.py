"""The group → role mapping's rules: who may change it, bad input, and how it is applied."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent, Membership, MembershipSource, Role
from dashboard.sso import services
from dashboard.sso.models import SsoGroupMapping
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return MembershipFactory(role=Role.ADMIN)


def act(membership) -> Actor:
    return Actor(user=membership.user)


def test_an_admin_maps_a_group_and_changes_its_role_audited(admin):
    tenant = admin.tenant
    services.mapping_set(actor=act(admin), tenant=tenant, group=" Ops ", role=Role.OPERATOR)
    services.mapping_set(actor=act(admin), tenant=tenant, group="OPS", role=Role.ADMIN)

    mapping = SsoGroupMapping.objects.get(tenant=tenant)
    assert (mapping.group, mapping.role) == ("Ops", Role.ADMIN)
    rows = AuditEvent.objects.filter(action="sso.mapping_set").order_by("id")
    assert [(r.summary["role"], r.summary["previous_role"]) for r in rows] == [
        (Role.OPERATOR, None),
        (Role.ADMIN, Role.OPERATOR),
    ]
    assert rows[0].actor == admin.user and rows[0].tenant == tenant

    services.mapping_remove(actor=act(admin), tenant=tenant, group="ops")
    assert not SsoGroupMapping.objects.exists()
    assert AuditEvent.objects.get(action="sso.mapping_removed").summary["group"] == "Ops"


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.MARKETER, Role.AUDITOR])
def test_only_admins_change_the_mapping(role):
    member = MembershipFactory(role=role)
    with pytest.raises(PermissionDenied):
        services.mapping_set(actor=act(member), tenant=member.tenant, group="x", role=Role.ADMIN)
    assert not SsoGroupMapping.objects.exists()


def test_an_admin_of_another_tenant_cannot_change_this_one(admin):
    other = TenantFactory()
    with pytest.raises(PermissionDenied):
        services.mapping_set(actor=act(admin), tenant=other, group="x", role=Role.ADMIN)


@pytest.mark.parametrize(
    ("group", "role", "code"),
    [
        ("", Role.ADMIN, "required"),
        ("   ", Role.ADMIN, "required"),
        ("g" * 201, Role.ADMIN, "max_length"),
        ("ops", "superuser", "invalid_role"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(admin, group, role, code):
    with pytest.raises(ValidationError) as refused:
        services.mapping_set(actor=act(admin), tenant=admin.tenant, group=group, role=role)
    assert next(iter(refused.value.error_dict.values()))[0].code == code
    assert not SsoGroupMapping.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="sso.").exists()


def test_removing_a_group_that_is_not_mapped_says_so(admin):
    with pytest.raises(ValidationError) as refused:
        services.mapping_remove(actor=act(admin), tenant=admin.tenant, group="nope")
    assert "has no mapping" in str(refused.value)


def test_the_strongest_role_wins_and_manual_memberships_are_left_alone(admin):
    tenant = admin.tenant
    other = TenantFactory()
    for group, role in [("readers", Role.AUDITOR), ("senders", Role.OPERATOR)]:
        services.mapping_set(actor=act(admin), tenant=tenant, group=group, role=role)
    SsoGroupMapping.objects.create(
        tenant=other,
        group="readers",
        role=Role.MARKETER,
        created_by_label="x",
        created_at="2026-01-01T00:00Z",
    )
    user = UserFactory()
    MembershipFactory(user=user, tenant=other, role=Role.ADMIN)

    applied = services.apply_roles(
        user=user, groups=["Readers", "senders", "unknown"], actor=Actor(user=user)
    )

    assert Membership.objects.get(user=user, tenant=tenant).role == Role.OPERATOR
    assert Membership.objects.get(user=user, tenant=other).role == Role.ADMIN
    assert Membership.objects.get(user=user, tenant=other).source == MembershipSource.MANUAL
    assert applied.kept_manual == [other.name]
    assert applied.unmapped_groups == ["unknown"]


def test_a_role_changed_by_hand_becomes_hand_made(admin):
    from dashboard.tenancy.services import membership_change_role

    services.mapping_set(actor=act(admin), tenant=admin.tenant, group="ops", role=Role.OPERATOR)
    user = UserFactory()
    services.apply_roles(user=user, groups=["ops"], actor=Actor(user=user))
    membership = Membership.objects.get(user=user, tenant=admin.tenant)
    membership_change_role(actor=act(admin), membership=membership, role=Role.AUDITOR)

    applied = services.apply_roles(user=user, groups=[], actor=Actor(user=user))

    membership.refresh_from_db()
    assert (membership.role, membership.source) == (Role.AUDITOR, MembershipSource.MANUAL)
    assert applied.removed == []


@pytest.mark.parametrize(
    ("claim", "groups"),
    [(None, []), ("ops", ["ops"]), (["a", 3, "", " b "], ["a", "b"]), ({"x": 1}, [])],
)
def test_a_groups_claim_of_any_shape_is_read_safely(claim, groups):
    assert services.groups_from_claims({"groups": claim}, "groups") == groups
