"""Fixtures of the automation API tests: tokens for the team's members, a daily trigger
connection, and a JSON client that sends a token."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from dashboard.audit import Actor


@dataclass
class ApiClient:
    """Django's test client speaking JSON with a bearer token."""

    secret: str
    slug: str

    def url(self, path: str) -> str:
        return f"/api/v1/t/{self.slug}/{path.lstrip('/')}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.secret}"}
        headers.update(extra or {})
        return headers

    def get(self, path: str, **params: Any) -> Any:
        from django.test import Client

        return Client(enforce_csrf_checks=True).get(self.url(path), params, headers=self.headers())

    def post(
        self, path: str, body: Any = None, *, raw: bytes | str | None = None, **headers: str
    ) -> Any:
        from django.test import Client

        data = raw if raw is not None else json.dumps(body if body is not None else {})
        # HTTP_IDEMPOTENCY_KEY="k" (the test client's spelling) -> "Idempotency-Key: k"
        headers = {
            name.removeprefix("HTTP_").replace("_", "-").title(): value
            for name, value in headers.items()
        }
        return Client(enforce_csrf_checks=True).post(
            self.url(path), data, content_type="application/json", headers=self.headers(headers)
        )


@pytest.fixture
def make_token(team):
    """make_token(role="operator", tenant=None, **kwargs) -> (token, ApiClient)."""
    from dashboard.api.services import api_token_create
    from dashboard.audit import Actor

    def make(role: str = "operator", *, name: str = "", team_=None, **kwargs: Any):
        team_ = team_ or team
        membership = getattr(team_, role)
        token, secret = api_token_create(
            actor=Actor(user=membership.user),
            user=membership.user,
            tenant=team_.tenant,
            name=name or f"{role}-pipeline",
            **kwargs,
        )
        return token, ApiClient(secret=secret, slug=team_.tenant.slug)

    return make


@pytest.fixture
def daily_connection(team):
    from dashboard.models import VendorKind
    from tests.factories import VendorConnectionFactory

    return VendorConnectionFactory(
        tenant=team.tenant, kind=VendorKind.OPTIMOVE_BATCH, name="Optimove batch"
    )


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 6000
    settings.API_RATE_LIMIT_BURST = 1000


# -- campaigns: an event generator and an Altcraft trigger of the team's tenant ----------------

MATCH_START = "00000000-abcd-abcd-abcd-000000000000"
ARSENAL = "6f1c2e0a-1b2c-4d3e-8f40-000000000001"
CHELSEA = "6f1c2e0a-1b2c-4d3e-8f40-000000000002"
GENERATOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "match_name": {"type": "string", "minLength": 3},
        "minute": {"type": "integer", "minimum": 0, "maximum": 130},
        "venue": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    "required": ["match_name"],
    "additionalProperties": False,
}
GOOD = {"match_name": "Arsenal vs Chelsea", "minute": 0}


def make_generator(team, sandbox_connection, **overrides: Any):
    from campaigns.event_generators import services

    connection = sandbox_connection(team.tenant, "optimove_campaigns", name="Optimove")
    options = {
        "actor": Actor(user=team.admin.user),
        "tenant": team.tenant,
        "connection": connection,
        "external_id": MATCH_START,
        "name": "Match start",
        "topics": [(ARSENAL, "Arsenal"), (CHELSEA, "Chelsea")],
        "schema": GENERATOR_SCHEMA,
    }
    options.update(overrides)
    return services.generator_create(**options)


@pytest.fixture
def generator(team, sandbox_connection):
    return make_generator(team, sandbox_connection)


@pytest.fixture
def altcraft_trigger(team, sandbox_connection, settings, tmp_path):
    from campaigns.altcraft_launches import services

    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    connection = sandbox_connection(team.tenant, "altcraft", name="Altcraft sandbox")
    return services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=connection,
        trigger_id=8,
        name="Abandoned cart",
        content_fields=["page"],
    )
