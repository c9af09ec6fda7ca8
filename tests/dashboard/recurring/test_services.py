"""Recurring schedules: saving them (rules, bad input, who may, audit) and firing them through
each target's own services: fired, or skipped with why (a pause, a blackout date, the daily
trigger's once-a-day rule), exactly once per fire time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from campaigns.altcraft_launches.models import AltcraftLaunch
from campaigns.event_generators.models import TriggerGroup
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.pauses.services import sending_pause
from dashboard.recurring import services
from dashboard.recurring.models import RecurringFire, RecurringSchedule
from dashboard.runs.models import Run
from dashboard.send_windows.services import send_window_set
from tests.dashboard.recurring.conftest import generator_input, make_due

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def mia(team):
    return Actor(user=team.marketer.user)


def test_a_schedule_is_saved_with_its_next_fire_and_audited(team, generator) -> None:
    schedule = services.schedule_create(
        actor=mia(team), tenant=team.tenant, data=generator_input(generator)
    )
    assert schedule.next_fire_at > utc_now()
    local = schedule.next_fire_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    assert schedule.target_label.startswith("Event generator Match Start")
    assert schedule.connection_id == generator.connection_id
    event = AuditEvent.objects.get(action="recurring.created")
    assert event.summary["cron"] == "0 9 * * 1-5"
    assert event.actor_label == "mia"


def test_bad_input_names_every_field_and_saves_nothing(team, generator) -> None:
    with pytest.raises(ValidationError) as caught:
        services.schedule_create(
            actor=mia(team),
            tenant=team.tenant,
            data=generator_input(
                generator,
                name="",
                cron="0 9 30 2 *",
                target_input={"id": generator.pk, "topics": ["nope"], "context": {}},
            ),
        )
    errors = caught.value.message_dict
    assert set(errors) >= {"name", "cron", "topics"}
    assert "never fires" in errors["cron"][0]
    assert not RecurringSchedule.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="recurring.").exists()


def test_an_auditor_cannot_schedule_and_a_marketer_cannot_change_anothers(team, generator) -> None:
    with pytest.raises(PermissionDenied):
        services.schedule_create(
            actor=Actor(user=team.auditor.user), tenant=team.tenant, data=generator_input(generator)
        )
    schedule = services.schedule_create(
        actor=Actor(user=team.operator.user), tenant=team.tenant, data=generator_input(generator)
    )
    with pytest.raises(PermissionDenied):
        services.schedule_set_enabled(actor=mia(team), schedule=schedule, enabled=False)


def test_disabling_stops_its_fires_and_enabling_counts_from_now(team, generator) -> None:
    schedule = services.schedule_create(
        actor=mia(team), tenant=team.tenant, data=generator_input(generator)
    )
    make_due(schedule)
    schedule = services.schedule_set_enabled(actor=mia(team), schedule=schedule, enabled=False)
    assert schedule.next_fire_at is None
    assert services.recurring_fire_due() == 0
    schedule = services.schedule_set_enabled(actor=mia(team), schedule=schedule, enabled=True)
    assert schedule.next_fire_at > utc_now()
    actions = list(
        AuditEvent.objects.filter(action__startswith="recurring.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions[-2:] == ["recurring.disabled", "recurring.enabled"]


def test_a_change_is_audited_field_by_field_and_moves_the_next_fire(team, generator) -> None:
    schedule = services.schedule_create(
        actor=mia(team), tenant=team.tenant, data=generator_input(generator)
    )
    changed = services.schedule_update(
        actor=Actor(user=team.operator.user),
        schedule=schedule,
        data=generator_input(generator, cron="30 7 * * *", time_zone="UTC"),
    )
    assert changed.next_fire_at.astimezone().minute == 30
    assert changed.requested_by == team.operator.user
    summary = AuditEvent.objects.get(action="recurring.changed").summary
    assert summary["cron"] == {"from": "0 9 * * 1-5", "to": "30 7 * * *"}
    services.schedule_delete(actor=mia(team), schedule=changed)
    assert not RecurringSchedule.objects.exists()
    assert AuditEvent.objects.filter(action="recurring.deleted").count() == 1


# -- firing ------------------------------------------------------------------------------------


def test_a_due_event_generator_schedule_fires_one_trigger_group_as_its_requester(
    team, generator
) -> None:
    schedule = services.schedule_create(
        actor=mia(team), tenant=team.tenant, data=generator_input(generator)
    )
    fire_at = make_due(schedule)
    assert services.recurring_fire_due() == 1
    assert services.recurring_fire_due() == 0  # moved on to its next fire
    fire = RecurringFire.objects.get()
    assert (fire.fire_at, fire.outcome) == (fire_at, "fired")
    group = TriggerGroup.objects.get()
    assert fire.result_label == f"Trigger group #{group.pk}"
    assert group.created_by == team.marketer.user
    assert Run.objects.get().requested_by == team.marketer.user
    schedule.refresh_from_db()
    assert schedule.next_fire_at > utc_now()
    assert AuditEvent.objects.filter(action="recurring.fired").count() == 1


def test_a_fire_during_a_pause_is_skipped_with_why_and_the_next_one_still_comes(
    team, generator
) -> None:
    schedule = services.schedule_create(
        actor=mia(team), tenant=team.tenant, data=generator_input(generator)
    )
    make_due(schedule)
    sending_pause(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        connection=None,
        reason="Wrong audience",
    )
    services.recurring_fire_due()
    fire = RecurringFire.objects.get()
    assert fire.outcome == "skipped"
    assert "Sending is paused" in fire.reason and "Wrong audience" in fire.reason
    assert not Run.objects.exists()
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_fire_at > utc_now()


def test_a_fire_on_a_blackout_date_is_skipped_with_why(team, generator) -> None:
    schedule = services.schedule_create(
        actor=mia(team), tenant=team.tenant, data=generator_input(generator)
    )
    make_due(schedule)
    today = utc_now().date()
    send_window_set(
        actor=Actor(user=team.operator.user),
        connection=generator.connection,
        window=None,
        blackouts="\n".join(f"{today + timedelta(days=d)} Holiday" for d in (-1, 0, 1)),
        reason="Holidays",
    )
    services.recurring_fire_due()
    fire = RecurringFire.objects.get()
    assert fire.outcome == "skipped"
    assert f"not on {today - timedelta(days=1)}, {today}" in fire.reason
    assert not Run.objects.exists()


def test_a_fire_found_long_after_its_time_is_recorded_as_missed_not_sent_late(
    team, generator
) -> None:
    # A rule whose only fire of the day is twelve hours away from now.
    hour = (utc_now().hour + 12) % 24
    schedule = services.schedule_create(
        actor=mia(team),
        tenant=team.tenant,
        data=generator_input(generator, cron=f"0 {hour} * * *", time_zone="UTC"),
    )
    make_due(schedule, seconds_ago=3 * 3600)
    services.recurring_fire_due()
    fire = RecurringFire.objects.get()
    assert fire.outcome == "skipped" and fire.reason.startswith("Missed")
    assert "1 fire(s) missed" in fire.reason
    assert not Run.objects.exists()
    schedule.refresh_from_db()
    assert schedule.next_fire_at > utc_now() - services.LATE_LIMIT


def test_the_daily_trigger_fires_once_per_utc_day_and_a_second_fire_is_skipped(
    team, daily_connection
) -> None:
    schedule = services.schedule_create(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        data=services.ScheduleInput(
            name="Daily",
            cron="0 6 * * *",
            time_zone="UTC",
            target_kind="daily_trigger",
            target_input={"id": daily_connection.pk, "files_uploaded_attested": True},
        ),
    )
    make_due(schedule, seconds_ago=60)
    services.recurring_fire_due()
    make_due(schedule, seconds_ago=30)
    services.recurring_fire_due()
    first, second = RecurringFire.objects.order_by("fire_at")
    assert first.outcome == "fired" and first.result_label.startswith("Run #")
    assert second.outcome == "skipped" and second.reason
    assert Run.objects.filter(operation="optimove_trigger_daily").count() == 1


def test_the_daily_trigger_waits_for_the_files_landed_signal(team, daily_connection) -> None:
    team.tenant.require_files_landed = True
    team.tenant.save()
    schedule = services.schedule_create(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        data=services.ScheduleInput(
            name="Daily",
            cron="0 6 * * *",
            time_zone="UTC",
            target_kind="daily_trigger",
            target_input={"id": daily_connection.pk, "files_uploaded_attested": True},
        ),
    )
    make_due(schedule)
    services.recurring_fire_due()
    fire = RecurringFire.objects.get()
    assert fire.outcome == "skipped" and "files" in fire.reason.lower()
    assert not Run.objects.exists()


def test_a_daily_schedule_needs_the_attestation(team, daily_connection) -> None:
    with pytest.raises(ValidationError) as caught:
        services.schedule_create(
            actor=Actor(user=team.operator.user),
            tenant=team.tenant,
            data=services.ScheduleInput(
                name="Daily",
                cron="0 6 * * *",
                time_zone="UTC",
                target_kind="daily_trigger",
                target_input={"id": daily_connection.pk, "wait_time_for_validation_seconds": 99},
            ),
        )
    assert set(caught.value.message_dict) == {
        "files_uploaded_attested",
        "wait_time_for_validation_seconds",
    }


def test_an_altcraft_schedule_keeps_its_list_encrypted_and_launches_it(
    team, altcraft_trigger
) -> None:
    schedule = services.schedule_create(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        data=services.ScheduleInput(
            name="Digest",
            cron="0 8 * * mon",
            time_zone="Europe/Berlin",
            target_kind="altcraft_launch",
            target_input={"id": altcraft_trigger.pk, "recipients": "a@example.com\nb@example.com"},
        ),
    )
    assert "a@example.com" not in str(schedule.parameters)
    assert "2 recipients" in schedule.target_label
    make_due(schedule)
    services.recurring_fire_due()
    fire = RecurringFire.objects.get()
    assert fire.outcome == "fired", fire.reason
    launch = AltcraftLaunch.objects.get()
    assert fire.result_label == f"Altcraft launch #{launch.pk}"
    assert launch.rows_valid == 2
    assert "a@example.com" not in str(AuditEvent.objects.filter(action__startswith="recurring."))


def test_after_a_stop_only_the_latest_recent_fire_is_sent_and_the_rest_are_one_missed_row(
    team, generator
) -> None:
    schedule = services.schedule_create(
        actor=mia(team),
        tenant=team.tenant,
        data=generator_input(generator, cron="*/5 * * * *", time_zone="UTC"),
    )
    make_due(schedule, seconds_ago=3 * 3600)
    services.recurring_fire_due()
    missed, fired = RecurringFire.objects.order_by("fire_at")
    assert missed.outcome == "skipped" and "fire(s) missed" in missed.reason
    assert fired.outcome == "fired"
    assert utc_now() - fired.fire_at <= timedelta(minutes=5)
    assert TriggerGroup.objects.count() == 1


def test_a_key_rotation_re_encrypts_a_stored_list(team, altcraft_trigger, settings) -> None:
    from cryptography.fernet import Fernet

    from dashboard.tenancy.crypto import decrypt_secret
    from dashboard.tenancy.services import credentials_rotate_key

    schedule = services.schedule_create(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        data=services.ScheduleInput(
            name="Digest",
            cron="0 8 * * mon",
            time_zone="UTC",
            target_kind="altcraft_launch",
            target_input={"id": altcraft_trigger.pk, "recipients": "a@example.com"},
        ),
    )
    before = schedule.parameters["recipients"]
    settings.CREDENTIALS_KEYS = [Fernet.generate_key().decode(), *settings.CREDENTIALS_KEYS]
    credentials_rotate_key(actor=Actor(user=team.admin.user))
    schedule.refresh_from_db()
    assert schedule.parameters["recipients"] != before
    settings.CREDENTIALS_KEYS = settings.CREDENTIALS_KEYS[:1]  # the old key removed
    assert decrypt_secret(schedule.parameters["recipients"]) == "a@example.com"
