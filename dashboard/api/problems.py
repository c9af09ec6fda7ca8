"""Errors of the automation API as RFC 9457 problem details (application/problem+json).

Every refusal carries a stable machine-readable `code` (a client branches on it, never on the
wording), a `detail` in plain words and, when one input is at fault, its `field`. The codes are
listed in docs/api.md.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApiProblem(Exception):
    """Answer the request with this problem (raised from anywhere inside an endpoint)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.errors = errors
        self.headers = headers or {}


# The title of each status the API answers with, in the client's language (Accept-Language);
# any other status keeps its English reason phrase.
TITLES = {
    400: _("Bad Request"),
    401: _("Unauthorized"),
    403: _("Forbidden"),
    404: _("Not Found"),
    405: _("Method Not Allowed"),
    409: _("Conflict"),
    413: _("Content Too Large"),
    422: _("Unprocessable Content"),
    429: _("Too Many Requests"),
    500: _("Internal Server Error"),
    503: _("Service Unavailable"),
}


def problem_body(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str = "",
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem's members; `extra`: the problem type's own (RFC 9457 extension members)."""
    body: dict[str, Any] = {
        "type": f"urn:triggerdesk:problem:{code}",
        "title": str(TITLES.get(status, HTTPStatus(status).phrase)),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if field:
        body["field"] = field
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return body


def problem_response(
    request: HttpRequest | None,
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    """The problem+json response; `instance` is the request's path."""
    body = problem_body(
        status=status,
        code=code,
        detail=detail,
        instance=request.path if request is not None else "",
        field=field,
        errors=errors,
        extra=extra,
    )
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False), status=status, content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def from_problem(request: HttpRequest, problem: ApiProblem) -> HttpResponse:
    return problem_response(
        request,
        problem.status,
        problem.code,
        problem.detail,
        field=problem.field,
        errors=problem.errors,
        headers=problem.headers,
    )
