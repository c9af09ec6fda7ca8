"""Shared fixtures: users of each role in one tenant, an outsider tenant, logged-in clients.

Django-free vendor tests run this conftest too (with -p no:django), so Django is imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Team:
    tenant: Any
    marketer: Any
    operator: Any
    second_operator: Any
    auditor: Any
    admin: Any

    def client_for(self, role: str) -> Any:
        from django.test import Client

        client = Client()
        client.force_login(getattr(self, role).user)
        return client


def make_team(name: str, slug: str, usernames: dict[str, str]) -> Team:
    from dashboard.models import Role
    from tests.factories import MembershipFactory, TenantFactory, UserFactory

    tenant = TenantFactory(name=name, slug=slug)
    roles = {
        "marketer": Role.MARKETER,
        "operator": Role.OPERATOR,
        "second_operator": Role.OPERATOR,
        "auditor": Role.AUDITOR,
        "admin": Role.ADMIN,
    }
    members = {
        field: MembershipFactory(
            tenant=tenant, role=role, user=UserFactory(username=usernames[field])
        )
        for field, role in roles.items()
    }
    return Team(tenant=tenant, **members)


@pytest.fixture
def team(db) -> Team:
    return make_team(
        "Acme Sports",
        "acme",
        {
            "marketer": "mia",
            "operator": "oscar",
            "second_operator": "olga",
            "auditor": "aude",
            "admin": "ada",
        },
    )


@pytest.fixture
def other_team(db) -> Team:
    return make_team(
        "Other Brand",
        "other",
        {
            field: f"zed-{field}"
            for field in ("marketer", "operator", "second_operator", "auditor", "admin")
        },
    )
