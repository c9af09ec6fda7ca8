"""Send windows: setting them (rules, bad input, audit), the refusal of new triggers outside
them, and the engine's hold and release of queued runs (the dispatcher against the sandbox)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.runs import dispatch, gate, services
from dashboard.runs.models import Operation, Run
from dashboard.runs.operations import operation_for
from dashboard.runs.states import RunState
from dashboard.send_windows.models import BlackoutDate, SendWindow
from dashboard.send_windows.selectors import send_hold_for, send_rules_for
from dashboard.send_windows.services import (
    OutsideSendWindow,
    WindowInput,
    check_send_window,
    send_window_set,
)
from tests.dashboard.runs.test_sweep import backends_waiting_on_a_lock, in_thread
from tests.e2e.conftest import wait_for
from tests.factories import RunFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

OPERATION = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
EVENT_GENERATOR = "00000000-abcd-abcd-abcd-000000000000"
BERLIN_OFFICE = WindowInput("Mon-Fri", "08:00", "21:00", "Europe/Berlin")


@pytest.fixture
def campaigns(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_campaigns", name="Optimove")


def oscar(team):
    return Actor(user=team.operator.user)


def around_today() -> str:
    """Blackout lines for yesterday, today and tomorrow (UTC): "now" is blacked out whatever
    the time of day the test runs at, and the next allowed time is two days on at 00:00."""
    today = utc_now().date()
    return "\n".join(f"{today + timedelta(days=d)} test blackout" for d in (-1, 0, 1))


def reopens() -> datetime:
    return datetime.combine(utc_now().date() + timedelta(days=2), time.min, tzinfo=UTC)


def submit(team, connection, number):
    return services.run_submit(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation=OPERATION,
        parameters={
            "event_generator_id": EVENT_GENERATOR,
            "topic_key": "event_reminders+NFL",
            "context": {"number": number},
        },
        idempotency_key=f"run-{number}",
        approval_required=False,
        check_duplicates=False,
    )


def sent_numbers(sandboxes):
    return sorted(
        json.loads(r.body)["context"]["number"]
        for r in sandboxes["optimove_campaigns"].received_on("run")
    )


# -- setting a window -------------------------------------------------------------------------


def test_a_window_and_blackouts_are_saved_shown_in_words_and_audited_before_after(team, campaigns):
    found = send_window_set(
        actor=oscar(team),
        connection=campaigns,
        window=BERLIN_OFFICE,
        blackouts="2026-12-24\tChristmas Eve\n\n  2026-12-31  ",
        reason="Brand rules for Q4",
    )

    assert found.describe() == (
        "Mon\u2013Fri 08:00\u201321:00 Europe/Berlin; not on 2026-12-24, 2026-12-31"
    )
    window = SendWindow.objects.get(connection=campaigns)
    assert (window.weekdays, window.start_time, window.end_time, window.time_zone) == (
        [0, 1, 2, 3, 4],
        time(8),
        time(21),
        "Europe/Berlin",
    )
    assert list(BlackoutDate.objects.values_list("day", "reason")) == [
        (date(2026, 12, 24), "Christmas Eve"),
        (date(2026, 12, 31), ""),
    ]
    event = AuditEvent.objects.get(action="send_window.changed")
    assert event.actor_label == "oscar" and event.summary["reason"] == "Brand rules for Q4"
    assert event.summary["from"] == {"window": None, "blackouts": [], "text": "Any time"}
    assert event.summary["to"]["window"] == {
        "weekdays": [0, 1, 2, 3, 4],
        "start": "08:00",
        "end": "21:00",
        "time_zone": "Europe/Berlin",
    }

    # Back to any time, blackouts kept only as listed: the next change shows what was.
    send_window_set(
        actor=Actor(user=team.admin.user),
        connection=campaigns,
        window=None,
        blackouts=[{"date": "2026-12-24", "reason": "Christmas Eve"}],
        reason="Q4 over",
    )
    assert not SendWindow.objects.exists()
    last = AuditEvent.objects.filter(action="send_window.changed").order_by("-id").first()
    assert last.summary["from"]["window"]["time_zone"] == "Europe/Berlin"
    assert last.summary["to"]["text"] == "Any time; not on 2026-12-24 (UTC dates)"


@pytest.mark.parametrize(
    ("window", "blackouts", "field", "words"),
    [
        (WindowInput("Mon-Fri", "08:00", "08:00"), "", "end", "empty: it starts and ends at 08:00"),
        (WindowInput("", "08:00", "21:00"), "", "weekdays", "at least one weekday"),
        (WindowInput([], "08:00", "21:00"), "", "weekdays", "at least one weekday"),
        (WindowInput("Funday", "08:00", "21:00"), "", "weekdays", "'Funday' is not a weekday"),
        (WindowInput("Mon", "8am", "21:00"), "", "start", "'8am' is not a time of day"),
        (WindowInput("Mon", "21:00", "08:00"), "", "end", "across midnight are not supported"),
        (WindowInput("Mon", "08:00", "21:00", "Mars/Olympus"), "", "time_zone", "not an IANA"),
        (None, "2026-12-24 Eve\n2026-02-30 Nope", "blackouts", "Blackout date 2 ('2026-02-30')"),
        (None, "24.12.2026", "blackouts", "write it as YYYY-MM-DD"),
        (None, "2026-12-24\n2026-12-24 again", "blackouts", "listed twice"),
    ],
)
def test_bad_input_is_a_clear_error_naming_the_field_and_nothing_changes(
    team, campaigns, window, blackouts, field, words
):
    send_window_set(
        actor=oscar(team),
        connection=campaigns,
        window=BERLIN_OFFICE,
        blackouts="2026-12-31 NYE",
        reason="First",
    )
    with pytest.raises(ValidationError) as raised:
        send_window_set(
            actor=oscar(team),
            connection=campaigns,
            window=window,
            blackouts=blackouts,
            reason="Second",
        )
    (message,) = raised.value.message_dict[field]
    assert words in message
    assert send_rules_for(connection_id=campaigns.pk).describe() == (
        "Mon\u2013Fri 08:00\u201321:00 Europe/Berlin; not on 2026-12-31"
    )
    assert AuditEvent.objects.filter(action="send_window.changed").count() == 1


def test_a_change_needs_a_reason(team, campaigns):
    with pytest.raises(ValidationError) as raised:
        send_window_set(
            actor=oscar(team), connection=campaigns, window=BERLIN_OFFICE, blackouts="", reason=" "
        )
    assert raised.value.message_dict["reason"] == ["Say why the send window changes."]
    assert not SendWindow.objects.exists()


@pytest.mark.parametrize("role", ["marketer", "auditor"])
def test_only_operators_and_admins_change_a_window(team, campaigns, role):
    with pytest.raises(PermissionDenied):
        send_window_set(
            actor=Actor(user=getattr(team, role).user),
            connection=campaigns,
            window=BERLIN_OFFICE,
            blackouts="",
            reason="No",
        )
    assert not SendWindow.objects.exists()


# -- new triggers -----------------------------------------------------------------------------


def test_a_trigger_outside_the_window_is_refused_with_the_next_allowed_time(team, campaigns):
    send_window_set(
        actor=oscar(team),
        connection=campaigns,
        window=BERLIN_OFFICE,
        blackouts="2026-03-30 Launch freeze",
        reason="Office hours",
    )
    # Friday 2026-03-27, 22:00 in Berlin (21:00 UTC); the clocks go forward on Sunday and
    # Monday is blacked out: next Tuesday 08:00 CEST, 06:00 UTC.
    friday_night = datetime(2026, 3, 27, 21, tzinfo=UTC)
    with pytest.raises(OutsideSendWindow) as raised:
        check_send_window(connection=campaigns, at=friday_night)
    assert raised.value.code == "outside_send_window"
    assert raised.value.next_allowed_at == datetime(2026, 3, 31, 6, tzinfo=UTC)
    assert raised.value.messages == [
        "Outside the send window of Optimove (Mon\u2013Fri 08:00\u201321:00 Europe/Berlin; "
        "not on 2026-03-30): next allowed Tue 2026-03-31 08:00 Europe/Berlin (06:00 UTC)."
    ]
    check_send_window(connection=campaigns, at=datetime(2026, 3, 27, 19, 59, tzinfo=UTC))


def test_run_submit_refuses_on_a_blackout_date_and_saves_nothing(team, campaigns):
    before = submit(team, campaigns, 0)
    send_window_set(
        actor=oscar(team), connection=campaigns, window=None, blackouts=around_today(), reason="X"
    )

    with pytest.raises(OutsideSendWindow) as raised:
        submit(team, campaigns, 1)
    assert raised.value.next_allowed_at == reopens()
    # A retry of a request made before answers with its run, as ever.
    assert submit(team, campaigns, 0) == before
    assert Run.objects.count() == 1


# -- the engine -------------------------------------------------------------------------------


def test_the_dispatcher_holds_queued_runs_until_the_window_opens(team, campaigns, sandboxes):
    runs = [submit(team, campaigns, number) for number in range(3)]
    send_window_set(
        actor=oscar(team),
        connection=campaigns,
        window=None,
        blackouts=around_today(),
        reason="Outage at the brand",
    )

    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION, run_id=runs[0].pk)

    assert sent_numbers(sandboxes) == []
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.QUEUED and run.next_attempt_at == reopens()
        assert not run.attempts.exists()
    hold = send_hold_for(connection_id=campaigns.pk, at=utc_now(), connection_name="Optimove")
    assert hold.held_reason().startswith("Held: outside the send window of Optimove (Any time;")
    assert hold.held_reason().endswith(f"it goes at {reopens():%a %Y-%m-%d} 00:00 UTC")

    # The window opens: the runs are due, and the next dispatcher sends each once.
    later = reopens() + timedelta(seconds=1)
    original = dispatch.utc_now
    try:
        dispatch.utc_now = lambda: later
        dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    finally:
        dispatch.utc_now = original
    assert sent_numbers(sandboxes) == [0, 1, 2]


def test_lifting_a_blackout_releases_the_runs_it_held(team, campaigns, sandboxes):
    runs = [submit(team, campaigns, number) for number in range(2)]
    send_window_set(
        actor=oscar(team), connection=campaigns, window=None, blackouts=around_today(), reason="X"
    )
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION, run_id=runs[0].pk)
    assert sent_numbers(sandboxes) == []

    send_window_set(
        actor=oscar(team), connection=campaigns, window=None, blackouts="", reason="Lifted"
    )
    event = AuditEvent.objects.filter(action="send_window.changed").order_by("-id").first()
    assert event.summary["released"] == 2
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)
    assert sent_numbers(sandboxes) == [0, 1]


def test_a_blackout_lifted_just_after_a_dispatcher_read_it_releases_the_runs_all_the_same(
    team, campaigns, sandboxes, monkeypatch
):
    runs = [submit(team, campaigns, number) for number in range(2)]
    send_window_set(
        actor=oscar(team), connection=campaigns, window=None, blackouts=around_today(), reason="X"
    )
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION, run_id=runs[0].pk)
    read_rules = gate.send_hold_for

    def lifted_after_the_read(**arguments):
        found = read_rules(**arguments)
        if found is not None and BlackoutDate.objects.exists():
            send_window_set(
                actor=oscar(team), connection=campaigns, window=None, blackouts="", reason="Lift"
            )
        return found

    monkeypatch.setattr(gate, "send_hold_for", lifted_after_the_read)
    dispatch.dispatch_sends(connection_id=campaigns.pk, operation=OPERATION)

    assert sent_numbers(sandboxes) == [0, 1]


@pytest.mark.django_db(transaction=True)
def test_a_dispatcher_that_read_the_blackout_as_it_was_lifted_does_not_hold_the_runs_again(
    team, campaigns
):
    runs = [submit(team, campaigns, number) for number in range(2)]
    send_window_set(
        actor=oscar(team), connection=campaigns, window=None, blackouts=around_today(), reason="X"
    )
    assert (
        dispatch.claim_sends(connection_id=campaigns.pk, operation=operation_for(OPERATION)) is None
    )
    assert set(Run.objects.values_list("next_attempt_at", flat=True)) == {reopens()}

    errors: list[BaseException] = []
    decided: list[object] = []
    with transaction.atomic():
        send_window_set(
            actor=oscar(team), connection=campaigns, window=None, blackouts="", reason="Lifted"
        )
        # Before the lift commits, a dispatcher reads the rules: still the blackout.
        dispatcher = in_thread(
            lambda: decided.append(
                gate.hold_outside_send_window(
                    connection_id=campaigns.pk, now=utc_now(), operation=OPERATION
                )
            ),
            errors,
        )
        wait_for(
            lambda: backends_waiting_on_a_lock() or errors,
            timeout=60,
            message="the dispatcher to wait",
        )
    dispatcher.join(timeout=60)

    assert errors == [] and decided == [None]
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.QUEUED and run.next_attempt_at < reopens()


def test_the_per_run_send_holds_a_run_approved_late_and_lets_it_go_when_the_window_opens(
    team, monkeypatch
):
    run = RunFactory(tenant=team.tenant, state=RunState.QUEUED, approval_required=False)
    send_window_set(
        actor=oscar(team),
        connection=run.connection,
        window=None,
        blackouts=around_today(),
        reason="X",
    )

    assert services.run_send(run_id=run.pk) == "held: outside the send window"
    run.refresh_from_db()
    assert run.state == RunState.QUEUED and run.next_attempt_at == reopens()
    assert not run.attempts.exists()
    # Before the opening, a message finds it held again; after it, it is no longer held.
    assert services.run_send(run_id=run.pk) == "held: outside the send window"
    monkeypatch.setattr(services.sending, "utc_now", lambda: reopens() + timedelta(seconds=1))
    assert services.run_send(run_id=run.pk) not in ("held: outside the send window", "not yet due")
    assert run.attempts.exists() or Run.objects.get(pk=run.pk).state != RunState.QUEUED
