"""The OpenAPI 3.1 description and its docs page, kept true by schemathesis against the app."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from tests.dashboard.api.conftest import MATCH_START

pytestmark = pytest.mark.django_db


def test_schema_is_openapi_3_1_with_problem_json_errors(team):
    response = Client().get("/api/v1/schema")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    daily = schema["paths"]["/api/v1/t/{tenant_slug}/daily-trigger"]["post"]
    assert "application/problem+json" in daily["responses"]["409"]["content"]
    assert "application/json" in daily["responses"]["201"]["content"]
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"


def test_docs_page_uses_only_vendored_files(team):
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/static/") for source in sources), sources
    # No inline script runs (the settings are a JSON data block): fine under a strict CSP.
    assert re.findall(r"<script(?![^>]*(?:src=|application/json))", html) == []
    for source in sources:
        assert finders.find(source.removeprefix("/static/")), source


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    make_token, daily_connection, generator, altcraft_trigger, settings
):
    import schemathesis
    from schemathesis.generation.modes import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    settings.API_WAIT_MAX_SECONDS = 0
    _, client = make_token("operator")
    checks = [
        schemathesis.checks.not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    # As Django's test client does: the test's transaction must outlive each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/schema", WSGIHandler())
        operations = [result.ok() for result in schema.get_all_operations()]
        # every endpoint: send windows, approval policies, SSO groups, preferences, chat webhooks,
        # cancels, recurring schedules, sessions, the second-factor setting, Altcraft imports
        assert len(operations) == 44
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run_operation(operation, mode, client.secret, checks)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def run_operation(operation: Any, mode: Any, secret: str, checks: list) -> None:
    path_parameters = {"tenant_slug": "acme"}
    if "{generator}" in operation.path:
        # The registered generator, so that bodies reach the schema check and the run engine.
        path_parameters["generator"] = MATCH_START

    @given(case=operation.as_strategy(mode, path_parameters=path_parameters))
    @hypothesis_settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {secret}"}, checks=checks)

    check()
