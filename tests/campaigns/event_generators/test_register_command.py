"""The event_generator_register command: a generator registered (or updated) from its JSON
document through the same services and checks as the page, audited as the member and the
operating-system user."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from campaigns.event_generators import services
from campaigns.event_generators.models import EventGenerator
from dashboard.models import AuditEvent
from tests.campaigns.conftest import ARSENAL, CHELSEA, MATCH_SCHEMA, MATCH_START

pytestmark = pytest.mark.django_db


def run_command(*args) -> str:
    out = StringIO()
    call_command("event_generator_register", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def document_file(tmp_path):
    def write(content) -> str:
        path = tmp_path / f"generator-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


def exported(**changes):
    return {
        "format": services.EXPORT_FORMAT,
        "event_generator_id": MATCH_START,
        "name": "Match start",
        "topics": [{"key": ARSENAL, "name": "Arsenal"}, {"key": CHELSEA, "name": "Chelsea"}],
        "schema": MATCH_SCHEMA,
        **changes,
    }


def test_an_exported_document_registers_the_generator_with_its_topics(
    team, campaigns_connection, document_file
):
    output = run_command("--file", document_file(exported()), "--as", "mia")

    assert "Registered Match start" in output and "2 topic(s)" in output
    generator = EventGenerator.objects.get()
    assert generator.external_id == MATCH_START and generator.connection == campaigns_connection
    assert generator.current_schema.schema == MATCH_SCHEMA
    event = AuditEvent.objects.get(action="event_generator.created")
    assert event.actor == team.marketer.user
    assert event.actor_label.startswith("mia (cli:") and "event_generator_register" in (
        event.actor_label
    )


def test_a_bare_schema_needs_an_id_and_a_name_and_bad_input_registers_nothing(
    team, campaigns_connection, document_file
):
    path = document_file(MATCH_SCHEMA)
    with pytest.raises(CommandError, match=r"external_id: .* is not an Event Generator ID"):
        run_command("--file", path, "--as", "mia")
    with pytest.raises(CommandError, match="name: A generator needs a name"):
        run_command("--file", path, "--external-id", MATCH_START, "--as", "mia")
    with pytest.raises(CommandError, match="file: The file is not JSON"):
        run_command("--file", document_file("{nope"), "--as", "mia")
    assert not EventGenerator.objects.exists()

    run_command("--file", path, "--external-id", MATCH_START, "--name", "Bare", "--as", "mia")
    assert EventGenerator.objects.get().name == "Bare"


def test_update_makes_a_new_schema_version_and_an_auditor_cannot_register(
    team, campaigns_connection, document_file
):
    run_command("--file", document_file(exported()), "--as", "mia")
    changed = {**MATCH_SCHEMA, "required": ["match_id"]}
    output = run_command(
        "--file", document_file(exported(schema=changed)), "--update", "--as", "oscar"
    )
    assert "schema version 2" in output
    generator = EventGenerator.objects.get()
    assert generator.current_schema.schema == changed
    assert generator.current_schema.created_by == team.operator.user

    with pytest.raises(CommandError, match=r"Auditor.*cannot register"):
        run_command("--file", document_file(exported()), "--as", "aude")
