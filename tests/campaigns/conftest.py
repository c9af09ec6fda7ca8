"""Fixtures of the event-generator tests: a generator of the team's tenant on the Optimove
campaigns sandbox, with a schema and topics."""

from __future__ import annotations

from typing import Any

import pytest

# The end-to-end harness (real Celery workers) for the slow tests of this folder.
from tests.e2e.conftest import (  # noqa: F401
    e2e_redis,
    pytest_runtest_makereport,
    workers,
)

MATCH_START = "00000000-abcd-abcd-abcd-000000000000"
NEWSLETTER = "22222222-abcd-abcd-abcd-222222222222"  # the sandbox's non-API-triggered one
ARSENAL = "6f1c2e0a-1b2c-4d3e-8f40-000000000001"
CHELSEA = "6f1c2e0a-1b2c-4d3e-8f40-000000000002"

MATCH_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "match_id": {"type": "string", "title": "Match id", "description": "Our id of the match"},
        "match_name": {"type": "string", "minLength": 3},
        "start_time": {"type": "string", "format": "date-time"},
        "minute": {"type": "integer", "minimum": 0, "maximum": 130, "default": 0},
        "odds": {"type": "number"},
        "live": {"type": "boolean"},
        "league": {"enum": ["NFL", "EPL", "NBA"]},
        "url": {"type": "string", "format": "uri"},
        "venue": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
            "required": ["name"],
        },
    },
    "required": ["match_id", "match_name", "start_time", "url"],
    "additionalProperties": False,
}

GOOD_CONTEXT = {
    "match_id": "nfl-2025-001",
    "match_name": "49ers vs Chiefs",
    "start_time": "2025-10-12T18:00:00Z",
    "url": "https://example.com/nfl/49ers-chiefs",
}


@pytest.fixture
def campaigns_connection(team, sandbox_connection):
    from dashboard.models import VendorKind

    return sandbox_connection(team.tenant, VendorKind.OPTIMOVE_CAMPAIGNS, name="Optimove")


@pytest.fixture
def make_generator(team, campaigns_connection):
    from campaigns.event_generators import services
    from dashboard.audit.trail import Actor

    def make(**overrides: Any):
        options = {
            "actor": Actor(user=team.marketer.user),
            "tenant": team.tenant,
            "connection": campaigns_connection,
            "external_id": MATCH_START,
            "name": "Match Start Notifications",
            "topics": [(ARSENAL, "Arsenal"), (CHELSEA, "Chelsea")],
            "schema": MATCH_SCHEMA,
        }
        options.update(overrides)
        return services.generator_create(**options)

    return make


@pytest.fixture
def generator(make_generator):
    return make_generator()
