"""The campaign_trigger command: same services and checks as the form, audited as the member
and the operating-system user."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from campaigns.event_generators.models import ScheduledTrigger
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.runs.models import Run
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT, MATCH_START

pytestmark = pytest.mark.django_db


@pytest.fixture
def context_file(tmp_path):
    def write(content) -> str:
        path = tmp_path / "ctx.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


def run_command(*args) -> str:
    out = StringIO()
    call_command("campaign_trigger", *args, stdout=out)
    return out.getvalue()


def test_triggering_by_id_and_topic_names(generator, team, context_file):
    output = run_command(
        "--generator",
        MATCH_START,
        "--topic",
        "Arsenal",
        "--topic",
        CHELSEA,
        "--context-file",
        context_file(GOOD_CONTEXT),
        "--as",
        "mia",
    )
    assert "2 run(s)" in output
    runs = Run.objects.order_by("pk")
    assert [run.parameters["topic_key"] for run in runs] == [ARSENAL, CHELSEA]
    event = AuditEvent.objects.filter(action="run.requested").first()
    assert event.actor_label.startswith("mia (cli:") and "campaign_trigger" in event.actor_label
    assert event.actor == team.marketer.user


def test_triggering_by_name_and_scheduling(generator, context_file):
    moment = (utc_now() + timedelta(hours=1)).replace(microsecond=0)
    output = run_command(
        "--generator",
        "Match Start Notifications",
        "--all-topics",
        "--context-file",
        context_file(GOOD_CONTEXT),
        "--schedule",
        moment.isoformat(),
        "--as",
        "mia",
    )
    assert "Scheduled #" in output
    assert ScheduledTrigger.objects.get().fire_at == moment
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--topic", "Arsenal", "--context-file", "MISSING"], "Cannot read"),
        (["--topic", "Arsenal", "--context", "not json"], "is not JSON"),
        (["--topic", "Tottenham", "--context", GOOD_CONTEXT], "Unknown topic"),
        (["--topic", "Arsenal", "--context", {"match_id": 1}], "match_id: Expected a text"),
        (
            ["--topic", "Arsenal", "--context", GOOD_CONTEXT, "--schedule", "2020-01-01T00:00:00Z"],
            "in the past",
        ),
        (
            ["--topic", "Arsenal", "--context", GOOD_CONTEXT, "--schedule", "2099-01-01T00:00"],
            "time zone",
        ),
    ],
)
def test_bad_input_sends_nothing(generator, context_file, arguments, message):
    if "--context" in arguments:
        index = arguments.index("--context")
        arguments = [
            *arguments[:index],
            "--context-file",
            context_file(arguments[index + 1]),
            *arguments[index + 2 :],
        ]
    with pytest.raises(CommandError, match=message):
        run_command("--generator", MATCH_START, *arguments, "--as", "mia")
    assert not Run.objects.exists() and not ScheduledTrigger.objects.exists()


def test_unknown_generator_or_role_is_refused(generator, context_file):
    path = context_file(GOOD_CONTEXT)
    with pytest.raises(CommandError, match="No event generator"):
        run_command(
            "--generator", "Nope", "--topic", "Arsenal", "--context-file", path, "--as", "mia"
        )
    with pytest.raises(CommandError, match="cannot trigger"):
        run_command(
            "--generator", MATCH_START, "--topic", "Arsenal", "--context-file", path, "--as", "aude"
        )
    assert not Run.objects.exists()


def test_a_duplicate_needs_send_anyway(generator, context_file):
    path = context_file(GOOD_CONTEXT)
    base = ["--generator", MATCH_START, "--topic", "Arsenal", "--context-file", path, "--as", "mia"]
    run_command(*base)
    with pytest.raises(CommandError, match="--send-anyway"):
        run_command(*base)
    run_command(*base, "--send-anyway")
    assert Run.objects.count() == 2
