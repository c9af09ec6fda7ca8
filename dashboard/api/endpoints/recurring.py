"""The automation API's recurring schedules: list, see (next fires and fire history), create,
change, enable or disable, delete (the same services as the pages and the recurring_schedule
command; every call that acts is audited)."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Schema, Status
from pydantic import Field, StrictBool, StrictInt

from dashboard.api.endpoints.common import ERRORS, RecordId, acting, require, router, token_use
from dashboard.api.schemas import Strict
from dashboard.models import Permission
from dashboard.recurring import cron, selectors, services
from dashboard.recurring.models import RecurringSchedule
from dashboard.tenancy.scoping import client_ip


class TargetIn(Strict):
    kind: str = Field(
        description="event_generator, altcraft_launch or daily_trigger.",
        examples=["event_generator"],
    )
    id: StrictInt = Field(
        description="The event generator's, Altcraft trigger campaign's or daily connection's id."
    )
    topics: list[str] = Field(default_factory=list, description="Event generator: topic keys.")
    context: dict[str, Any] = Field(default_factory=dict, description="Event generator context.")
    recipients: list[str] = Field(
        default_factory=list,
        description="Altcraft: the stored list (empty on a change: keep the stored one).",
    )
    matching: str = Field("", description="Altcraft: email, email_profile, phone or profile_id.")
    wait_time_for_validation_seconds: StrictInt | None = Field(
        None, description="Daily trigger: 0 to 30, or null."
    )
    files_uploaded_attested: StrictBool = Field(
        False, description="Daily trigger: each day's files finish uploading before it fires."
    )


class ScheduleIn(Strict):
    name: str = Field(max_length=120)
    cron: str = Field(description="Five fields: minute hour day month weekday.")
    time_zone: str = Field("UTC", description="IANA time zone of the rule's times.")
    target: TargetIn
    enabled: StrictBool = True


class EnabledIn(Strict):
    enabled: StrictBool


class FireOut(Schema):
    local: datetime
    utc: datetime


class FireRecordOut(Schema):
    fire_at: datetime
    outcome: str
    reason: str
    result: str


class ScheduleOut(Schema):
    id: int
    name: str
    cron: str
    time_zone: str
    words: str = Field(description="The rule in words.")
    target_kind: str
    target: str = Field(description="What it fires, in words.")
    enabled: bool
    next_fire_at: datetime | None
    created_by: str
    requested_by: str


class ScheduleDetailOut(ScheduleOut):
    next_fires: list[FireOut]
    fires: list[FireRecordOut]


def _out(schedule: RecurringSchedule) -> dict[str, Any]:
    return {
        "id": schedule.pk,
        "name": schedule.name,
        "cron": schedule.cron,
        "time_zone": schedule.time_zone,
        "words": cron.rule_words(schedule.cron),
        "target_kind": schedule.target_kind,
        "target": schedule.target_label,
        "enabled": schedule.enabled,
        "next_fire_at": schedule.next_fire_at,
        "created_by": schedule.created_by_label,
        "requested_by": schedule.requested_by_label,
    }


def _detail(schedule: RecurringSchedule) -> dict[str, Any]:
    return {
        **_out(schedule),
        "next_fires": [
            {"local": fire.local, "utc": fire.utc}
            for fire in selectors.next_fires(schedule=schedule)
        ],
        "fires": [
            {
                "fire_at": fire.fire_at,
                "outcome": fire.outcome,
                "reason": fire.reason,
                "result": fire.result_label,
            }
            for fire in selectors.fire_history(schedule=schedule)
        ],
    }


def _input(payload: ScheduleIn) -> services.ScheduleInput:
    target = payload.target
    return services.ScheduleInput(
        name=payload.name,
        cron=payload.cron,
        time_zone=payload.time_zone,
        target_kind=target.kind,
        target_input={
            "id": target.id,
            "topics": target.topics,
            "context": target.context,
            "recipients": "\n".join(target.recipients),
            "matching": target.matching,
            "wait_time_for_validation_seconds": target.wait_time_for_validation_seconds,
            "files_uploaded_attested": target.files_uploaded_attested,
        },
        enabled=payload.enabled,
    )


@router.get(
    "/t/{tenant_slug}/recurring-schedules",
    response={200: list[ScheduleOut], **ERRORS},
    operation_id="recurring_schedule_list",
    summary="The tenant's recurring schedules, with their rules in words and next fire",
)
def recurring_schedule_list(request: HttpRequest, tenant_slug: str):
    require(request, Permission.VIEW, "see recurring schedules")
    tenant = token_use(request).token.tenant
    return [_out(schedule) for schedule in selectors.schedule_list(tenant=tenant)]


@router.get(
    "/t/{tenant_slug}/recurring-schedules/{schedule_id}",
    response={200: ScheduleDetailOut, **ERRORS},
    operation_id="recurring_schedule_get",
    summary="One recurring schedule: its next five fires and its recorded fires",
)
def recurring_schedule_get(request: HttpRequest, tenant_slug: str, schedule_id: RecordId):
    require(request, Permission.VIEW, "see recurring schedules")
    tenant = token_use(request).token.tenant
    return _detail(selectors.schedule_get(tenant=tenant, schedule_id=schedule_id))


@router.post(
    "/t/{tenant_slug}/recurring-schedules",
    response={201: ScheduleDetailOut, **ERRORS},
    operation_id="recurring_schedule_create",
    summary="Create a recurring schedule",
)
@acting("recurring_schedule_create")
def recurring_schedule_create(request: HttpRequest, tenant_slug: str, payload: ScheduleIn):
    """201 with the schedule; 422 `invalid` naming the field (`cron`: bad syntax, a seconds
    field or a rule that never fires; `time_zone`; `target`; the target's own fields), 403 for
    an auditor. Nothing is saved on any error."""
    require(request, Permission.REQUEST, "schedule triggers")
    use = token_use(request)
    schedule = services.schedule_create(
        actor=use.actor(client_ip(request)), tenant=use.token.tenant, data=_input(payload)
    )
    return Status(201, _detail(schedule))


@router.post(
    "/t/{tenant_slug}/recurring-schedules/{schedule_id}",
    response={200: ScheduleDetailOut, **ERRORS},
    operation_id="recurring_schedule_update",
    summary="Change a recurring schedule (its creator, or an operator or admin)",
)
@acting("recurring_schedule_update")
def recurring_schedule_update(
    request: HttpRequest, tenant_slug: str, schedule_id: RecordId, payload: ScheduleIn
):
    use = token_use(request)
    schedule = selectors.schedule_get(tenant=use.token.tenant, schedule_id=schedule_id)
    schedule = services.schedule_update(
        actor=use.actor(client_ip(request)), schedule=schedule, data=_input(payload)
    )
    return Status(200, _detail(schedule))


@router.post(
    "/t/{tenant_slug}/recurring-schedules/{schedule_id}/enabled",
    response={200: ScheduleDetailOut, **ERRORS},
    operation_id="recurring_schedule_set_enabled",
    summary="Enable or disable a recurring schedule",
)
@acting("recurring_schedule_set_enabled")
def recurring_schedule_set_enabled(
    request: HttpRequest, tenant_slug: str, schedule_id: RecordId, payload: EnabledIn
):
    use = token_use(request)
    schedule = selectors.schedule_get(tenant=use.token.tenant, schedule_id=schedule_id)
    schedule = services.schedule_set_enabled(
        actor=use.actor(client_ip(request)), schedule=schedule, enabled=payload.enabled
    )
    return Status(200, _detail(schedule))


@router.post(
    "/t/{tenant_slug}/recurring-schedules/{schedule_id}/delete",
    response={204: None, **ERRORS},
    operation_id="recurring_schedule_delete",
    summary="Delete a recurring schedule (what it sent stays)",
)
@acting("recurring_schedule_delete")
def recurring_schedule_delete(request: HttpRequest, tenant_slug: str, schedule_id: RecordId):
    use = token_use(request)
    schedule = selectors.schedule_get(tenant=use.token.tenant, schedule_id=schedule_id)
    services.schedule_delete(actor=use.actor(client_ip(request)), schedule=schedule)
    return Status(204, None)
