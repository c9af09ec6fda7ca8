"""The automation API's batch job endpoints: files landed, the daily trigger, TalkifAI batch jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batchjobs.models import FilesLanded
from dashboard.clock import utc_now
from dashboard.runs.models import Run
from tests.dashboard.api.conftest import _fresh_rate_limits  # noqa: F401 - autouse: roomy API rate limits
from tests.dashboard.api.test_endpoints import forget_idempotency_keys, problem

pytestmark = pytest.mark.django_db


def test_files_landed_is_recorded_as_a_pipeline_signal_once(make_token, team):
    _, client = make_token("marketer", name="loader")
    today = utc_now().date().isoformat()
    first = client.post("files-landed", {"utc_date": today, "note": "s3 sync done"})
    assert first.status_code == 200
    assert first.json()["source"] == "pipeline" and "loader" in first.json()["given_by"]
    again = client.post("files-landed", {"utc_date": today})
    assert again.status_code == 200 and again.json()["note"] == "s3 sync done"
    assert FilesLanded.objects.filter(tenant=team.tenant).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "utc_date"),
        ({"utc_date": "yesterday"}, "utc_date"),
        ({"utc_date": 20250101}, "utc_date"),
        ({"utc_date": "2025-01-01", "colour": "blue"}, "colour"),
        ({"utc_date": "2025-01-01", "note": ["a"]}, "note"),
        ({"utc_date": "2025-01-01", "note": "x" * 301}, "note"),
    ],
)
def test_files_landed_refuses_bad_bodies_naming_the_field(make_token, body, field):
    _, client = make_token("marketer")
    assert problem(client.post("files-landed", body), 422, "invalid_request")["field"] == field


def test_files_landed_in_the_future_is_refused_by_the_service(make_token):
    _, client = make_token("marketer")
    tomorrow = (utc_now() + timedelta(days=1)).date().isoformat()
    assert problem(client.post("files-landed", {"utc_date": tomorrow}), 422, "invalid")[
        "field"
    ] == ("utc_date")


def test_auditors_cannot_report_files_landed(make_token):
    _, client = make_token("auditor")
    problem(client.post("files-landed", {"utc_date": "2025-01-01"}), 403, "forbidden")


def test_daily_trigger_request_enters_the_approval_queue(make_token, daily_connection):
    _, client = make_token("marketer")
    state = client.get("daily-trigger").json()
    assert state["can_request"] is True and state["approval_required"] is True
    response = client.post(
        "daily-trigger", {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 20}
    )
    assert response.status_code == 201
    run = response.json()
    assert run["state"] == "awaiting_approval" and run["parameters"] == {
        "wait_time_for_validation_seconds": 20
    }
    state = client.get("daily-trigger").json()
    assert state["can_request"] is False and state["open_run"]["id"] == run["id"]
    again = client.post("daily-trigger", {"files_uploaded_attested": True})
    assert "waiting for an operator" in problem(again, 409, "refused")["detail"]


def test_daily_trigger_is_queued_directly_when_the_tenant_allows_it(
    make_token, team, daily_connection
):
    team.tenant.approval_required = False
    team.tenant.save()
    _, client = make_token("operator")
    response = client.post("daily-trigger", {"files_uploaded_attested": True})
    assert response.status_code == 201 and response.json()["state"] == "queued"


def test_daily_trigger_waits_for_files_landed_when_required(make_token, team, daily_connection):
    team.tenant.require_files_landed = True
    team.tenant.save()
    _, client = make_token("marketer")
    assert "files_landed" in [b["code"] for b in client.get("daily-trigger").json()["blockers"]]
    problem(client.post("daily-trigger", {"files_uploaded_attested": True}), 409, "refused")
    today = utc_now().date().isoformat()
    assert client.post("files-landed", {"utc_date": today}).status_code == 200
    assert client.post("daily-trigger", {"files_uploaded_attested": True}).status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"files_uploaded_attested": False}, 422, "invalid"),
        ({}, 422, "invalid_request"),
        ({"files_uploaded_attested": "maybe"}, 422, "invalid_request"),
        (
            {"files_uploaded_attested": True, "wait_time_for_validation_seconds": "x"},
            422,
            "invalid_request",
        ),
        (
            {"files_uploaded_attested": True, "wait_time_for_validation_seconds": -5},
            422,
            "invalid_request",
        ),
        (
            {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 31},
            422,
            "invalid_request",
        ),
        (
            {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 5.5},
            422,
            "invalid_request",
        ),
        ({"files_uploaded_attested": 1}, 422, "invalid_request"),
        ({"files_uploaded_attested": True, "force": True}, 422, "invalid_request"),
        ([1, 2], 422, "invalid_request"),
    ],
)
def test_daily_trigger_bad_bodies(make_token, daily_connection, body, status, code):
    _, client = make_token("marketer")
    problem(client.post("daily-trigger", body), status, code)
    assert not Run.objects.exists()


def test_operators_start_a_registered_batch_job(make_token, batch_job):
    _, client = make_token("operator")
    listed = client.get("batch-jobs").json()
    assert listed == [
        {
            "id": batch_job.pk,
            "batch_job_id": "job_123",
            "name": "Win-back calls",
            "connection": "Calls",
        }
    ]
    started = client.post(f"batch-jobs/{batch_job.pk}/start", HTTP_IDEMPOTENCY_KEY="calls-1")
    assert started.status_code == 201
    run = started.json()
    assert run["operation"] == "talkifai_start_batch_job" and run["state"] == "queued"
    replay = client.post(f"batch-jobs/{batch_job.pk}/start", HTTP_IDEMPOTENCY_KEY="calls-1")
    assert replay.status_code == 200 and replay.json()["id"] == run["id"]
    problem(client.post(f"batch-jobs/{batch_job.pk}/start"), 409, "refused")


def test_a_batch_job_start_retried_after_its_key_expired_starts_nothing_new(
    make_token, batch_job, settings
):
    _, client = make_token("operator")
    started = client.post(f"batch-jobs/{batch_job.pk}/start", HTTP_IDEMPOTENCY_KEY="calls-2")
    assert started.status_code == 201
    forget_idempotency_keys(settings)
    retry = client.post(f"batch-jobs/{batch_job.pk}/start", HTTP_IDEMPOTENCY_KEY="calls-2")
    assert retry.status_code == 200 and retry["Idempotency-Replayed"] == "true"
    assert retry.json()["id"] == started.json()["id"]
    assert Run.objects.count() == 1


def test_marketers_cannot_start_batch_jobs_and_other_tenants_jobs_are_404(
    make_token, batch_job, other_team
):
    _, marketer = make_token("marketer")
    problem(marketer.post(f"batch-jobs/{batch_job.pk}/start"), 403, "forbidden")
    _, outsider = make_token("operator", team_=other_team)
    problem(outsider.post(f"batch-jobs/{batch_job.pk}/start"), 404, "not_found")
