"""pause_sending and resume_sending: the same rules as the pages, audited as the member named
by --as and the operating-system user who ran them."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.models import AuditEvent
from dashboard.pauses.models import SendingPause

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_pause_and_resume_a_connection_from_the_command_line(team, daily_connection):
    said = run(
        "pause_sending", "acme", "--connection", "Optimove batch", "--reason", "Bad file",
        "--as", "oscar",
    )  # fmt: skip
    assert said.strip() == "Sending paused for Optimove batch (Acme Sports): Bad file"
    pause = SendingPause.objects.get()
    assert pause.connection == daily_connection and pause.paused_by_label.startswith("oscar (cli:")

    said = run("resume_sending", "acme", "--connection", "Optimove batch", "--as", "ada")
    assert "Sending resumed for Optimove batch (Acme Sports): 0 held run(s) sent on" in said
    actions = list(
        AuditEvent.objects.filter(action__startswith="sending.").values_list(
            "action", "actor_label"
        )
    )
    assert [action for action, _ in actions] == ["sending.resumed", "sending.paused"]
    assert all(":pause_sending" in who or ":resume_sending" in who for _, who in actions)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pause_sending", "acme", "--reason", " ", "--as", "oscar"), "Say why sending is paused."),
        (
            ("pause_sending", "acme", "--connection", "Nope", "--reason", "x", "--as", "oscar"),
            "Acme Sports has no connection 'Nope'.",
        ),
        (("pause_sending", "acme", "--reason", "x", "--as", "mia"), "cannot pause sending"),
        (("resume_sending", "acme", "--as", "oscar"), "Sending is not paused for Acme Sports"),
        (("pause_sending", "nope", "--reason", "x", "--as", "oscar"), "No tenant with slug"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(team, args, message):
    with pytest.raises(CommandError) as raised:
        run(*args)
    assert message in str(raised.value)
    assert not SendingPause.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="sending.").exists()


def test_pausing_twice_says_it_is_already_paused(team):
    run("pause_sending", "acme", "--reason", "Incident", "--as", "oscar")
    with pytest.raises(CommandError) as raised:
        run("pause_sending", "acme", "--reason", "Incident", "--as", "olga")
    assert "Not paused: Sending is already paused for Acme Sports (by oscar" in str(raised.value)
    assert SendingPause.objects.count() == 1
