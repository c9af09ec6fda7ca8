"""The recurring_schedule command: add (bad input refused, nothing saved), list, show, disable,
delete, and fire-due (the beat's pass)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from dashboard.recurring.models import RecurringFire, RecurringSchedule
from tests.campaigns.conftest import ARSENAL, GOOD_CONTEXT
from tests.dashboard.recurring.conftest import make_due

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("recurring_schedule", "acme", *args, stdout=out)
    return out.getvalue()


def add(*extra: str) -> str:
    import json

    return run(
        "add",
        *("--as", "mia", "--name", "Kick-off", "--zone", "Europe/Berlin"),
        *("--kind", "event_generator", "--target", "Match Start", "--topics", ARSENAL),
        *("--context", json.dumps(GOOD_CONTEXT)),
        *extra,
    )


def test_add_list_show_fire_disable_and_delete(team, generator) -> None:
    assert "Added 'Kick-off': At 09:00, Monday through Friday" in add("--cron", "0 9 * * 1-5")
    assert "Kick-off: At 09:00, Monday through Friday" in run("list")
    shown = run("show", "--name", "Kick-off")
    assert shown.count("  next ") == 5 and "UTC)" in shown
    make_due(RecurringSchedule.objects.get())
    assert "1 due fire(s) handled." in run("fire-due")
    assert RecurringFire.objects.get().outcome == "fired"
    assert "'Kick-off' disabled." in run("disable", "--as", "mia", "--name", "Kick-off")
    run("delete", "--as", "oscar", "--name", "Kick-off")
    assert not RecurringSchedule.objects.exists()


def test_a_bad_rule_is_refused_naming_the_option_and_nothing_is_saved(team, generator) -> None:
    with pytest.raises(CommandError, match=r"--cron: .*never fires"):
        add("--cron", "0 9 31 2 *")
    with pytest.raises(CommandError, match=r"--cron: .*no seconds field"):
        add("--cron", "0 0 9 * * *")
    assert not RecurringSchedule.objects.exists()
