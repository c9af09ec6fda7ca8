"""Error pages and their logging: a styled page with the reason and a way back for every 4xx and
5xx, form endpoints that survive a reload, and 403s logged as one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from dashboard.project.middleware import is_api_request


def form_post(page: str, *page_kwargs: str) -> Callable:
    """For a view that takes a form's POST (inside `tenant_view`).

    A failed post re-renders its form at the POST's address; reloading that address later, or
    opening it from the history, is a GET. Instead of an empty 405 the GET goes back to the page
    the form lives on (`page`, a URL name taking the tenant and `page_kwargs` of the view).
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method in ("GET", "HEAD"):
                return redirect(
                    page,
                    tenant_slug=request.tenant.slug,
                    **{name: kwargs[name] for name in page_kwargs},
                )
            if request.method != "POST":
                return HttpResponseNotAllowed(["GET", "POST"])
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


class MethodNotAllowedPageMiddleware:
    """Give Django's empty 405 (require_POST, require_GET...) a page with a way back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or response.content or getattr(request, "htmx", False):
            return response
        allowed = response.get("Allow", "")
        page = HttpResponseNotAllowed(
            [method.strip() for method in allowed.split(",") if method.strip()],
            content=render_to_string(
                "405.html", {"allowed": allowed, "method": request.method}, request=request
            ),
        )
        return page


class QuietPermissionDenied(logging.Filter):
    """A refused permission is an expected answer, not a crash: log one line with the reason
    (the role that could not do it) instead of a full traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403 and record.exc_info:
            error = record.exc_info[1]
            if isinstance(error, PermissionDenied):
                message = record.getMessage()
                record.msg = f"{message} ({error})" if str(error) else message
                record.args = ()
                record.exc_info = None
                record.exc_text = None
        return True


# What "the database or Redis cannot be reached right now" raises: a 503 with Retry-After (try
# again in a moment) rather than a 500 (a defect). Nothing was half-saved: a request's writes
# are one transaction, rolled back with the connection.
RETRY_AFTER_SECONDS = 5


def unavailable_errors() -> tuple[type[BaseException], ...]:
    # redis is imported here, on the error path: at start-up it would pull in cryptography
    # (tests/ops/test_process_footprint.py keeps heavy libraries out of every process's start).
    import redis

    return (
        OperationalError,
        InterfaceError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500, for the site's and the API's URLconf: 503 with Retry-After when a
    backing service cannot be reached, else the 500 page; problem+json under /api/."""
    unavailable = isinstance(sys.exc_info()[1], unavailable_errors())
    status = 503 if unavailable else 500
    if is_api_request(request):
        # On the error path only: the API's module is not loaded by every process's start.
        from dashboard.api.problems import problem_response

        response = (
            problem_response(
                request,
                503,
                "service_unavailable",
                _(
                    "TriggerDesk cannot reach its database or queue right now; nothing was done. "
                    "Try again in a few seconds (same Idempotency-Key)."
                ),
            )
            if unavailable
            else problem_response(
                request,
                500,
                "server_error",
                _("TriggerDesk hit an unexpected error and has logged it."),
            )
        )
    else:
        template = "503.html" if unavailable else "500.html"
        response = HttpResponse(render_to_string(template), status=status)
    if unavailable:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
