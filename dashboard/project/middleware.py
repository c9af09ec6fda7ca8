"""Refuse input the app cannot store, once, for every page and form (see input_checks.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.utils import translation
from django.utils.datastructures import MultiValueDict
from django.utils.formats import number_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from dashboard.input_checks import unstorable_reason

logger = logging.getLogger(__name__)

# No filter or link of the app comes near this; a longer query value is an error, not a search.
MAX_QUERY_VALUE_CHARS = 4096


class BadInput(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _printable_name(name: str) -> str:
    shown = "".join(
        ch if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF else "?" for ch in name
    )
    return shown[:60] + ("…" if len(shown) > 60 else "")


def _check_values(items: list[tuple[str, list[str]]], where: str, *, max_chars: int | None) -> None:
    """`where`: "query" (the address's parameters) or "form" (a form's fields)."""
    query = where == "query"
    for name, values in items:
        reason = unstorable_reason(name)
        if reason:
            message = (
                _("An address parameter name contains %(reason)s.")
                if query
                else _("A form field name contains %(reason)s.")
            )
            raise BadInput(message % {"reason": reason})
        for value in values:
            reason = unstorable_reason(value)
            shown = _printable_name(name)
            if reason:
                message = (
                    _("The address parameter “%(name)s” contains %(reason)s.")
                    if query
                    else _("The form field “%(name)s” contains %(reason)s.")
                )
                raise BadInput(message % {"name": shown, "reason": reason})
            if max_chars is not None and len(value) > max_chars:
                message = (
                    _(
                        "The address parameter “%(name)s” is %(length)s characters long; "
                        "at most %(limit)s are accepted."
                    )
                    if query
                    else _(
                        "The form field “%(name)s” is %(length)s characters long; "
                        "at most %(limit)s are accepted."
                    )
                )
                raise BadInput(
                    message
                    % {
                        "name": shown,
                        "length": number_format(len(value), force_grouping=True),
                        "limit": number_format(max_chars, force_grouping=True),
                    }
                )


def _streams_its_upload(request: HttpRequest) -> bool:
    """Whether the view sets its own upload handlers (`view.streams_upload = True`: the Altcraft
    list upload, encrypted as it arrives). Reading request.POST here would parse the body first,
    through Django's default handlers (plaintext on disk); such a view checks its own fields."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return getattr(match.func, "streams_upload", False) is True


def _back_url(request: HttpRequest) -> str:
    """Where "back" goes: the page itself for a GET, the page the form was on for a POST."""
    if request.method == "GET":
        return request.path
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return "/"


class RejectUnstorableInputMiddleware:
    """Answer 400 with a plain, styled page when a query string, form value, cookie or header
    carries a NUL character or a lone surrogate, when a query value is absurdly long, or when a
    form is too large to read. Every page and form, present and future, is covered: none of them
    can turn such input into a 500.

    Placed before the session middleware: a cookie carrying such a character is treated as
    absent (a NUL in a session cookie would otherwise break the session lookup)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for name in [
            name for name, value in request.COOKIES.items() if unstorable_reason(name + value)
        ]:
            del request.COOKIES[name]
        # Before the session and LocaleMiddleware: a refusal speaks the browser's language.
        with translation.override(translation.get_language_from_request(request)):
            try:
                self._check(request)
            except BadInput as error:
                return self._refuse(request, error.message)
            except (RequestDataTooBig, TooManyFieldsSent):
                return self._refuse(
                    request,
                    _("The form sent is too large to read. Shorten the long fields and retry."),
                )
            except (SuspiciousOperation, MultiPartParserError):
                return self._refuse(request, _("The form sent could not be read."))
        return self.get_response(request)

    def _check(self, request: HttpRequest) -> None:
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
                raise BadInput(
                    _("The request header %(name)s contains a NUL.")
                    % {"name": key[5:].replace("_", "-")}
                )
        _check_values(list(request.GET.lists()), "query", max_chars=MAX_QUERY_VALUE_CHARS)
        if request.method == "POST" and not _streams_its_upload(request):
            _check_values(list(request.POST.lists()), "form", max_chars=None)

    def _refuse(self, request: HttpRequest, message: str) -> HttpResponse:
        logger.info("refused bad input on %s %s: %s", request.method, request.path, message)
        # The page must not read the request's data again (it is what was refused).
        request.GET = QueryDict()
        request.POST = QueryDict()
        request._files = MultiValueDict()
        if is_api_request(request):
            # API clients read problem+json (RFC 9457), not a page. Imported here: django-ninja
            # and pydantic load with the first /api/ request, not at start-up.
            from dashboard.api.problems import problem_response

            return problem_response(request, 400, "bad_input", message)
        return render(
            request,
            "dashboard/bad_input.html",
            {"message": message, "back": _back_url(request)},
            status=400,
        )


API_PATH_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    """Whether the request is for the automation API (answered with problem+json, resolved with
    the URLconf that includes the API)."""
    return request.path_info.startswith(API_PATH_PREFIX)


class AutomationApiUrlconfMiddleware:
    """Resolves requests under /api/ with the URLconf that includes the automation API.

    The site's own URLconf leaves the API out so that loading it does not import django-ninja and
    pydantic; reverse() in such a request (a run's page address in an API answer) sees both."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_request(request):
            return self.get_response(request)
        request.urlconf = "dashboard.api.urlconf"
        response = self.get_response(request)
        if response.status_code in (404, 405) and not response.get("Content-Type", "").startswith(
            "application/problem+json"
        ):
            # No endpoint answered: an unknown path (the site's 404 page) or a method the path
            # does not take (the 405 page). An API client reads problem+json, like every other
            # refusal of the API. (Imported here: the API's modules load with its first request.)
            from dashboard.api.problems import problem_response

            if response.status_code == 404:
                return problem_response(
                    request, 404, "not_found", _("The API has no such address (see /api/v1/docs).")
                )
            allowed = response.get("Allow", "")
            return problem_response(
                request,
                405,
                "method_not_allowed",
                _("%(method)s is not allowed here; this address takes %(allowed)s.")
                % {"method": request.method, "allowed": allowed or _("none")},
                headers={"Allow": allowed} if allowed else None,
            )
        return response
