"""Keep each login session's "last seen" (time and address) without a write per request."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse

from dashboard.login_sessions import services
from dashboard.tenancy.scoping import client_ip


class SessionLastSeenMiddleware:
    """After the response: a signed-in session is marked seen, at most once a minute per web
    process (no round trip at all otherwise: services._SeenMemo). It reads the user id from the session the view has loaded
    anyway, so it never loads the user itself (tenant pages load user and membership together,
    dashboard/tenancy/scoping.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        # No cookie, or a session that the request ended (a logout): nothing to note.
        if session is None or session.session_key is None:
            return response
        user_id = session.get(SESSION_KEY)
        if user_id is None or not str(user_id).isdigit():
            return response
        services.login_session_seen(
            user_id=int(user_id),
            session_key=session.session_key,
            ip_address=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        return response
