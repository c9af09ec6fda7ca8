"""The event-generator services: registry, versions, triggers through the run engine, retries,
schedules. Bad input leaves nothing behind."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from campaigns.event_generators import services
from campaigns.event_generators.models import (
    CampaignRun,
    EventGenerator,
    ScheduledTrigger,
    ScheduleState,
    SchemaVersion,
    Topic,
    TriggerGroup,
)
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import AuditEvent, Role, VendorKind
from dashboard.runs.models import Run
from dashboard.runs.services import ProbableDuplicate, RunActionError, run_approve
from dashboard.runs.states import RunState
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT, MATCH_SCHEMA, MATCH_START
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def marketer(team):
    return Actor(user=team.marketer.user)


def second_marketer(team):
    """Another marketer of the team's tenant (may request, may not approve)."""
    user = UserFactory(username="max")
    MembershipFactory(tenant=team.tenant, user=user, role=Role.MARKETER)
    return Actor(user=user)


def test_a_generator_is_registered_with_topics_and_its_first_schema_version(generator, team):
    assert generator.topics.count() == 2
    version = generator.current_schema
    assert version.number == 1 and version.schema == MATCH_SCHEMA
    assert version.created_by == team.marketer.user
    assert AuditEvent.objects.filter(action="event_generator.created").count() == 1


def test_each_schema_change_is_a_new_version_with_who_and_a_diff(generator, team):
    changed = {**MATCH_SCHEMA, "required": ["match_id"]}
    version = services.generator_update(
        actor=Actor(user=team.operator.user),
        generator=generator,
        name=generator.name,
        description="",
        topics=[(ARSENAL, "Arsenal FC")],
        schema=changed,
        comment="fewer required fields",
    )
    assert version.number == 2
    assert version.created_by == team.operator.user
    assert '-    "match_name",' in version.diff and "+" in version.diff
    assert list(generator.topics.values_list("key", "name")) == [(ARSENAL, "Arsenal FC")]
    # Saving the same schema again makes no version.
    assert (
        services.generator_update(
            actor=marketer(team),
            generator=generator,
            name="Renamed",
            description="",
            topics=[(ARSENAL, "Arsenal FC")],
            schema=changed,
        )
        is None
    )
    assert generator.schema_versions.count() == 2


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"external_id": "not-a-uuid"}, "external_id"),
        ({"external_id": "{00000000-abcd-abcd-abcd-000000000000}"}, "external_id"),
        ({"schema": {"type": "object", "properties": {"a": {"type": 5}}}}, "schema"),
        ({"name": " "}, "name"),
    ],
)
def test_bad_registrations_save_nothing(make_generator, overrides, field):
    with pytest.raises(ValidationError) as raised:
        make_generator(**overrides)
    assert field in raised.value.message_dict
    assert not EventGenerator.objects.exists()
    assert not Topic.objects.exists() and not SchemaVersion.objects.exists()


def test_a_generator_id_is_registered_once_per_tenant_whatever_its_case(
    make_generator, other_team, sandbox_connection
):
    make_generator()
    with pytest.raises(ValidationError) as raised:
        make_generator(external_id=MATCH_START.upper(), name="Another name")
    assert "external_id" in raised.value.message_dict
    assert EventGenerator.objects.count() == 1
    # Another tenant may register the same id.
    connection = sandbox_connection(other_team.tenant, VendorKind.OPTIMOVE_CAMPAIGNS)
    make_generator(tenant=other_team.tenant, connection=connection)
    assert EventGenerator.objects.count() == 2


def test_topic_keys_must_be_uuids_and_unique():
    with pytest.raises(ValidationError, match="not a topic key"):
        services.parse_topics("00000000-abcd Arsenal")
    with pytest.raises(ValidationError, match="twice"):
        services.parse_topics(f"{ARSENAL} Arsenal\n{ARSENAL.upper()} Again")
    assert services.parse_topics(f"{ARSENAL} Arsenal FC\n\n{CHELSEA},Chelsea") == [
        (ARSENAL, "Arsenal FC"),
        (CHELSEA, "Chelsea"),
    ]


def test_export_and_import_round_trip(generator):
    document = services.generator_export(generator=generator)
    imported = services.parse_import(json.dumps(document).encode())
    assert imported["schema"] == MATCH_SCHEMA
    assert imported["external_id"] == MATCH_START
    assert imported["topics"] == [(ARSENAL, "Arsenal"), (CHELSEA, "Chelsea")]
    assert services.parse_import(json.dumps(MATCH_SCHEMA)) == {"schema": MATCH_SCHEMA}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"schema": {"type": "object", "required": "x"}}', "Not a valid JSON Schema"),
    ],
)
def test_bad_imports_are_refused(content, message):
    with pytest.raises(ValidationError) as raised:
        services.parse_import(content)
    assert message in " ".join(raised.value.messages)


# -- triggering --------------------------------------------------------------------------------


def trigger(team, generator, topics=(ARSENAL,), context=None, key="form-1", **options):
    return services.campaign_trigger(
        actor=marketer(team),
        generator=generator,
        topic_keys=list(topics),
        context=GOOD_CONTEXT if context is None else context,
        idempotency_key=key,
        **options,
    )


def test_a_trigger_makes_one_queued_run_per_topic_with_its_schema_version(generator, team):
    group = trigger(team, generator, topics=[ARSENAL, CHELSEA])
    links = list(CampaignRun.objects.filter(group=group).select_related("run"))
    assert [link.topic_name for link in links] == ["Arsenal", "Chelsea"]
    for link in links:
        assert link.run.state == RunState.QUEUED
        assert link.schema_version == generator.current_schema
        assert link.run.parameters == {
            "event_generator_id": MATCH_START,
            "topic_key": link.topic_key,
            "context": GOOD_CONTEXT,
        }
    # The same form submitted again is the same trigger.
    assert trigger(team, generator, topics=[ARSENAL, CHELSEA]) == group
    assert Run.objects.count() == 2


def test_a_context_failing_the_schema_sends_nothing_and_names_each_field(generator, team):
    with pytest.raises(ValidationError) as raised:
        trigger(team, generator, context={"match_id": 5, "minute": -1, "extra": 1})
    errors = raised.value.message_dict
    assert {"ctx/match_id", "ctx/minute", "ctx/match_name", "ctx/url", "__all__"} <= set(errors)
    assert not Run.objects.exists() and not TriggerGroup.objects.exists()


def test_an_unknown_topic_sends_nothing(generator, team):
    stranger = "6f1c2e0a-1b2c-4d3e-8f40-00000000ffff"
    with pytest.raises(ValidationError) as raised:
        trigger(team, generator, topics=[ARSENAL, stranger])
    assert stranger in raised.value.message_dict["topics"][0]
    assert not Run.objects.exists() and not TriggerGroup.objects.exists()


def test_a_probable_duplicate_stops_the_whole_group_until_send_anyway(generator, team):
    trigger(team, generator, topics=[ARSENAL], key="first")
    with pytest.raises(ProbableDuplicate):
        trigger(team, generator, topics=[CHELSEA, ARSENAL], key="second")
    assert Run.objects.count() == 1 and TriggerGroup.objects.count() == 1
    group = trigger(team, generator, topics=[CHELSEA, ARSENAL], key="second", send_anyway=True)
    runs = Run.objects.filter(campaign_run__group=group)
    assert runs.count() == 2
    assert runs.get(parameters__topic_key=ARSENAL).send_anyway


def test_approval_for_campaigns_is_a_tenant_setting_off_by_default(generator, team):
    assert services.campaign_settings(tenant=team.tenant).approval_required is False
    services.campaign_settings_update(
        actor=Actor(user=team.admin.user), tenant=team.tenant, approval_required=True
    )
    group = trigger(team, generator)
    assert group.campaign_runs.get().run.state == RunState.AWAITING_APPROVAL
    # The daily trigger keeps its own setting.
    team.tenant.refresh_from_db()
    assert team.tenant.approval_required is True


def test_retry_sends_only_the_failed_topics(generator, team):
    group = trigger(team, generator, topics=[ARSENAL, CHELSEA])
    Run.objects.filter(parameters__topic_key=CHELSEA).update(
        state=RunState.FAILED, failure_code="audience_resolution_failed"
    )
    Run.objects.filter(parameters__topic_key=ARSENAL).update(state=RunState.SUCCEEDED)
    runs = services.trigger_group_retry_failed(actor=marketer(team), group=group)
    assert [run.parameters["topic_key"] for run in runs] == [CHELSEA]
    assert runs[0].state == RunState.QUEUED
    assert services.trigger_group_retry_failed(actor=marketer(team), group=group) == []


def test_relaunch_starts_from_a_finished_runs_values(generator, team):
    run = trigger(team, generator).campaign_runs.get().run
    with pytest.raises(ValidationError, match="finished"):
        services.relaunch_initial(run=run)
    Run.objects.filter(pk=run.pk).update(state=RunState.SUCCEEDED)
    run.refresh_from_db()
    assert services.relaunch_initial(run=run) == {
        "generator": generator,
        "topic_keys": [ARSENAL],
        "context": GOOD_CONTEXT,
    }


# -- schedules ---------------------------------------------------------------------------------


def schedule(team, generator, seconds=3600, **options):
    return services.schedule_create(
        actor=marketer(team),
        generator=generator,
        topic_keys=options.pop("topics", [ARSENAL, CHELSEA]),
        context=options.pop("context", GOOD_CONTEXT),
        fire_at=utc_now() + timedelta(seconds=seconds),
        **options,
    )


def test_a_schedule_in_the_past_is_refused(generator, team):
    with pytest.raises(ValidationError) as raised:
        schedule(team, generator, seconds=-5)
    assert "past" in raised.value.message_dict["fire_at"][0]
    assert not ScheduledTrigger.objects.exists()


def test_a_schedule_fires_once_when_due(generator, team):
    planned = schedule(team, generator)
    assert services.schedules_fire_due() == 0
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    assert services.schedules_fire_due() == 1
    assert services.schedules_fire_due() == 0
    planned.refresh_from_db()
    assert planned.state == ScheduleState.FIRED
    assert planned.group.campaign_runs.count() == 2
    assert Run.objects.count() == 2


def test_a_schedule_can_be_edited_or_cancelled_before_it_fires(generator, team):
    planned = schedule(team, generator)
    services.schedule_update(
        actor=marketer(team),
        schedule=planned,
        topic_keys=[CHELSEA],
        context={**GOOD_CONTEXT, "minute": 5},
        fire_at=utc_now() + timedelta(hours=2),
    )
    assert planned.topic_keys == [CHELSEA] and planned.context["minute"] == 5
    services.schedule_cancel(actor=marketer(team), schedule=planned)
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    assert services.schedules_fire_due() == 0
    with pytest.raises(ValidationError, match="already fired or was cancelled"):
        services.schedule_cancel(actor=marketer(team), schedule=planned)
    assert not Run.objects.exists()


def test_a_schedule_that_cannot_fire_says_why_and_sends_nothing(generator, team):
    planned = schedule(team, generator, topics=[ARSENAL])
    Topic.objects.filter(key=ARSENAL).delete()
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    assert services.schedules_fire_due() == 1
    planned.refresh_from_db()
    assert planned.state == ScheduleState.FAILED
    assert "Unknown topic" in planned.failure_message
    assert not Run.objects.exists()


def test_a_schedule_that_hits_a_defect_fails_in_words_and_the_next_one_still_fires(
    generator, team, monkeypatch
):
    broken = schedule(team, generator, topics=[ARSENAL])
    fine = schedule(team, generator, seconds=3601, topics=[CHELSEA])
    ScheduledTrigger.objects.filter(pk=broken.pk).update(fire_at=utc_now() - timedelta(seconds=2))
    ScheduledTrigger.objects.filter(pk=fine.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    real_trigger = services.campaign_trigger

    def trigger(**kwargs):
        if kwargs["idempotency_key"] == f"schedule-{broken.pk}":
            raise KeyError("ctx")  # a bug, not bad input
        return real_trigger(**kwargs)

    monkeypatch.setattr(services, "campaign_trigger", trigger)

    assert services.schedules_fire_due() == 2

    broken.refresh_from_db()
    fine.refresh_from_db()
    assert broken.state == ScheduleState.FAILED and broken.group is None
    assert broken.failure_message.startswith(
        "TriggerDesk could not create its runs (an internal error: KeyError); nothing was sent."
    )
    assert fine.state == ScheduleState.FIRED
    assert [run.parameters["topic_key"] for run in Run.objects.all()] == [CHELSEA]
    assert AuditEvent.objects.filter(action="schedule.failed", object_id=str(broken.pk)).exists()


def test_the_schedules_page_says_why_a_schedule_could_not_fire(generator, team):
    planned = schedule(team, generator, topics=[ARSENAL])
    Topic.objects.filter(key=ARSENAL).delete()
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    services.schedules_fire_due()

    html = team.client_for("marketer").get("/t/acme/campaigns/schedules/").content.decode()

    past = html[html.index('id="past"') :]
    assert (
        '<span class="badge bad">Failed</span> <span class="outcome-detail">Unknown topic' in past
    )


def test_another_marketer_can_neither_edit_nor_cancel_a_schedule(generator, team):
    planned = schedule(team, generator)
    other = second_marketer(team)
    with pytest.raises(PermissionDenied, match="person who scheduled it or an operator"):
        services.schedule_update(
            actor=other,
            schedule=planned,
            topic_keys=[CHELSEA],
            context={**GOOD_CONTEXT, "minute": 5},
            fire_at=utc_now() + timedelta(hours=2),
        )
    with pytest.raises(PermissionDenied, match="person who scheduled it or an operator"):
        services.schedule_cancel(actor=other, schedule=planned)
    planned.refresh_from_db()
    assert planned.state == ScheduleState.SCHEDULED
    assert planned.topic_keys == [ARSENAL, CHELSEA] and planned.context == GOOD_CONTEXT
    assert not AuditEvent.objects.filter(action__in=["schedule.changed", "schedule.cancelled"])
    # An auditor cannot either; an operator can (as for cancelling runs).
    with pytest.raises(PermissionDenied):
        services.schedule_cancel(actor=Actor(user=team.auditor.user), schedule=planned)
    services.schedule_cancel(actor=Actor(user=team.operator.user), schedule=planned)
    planned.refresh_from_db()
    assert planned.state == ScheduleState.CANCELLED


def test_an_edited_schedule_fires_as_its_last_editor_who_then_cannot_approve_it(generator, team):
    services.campaign_settings_update(
        actor=Actor(user=team.admin.user), tenant=team.tenant, approval_required=True
    )
    olga, oscar = team.second_operator.user, team.operator.user
    planned = services.schedule_create(
        actor=Actor(user=olga),
        generator=generator,
        topic_keys=[ARSENAL],
        context=GOOD_CONTEXT,
        fire_at=utc_now() + timedelta(hours=1),
    )
    services.schedule_update(
        actor=Actor(user=oscar),
        schedule=planned,
        topic_keys=[ARSENAL],
        context={**GOOD_CONTEXT, "match_name": "Arsenal vs Spurs"},
        fire_at=planned.fire_at,
    )
    assert planned.requested_by == oscar and planned.created_by == olga
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    assert services.schedules_fire_due() == 1
    run = Run.objects.get()
    assert run.state == RunState.AWAITING_APPROVAL
    assert run.requested_by == oscar
    with pytest.raises(RunActionError, match="cannot approve their own request"):
        run_approve(actor=Actor(user=oscar), run=run, parameters_hash_seen=run.parameters_hash)
    run_approve(actor=Actor(user=olga), run=run, parameters_hash_seen=run.parameters_hash)
    run.refresh_from_db()
    assert run.state == RunState.QUEUED


def test_a_schedule_edit_is_audited_field_by_field_without_secrets(make_generator, team):
    schema = {
        **MATCH_SCHEMA,
        "properties": {**MATCH_SCHEMA["properties"], "promo_token": {"type": "string"}},
    }
    generator = make_generator(schema=schema)
    planned = schedule(team, generator, context={**GOOD_CONTEXT, "promo_token": "old-s3cr3t"})
    services.schedule_update(
        actor=Actor(user=team.operator.user),
        schedule=planned,
        topic_keys=[ARSENAL, CHELSEA],
        context={**GOOD_CONTEXT, "match_name": "Arsenal vs Spurs", "promo_token": "new-s3cr3t"},
        fire_at=planned.fire_at,
    )
    event = AuditEvent.objects.get(action="schedule.changed")
    assert event.summary["context.match_name"] == {
        "from": "49ers vs Chiefs",
        "to": "Arsenal vs Spurs",
    }
    assert event.summary["requested_by"] == {"from": "mia", "to": "oscar"}
    assert "topics" not in event.summary and "fire_at" not in event.summary
    assert "s3cr3t" not in json.dumps([row.summary for row in AuditEvent.objects.all()])


def test_another_marketer_cannot_retry_a_trigger_group_an_operator_can(generator, team):
    group = trigger(team, generator, topics=[ARSENAL, CHELSEA])
    Run.objects.filter(parameters__topic_key=CHELSEA).update(
        state=RunState.FAILED, failure_code="audience_resolution_failed"
    )
    with pytest.raises(PermissionDenied, match="person who triggered it or an operator"):
        services.trigger_group_retry_failed(actor=second_marketer(team), group=group)
    assert Run.objects.count() == 2
    runs = services.trigger_group_retry_failed(actor=Actor(user=team.operator.user), group=group)
    assert [run.requested_by for run in runs] == [team.operator.user]
