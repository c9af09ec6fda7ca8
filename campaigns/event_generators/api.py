"""The automation API's event generator endpoints: list generators, run one, see and set its
own send window, cancel a scheduled trigger."""

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext as _
from ninja import Schema, Status
from pydantic import Field, StrictBool

from campaigns.event_generators import schema as generator_schema
from campaigns.event_generators import selectors as generator_selectors
from campaigns.event_generators import send_window as generator_send_window
from campaigns.event_generators import services as generator_services
from campaigns.event_generators.models import ScheduleState, TriggerGroup
from dashboard.api.endpoints.common import (
    ERRORS,
    REPLAYED_HEADER,
    RecordId,
    acting,
    create_object_once,
    require,
    router,
    run_out,
    token_use,
)
from dashboard.api.endpoints.send_windows import WindowIn, WindowOut
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import OutcomeOut, RunOut, Strict
from dashboard.clock import utc_now
from dashboard.models import Permission
from dashboard.send_windows.services import WindowInput, rules_summary
from dashboard.tenancy.scoping import client_ip


class TopicOut(Schema):
    key: str
    name: str


class EventGeneratorOut(Schema):
    id: int
    external_id: str
    name: str
    description: str
    connection: str
    topics: list[TopicOut]
    schema_version: int | None = Field(description="The current schema version's number.")
    context_schema: dict[str, Any] | None = Field(
        description="The JSON Schema a run's `context` must satisfy (the current version)."
    )


class EventGeneratorRunIn(Strict):
    """Send exactly one of `topic_keys` (a list) and `topic_key` (one topic): both, or
    neither, is a 422 `invalid_request`."""

    topic_keys: list[str] | None = Field(
        None,
        max_length=5000,
        description="Topics to trigger, each by its key (a UUID) or registered name. "
        "Exactly one of topic_keys and topic_key.",
    )
    topic_key: str | None = Field(
        None,
        max_length=200,
        description="One topic (key or name). Exactly one of topic_keys and topic_key.",
    )
    context: dict[str, Any] = Field(description="Checked against the generator's schema.")
    send_anyway: StrictBool = Field(
        False, description="Send even if an identical trigger was sent recently (409 otherwise)."
    )


class CampaignRunOut(RunOut):
    topic_key: str
    topic_name: str
    status_url: str


class TriggerGroupOut(Schema):
    trigger_group_id: int
    generator: str
    schema_version: int
    context: dict[str, Any]
    runs: list[CampaignRunOut]
    outcome: OutcomeOut = Field(description="What the group came to (group_outcome).")


def _generator_out(generator: Any) -> dict[str, Any]:
    current = generator.current_schema
    return {
        "id": generator.pk,
        "external_id": generator.external_id,
        "name": generator.name,
        "description": generator.description,
        "connection": generator.connection.name,
        "topics": [{"key": topic.key, "name": topic.name} for topic in generator.topics.all()],
        "schema_version": current.number if current else None,
        "context_schema": current.schema if current else None,
    }


def _generator_get(request: HttpRequest, reference: str) -> Any:
    found = (
        generator_selectors.generator_find(
            tenants=[token_use(request).token.tenant], reference=reference[:200]
        )
        if "\x00" not in reference  # no name holds a NUL, and the database refuses one
        else []
    )
    if len(found) != 1:
        raise ApiProblem(
            404,
            "not_found",
            gettext("No event generator of this tenant has that id or name.")
            if not found
            else gettext("Several event generators have that name; use the generator's id."),
        )
    return found[0]


def _context_field(name: str) -> str:
    """The service's form field name (ctx/venue/city) as the API's (context.venue.city)."""
    if name == "topics":
        return "topic_keys"
    if name == generator_schema.NON_FIELD:
        return "context"
    parts = name.split("/")
    if parts[:1] == [generator_schema.FIELD_PREFIX]:
        parts = parts[1:]
    return ".".join(["context", *(p.replace("~1", "/").replace("~0", "~") for p in parts)])


@router.get(
    "/t/{tenant_slug}/event-generators",
    response={200: list[EventGeneratorOut], **ERRORS},
    operation_id="event_generator_list",
    summary="The tenant's Optimove event generators, their topics and current context schema",
)
def event_generator_list(request: HttpRequest, tenant_slug: str):
    require(request, Permission.VIEW, "see event generators")
    generators = generator_selectors.generator_list(tenant=token_use(request).token.tenant)
    return Status(200, [_generator_out(generator) for generator in generators])


@router.post(
    "/t/{tenant_slug}/event-generators/{generator}/run",
    response={200: TriggerGroupOut, 201: TriggerGroupOut, **ERRORS},
    operation_id="event_generator_run",
    summary="Trigger an event generator for topics with a context (one run per topic)",
)
@acting("event_generator_run")
def event_generator_run(
    request: HttpRequest, tenant_slug: str, generator: str, payload: EventGeneratorRunIn
):
    """`generator` is its Optimove id (a UUID) or registered name; topics by key or name. A
    context the schema refuses is a 422 `invalid_context` naming each field (`context.<path>`);
    an unknown topic a 422 `unknown_topic`; an identical trigger sent recently a 409
    `probable_duplicate` (send again with `send_anyway: true`)."""
    require(request, Permission.REQUEST, "trigger event generators")
    use = token_use(request)
    found = _generator_get(request, generator)
    if (payload.topic_keys is None) == (payload.topic_key is None):
        raise ApiProblem(
            422,
            "invalid_request",
            gettext("topic_keys: send either topic_keys (a list) or topic_key (one), not both."),
            field="topic_keys",
        )
    by_name = {topic.name: topic.key for topic in found.topics.all()}
    references = payload.topic_keys if payload.topic_keys is not None else [payload.topic_key]
    topic_keys = [by_name.get(reference, reference) for reference in references]

    def create(key: str) -> Any:
        try:
            return generator_services.campaign_trigger(
                actor=use.actor(client_ip(request)),
                generator=found,
                topic_keys=topic_keys,
                context=payload.context,
                idempotency_key=key,
                send_anyway=payload.send_anyway,
            )
        except DjangoValidationError as error:
            if not hasattr(error, "error_dict"):
                raise
            errors = [
                {"field": _context_field(name), "message": " ".join(messages)}
                for name, messages in error.message_dict.items()
            ]
            errors.sort(key=lambda error: error["field"] != "topic_keys")
            code = "unknown_topic" if errors[0]["field"] == "topic_keys" else "invalid_context"
            raise ApiProblem(
                422,
                code,
                f"{errors[0]['field']}: {errors[0]['message']}",
                field=errors[0]["field"],
                errors=errors,
            ) from None

    group, replayed = create_object_once(
        request,
        endpoint=f"event_generator_run:{found.pk}",
        body=payload.model_dump(),
        create=create,
        find=lambda key: TriggerGroup.objects.filter(
            tenant=use.token.tenant, idempotency_key=key
        ).first(),
    )
    links = list(group.campaign_runs.select_related("run", "run__connection").order_by("run_id"))
    request._api_replayed = replayed  # type: ignore[attr-defined]
    if replayed:
        request._api_response[REPLAYED_HEADER] = "true"  # type: ignore[attr-defined]
    return Status(
        200 if replayed else 201,
        {
            "trigger_group_id": group.pk,
            "generator": found.name,
            "schema_version": group.schema_version.number,
            "context": group.context,
            "runs": [
                {
                    **run_out(link.run),
                    "topic_key": link.topic_key,
                    "topic_name": link.topic_name,
                    "status_url": f"/api/v1/t/{tenant_slug}/runs/{link.run_id}",
                }
                for link in links
            ],
            "outcome": vars(
                generator_selectors.group_outcome(generator_selectors.group_status(group=group))
            ),
        },
    )


class GeneratorWindowIn(Strict):
    window: WindowIn | None = Field(description="Its own window; null for none.")
    reason: str = Field(max_length=500, description="Why it changes (audited).")


class GeneratorWindowOut(Schema):
    generator: str
    window: WindowOut | None
    text: str = Field(description="Its own window in words, as its page shows it.")
    allowed_now: bool = Field(description="Whether both it and its connection allow now.")
    next_allowed_at: datetime | None = Field(
        description="The next instant both its window and its connection's allow (UTC)."
    )


def _window_out(generator: Any) -> dict[str, Any]:
    found = generator_send_window.generator_rules(generator)
    now = utc_now()
    summary = rules_summary(found)
    next_at = generator_send_window.next_allowed_for_generator(generator, now)
    return {
        "generator": generator.name,
        "window": summary["window"],
        "text": summary["text"],
        "allowed_now": next_at == now,
        "next_allowed_at": next_at,
    }


@router.get(
    "/t/{tenant_slug}/event-generators/{generator}/send-window",
    response={200: GeneratorWindowOut, **ERRORS},
    operation_id="event_generator_send_window_state",
    summary="An event generator's own send window, and when it and its connection next allow",
)
def event_generator_send_window_state(request: HttpRequest, tenant_slug: str, generator: str):
    return _window_out(_generator_get(request, generator))


@router.post(
    "/t/{tenant_slug}/event-generators/{generator}/send-window",
    response={200: GeneratorWindowOut, **ERRORS},
    operation_id="event_generator_send_window_set",
    summary="Set an event generator's own send window (or none), with a reason",
)
@acting("event_generator_send_window_set")
def event_generator_send_window_set(
    request: HttpRequest, tenant_slug: str, generator: str, payload: GeneratorWindowIn
):
    """200 with the new window; 422 `invalid` naming the field (`end`: an empty window;
    `weekdays`: none), 404 `not_found`, 403 for a marketer or auditor."""
    require(request, Permission.APPROVE, "change a send window")
    use = token_use(request)
    found = _generator_get(request, generator)
    window = payload.window
    generator_send_window.generator_window_set(
        actor=use.actor(client_ip(request)),
        generator=found,
        window=None
        if window is None
        else WindowInput(window.weekdays, window.start, window.end, window.time_zone),
        reason=payload.reason,
    )
    found.refresh_from_db()
    return Status(200, _window_out(found))


class ScheduleCancelOut(Schema):
    id: int
    state: str = Field(description="cancelled: it will not fire.")
    fire_at: datetime


@router.post(
    "/t/{tenant_slug}/schedules/{schedule_id}/cancel",
    response={200: ScheduleCancelOut, **ERRORS},
    operation_id="schedule_cancel",
    summary="Cancel a scheduled trigger before it fires; 409 `too_late` once it fired",
)
@acting("schedule_cancel")
def schedule_cancel(request: HttpRequest, tenant_slug: str, schedule_id: RecordId):
    """Its creator, or an operator. A schedule that fired (or failed to) before the cancel is a
    409 `too_late` whose `errors` give its state and trigger group: the cancel did nothing.
    Cancelling a cancelled schedule again answers it as it is."""
    require(request, Permission.REQUEST, "cancel scheduled triggers")
    use = token_use(request)
    schedule = generator_selectors.schedule_get(tenant=use.token.tenant, schedule_id=schedule_id)
    try:
        generator_services.schedule_cancel(actor=use.actor(client_ip(request)), schedule=schedule)
    except DjangoValidationError:
        schedule.refresh_from_db()
        if schedule.state != ScheduleState.CANCELLED:
            raise ApiProblem(
                409,
                "too_late",
                _("This schedule is %(state)s: the cancel did nothing.")
                % {"state": schedule.get_state_display().lower()},
                errors=[
                    {"field": "state", "message": str(schedule.state)},
                    {"field": "trigger_group_id", "message": str(schedule.group_id or "")},
                ],
            ) from None
    return Status(
        200, {"id": schedule.pk, "state": str(schedule.state), "fire_at": schedule.fire_at}
    )
