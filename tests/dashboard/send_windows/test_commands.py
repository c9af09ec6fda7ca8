"""send_window: show and set from the command line, the same rules and audit as the pages."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.models import AuditEvent
from dashboard.send_windows.models import BlackoutDate, SendWindow

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_set_and_show_a_window_from_the_command_line(team, daily_connection):
    said = run(
        "send_window", "acme", "Optimove batch", "--weekdays", "Mon-Fri", "--start", "08:00",
        "--end", "21:00", "--zone", "Europe/Berlin", "--blackout", "2026-12-24=Christmas Eve",
        "--blackout", "2026-12-31", "--reason", "Brand rules", "--as", "oscar",
    )  # fmt: skip
    assert said.strip() == (
        "Send window of Optimove batch: Mon\u2013Fri 08:00\u201321:00 Europe/Berlin; "
        "not on 2026-12-24, 2026-12-31"
    )
    event = AuditEvent.objects.get(action="send_window.changed")
    assert event.actor_label.startswith("oscar (cli:") and event.actor_label.endswith(
        ":send_window)"
    )
    assert event.summary["reason"] == "Brand rules"

    shown = run("send_window", "acme", "Optimove batch")
    assert shown.splitlines() == [
        "Optimove batch: Mon\u2013Fri 08:00\u201321:00 Europe/Berlin; not on 2026-12-24, "
        "2026-12-31",
        "  not on 2026-12-24: Christmas Eve",
        "  not on 2026-12-31",
    ]

    # Blackouts alone keep the window; --any-time drops it and --keep-blackouts keeps the dates.
    run("send_window", "acme", "Optimove batch", "--blackout", "2027-01-01=New Year",
        "--reason", "Next year", "--as", "ada")  # fmt: skip
    assert SendWindow.objects.get().time_zone == "Europe/Berlin"
    assert list(BlackoutDate.objects.values_list("reason", flat=True)) == ["New Year"]
    run("send_window", "acme", "Optimove batch", "--any-time", "--keep-blackouts",
        "--reason", "Open", "--as", "ada")  # fmt: skip
    assert not SendWindow.objects.exists() and BlackoutDate.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--weekdays", "Mon", "--start", "08:00", "--end", "08:00"), "The window is empty"),
        (("--weekdays", "Mon", "--start", "08:00"), "A window needs --weekdays, --start and --end"),
        (("--blackout", "2026-02-30"), "Blackout date 1 ('2026-02-30') is not a date"),
        (("--weekdays", "Mon-Fri", "--start", "8", "--end", "9"), "'8' is not a time of day"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(team, daily_connection, args, message):
    with pytest.raises(CommandError) as raised:
        run("send_window", "acme", "Optimove batch", *args, "--reason", "x", "--as", "oscar")
    assert message in str(raised.value)
    assert not SendWindow.objects.exists() and not BlackoutDate.objects.exists()
    assert not AuditEvent.objects.filter(action="send_window.changed").exists()


def test_a_marketer_cannot_set_a_window(team, daily_connection):
    with pytest.raises(CommandError) as raised:
        run("send_window", "acme", "Optimove batch", "--any-time", "--reason", "x", "--as", "mia")
    assert "cannot change send windows in Acme Sports" in str(raised.value)
