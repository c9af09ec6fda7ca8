"""After the password (or SSO) step, a person with a second factor proves it before anything
else: every other page sends them to the check (htmx requests through HX-Redirect)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from dashboard.mfa import session_state

# What a person between the two steps may still reach: the check itself (and its passkey
# ceremony), logging out, static files and the script translations its page loads, probes. The
# API authenticates by token, not session.
OPEN_PATHS = (
    "/account/second-factor/",
    "/logout/",
    "/jsi18n/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/",
)


class SecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.open_paths = (*OPEN_PATHS, settings.STATIC_URL or "/static/")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(self.open_paths) and session_state.login_check_pending(
            request
        ):
            target = reverse("mfa_check")
            if request.method == "GET":
                target += "?" + urlencode({"next": request.get_full_path()})
            if request.headers.get("HX-Request") == "true":
                return HttpResponseClientRedirect(target)
            return redirect(target)
        return self.get_response(request)
