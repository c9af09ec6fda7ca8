"""The demo tenant's event generators (make demo): the Optimove sandbox's own generators, each
with a payload schema and readable topics."""

from __future__ import annotations

from typing import Any, TextIO

from django.contrib.auth import get_user_model

from campaigns.event_generators.models import EventGenerator
from campaigns.event_generators.services import generator_create
from dashboard.audit.trail import Actor
from dashboard.management.commands._common import command_label
from dashboard.models import Tenant, VendorConnection

SCHEMA = "https://json-schema.org/draft/2020-12/schema"
CLUB_TOPICS = [
    ("6f1c2e0a-1b2c-4d3e-8f40-000000000001", "Arsenal"),
    ("6f1c2e0a-1b2c-4d3e-8f40-000000000002", "Chelsea"),
    ("6f1c2e0a-1b2c-4d3e-8f40-000000000003", "Liverpool"),
    ("6f1c2e0a-1b2c-4d3e-8f40-000000000004", "Manchester United"),
    ("6f1c2e0a-1b2c-4d3e-8f40-000000000005", "Tottenham Hotspur"),
]
VENUE: dict[str, Any] = {
    "type": "object",
    "title": "Venue",
    "properties": {
        "name": {"type": "string", "title": "Stadium"},
        "city": {"type": "string"},
    },
    "required": ["name"],
}
DEMO_GENERATORS: list[dict[str, Any]] = [
    {
        "external_id": "00000000-abcd-abcd-abcd-000000000000",
        "name": "Match Start Notifications",
        "description": "Sent when a match is about to start; one topic per club.",
        "topics": CLUB_TOPICS,
        "schema": {
            "$schema": SCHEMA,
            "type": "object",
            "properties": {
                "match_id": {"type": "string", "title": "Match id", "description": "Our id."},
                "match_name": {"type": "string", "title": "Match", "minLength": 3},
                "league": {"enum": ["EPL", "UCL", "FA Cup"], "default": "EPL"},
                "start_time": {"type": "string", "format": "date-time", "title": "Kick-off"},
                "venue": VENUE,
                "url": {"type": "string", "format": "uri", "description": "Match page."},
            },
            "required": ["match_id", "match_name", "start_time", "url"],
            "additionalProperties": False,
        },
    },
    {
        "external_id": "11111111-xyz-xyz-xyz-111111111111",
        "name": "Goal Scored Notifications",
        "description": "The doc's own example generator id.",
        "topics": CLUB_TOPICS,
        "schema": {
            "$schema": SCHEMA,
            "type": "object",
            "properties": {
                "team_name": {"type": "string"},
                "player_name": {"type": "string"},
                "minute": {"type": "integer", "minimum": 0, "maximum": 130},
                "score": {"type": "string", "description": "e.g. 2-1"},
                "own_goal": {"type": "boolean", "default": False},
                "match_id": {"type": "string"},
                "url": {"type": "string", "format": "uri"},
            },
            "required": ["team_name", "player_name", "minute", "score", "match_id"],
        },
    },
    {
        "external_id": "22222222-abcd-abcd-abcd-222222222222",
        "name": "Weekly Newsletter",
        "description": "Not API-triggered in Optimove: a trigger shows the 422 explained.",
        "topics": CLUB_TOPICS[:1],
        "schema": {
            "$schema": SCHEMA,
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
    },
]


def register_demo_event_generators(tenant: Tenant, connection: VendorConnection) -> int:
    """Register the demo generators that are not there yet; how many were added."""
    marketer = get_user_model().objects.filter(username="mia").first()
    actor = Actor(user=marketer, label=command_label("setup_demo", acting_as="mia"))
    added = 0
    for spec in DEMO_GENERATORS:
        if EventGenerator.objects.filter(tenant=tenant, name=spec["name"]).exists():
            continue
        generator_create(actor=actor, tenant=tenant, connection=connection, **spec)
        added += 1
    return added


def register_demo_data(tenant: Tenant, stdout: TextIO) -> None:
    """The demo generators on the demo tenant's Optimove campaigns sandbox connection (setup_demo
    calls it through AppConfig.demo_data)."""
    register_demo_event_generators(
        tenant, VendorConnection.objects.get(tenant=tenant, name="Optimove campaigns (sandbox)")
    )
