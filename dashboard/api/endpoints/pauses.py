"""The automation API's pause endpoints: see, pause and resume sending for the tenant or one of
its connections (the same services as the settings page and the pause_sending command)."""

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Schema, Status
from pydantic import Field, StrictBool

from dashboard.api.endpoints.common import ERRORS, acting, require, router, token_use
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import Strict
from dashboard.models import Permission
from dashboard.pauses import selectors, services
from dashboard.pauses.models import SendingPause
from dashboard.tenancy.scoping import client_ip


class PauseIn(Strict):
    reason: str = Field(max_length=500, description="Why sending stops (shown and audited).")
    connection: str | None = Field(
        None, description="A connection's name (or id) to pause only it; null for the tenant."
    )


class ResumeIn(Strict):
    connection: str | None = Field(
        None, description="The paused connection's name (or id); null for the tenant's pause."
    )
    cancel_held: StrictBool = Field(
        False, description="Cancel the runs the pause held instead of sending them."
    )


class PauseOut(Schema):
    id: int
    scope: str
    connection: str | None
    reason: str
    paused_by: str
    paused_at: datetime
    resumed_by: str
    resumed_at: datetime | None
    held_runs: int


class PauseState(Schema):
    paused: bool
    pauses: list[PauseOut]


class ResumeOut(Schema):
    pause: PauseOut
    released: int
    cancelled: int


def _pause_out(pause: SendingPause) -> dict[str, Any]:
    return {
        "id": pause.pk,
        "scope": "connection" if pause.connection_id else "tenant",
        "connection": pause.connection.name if pause.connection_id else None,
        "reason": pause.reason,
        "paused_by": pause.paused_by_label,
        "paused_at": pause.paused_at,
        "resumed_by": pause.resumed_by_label,
        "resumed_at": pause.resumed_at,
        "held_runs": selectors.held_runs(pause=pause).count() if pause.is_open else 0,
    }


def _as_problem(error: ValidationError) -> ApiProblem:
    """The services' refusals with their own codes: 404 for a connection the tenant does not
    have, 409 for a pause of what is paused or a resume of what is not."""
    code = getattr(error, "code", None)
    if hasattr(error, "error_dict"):
        field, errors = next(iter(error.error_dict.items()))
        code = errors[0].code
        message = errors[0].messages[0]
    else:
        field, message = None, error.messages[0]
    if code == "not_found":
        return ApiProblem(404, "connection_not_found", message, field=field)
    if code in ("already_paused", "not_paused"):
        return ApiProblem(409, code, message)
    return ApiProblem(422, "invalid", message, field=field)


@router.get(
    "/t/{tenant_slug}/sending-pause",
    response={200: PauseState, **ERRORS},
    operation_id="sending_pause_state",
    summary="Whether sending is paused for the tenant or any of its connections",
)
def sending_pause_state(request: HttpRequest, tenant_slug: str):
    pauses = selectors.open_pauses(tenant=token_use(request).token.tenant)
    return {"paused": bool(pauses), "pauses": [_pause_out(pause) for pause in pauses]}


@router.post(
    "/t/{tenant_slug}/sending-pause",
    response={201: PauseOut, **ERRORS},
    operation_id="sending_pause",
    summary="Pause sending for the tenant, or one connection, with a reason",
)
@acting("sending_pause")
def sending_pause(request: HttpRequest, tenant_slug: str, payload: PauseIn):
    """201 with the pause. Queued runs stay queued (held), scheduled fires wait, new triggers
    are refused (409 `paused`); calls already at the vendor finish. 409 `already_paused`, 404
    `connection_not_found`, 422 `invalid` (an empty reason)."""
    require(request, Permission.APPROVE, _("pause sending"))
    use = token_use(request)
    tenant = use.token.tenant
    try:
        connection = services.connection_for_pause(tenant=tenant, name_or_id=payload.connection)
        pause = services.sending_pause(
            actor=use.actor(client_ip(request)),
            tenant=tenant,
            connection=connection,
            reason=payload.reason,
        )
    except ValidationError as error:
        raise _as_problem(error) from None
    return Status(201, _pause_out(pause))


@router.post(
    "/t/{tenant_slug}/sending-pause/resume",
    response={200: ResumeOut, **ERRORS},
    operation_id="sending_resume",
    summary="Resume sending: the held runs are sent (or cancelled first, cancel_held)",
)
@acting("sending_resume")
def sending_resume(request: HttpRequest, tenant_slug: str, payload: ResumeIn):
    """200 with the closed pause and how many held runs were sent on or cancelled. 409
    `not_paused`, 404 `connection_not_found`."""
    require(request, Permission.APPROVE, _("resume sending"))
    use = token_use(request)
    tenant = use.token.tenant
    try:
        connection = services.connection_for_pause(tenant=tenant, name_or_id=payload.connection)
        resumed = services.sending_resume(
            actor=use.actor(client_ip(request)),
            tenant=tenant,
            connection=connection,
            cancel_held=payload.cancel_held,
        )
    except ValidationError as error:
        raise _as_problem(error) from None
    return Status(
        200,
        {
            "pause": _pause_out(resumed.pause),
            "released": resumed.released,
            "cancelled": resumed.cancelled,
        },
    )
