"""Fixtures of the automation API tests: roomy rate limits and an event generator of the team's
tenant (tokens, the JSON client, a daily trigger connection and an Altcraft trigger are shared:
tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.audit.trail import Actor


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
