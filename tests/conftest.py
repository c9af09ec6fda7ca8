"""Shared fixtures: users of each role in one tenant, an outsider tenant, logged-in clients."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from dashboard.models import Membership, Role, Tenant
from tests.factories import MembershipFactory, TenantFactory, UserFactory


@dataclass
class Team:
    tenant: Tenant
    marketer: Membership
    operator: Membership
    second_operator: Membership
    auditor: Membership
    admin: Membership

    def client_for(self, role: str) -> Client:
        membership = getattr(self, role)
        client = Client()
        client.force_login(membership.user)
        return client


@pytest.fixture
def team(db) -> Team:
    tenant = TenantFactory(name="Acme Sports", slug="acme")
    return Team(
        tenant=tenant,
        marketer=MembershipFactory(
            tenant=tenant, role=Role.MARKETER, user=UserFactory(username="mia")
        ),
        operator=MembershipFactory(
            tenant=tenant, role=Role.OPERATOR, user=UserFactory(username="oscar")
        ),
        second_operator=MembershipFactory(
            tenant=tenant, role=Role.OPERATOR, user=UserFactory(username="olga")
        ),
        auditor=MembershipFactory(
            tenant=tenant, role=Role.AUDITOR, user=UserFactory(username="aude")
        ),
        admin=MembershipFactory(tenant=tenant, role=Role.ADMIN, user=UserFactory(username="ada")),
    )


@pytest.fixture
def other_team(db) -> Team:
    tenant = TenantFactory(name="Other Brand", slug="other")
    return Team(
        tenant=tenant,
        marketer=MembershipFactory(
            tenant=tenant, role=Role.MARKETER, user=UserFactory(username="zed-marketer")
        ),
        operator=MembershipFactory(
            tenant=tenant, role=Role.OPERATOR, user=UserFactory(username="zed-operator")
        ),
        second_operator=MembershipFactory(
            tenant=tenant, role=Role.OPERATOR, user=UserFactory(username="zed-operator2")
        ),
        auditor=MembershipFactory(
            tenant=tenant, role=Role.AUDITOR, user=UserFactory(username="zed-auditor")
        ),
        admin=MembershipFactory(
            tenant=tenant, role=Role.ADMIN, user=UserFactory(username="zed-admin")
        ),
    )
