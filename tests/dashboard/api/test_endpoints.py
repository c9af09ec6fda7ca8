"""Every endpoint of the automation API with good and bad input."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client

from batchjobs.models import FilesLanded
from dashboard.clock import utc_now
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.dashboard.api.conftest import ARSENAL, MATCH_START
from tests.factories import RunFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status and body["type"].endswith(code) and body["detail"]
    return body


def test_same_key_same_body_replays_the_same_run(make_token, daily_connection):
    _, client = make_token("marketer")
    body = {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 30}
    first = client.post("daily-trigger", body, HTTP_IDEMPOTENCY_KEY="nightly-2025-01-01")
    assert first.status_code == 201 and "Idempotency-Replayed" not in first
    second = client.post("daily-trigger", body, HTTP_IDEMPOTENCY_KEY="nightly-2025-01-01")
    assert second.status_code == 200 and second["Idempotency-Replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert Run.objects.count() == 1


def test_same_key_different_body_is_422(make_token, daily_connection):
    _, client = make_token("marketer")
    body = {"files_uploaded_attested": True}
    assert client.post("daily-trigger", body, HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    other = {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 10}
    body = problem(
        client.post("daily-trigger", other, HTTP_IDEMPOTENCY_KEY="k-1"),
        422,
        "idempotency_key_reused",
    )
    assert body["field"] == "Idempotency-Key"
    assert Run.objects.count() == 1


def test_a_refused_request_leaves_its_key_free(make_token, team, daily_connection):
    team.tenant.require_files_landed = True
    team.tenant.save()
    _, client = make_token("marketer")
    body = {"files_uploaded_attested": True}
    problem(client.post("daily-trigger", body, HTTP_IDEMPOTENCY_KEY="k-2"), 409, "refused")
    client.post("files-landed", {"utc_date": utc_now().date().isoformat()})
    assert client.post("daily-trigger", body, HTTP_IDEMPOTENCY_KEY="k-2").status_code == 201


def forget_idempotency_keys(settings) -> None:
    """Age every record past the retention, then run the hourly clean-up."""
    from dashboard.api.models import IdempotencyRecord
    from dashboard.api.services import idempotency_records_expire

    past = utc_now() - timedelta(hours=settings.API_IDEMPOTENCY_RETENTION_HOURS, minutes=1)
    IdempotencyRecord.objects.update(created_at=past)
    assert idempotency_records_expire() >= 1
    assert not IdempotencyRecord.objects.exists()


def test_after_its_record_expired_a_key_still_answers_with_its_run(
    make_token, daily_connection, settings
):
    from dashboard.api.models import IdempotencyRecord

    _, client = make_token("marketer")
    body = {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 30}
    first = client.post("daily-trigger", body, HTTP_IDEMPOTENCY_KEY="nightly-2025-01-01")
    assert first.status_code == 201
    forget_idempotency_keys(settings)

    retry = client.post("daily-trigger", body, HTTP_IDEMPOTENCY_KEY="nightly-2025-01-01")
    assert retry.status_code == 200 and retry["Idempotency-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    # The first body is no longer known, so another one is not refused: still the same run.
    other = {"files_uploaded_attested": True, "wait_time_for_validation_seconds": 10}
    changed = client.post("daily-trigger", other, HTTP_IDEMPOTENCY_KEY="nightly-2025-01-01")
    assert changed.status_code == 200 and changed["Idempotency-Replayed"] == "true"
    assert changed.json()["id"] == first.json()["id"]
    assert Run.objects.count() == 1
    # A replay keeps no record: every later request with the key is answered alike.
    assert not IdempotencyRecord.objects.exists()


def test_after_its_record_expired_a_key_is_not_taken_for_another_endpoints_run(
    make_token, daily_connection, batch_job, settings
):
    _, client = make_token("operator")
    body = {"files_uploaded_attested": True}
    assert client.post("daily-trigger", body, HTTP_IDEMPOTENCY_KEY="k-3").status_code == 201
    forget_idempotency_keys(settings)

    refused = client.post(f"batch-jobs/{batch_job.pk}/start", HTTP_IDEMPOTENCY_KEY="k-3")
    assert "already used" in problem(refused, 422, "invalid")["detail"]
    assert Run.objects.count() == 1


@pytest.mark.parametrize("key", ["", "x" * 65, "clé"])
def test_bad_idempotency_keys(make_token, daily_connection, key):
    _, client = make_token("marketer")
    response = client.post(
        "daily-trigger", {"files_uploaded_attested": True}, HTTP_IDEMPOTENCY_KEY=key
    )
    problem(response, 400, "invalid_idempotency_key")


def test_run_status_has_its_timeline(make_token, daily_connection):
    _, client = make_token("marketer", name="etl")
    run_id = client.post("daily-trigger", {"files_uploaded_attested": True}).json()["id"]
    detail = client.get(f"runs/{run_id}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["state"] == "awaiting_approval" and body["approvals"] == []
    assert [entry["action"] for entry in body["timeline"]] == ["run.requested"]
    assert "etl" in body["timeline"][0]["actor"]


def test_another_tenants_run_is_404(make_token, other_team):
    run = RunFactory(tenant=other_team.tenant, connection__tenant=other_team.tenant)
    _, client = make_token("admin")
    problem(client.get(f"runs/{run.pk}"), 404, "not_found")
    problem(client.post(f"runs/{run.pk}/reject", {}), 404, "not_found")
    assert client.get("runs").json()["items"] == []


def test_run_list_filters_and_keyset_pages(make_token, team):
    connection = VendorConnectionFactory(tenant=team.tenant)
    runs = [
        RunFactory(tenant=team.tenant, connection=connection, state=RunState.SUCCEEDED)
        for _ in range(5)
    ]
    failed = RunFactory(tenant=team.tenant, connection=connection, state=RunState.FAILED)
    _, client = make_token("auditor")
    first = client.get("runs", limit=2).json()
    assert [run["id"] for run in first["items"]] == [failed.pk, runs[4].pk]
    second = client.get("runs", limit=2, before=first["next_cursor"]).json()
    assert [run["id"] for run in second["items"]] == [runs[3].pk, runs[2].pk]
    third = client.get("runs", limit=2, before=second["next_cursor"]).json()
    assert [run["id"] for run in third["items"]] == [runs[1].pk, runs[0].pk]
    assert third["next_cursor"] is None
    only_failed = client.get("runs", state="failed").json()["items"]
    assert [run["id"] for run in only_failed] == [failed.pk]
    other = RunFactory(
        tenant=team.tenant, connection__tenant=team.tenant, requested_by=team.admin.user
    )
    by_connection = client.get("runs", connection=connection.name).json()["items"]
    assert other.pk not in [run["id"] for run in by_connection] and len(by_connection) == 6
    assert [r["id"] for r in client.get("runs", requester="ada").json()["items"]] == [other.pk]
    assert client.get("runs", requester="nobody").json()["items"] == []
    assert client.get("runs", connection="nothing").json()["items"] == []
    today = utc_now().date()
    assert len(client.get("runs", created_from=today, created_to=today).json()["items"]) == 7
    assert client.get("runs", created_to=today - timedelta(days=1)).json()["items"] == []
    assert client.get("runs", approver="nobody").json()["items"] == []
    assert [
        r["id"] for r in client.get("runs", vendor_reference=f"#{other.pk}").json()["items"]
    ] == [other.pk]
    problem(client.get("runs", created_from="last week"), 422, "invalid_request")
    problem(client.get("runs", state="exploded"), 422, "invalid_request")
    problem(client.get("runs", limit=0), 422, "invalid_request")
    problem(client.get("runs", before="abc"), 422, "invalid_request")
    problem(client.get("runs", before=987654), 422, "invalid_cursor")


def test_approve_needs_a_second_operator_and_the_parameters_seen(make_token, daily_connection):
    _, marketer = make_token("marketer")
    _, requester = make_token("operator")
    _, approver = make_token("second_operator")
    run = requester.post("daily-trigger", {"files_uploaded_attested": True}).json()
    problem(
        requester.post(f"runs/{run['id']}/approve", {"parameters_hash": run["parameters_hash"]}),
        403,
        "four_eyes",
    )
    problem(
        marketer.post(f"runs/{run['id']}/approve", {"parameters_hash": run["parameters_hash"]}),
        403,
        "forbidden",
    )
    problem(
        approver.post(f"runs/{run['id']}/approve", {"parameters_hash": "0" * 64}), 409, "refused"
    )
    problem(approver.post(f"runs/{run['id']}/approve", {}), 422, "invalid_request")
    approved = approver.post(
        f"runs/{run['id']}/approve", {"parameters_hash": run["parameters_hash"], "comment": "ok"}
    )
    assert approved.status_code == 200 and approved.json()["state"] == "queued"
    detail = approver.get(f"runs/{run['id']}").json()
    assert detail["approvals"][0]["decided_by"] == "olga"
    problem(
        approver.post(f"runs/{run['id']}/approve", {"parameters_hash": run["parameters_hash"]}),
        409,
        "refused",
    )


def test_reject(make_token, daily_connection):
    _, marketer = make_token("marketer")
    _, operator = make_token("operator")
    run = marketer.post("daily-trigger", {"files_uploaded_attested": True}).json()
    problem(marketer.post(f"runs/{run['id']}/reject", {}), 403, "forbidden")
    problem(operator.post(f"runs/{run['id']}/reject", {"comment": 5}), 422, "invalid_request")
    rejected = operator.post(f"runs/{run['id']}/reject", {"comment": "not today"})
    assert rejected.status_code == 200 and rejected.json()["state"] == "cancelled"


def test_wait_returns_at_once_for_a_settled_run(make_token, team):
    run = RunFactory(tenant=team.tenant, connection__tenant=team.tenant, state=RunState.SUCCEEDED)
    _, client = make_token("auditor")
    assert client.get(f"runs/{run.pk}", wait=30).json()["state"] == "succeeded"


def test_wait_answers_when_the_run_ends(make_token, team, monkeypatch):
    run = RunFactory(tenant=team.tenant, connection__tenant=team.tenant, state=RunState.ACCEPTED)
    sleeps = []

    def worker_finishes_the_run(seconds: float) -> None:
        # Stands in for the half-second pause: the worker settles the run meanwhile.
        sleeps.append(seconds)
        if len(sleeps) == 2:
            Run.objects.filter(pk=run.pk).update(state=RunState.SUCCEEDED, finished_at=utc_now())

    monkeypatch.setattr("dashboard.api.endpoints.runs.pause", worker_finishes_the_run)
    _, client = make_token("auditor")
    assert client.get(f"runs/{run.pk}", wait=30).json()["state"] == "succeeded"
    assert len(sleeps) == 2


def test_wait_is_bounded(make_token, team, settings, monkeypatch):
    settings.API_WAIT_MAX_SECONDS = 0
    run = RunFactory(tenant=team.tenant, connection__tenant=team.tenant, state=RunState.ACCEPTED)
    _, client = make_token("auditor")
    assert client.get(f"runs/{run.pk}", wait=30).json()["state"] == "accepted"
    problem(client.get(f"runs/{run.pk}", wait=31), 422, "invalid_request")
    problem(client.get(f"runs/{run.pk}", wait=-1), 422, "invalid_request")


def test_malformed_json_is_400(make_token, daily_connection):
    _, client = make_token("marketer")
    problem(client.post("daily-trigger", raw="{not json"), 400, "malformed_json")
    problem(client.post("daily-trigger", raw=b"\xff\xfe"), 400, "malformed_json")
    problem(
        client.post("daily-trigger", raw=b'{"files_uploaded_attested": true\x00}'),
        400,
        "malformed_json",
    )


def test_escaped_nul_and_lone_surrogates_in_json_are_400(make_token):
    _, client = make_token("marketer")
    for text in ('"a\\u0000b"', '"\\ud800"'):
        raw = '{"utc_date": "2025-01-01", "note": ' + text + "}"
        problem(client.post("files-landed", raw=raw), 400, "unstorable_text")
    assert not FilesLanded.objects.exists()


def test_nul_in_query_or_header_gets_problem_json_not_a_page(make_token):
    _, client = make_token("auditor")
    response = Client().get(
        "/api/v1/t/acme/runs?state=a%00b", headers={"Authorization": f"Bearer {client.secret}"}
    )
    problem(response, 400, "bad_input")
    response = client.post("daily-trigger", {}, HTTP_IDEMPOTENCY_KEY="a\x00b")
    problem(response, 400, "bad_input")


def test_a_10_mb_body_is_413(make_token):
    _, client = make_token("marketer")
    raw = json.dumps({"utc_date": "2025-01-01", "note": "x" * (10 * 1024 * 1024)})
    body = problem(client.post("files-landed", raw=raw), 413, "body_too_large")
    assert "bytes" in body["detail"]


def test_the_rate_limit_is_per_token_with_retry_after(make_token, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 1
    settings.API_RATE_LIMIT_BURST = 2
    _, client = make_token("auditor")
    _, other = make_token("marketer")
    assert client.get("runs").status_code == 200
    assert client.get("runs").status_code == 200
    limited = client.get("runs")
    problem(limited, 429, "rate_limited")
    assert int(limited["Retry-After"]) >= 1
    assert other.get("runs").status_code == 200


# -- every app's endpoints ---------------------------------------------------------------------


def test_a_nul_in_an_acting_path_is_audited_without_an_error(make_token):
    _, client = make_token("operator")
    response = client.post("runs/%00/approve", {"parameters_hash": "x"})
    assert response.status_code in (400, 404, 422), response.content


def test_every_call_is_audited_with_the_tokens_name(make_token, generator, altcraft_trigger):
    from dashboard.models import AuditEvent

    token, client = make_token("marketer", name="nightly-campaigns")
    client.post(f"event-generators/{MATCH_START}/run", {"topic_key": ARSENAL, "context": {}})
    client.post("altcraft/launches", {"trigger": 8, "recipients": ["a@example.com"]})
    calls = AuditEvent.objects.filter(action="api.called").order_by("pk")
    assert [(call.summary["endpoint"], call.summary["status"]) for call in calls] == [
        ("event_generator_run", 422),
        ("altcraft_launch_create", 201),
    ]
    assert all(call.summary["client"] == "nightly-campaigns" for call in calls)
    uploaded = AuditEvent.objects.get(action="altcraft.launch_uploaded")
    assert f"via API token “{token.name}”" in uploaded.actor_label


def test_cancel_withdraws_a_waiting_run_and_says_when_it_is_too_late(make_token, team):
    queued = RunFactory(tenant=team.tenant, connection__tenant=team.tenant, state=RunState.QUEUED)
    sending = RunFactory(tenant=team.tenant, connection__tenant=team.tenant, state=RunState.SENDING)
    _, auditor = make_token("auditor")
    _, operator = make_token("operator")
    problem(auditor.post(f"runs/{queued.pk}/cancel", {}), 403, "forbidden")

    cancelled = operator.post(f"runs/{queued.pk}/cancel", {})
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    # A retried cancel (its first answer lost) answers the run as it is, not a refusal.
    again = operator.post(f"runs/{queued.pk}/cancel", {})
    assert again.status_code == 200 and again.json()["state"] == "cancelled"

    # Lost the race with a worker: the answer says so, and the run goes on being sent.
    late = problem(operator.post(f"runs/{sending.pk}/cancel", {}), 409, "too_late")
    assert late["errors"] == [{"field": "state", "message": "sending"}]
    sending.refresh_from_db()
    assert sending.state == RunState.SENDING
