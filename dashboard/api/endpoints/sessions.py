"""The automation API's session endpoints: the token's person lists and ends their own login
sessions; an admin ends all sessions of a member (an offboarding script). The same services as
the "Your sessions" page, the member's sessions page and the end_sessions command."""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Path, Schema, Status
from pydantic import Field

from dashboard.api.endpoints.common import ERRORS, RecordId, acting, require, router, token_use
from dashboard.api.problems import ApiProblem
from dashboard.login_sessions import services
from dashboard.login_sessions.models import LoginSession
from dashboard.models import Membership, Permission
from dashboard.tenancy.scoping import client_ip


class SessionOut(Schema):
    id: int
    device: str = Field(description='The device in words: "Chrome on macOS".')
    browser: str = Field(description='As read from the user agent ("" when unreadable).')
    operating_system: str
    ip_address: str | None
    created_at: datetime
    last_seen_at: datetime


class SessionEndedOut(Schema):
    ended: SessionOut


class MemberSessionsEndedOut(Schema):
    user: str
    sessions_ended: int


def _session_out(session: LoginSession) -> dict:
    return {
        "id": session.pk,
        "device": session.device,
        "browser": session.browser,
        "operating_system": session.operating_system,
        "ip_address": session.ip_address,
        "created_at": session.created_at,
        "last_seen_at": session.last_seen_at,
    }


@router.get(
    "/t/{tenant_slug}/sessions",
    response={200: list[SessionOut], **ERRORS},
    operation_id="session_list",
    summary="The token's person's active login sessions (browsers), most recently seen first",
)
def session_list(request: HttpRequest, tenant_slug: str):
    user = token_use(request).membership.user
    return [_session_out(session) for session in services.live_sessions(user=user)]


@router.post(
    "/t/{tenant_slug}/sessions/{session_id}/end",
    response={200: SessionEndedOut, **ERRORS},
    operation_id="session_end",
    summary="End one of the token's person's login sessions: that browser is logged out",
)
@acting("session_end")
def session_end(request: HttpRequest, tenant_slug: str, session_id: RecordId):
    """200 with the ended session. 404 `session_not_found` for an id that is not one of the
    person's sessions (another person's, or ended already): nothing is ended, and the attempt
    is audited (`session.end_refused`)."""
    use = token_use(request)
    try:
        ended = services.session_end(
            actor=use.actor(client_ip(request)),
            session_id=session_id,
            tenant=use.token.tenant,
        )
    except services.SessionEndRefused as refused:
        raise ApiProblem(404, refused.code, str(refused)) from None
    return Status(200, {"ended": _session_out(ended)})


@router.post(
    "/t/{tenant_slug}/members/{username}/sessions/end",
    response={200: MemberSessionsEndedOut, **ERRORS},
    operation_id="member_sessions_end",
    summary="End every login session of a member of the tenant (admins)",
)
@acting("member_sessions_end")
def member_sessions_end(
    request: HttpRequest, tenant_slug: str, username: str = Path(..., max_length=150)
):
    """200 with how many sessions ended. Sessions are the person's: all of them end, whichever
    tenant they were used for; audited in this tenant (`member.sessions_ended`). 404
    `member_not_found` for a user name that is not a member of the tenant; 403 for a role
    other than admin."""
    require(request, Permission.MANAGE, "end the sessions of members")
    use = token_use(request)
    tenant = use.token.tenant
    user = get_user_model().objects.filter(username=username).first()
    membership = (
        Membership.objects.select_related("user", "tenant").filter(tenant=tenant, user=user).first()
        if user is not None
        else None
    )
    if membership is None:
        raise ApiProblem(
            404,
            "member_not_found",
            _("%(tenant)s has no member named %(username)s.")
            % {"tenant": tenant.name, "username": repr(username)},
        )
    try:
        count = services.member_sessions_end(
            actor=use.actor(client_ip(request)), membership=membership
        )
    except PermissionDenied as error:
        raise ApiProblem(403, "forbidden", str(error)) from None
    return Status(200, {"user": membership.user.get_username(), "sessions_ended": count})
