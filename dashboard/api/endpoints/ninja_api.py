"""The automation API itself: the NinjaAPI with its strict JSON parser, token authentication and
rate limit, and the handlers that turn every error into problem+json."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.docs import Swagger
from ninja.parser import Parser
from ninja.security import HttpBearer

from dashboard.api.endpoints.common import audit_refused_before_the_endpoint
from dashboard.api.problems import PROBLEM_CONTENT_TYPE, ApiProblem, from_problem, problem_response
from dashboard.api.services import TokenRefused, TokenUse, api_token_authenticate
from dashboard.input_checks import MAX_JSON_DEPTH, unstorable_part
from dashboard.pauses.services import SendingPaused
from dashboard.runs import services as run_services
from dashboard.runs.operations import RateRule
from dashboard.runs.rate_limits import rate_limiter
from dashboard.send_windows.services import OutsideSendWindow

# -- parsing, authentication, rate limit ------------------------------------------------------


class UnstorableText(ValueError):
    """The body holds what the database cannot store: a NUL or a lone surrogate in a string, a
    number that is not finite, nesting deeper than MAX_JSON_DEPTH (input_checks.py)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class StrictJsonParser(Parser):
    """JSON bodies only, and nothing the database cannot store (the checks every form field
    that reads JSON makes: dashboard.input_checks)."""

    def parse_body(self, request: HttpRequest) -> Any:
        try:
            data = json.loads(request.body)
        except RecursionError:
            raise UnstorableText(
                _("The body is nested deeper than %(depth)s levels, which cannot be stored.")
                % {"depth": MAX_JSON_DEPTH}
            ) from None
        reason, field = unstorable_part(data)
        if reason:
            message = (
                _("“%(field)s” contains %(reason)s, which cannot be stored.")
                if field
                else _("The body contains %(reason)s, which cannot be stored.")
            )
            raise UnstorableText(message % {"field": field, "reason": reason}, field)
        return data


class TokenAuth(HttpBearer):
    """`Authorization: Bearer tdk_...`; the token must belong to the tenant in the address."""

    def authenticate(self, request: HttpRequest, token: str) -> TokenUse:
        slug = (request.resolver_match.kwargs if request.resolver_match else {}).get(
            "tenant_slug", ""
        )
        try:
            use = api_token_authenticate(secret=token.strip(), tenant_slug=slug)
        except TokenRefused as refused:
            if refused.code == "tenant_not_found":
                raise ApiProblem(404, refused.code, refused.message) from None
            raise ApiProblem(
                401, refused.code, refused.message, headers={"WWW-Authenticate": "Bearer"}
            ) from None
        rule = RateRule(
            # The hash, not the id: a token's bucket is its own even when ids are reused.
            key=f"api-token:{use.token.token_hash[:24]}",
            limit=settings.API_RATE_LIMIT_PER_MINUTE,
            period_seconds=60,
            burst=settings.API_RATE_LIMIT_BURST,
        )
        wait = rate_limiter().acquire(rule)
        if wait > 0:
            retry_after = max(1, int(wait + 0.999))
            raise ApiProblem(
                429,
                "rate_limited",
                _("This token made too many requests; retry in %(seconds)s s.")
                % {"seconds": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
        request.tenant = use.membership.tenant
        request.membership = use.membership
        return use


class TriggerDeskApi(NinjaAPI):
    """NinjaAPI whose OpenAPI description says that errors are application/problem+json."""

    def create_temporal_response(self, request: HttpRequest) -> HttpResponse:
        # Kept on the request so an endpoint can add a header (Idempotency-Replayed).
        response = super().create_temporal_response(request)
        request._api_response = response  # type: ignore[attr-defined]
        return response

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(status)[0] == "4" and "application/json" in content:
                        content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
        return schema


class VendoredSwagger(Swagger):
    """Swagger UI from django-ninja's own vendored files, never its CDN page: ninja is not an
    installed app (it would be loaded by every process), so its templates and static folder are
    on the settings' paths instead (settings.NINJA_PACKAGE). Our own page around it
    (templates/api/swagger.html) gives it a language and readable colours; deep links are off,
    as Swagger UI puts them as links inside its operations' buttons, which screen readers and
    keyboards cannot use (a link in a button)."""

    template = "api/swagger.html"
    default_settings = {**Swagger.default_settings, "deepLinking": False}

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {
            "swagger_settings": json.dumps(self.settings, indent=1),
            "api": api,
            "add_csrf": False,  # token authentication: no cookie, no CSRF
        }
        return render(request, self.template, context)


api = TriggerDeskApi(
    title="TriggerDesk automation API",
    version="1",
    description="Report files landed, request the daily trigger, start TalkifAI jobs, run "
    "event generators, launch Altcraft triggers, approve and watch runs, from a data pipeline. "
    "Errors are RFC 9457 problem+json with a stable `code`. Send `Idempotency-Key` on requests "
    "that create a run, a trigger group or a launch.",
    openapi_url="/schema",
    docs_url="/docs",
    docs=VendoredSwagger(),
    auth=TokenAuth(),
    parser=StrictJsonParser(),
    urls_namespace="api_v1",
)


# -- errors -----------------------------------------------------------------------------------


@api.exception_handler(ApiProblem)
def _problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    return from_problem(request, exc)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem_response(
        request,
        401,
        "unauthenticated",
        "Send an API token: Authorization: Bearer tdk_...",
        headers={"WWW-Authenticate": "Bearer"},
    )


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    audit_refused_before_the_endpoint(request, 413)
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return problem_response(
        request,
        413,
        "body_too_large",
        _("The body is larger than %(limit)s bytes.")
        % {"limit": number_format(limit, force_grouping=True)},
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    cause = exc.__cause__
    if isinstance(cause, RequestDataTooBig):
        return _too_big(request, cause)
    if isinstance(cause, UnstorableText):
        audit_refused_before_the_endpoint(request, 400)
        return problem_response(
            request, 400, "unstorable_text", str(cause), field=cause.field or None
        )
    if exc.status_code == 400:
        audit_refused_before_the_endpoint(request, 400)
        return problem_response(
            request, 400, "malformed_json", _("The body is not valid JSON (UTF-8).")
        )
    return problem_response(request, exc.status_code, "http_error", str(exc))


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = []
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ())]
        # ("body", "payload", "utc_date") names the field "utc_date"; ("query", "wait") "wait".
        names = location[2:] if location[:1] == ["body"] else location[1:]
        field = ".".join(names)
        if error.get("type") == "extra_forbidden":
            message = _("Unknown field.")
        else:
            message = str(error.get("msg", _("Invalid value.")))
        errors.append({"field": field, "in": location[0] if location else "", "message": message})
    first = errors[0] if errors else {"field": "", "message": _("Invalid request.")}
    audit_refused_before_the_endpoint(request, 422)
    return problem_response(
        request,
        422,
        "invalid_request",
        _("%(field)s: %(message)s")
        % {"field": first["field"] or _("The request"), "message": first["message"]},
        field=first["field"] or None,
        errors=errors,
    )


@api.exception_handler(SendingPaused)
def _paused(request: HttpRequest, exc: SendingPaused) -> HttpResponse:
    return problem_response(request, 409, "paused", exc.messages[0])


@api.exception_handler(OutsideSendWindow)
def _outside_send_window(request: HttpRequest, exc: OutsideSendWindow) -> HttpResponse:
    at = exc.next_allowed_at
    return problem_response(
        request,
        409,
        "outside_send_window",
        exc.messages[0],
        extra={"next_allowed_at": at.isoformat().replace("+00:00", "Z") if at else None},
    )


@api.exception_handler(DjangoValidationError)
def _service_invalid(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    if hasattr(exc, "error_dict"):
        errors = [
            {"field": name, "message": " ".join(messages)}
            for name, messages in exc.message_dict.items()
        ]
    else:
        errors = [{"field": "", "message": message} for message in exc.messages]
    first = errors[0]
    field = first["field"] if first["field"] != "__all__" else ""
    return problem_response(
        request, 422, "invalid", first["message"], field=field or None, errors=errors
    )


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    # A service's refusal of this person (say, changing what someone else asked for).
    return problem_response(
        request, 403, "forbidden", str(exc) or _("The token's user may not do this.")
    )


@api.exception_handler(run_services.RunActionError)
def _refused(request: HttpRequest, exc: run_services.RunActionError) -> HttpResponse:
    return problem_response(request, 409, "refused", str(exc))


@api.exception_handler(run_services.ProbableDuplicate)
def _duplicate(request: HttpRequest, exc: run_services.ProbableDuplicate) -> HttpResponse:
    return problem_response(request, 409, "probable_duplicate", str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(request, 404, "not_found", str(exc) or _("Not found."))
