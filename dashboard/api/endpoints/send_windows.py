"""The automation API's send-window endpoints: see and set a connection's send window and
blackout dates (the same services as the connection page and the send_window command)."""

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Schema, Status
from pydantic import Field, StrictInt

from dashboard.api.endpoints.common import ERRORS, acting, require, router, token_use
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import Strict
from dashboard.clock import utc_now
from dashboard.models import Permission, VendorConnection
from dashboard.pauses.services import connection_for_pause
from dashboard.send_windows import selectors, services
from dashboard.tenancy.scoping import client_ip


class WindowIn(Strict):
    weekdays: list[StrictInt | str] | str = Field(
        description='Weekdays: [0, 1, 2, 3, 4] (0 = Monday), ["Mon", "Tue"] or "Mon-Fri".'
    )
    start: str = Field(description="Local start time, HH:MM.", examples=["08:00"])
    end: str = Field(description="Local end time, HH:MM, after start.", examples=["21:00"])
    time_zone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin.")


class BlackoutIn(Strict):
    date: str = Field(description="A local date in the window's zone, YYYY-MM-DD.")
    reason: str = Field("", max_length=200)


class SendWindowIn(Strict):
    window: WindowIn | None = Field(description="The window; null for any time.")
    blackouts: list[BlackoutIn] = Field(
        default_factory=list, description="Replaces the list; dates when nothing is sent."
    )
    reason: str = Field(max_length=500, description="Why it changes (audited).")


class WindowOut(Schema):
    weekdays: list[int]
    start: str
    end: str
    time_zone: str


class BlackoutOut(Schema):
    date: str
    reason: str


class SendWindowOut(Schema):
    connection: str
    window: WindowOut | None
    blackouts: list[BlackoutOut]
    text: str = Field(description="The rules in words, as the connection page shows them.")
    allowed_now: bool
    next_allowed_at: datetime | None


def _connection(tenant: Any, name_or_id: str) -> VendorConnection:
    try:
        found = connection_for_pause(tenant=tenant, name_or_id=name_or_id)
    except ValidationError as error:
        raise ApiProblem(
            404, "connection_not_found", error.message_dict["connection"][0], field="connection"
        ) from None
    assert found is not None  # a path segment is never empty
    return found


def _out(connection: VendorConnection) -> dict[str, Any]:
    found = selectors.send_rules_for(connection_id=connection.pk, connection_name=connection.name)
    now = utc_now()
    return {
        "connection": connection.name,
        **services.rules_summary(found),
        "allowed_now": found.is_allowed(now),
        "next_allowed_at": found.next_allowed(now),
    }


@router.get(
    "/t/{tenant_slug}/connections/{connection}/send-window",
    response={200: SendWindowOut, **ERRORS},
    operation_id="send_window_state",
    summary="A connection's send window and blackout dates, and when it next allows sending",
)
def send_window_state(request: HttpRequest, tenant_slug: str, connection: str):
    return _out(_connection(token_use(request).token.tenant, connection))


@router.post(
    "/t/{tenant_slug}/connections/{connection}/send-window",
    response={200: SendWindowOut, **ERRORS},
    operation_id="send_window_set",
    summary="Set a connection's send window (or none) and its blackout dates, with a reason",
)
@acting("send_window_set")
def send_window_set(request: HttpRequest, tenant_slug: str, connection: str, payload: SendWindowIn):
    """200 with the new rules; all or nothing. 422 `invalid` naming the field (`end`: an empty
    window; `weekdays`: none; `blackouts`: a bad date, by its position), 404
    `connection_not_found`, 403 for a marketer or auditor."""
    require(request, Permission.APPROVE, _("change a send window"))
    use = token_use(request)
    found = _connection(use.token.tenant, connection)
    window = payload.window
    services.send_window_set(
        actor=use.actor(client_ip(request)),
        connection=found,
        window=None
        if window is None
        else services.WindowInput(window.weekdays, window.start, window.end, window.time_zone),
        blackouts=[blackout.model_dump() for blackout in payload.blackouts],
        reason=payload.reason,
    )
    return Status(200, _out(found))
