"""The automation API's Altcraft profile import: rows of profiles and a column mapping, read as
an import file is, sent as vendor tasks polled to their result; seen and cancelled through the
launch endpoints."""

from __future__ import annotations

import json

import pytest

from campaigns.altcraft_launches.models import AltcraftLaunch, LaunchState
from dashboard.audit.trail import Actor
from dashboard.runs.models import Run
from dashboard.runs.services import run_poll, run_send
from dashboard.runs.states import RunState
from tests.dashboard.api.conftest import (
    _fresh_rate_limits,  # noqa: F401 - autouse: roomy API rate limits
)
from tests.dashboard.api.test_endpoints import forget_idempotency_keys, problem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

MAPPING = {
    "columns": {
        "Email": {"to": "field", "name": "email"},
        "First name": {"to": "field", "name": "_fname"},
        "Mobile": {"to": "phone_subscription", "resource_id": 20},
        "Notes": {"to": "ignore"},
    }
}


def profile_rows(count: int = 3) -> list[dict]:
    return [
        {
            "Email": f"person{index}@example.com",
            "First name": f"Person {index}",
            "Mobile": "",
            "Notes": "vip",
        }
        for index in range(count)
    ]


def body(**changes) -> dict:
    return {"trigger": 8, "rows": profile_rows(), "mapping": MAPPING, **changes}


def sent_items(sandboxes) -> list[dict]:
    return [
        item["data"]
        for received in sandboxes["altcraft"].received_on("import_and_start_batch_task")
        for item in json.loads(received.body)["data"]
    ]


def test_a_marketer_imports_profiles_in_several_tasks_each_polled_to_its_result(
    make_token, altcraft_trigger, sandboxes
):
    connection = altcraft_trigger.connection
    connection.options = {"body_limit_bytes": 900}  # a few rows a request: several chunks
    connection.save(update_fields=["options"])
    rows = profile_rows(12)
    rows[1]["Mobile"] = "+7 900 000 11 22"
    rows.append({**rows[0], "First name": "Again"})  # the same email: a duplicate, left out
    _, client = make_token("marketer")

    response = client.post(
        "altcraft/imports",
        body(rows=rows, content={"page": "cart"}, detect_geo=True, timeout={"hours": 1}),
        HTTP_IDEMPOTENCY_KEY="import-1",
    )

    assert response.status_code == 201, response.content
    answer = response.json()
    assert (answer["kind"], answer["state"]) == ("import", LaunchState.SENDING)
    assert (answer["preview"]["rows"], answer["preview"]["valid"]) == (13, 12)
    assert answer["preview"]["duplicates_removed"] == 1
    chunks = answer["preview"]["requests_needed"]
    assert chunks > 1 and answer["progress"]["chunks_sent"] == chunks
    launch = AltcraftLaunch.objects.get()
    assert launch.parameters["detect_geo"] is True and launch.parameters["timeout"]["hours"] == 1
    altcraft_trigger.refresh_from_db()
    assert altcraft_trigger.import_mapping == MAPPING  # remembered for the next import

    # Each chunk is a vendor task: sent by a worker, then polled until the task is done.
    for chunk in launch.chunks.order_by("number"):
        assert run_send(run_id=chunk.run_id) == "accepted"
    items = sent_items(sandboxes)
    assert [item["email"] for item in items] == [f"person{i}@example.com" for i in range(12)]
    assert items[0] == {"email": "person0@example.com", "_fname": "Person 0"}  # Notes ignored
    assert items[1]["subscriptions"] == [
        {"channel": "phone", "phone": "+79000001122", "resource_id": 20}
    ]
    request = json.loads(sandboxes["altcraft"].received_on("import_and_start_batch_task")[0].body)
    assert request["content"] == {"page": "cart"} and request["detect_geo"] is True
    sandboxes.clock.advance(10)
    for chunk in launch.chunks.all():
        Run.objects.filter(pk=chunk.run_id).update(next_poll_at=None)  # due now
        assert run_poll(run_id=chunk.run_id) == "completed"
        assert Run.objects.get(pk=chunk.run_id).state == RunState.SUCCEEDED
    status = client.get(answer["status_url"].removeprefix("/api/v1/t/acme/")).json()
    assert status["kind"] == "import" and status["progress"]["percent"] == 100
    assert status["progress"]["chunks_succeeded"] == chunks
    assert status["progress"]["rows_succeeded"] == 12

    replay = client.post(
        "altcraft/imports",
        body(rows=rows, content={"page": "cart"}, detect_geo=True, timeout={"hours": 1}),
        HTTP_IDEMPOTENCY_KEY="import-1",
    )
    assert replay.status_code == 200 and replay["Idempotency-Replayed"] == "true"
    assert replay.json()["id"] == launch.pk and AltcraftLaunch.objects.count() == 1
    assert len(sandboxes["altcraft"].received_on("import_and_start_batch_task")) == chunks
    problem(client.post("altcraft/imports", body(), HTTP_IDEMPOTENCY_KEY="import-1"), 422,
            "idempotency_key_reused")  # fmt: skip


def test_an_import_retried_after_its_key_expired_answers_with_it(
    make_token, altcraft_trigger, settings
):
    _, client = make_token("marketer")
    first = client.post("altcraft/imports", body(), HTTP_IDEMPOTENCY_KEY="import-2")
    assert first.status_code == 201, first.content
    forget_idempotency_keys(settings)

    retry = client.post("altcraft/imports", body(), HTTP_IDEMPOTENCY_KEY="import-2")

    assert retry.status_code == 200 and retry["Idempotency-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"] and AltcraftLaunch.objects.count() == 1


def test_without_a_mapping_the_triggers_remembered_one_is_used(make_token, altcraft_trigger):
    _, client = make_token("marketer")
    problem(client.post("altcraft/imports", body(mapping=None)), 422, "no_mapping")
    assert client.post("altcraft/imports", body(dry_run=True)).status_code == 201

    again = client.post("altcraft/imports", {"trigger": 8, "rows": profile_rows(2)})

    assert again.status_code == 201, again.content
    assert AltcraftLaunch.objects.get(pk=again.json()["id"]).mapping == MAPPING


def test_a_dry_run_only_previews_and_approval_leaves_it_waiting(make_token, altcraft_trigger, team):
    from campaigns.altcraft_launches import services

    _, client = make_token("marketer")
    dry = client.post("altcraft/imports", body(dry_run=True))
    assert dry.status_code == 201 and dry.json()["state"] == LaunchState.PREVIEWED
    assert Run.objects.count() == 0

    services.altcraft_settings_update(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        approval_required=True,
        retention_hours=24,
    )
    waiting = client.post("altcraft/imports", body())
    assert waiting.status_code == 201 and waiting.json()["state"] == LaunchState.AWAITING_APPROVAL
    assert Run.objects.count() == 0


def test_invalid_rows_are_a_422_with_their_rows_unless_skipped(make_token, altcraft_trigger):
    _, client = make_token("marketer")
    rows = profile_rows(3)
    rows[1]["Email"] = "not-an-address"

    refused = problem(client.post("altcraft/imports", body(rows=rows)), 422, "invalid_rows")

    assert refused["field"] == "rows.1"
    assert refused["errors"] == [
        {"field": "rows.1", "row": 3, "message": "Email: not an email address: 'not-an-address'"}
    ]
    assert AltcraftLaunch.objects.count() == 0
    skipped = client.post("altcraft/imports", body(rows=rows, skip_invalid=True))
    assert skipped.status_code == 201, skipped.content
    assert skipped.json()["preview"]["invalid_rows"][0]["recipient"] == 1


def mapping_with(**columns) -> dict:
    return {"columns": {**MAPPING["columns"], **columns}}


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"mapping": mapping_with(Fax={"to": "ignore"})}, "unknown_column", "mapping.columns.Fax"),
        (
            {"mapping": {"columns": {"Email": {"to": "field", "name": "email"}}}},
            "unmapped_column",
            "mapping.columns.First name",
        ),
        ({"mapping": mapping_with(Notes={"to": "fax"})}, "bad_target", "mapping.columns.Notes"),
        ({"mapping": mapping_with(Notes={"to": "field"})}, "bad_target", "mapping.columns.Notes"),
        (
            {"mapping": mapping_with(Notes={"to": "ignore", "resource_id": 3})},
            "bad_target",
            "mapping.columns.Notes",
        ),
        (
            {"mapping": mapping_with(Email={"to": "field", "name": "subscriptions"})},
            "bad_target",
            "mapping.columns.Email",
        ),
        (
            {"mapping": mapping_with(Email={"to": "field", "name": "crm_email"})},
            "matching_not_mapped",
            "mapping",
        ),
        ({"rows": [{"Email": "a@example.com"}, {}]}, "invalid_row", "rows.1"),
        ({"rows": [{"a@example.com": "x"}]}, "invalid_column", "rows"),
        ({"rows": [{"Email": "a@example.com", "E,mail": "x"}]}, "invalid_column", "rows"),
        ({"rows": [{"Email": "a@example.com", " Notes": "x"}]}, "invalid_column", "rows"),
        ({"rows": []}, "invalid_request", "rows"),
        ({"rows": [{"Email": ["a"]}]}, "invalid_request", None),
        (
            {"mapping": {"columns": {"Email": {"to": "field", "colour": 1}}}},
            "invalid_request",
            None,
        ),
        ({"timeout": {"minutes": -1}}, "invalid_request", None),
        ({"matching": "fax"}, "invalid_request", "matching"),
        ({"matching": "custom"}, "invalid_request", "field_name"),
        ({"content": [1]}, "invalid_request", None),
    ],
)
def test_bad_import_bodies_are_a_422_naming_the_problem_and_leave_nothing(
    make_token, altcraft_trigger, settings, changes, code, field
):
    _, client = make_token("marketer")

    refused = problem(client.post("altcraft/imports", body(**changes)), 422, code)

    if field:
        assert refused["field"] == field
    assert AltcraftLaunch.objects.count() == 0
    upload_dir = settings.ALTCRAFT_UPLOAD_DIR
    assert not upload_dir.exists() or list(upload_dir.iterdir()) == []


def test_a_column_named_twice_in_a_row_is_a_422(make_token, altcraft_trigger):
    _, client = make_token("marketer")
    raw = json.dumps(body()).replace(
        '"Email": "person0@example.com"', '"Email": "a@b.co", "Email": "c@d.co"'
    )

    refused = problem(client.post("altcraft/imports", raw=raw), 422, "duplicate_column")

    assert refused["field"] == "rows.0" and AltcraftLaunch.objects.count() == 0


def test_more_rows_than_a_list_may_have_is_a_422(make_token, altcraft_trigger, settings):
    settings.ALTCRAFT_UPLOAD_MAX_ROWS = 3  # the header and two rows
    _, client = make_token("marketer")

    problem(client.post("altcraft/imports", body(rows=profile_rows(3))), 422, "too_many_rows")

    assert client.post("altcraft/imports", body(rows=profile_rows(2))).status_code == 201


def test_a_row_too_large_for_any_request_is_refused(make_token, altcraft_trigger):
    connection = altcraft_trigger.connection
    connection.options = {"body_limit_bytes": 900}
    connection.save(update_fields=["options"])
    _, client = make_token("marketer")
    rows = profile_rows(2)
    rows[0]["First name"] = "x" * 2000

    refused = problem(client.post("altcraft/imports", body(rows=rows)), 422, "rows_refused")

    assert "Row 2 alone makes a request" in refused["detail"]
    assert AltcraftLaunch.objects.count() == 0


def test_an_auditor_cannot_import_and_other_tenants_cannot_see_or_use_it(
    make_token, altcraft_trigger, other_team
):
    _, auditor = make_token("auditor")
    problem(auditor.post("altcraft/imports", body()), 403, "forbidden")
    _, marketer = make_token("marketer")
    launch_id = marketer.post("altcraft/imports", body(dry_run=True)).json()["id"]
    assert auditor.get(f"altcraft/launches/{launch_id}").json()["kind"] == "import"
    _, theirs = make_token("marketer", team_=other_team)
    problem(theirs.get(f"altcraft/launches/{launch_id}"), 404, "not_found")
    problem(theirs.post(f"altcraft/launches/{launch_id}/cancel", {}), 404, "not_found")
    problem(theirs.post("altcraft/imports", body()), 404, "not_found")
    assert AltcraftLaunch.objects.count() == 1


def test_cancelling_an_import_withdraws_its_waiting_tasks(make_token, altcraft_trigger, sandboxes):
    _, marketer = make_token("marketer")
    _, operator = make_token("operator")
    answer = marketer.post("altcraft/imports", body(), HTTP_IDEMPOTENCY_KEY="to-cancel").json()

    cancelled = operator.post(f"altcraft/launches/{answer['id']}/cancel", {})

    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["chunks_cancelled"] == [1]
    chunk_run = AltcraftLaunch.objects.get(pk=answer["id"]).chunks.get().run
    assert chunk_run.state == RunState.CANCELLED
    run_send(run_id=chunk_run.pk)  # a worker picking it up sends nothing
    assert sandboxes["altcraft"].received_on("import_and_start_batch_task") == []


@pytest.mark.parametrize("reference", ["¹", "1" * 5000])
def test_a_trigger_named_by_digits_no_id_can_have_is_not_found(
    make_token, altcraft_trigger, reference
):
    """A superscript digit is a digit to str.isdigit() but not to int(); five thousand digits
    are past what int() reads. Each names a trigger that does not exist, not a server error
    (the fault proof's fuzzer found the first)."""
    _, client = make_token("marketer")

    problem(client.post("altcraft/imports", body(trigger=reference)), 404, "not_found")
