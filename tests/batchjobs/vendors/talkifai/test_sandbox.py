"""The TalkifAI sandbox's own rules: exact answers, status rules, time, auth, limits, controls.

Most tests call the sandbox's dispatcher directly (no HTTP, fast); one drives the control API
over real HTTP, as `make demo` or a worker in another process would.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from batchjobs.vendors.talkifai import sandbox as sandbox_module
from batchjobs.vendors.talkifai.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_JOBS,
    DEFAULT_READONLY_API_KEY,
    TalkifaiSandbox,
)
from dashboard.vendors.sandbox import (
    Fault,
    SandboxClock,
    SandboxRequest,
    SandboxServer,
)

T0 = datetime(2025, 2, 28, 13, 30, tzinfo=UTC)
START_FIELDS = [
    "success",
    "message",
    "batchJobId",
    "status",
    "contactsEnqueued",
    "redisJobCancelled",
    "startedAt",
]


@pytest.fixture
def sandbox() -> TalkifaiSandbox:
    return TalkifaiSandbox(SandboxClock(T0, scale=0))


class Answer:
    """What the sandbox answered: status, parsed JSON body, headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def call(
    sandbox: TalkifaiSandbox,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    key: str | None = DEFAULT_API_KEY,
    query: dict[str, list[str]] | None = None,
) -> Answer | None:
    """Dispatch one request as the HTTP server would; None when the connection was dropped."""
    if headers is None:
        headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    request = SandboxRequest(
        method=method,
        path=path,
        query=query or {},
        headers={name.lower(): value for name, value in headers.items()},
        body=b"",
    )
    response, _plan = sandbox.dispatch(request)
    if response is None:
        return None
    return Answer(response.status, json.loads(response.body or b"null"), response.headers)


def start(sandbox: TalkifaiSandbox, job_id: str, **options: Any) -> Answer:
    answer = call(sandbox, "POST", f"/batch/jobs/{job_id}/start", **options)
    assert answer is not None
    return answer


def detail(sandbox: TalkifaiSandbox, job_id: str, **options: Any) -> Answer:
    answer = call(sandbox, "GET", f"/batch/jobs/{job_id}", **options)
    assert answer is not None
    return answer


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


# -- the documented behaviour by status ----------------------------------------------------------


def test_starting_a_scheduled_job_answers_exactly_the_documented_fields(
    sandbox: TalkifaiSandbox,
) -> None:
    answer = start(sandbox, "job-scheduled-001")

    assert answer.status == 200
    assert list(answer.body) == START_FIELDS
    assert answer.body == {
        "success": True,
        "message": "Cancelled scheduled job, starting immediately",
        "batchJobId": "job-scheduled-001",
        "status": "running",
        "contactsEnqueued": 120,
        "redisJobCancelled": True,
        "startedAt": "2025-02-28T13:30:00Z",
    }
    job = sandbox.state()["jobs"]["job-scheduled-001"]
    assert job["status"] == "running"
    assert job["redis_job_id"] is None
    assert job["redis_jobs_cancelled"] == 1
    assert job["contacts_enqueued"] == 120
    assert job["api_starts"] == 1
    assert job["started_at"] == "2025-02-28T13:30:00Z"


def test_starting_a_pending_job_enqueues_without_a_redis_job(sandbox: TalkifaiSandbox) -> None:
    answer = start(sandbox, "job-pending-001")

    assert answer.body == {
        "success": True,
        "message": "Starting pending job immediately",
        "batchJobId": "job-pending-001",
        "status": "running",
        "contactsEnqueued": 80,
        "redisJobCancelled": False,
        "startedAt": "2025-02-28T13:30:00Z",
    }
    assert sandbox.state()["total_redis_jobs_cancelled"] == 0


def test_a_running_job_cannot_be_started(sandbox: TalkifaiSandbox) -> None:
    answer = start(sandbox, "job-running-001")

    assert answer.status == 400
    assert answer.body == error_body("already_running", "Job already running")
    assert sandbox.state()["total_api_starts"] == 0


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_a_finished_job_cannot_be_started(sandbox: TalkifaiSandbox, status: str) -> None:
    answer = start(sandbox, f"job-{status}-001")

    assert answer.status == 400
    assert answer.body == error_body("invalid_status", f"Cannot start {status} job")
    assert sandbox.state()["jobs"][f"job-{status}-001"]["status"] == status


def test_an_unknown_job_is_not_found(sandbox: TalkifaiSandbox) -> None:
    for answer in (start(sandbox, "job-nope"), detail(sandbox, "job-nope")):
        assert answer.status == 404
        assert answer.body == error_body("job_not_found", "Batch job not found")


def test_a_started_job_is_then_already_running(sandbox: TalkifaiSandbox) -> None:
    assert start(sandbox, "job-pending-001").status == 200
    assert start(sandbox, "job-pending-001").body["error"]["code"] == "already_running"
    assert sandbox.state()["starts"]["job-pending-001"] == 1
    assert sandbox.state()["total_contacts_enqueued"] == 80


def test_a_job_id_in_the_path_is_percent_decoded(sandbox: TalkifaiSandbox) -> None:
    sandbox.control("add_job", {"id": "Q1 renewals/#2", "status": "pending", "contacts": 2})

    answer = start(sandbox, "Q1%20renewals%2F%232")

    assert answer.status == 200
    assert answer.body["batchJobId"] == "Q1 renewals/#2"


# -- time ------------------------------------------------------------------------------------------


def test_a_scheduled_job_can_be_started_early_but_starts_by_itself_at_its_time(
    sandbox: TalkifaiSandbox,
) -> None:
    sandbox.control("add_job", {"id": "early", "status": "scheduled", "scheduled_in_seconds": 600})
    sandbox.clock.advance(599)
    assert start(sandbox, "early").body["redisJobCancelled"] is True

    sandbox.clock.advance(1)
    answer = start(sandbox, "job-scheduled-001")  # scheduled a day after T0: still early
    assert answer.status == 200

    sandbox.control("add_job", {"id": "late", "status": "scheduled", "scheduled_in_seconds": 60})
    sandbox.clock.advance(60)
    assert detail(sandbox, "late").body["status"] == "running"
    assert start(sandbox, "late").body == error_body("already_running", "Job already running")
    late = sandbox.state()["jobs"]["late"]
    assert late["api_starts"] == 0
    assert late["scheduled_starts"] == 1
    assert late["contacts_enqueued"] == 25
    assert late["started_at"] == (T0 + timedelta(seconds=660)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_running_job_completes_after_the_run_duration(sandbox: TalkifaiSandbox) -> None:
    sandbox.control("set_run_duration", {"seconds": 100})
    start(sandbox, "job-pending-001")

    sandbox.clock.advance(25)
    quarter = detail(sandbox, "job-pending-001").body
    sandbox.clock.advance(74)
    almost = detail(sandbox, "job-pending-001").body
    sandbox.clock.advance(1)
    done = detail(sandbox, "job-pending-001").body

    assert quarter["status"] == "running"
    assert quarter["contactsProcessed"] == 20
    assert quarter["statusBreakdown"] == {"completed": 20, "pending": 60}
    assert quarter["estimatedCompletionTime"] == "2025-02-28T13:31:40Z"
    assert almost["status"] == "running"
    assert done["status"] == "completed"
    assert done["completedAt"] == "2025-02-28T13:31:40Z"
    assert done["contactsProcessed"] == 80
    assert done["estimatedCompletionTime"] is None
    assert start(sandbox, "job-pending-001").body["error"]["code"] == "invalid_status"


def test_the_default_running_job_completes_ten_minutes_after_its_start(
    sandbox: TalkifaiSandbox,
) -> None:
    assert detail(sandbox, "job-running-001").body["actualStartTime"] == "2025-02-28T13:29:00Z"
    sandbox.clock.advance(540)
    body = detail(sandbox, "job-running-001").body
    assert body["status"] == "completed"
    assert body["completedAt"] == "2025-02-28T13:39:00Z"


# -- detail ---------------------------------------------------------------------------------------


def test_detail_has_the_job_fields_and_a_page_of_contacts(sandbox: TalkifaiSandbox) -> None:
    body = detail(sandbox, "job-scheduled-001").body

    assert body["id"] == "job-scheduled-001"
    assert body["status"] == "scheduled"
    assert body["organizationId"] == "org_sandbox"
    assert body["totalContacts"] == body["contactsTotal"] == 120
    assert body["scheduledStartTime"] == "2025-03-01T13:30:00Z"
    assert body["actualStartTime"] is None and body["completedAt"] is None
    assert body["createdAt"] == "2025-02-28T12:30:00Z"
    assert len(body["contacts"]) == 50
    assert body["contactsHasMore"] is True
    assert body["contacts"][0]["status"] == "pending"


def test_detail_pages_contacts(sandbox: TalkifaiSandbox) -> None:
    body = detail(
        sandbox,
        "job-completed-001",
        query={"contactsPage": ["4"], "contactsPageSize": ["60"]},
    ).body

    assert [contact["id"] for contact in body["contacts"]] == [
        f"contact_{number:05d}" for number in range(181, 201)
    ]
    assert body["contactsHasMore"] is False
    assert {contact["status"] for contact in body["contacts"]} == {"completed"}
    clamped = detail(sandbox, "job-failed-001", query={"contactsPageSize": ["9999"]}).body
    assert clamped["contactsPageSize"] == 500


def test_failed_and_cancelled_jobs_show_their_unreached_contacts(sandbox: TalkifaiSandbox) -> None:
    failed = detail(sandbox, "job-failed-001").body
    cancelled = detail(sandbox, "job-cancelled-001").body

    assert failed["statusBreakdown"] == {"completed": 20, "failed": 20}
    assert cancelled["statusBreakdown"] == {"completed": 0, "cancelled": 30}


# -- auth, organisations, rate limit, routing ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing API key"),
        ({"Authorization": f"Token {DEFAULT_API_KEY}"}, "Missing API key"),
        ({"Authorization": "Bearer "}, "Missing API key"),
        ({"X-API-Key": DEFAULT_API_KEY}, "Missing API key"),
        ({"Authorization": "Bearer not-a-key"}, "Invalid API key"),
    ],
)
def test_a_missing_or_unknown_key_is_unauthorized(
    sandbox: TalkifaiSandbox, headers: dict[str, str], message: str
) -> None:
    for answer in (
        start(sandbox, "job-pending-001", headers=headers),
        detail(sandbox, "job-pending-001", headers=headers),
    ):
        assert answer.status == 401
        assert answer.body == error_body("unauthorized", message)
    assert sandbox.state()["total_api_starts"] == 0


def test_the_bearer_scheme_is_case_insensitive(sandbox: TalkifaiSandbox) -> None:
    answer = start(
        sandbox, "job-pending-001", headers={"Authorization": f"bearer {DEFAULT_API_KEY}"}
    )

    assert answer.status == 200


def test_a_read_only_key_reads_but_cannot_start(sandbox: TalkifaiSandbox) -> None:
    assert detail(sandbox, "job-pending-001", key=DEFAULT_READONLY_API_KEY).status == 200
    answer = start(sandbox, "job-pending-001", key=DEFAULT_READONLY_API_KEY)

    assert answer.status == 403
    assert answer.body == error_body("forbidden", "API key is not allowed to start batch jobs")


def test_keys_only_see_their_organisations_jobs(sandbox: TalkifaiSandbox) -> None:
    sandbox.control("add_key", {"key": "key-of-other-org", "organization_id": "org_other"})
    sandbox.control("add_job", {"id": "other-job", "organization_id": "org_other"})

    assert start(sandbox, "job-pending-001", key="key-of-other-org").status == 404
    assert start(sandbox, "other-job").status == 404
    assert start(sandbox, "other-job", key="key-of-other-org").status == 200


def test_the_rate_limit_is_a_window_per_key_on_the_sandbox_clock(
    sandbox: TalkifaiSandbox,
) -> None:
    sandbox.control("set_rate_limit", {"per_minute": 3})
    for _ in range(3):
        assert detail(sandbox, "job-pending-001").status == 200
    assert detail(sandbox, "job-pending-001", key=DEFAULT_READONLY_API_KEY).status == 200
    sandbox.clock.advance(20.5)

    throttled = start(sandbox, "job-pending-001")

    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "40"
    assert throttled.body == error_body(
        "rate_limited", "Rate limit exceeded. Try again in 40 seconds."
    )
    assert sandbox.state()["throttled_requests"] == 1
    assert sandbox.state()["total_api_starts"] == 0
    sandbox.clock.advance(39.5)
    assert start(sandbox, "job-pending-001").status == 200


def test_unknown_paths_and_wrong_methods_answer_as_the_web_framework(
    sandbox: TalkifaiSandbox,
) -> None:
    assert call(sandbox, "POST", "/batch/jobs/job-pending-001/begin").status == 404  # type: ignore[union-attr]
    not_found = call(sandbox, "GET", "/batch/jobs/job-pending-001/start/x")
    assert not_found is not None and not_found.body == {"detail": "Not Found"}
    wrong_method = call(sandbox, "GET", "/batch/jobs/job-pending-001/start")
    assert wrong_method is not None and wrong_method.status == 405
    assert wrong_method.body == {"detail": "Method Not Allowed"}
    assert call(sandbox, "POST", "/batch/jobs/job-pending-001").status == 405  # type: ignore[union-attr]
    assert sandbox.state()["total_api_starts"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/Batch/Jobs/job-pending-001/start",
        "/batch/jobs/job-pending-001/Start",
        "/batch/job/job-pending-001/start",
        "/batch/jobs/job-pending-001/start/",
        "/v1/batch/jobs/job-pending-001/start",
    ],
)
def test_only_the_sandboxs_own_start_path_is_routed(sandbox: TalkifaiSandbox, path: str) -> None:
    answer = call(sandbox, "POST", path)

    assert answer is not None and answer.status == 404
    assert answer.body == {"detail": "Not Found"}
    assert sandbox.state()["total_api_starts"] == 0


def test_the_sandbox_states_its_routes_without_the_client_module() -> None:
    # The sandbox is the client's independent counterpart: if it read the client's layout, a
    # wrong default path or header in the client would be served instead of refused.
    source = Path(sandbox_module.__file__).read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not any(module.startswith("batchjobs") for module in imported)
    assert TalkifaiSandbox(SandboxClock(T0, scale=0)).state()["routes"] == {
        "start_path": "/batch/jobs/{batch_job_id}/start",
        "detail_path": "/batch/jobs/{batch_job_id}",
        "auth_header": "Authorization",
        "auth_prefix": "Bearer ",
    }


def test_another_layout_moves_the_routes_and_the_key_header() -> None:
    sandbox = TalkifaiSandbox(
        SandboxClock(T0, scale=0),
        start_path="/v2/jobs/{batch_job_id}:start",
        detail_path="/v2/jobs/{batch_job_id}?contactsPageSize=1",
        auth_header="X-API-Key",
        auth_prefix="",
    )
    api_key = {"X-API-Key": DEFAULT_API_KEY}

    started = call(sandbox, "POST", "/v2/jobs/job-pending-001:start", headers=api_key)
    read = call(sandbox, "GET", "/v2/jobs/job-pending-001", headers=api_key)
    default_route = call(sandbox, "POST", "/batch/jobs/job-scheduled-001/start")
    bearer = call(sandbox, "POST", "/v2/jobs/job-scheduled-001:start")

    assert started is not None and started.status == 200
    assert read is not None and read.body["status"] == "running"
    assert default_route is not None and default_route.status == 404
    assert bearer is not None and bearer.status == 401


# -- faults ---------------------------------------------------------------------------------------


def test_an_injected_server_error_changes_nothing(sandbox: TalkifaiSandbox) -> None:
    sandbox.inject_fault("start_batch_job", Fault.SERVER_ERROR)

    answer = sandbox.dispatch(
        SandboxRequest(
            "POST",
            "/batch/jobs/job-pending-001/start",
            {},
            {"authorization": f"Bearer {DEFAULT_API_KEY}"},
            b"",
        )
    )[0]

    assert answer is not None and answer.status == 500
    assert sandbox.state()["jobs"]["job-pending-001"]["status"] == "pending"
    assert start(sandbox, "job-pending-001").status == 200


def test_a_drop_after_processing_still_starts_the_job(sandbox: TalkifaiSandbox) -> None:
    sandbox.inject_fault("start_batch_job", Fault.DROP_AFTER_PROCESSING)

    assert call(sandbox, "POST", "/batch/jobs/job-pending-001/start") is None
    assert sandbox.state()["starts"]["job-pending-001"] == 1
    [received] = sandbox.received
    assert received.processed is True and received.status is None


# -- configuration and controls ------------------------------------------------------------------


def test_the_defaults_have_one_job_per_status(sandbox: TalkifaiSandbox) -> None:
    jobs = sandbox.state()["jobs"]

    assert {job["status"] for job in jobs.values()} == {
        "scheduled",
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
    }
    assert sorted(jobs) == sorted(spec["id"] for spec in DEFAULT_JOBS)


def test_keys_and_jobs_come_from_the_constructor(sandbox: TalkifaiSandbox) -> None:
    custom = TalkifaiSandbox(
        SandboxClock(T0, scale=0),
        api_keys={"custom-key": "org_custom"},
        jobs=[{"id": "only-job", "organization_id": "org_custom", "contacts": 7}],
        run_duration_seconds=30,
    )

    answer = start(custom, "only-job", key="custom-key")

    assert answer.body["contactsEnqueued"] == 7
    assert start(custom, "only-job", key=DEFAULT_API_KEY).status == 401
    custom.clock.advance(30)
    assert detail(custom, "only-job", key="custom-key").body["status"] == "completed"


def test_controls_add_jobs_and_keys_and_steer_statuses(sandbox: TalkifaiSandbox) -> None:
    added = sandbox.control(
        "add_job", {"name": "Ad hoc", "status": "scheduled", "scheduled_at": "2025-03-02T09:00:00Z"}
    )
    assert added["status"] == "scheduled"
    assert added["scheduled_at"] == "2025-03-02T09:00:00Z"
    assert added["redis_job_id"] == "arq_job_job-007"

    steered = sandbox.control("set_job_status", {"id": "job-completed-001", "status": "pending"})
    assert steered["status"] == "pending"
    assert start(sandbox, "job-completed-001").status == 200

    sandbox.control("add_key", {"key": "new-read-key", "can_start": False})
    assert start(sandbox, "job-007", key="new-read-key").status == 403

    with pytest.raises(ValueError):
        sandbox.control("set_job_status", {"id": "job-pending-001", "status": "paused"})
    with pytest.raises(ValueError):
        sandbox.control("add_job", {"id": "job-pending-001"})
    with pytest.raises(KeyError):
        sandbox.control("set_job_status", {"id": "job-missing", "status": "pending"})
    with pytest.raises(KeyError):
        sandbox.control("launch_rockets", {})


def test_reset_restores_the_constructor_configuration(sandbox: TalkifaiSandbox) -> None:
    sandbox.control("set_rate_limit", {"per_minute": 1})
    sandbox.control("set_run_duration", {"seconds": 5})
    sandbox.control("add_key", {"key": "temporary-key"})
    start(sandbox, "job-pending-001")

    sandbox.reset()

    state = sandbox.state()
    assert state["rate_limit_per_minute"] is None
    assert state["run_duration_seconds"] == 600
    assert state["total_api_starts"] == 0
    assert len(state["keys"]) == 2
    assert sandbox.received == []


def test_state_never_shows_a_whole_key(sandbox: TalkifaiSandbox) -> None:
    text = json.dumps(sandbox.state())

    assert DEFAULT_API_KEY not in text
    assert DEFAULT_READONLY_API_KEY not in text
    assert {"key_ending": "-key", "organization_id": "org_sandbox", "can_start": True} in (
        sandbox.state()["keys"]
    )


def test_the_control_api_over_http(sandbox: TalkifaiSandbox) -> None:
    with SandboxServer({"/vendors/talkifai": sandbox}) as server:
        base = server.url("/vendors/talkifai")
        control = f"{base}/__sandbox__"
        with requests.Session() as http:
            added = http.post(
                f"{control}/control/add_job",
                json={"id": "demo-job", "status": "pending", "contacts": 5},
                timeout=5,
            )
            fault = http.post(
                f"{control}/faults",
                json={"route": "start_batch_job", "fault": "server_error", "status": 503},
                timeout=5,
            )
            failed_start = http.post(
                f"{base}/batch/jobs/demo-job/start",
                headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
                timeout=5,
            )
            started = http.post(
                f"{base}/batch/jobs/demo-job/start",
                headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
                timeout=5,
            )
            clock = http.post(f"{control}/clock", json={"advance": 600}, timeout=5)
            state = http.get(f"{control}/state", timeout=5).json()
            unknown = http.post(f"{control}/control/launch_rockets", json={}, timeout=5)
            reset = http.post(f"{control}/reset", timeout=5)
            after_reset = http.get(f"{control}/state", timeout=5).json()

    assert added.status_code == 200 and added.json()["result"]["status"] == "pending"
    assert fault.status_code == 200
    assert failed_start.status_code == 503
    assert started.status_code == 200 and started.json()["contactsEnqueued"] == 5
    assert clock.json()["now"] == "2025-02-28T13:40:00+00:00"
    assert state["name"] == "talkifai"
    assert state["state"]["jobs"]["demo-job"]["status"] == "completed"
    assert state["state"]["starts"]["demo-job"] == 1
    assert [entry["status"] for entry in state["received"]] == [503, 200]
    assert unknown.status_code == 400
    assert reset.status_code == 200
    assert "demo-job" not in after_reset["state"]["jobs"]
