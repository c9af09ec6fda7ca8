"""Bad input through the automation API: the checks the forms make (dashboard.input_checks),
strict dates, the documented limits, and problem+json for addresses and methods no endpoint
takes. Every refusal is a 4xx problem with a `code`, and nothing is saved."""

from __future__ import annotations

import pytest
from django.test import Client

from batchjobs.models import FilesLanded
from dashboard.audit.trail import Actor
from dashboard.runs.models import Run
from tests.dashboard.api.test_endpoints import problem
from tests.factories import RunFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Infinity", "not finite"),
        ("NaN", "not finite"),
        ("1e999999", "not finite"),
        ("[" * 102 + "]" * 102, "nesting deeper than 100 levels"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 100 levels"),
    ],
    ids=["infinity", "nan", "out-of-range", "101-levels", "100000-levels"],
)
def test_a_body_the_database_cannot_store_is_a_400_naming_the_field(make_token, value, message):
    _, client = make_token("marketer")
    raw = '{"utc_date": "2026-01-05", "note": ' + value + "}"
    body = problem(client.post("files-landed", raw=raw), 400, "unstorable_text")
    assert message in body["detail"]
    if len(value) < 1000:
        assert body["field"] == "note"
    assert not FilesLanded.objects.exists()


@pytest.mark.parametrize("utc_date", [0, "0", 1767571200, "2026-01-05T00:00:00", True])
def test_a_files_landed_date_must_be_a_date_text(make_token, utc_date):
    _, client = make_token("marketer")
    body = problem(client.post("files-landed", {"utc_date": utc_date}), 422, "invalid_request")
    assert body["field"] == "utc_date"
    assert not FilesLanded.objects.exists()


@pytest.mark.parametrize("name", ["created_from", "created_to"])
@pytest.mark.parametrize("value", ["0", "1767571200", "2026-01-05T00:00:00"])
def test_a_run_list_date_filter_must_be_a_date_text(make_token, team, name, value):
    RunFactory(tenant=team.tenant)
    _, client = make_token("auditor")
    body = problem(client.get("runs", **{name: value}), 422, "invalid_request")
    assert body["field"] == name


def test_a_run_list_date_filter_as_a_date_text_still_filters(make_token, team):
    RunFactory(tenant=team.tenant)
    _, client = make_token("auditor")
    assert len(client.get("runs", created_to="2999-01-01").json()["items"]) == 1
    assert client.get("runs", created_to="2000-01-01").json()["items"] == []


@pytest.fixture
def altcraft_trigger(team, settings, tmp_path):
    from campaigns.altcraft_launches import services

    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    return services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft"),
        trigger_id=8,
        name="Abandoned cart",
    )


@pytest.mark.parametrize("field", ["content", "custom_data"])
def test_altcraft_content_the_database_cannot_store_is_a_400_naming_it(
    make_token, altcraft_trigger, field
):
    from campaigns.altcraft_launches.models import AltcraftLaunch

    _, client = make_token("marketer")
    raw = (
        '{"trigger": 8, "recipients": ["a@example.com"], "dry_run": true, '
        f'"{field}": {{"page": Infinity}}}}'
    )
    body = problem(client.post("altcraft/launches", raw=raw), 400, "unstorable_text")
    assert body["field"] == field
    assert not AltcraftLaunch.objects.exists()


def test_an_altcraft_trigger_id_beyond_the_column_is_not_found_not_a_500(
    make_token, altcraft_trigger
):
    _, client = make_token("marketer")
    body = {"trigger": 10**23, "recipients": ["a@example.com"], "dry_run": True}
    problem(client.post("altcraft/launches", body), 404, "not_found")
    body = {"trigger": 8, "recipients": ["a@example.com"], "resource_id": 10**23}
    problem(client.post("altcraft/launches", body), 422, "invalid_request")


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here", "/api/v1/t/acme/nothing-here", "/api/v1/t/acme/runs/x/y"]
)
def test_an_unknown_api_address_is_a_problem_not_the_sites_page(make_token, path):
    _, client = make_token("auditor")
    response = Client().get(path, headers={"Authorization": f"Bearer {client.secret}"})
    problem(response, 404, "not_found")


def test_a_method_an_api_address_does_not_take_is_a_problem_with_allow(make_token, team):
    _, client = make_token("operator")
    run = RunFactory(tenant=team.tenant)
    headers = {"Authorization": f"Bearer {client.secret}"}
    response = Client().delete(f"/api/v1/t/acme/runs/{run.pk}", headers=headers)
    body = problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"] and "DELETE" in body["detail"]
    problem(Client().put("/api/v1/t/acme/files-landed", headers=headers), 405, "method_not_allowed")
    assert Run.objects.count() == 1


def test_the_openapi_document_states_the_services_rules(team):
    schema = Client().get("/api/v1/schema").json()
    run_get = schema["paths"]["/api/v1/t/{tenant_slug}/runs/{run_id}"]["get"]
    wait = next(p for p in run_get["parameters"] if p["name"] == "wait")
    assert (wait["schema"]["minimum"], wait["schema"]["maximum"]) == (0, 30)
    assert "0 to 30" in wait["description"]
    run_list = schema["paths"]["/api/v1/t/{tenant_slug}/runs"]["get"]
    parameters = {p["name"]: p for p in run_list["parameters"]}
    assert "next_cursor" in parameters["before"]["description"]
    assert (parameters["limit"]["schema"]["minimum"], parameters["limit"]["schema"]["maximum"]) == (
        1,
        200,
    )
    for name in ("created_from", "created_to"):
        assert "YYYY-MM-DD" in parameters[name]["description"]
    run_in = schema["components"]["schemas"]["EventGeneratorRunIn"]
    assert "exactly one of" in run_in["description"].lower()
    assert "Exactly one of" in run_in["properties"]["topic_key"]["description"]
    files_landed = schema["components"]["schemas"]["FilesLandedIn"]["properties"]["utc_date"]
    assert files_landed["format"] == "date" and "YYYY-MM-DD" in files_landed["description"]
