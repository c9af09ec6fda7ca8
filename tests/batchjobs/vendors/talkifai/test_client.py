"""Contract tests: the TalkifAI batch-calling client against its sandbox, over real HTTP.

One server serves, for the whole module:
- the default sandbox at the root and again under "/eu/talkifai" (the base-URL prefix case);
- a sandbox with another layout (other paths, `X-API-Key`) under "/proxy/talkifai-v2";
- a scripted fake under "/scripted" for answers the real vendor should never give (garbled 2xx,
  other error shapes), which the client must still classify.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batchjobs.vendors.talkifai.client import (
    ADVICE_BY_FAILURE_CLASS,
    AlreadyRunning,
    BatchJobDetail,
    BatchJobStarted,
    EndpointNotFound,
    Forbidden,
    GatewayTimeout,
    InvalidStatus,
    JobNotFound,
    RateLimited,
    RequestRejected,
    StartNotConfirmed,
    TalkifaiApiLayout,
    TalkifaiClient,
    TalkifaiServerError,
    Unauthorized,
    UnexpectedRedirect,
    UnreadableDetail,
    UnreadableStartAnswer,
    advice_for,
)
from batchjobs.vendors.talkifai.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_READONLY_API_KEY,
    TalkifaiSandbox,
)
from dashboard.vendors.http import (
    REDACTED,
    ConfigurationError,
    Exchange,
    FailureClass,
    NotSent,
    OutcomeUnknown,
    VendorError,
)
from dashboard.vendors.sandbox import (
    Fault,
    Sandbox,
    SandboxClock,
    SandboxRequest,
    SandboxResponse,
    SandboxServer,
    route,
)

T0 = datetime(2025, 2, 28, 13, 30, tzinfo=UTC)
WRONG_KEY = "talkifai-wrong-key-0000"
OTHER_ORGANIZATION_KEY = "talkifai-other-organization-key"
SECRETS = (DEFAULT_API_KEY, DEFAULT_READONLY_API_KEY, WRONG_KEY, OTHER_ORGANIZATION_KEY)

ALTERNATIVE_LAYOUT = TalkifaiApiLayout.from_overrides(
    {
        "start_path": "/v2/batch-calling/jobs/{batch_job_id}/start",
        "detail_path": "/v2/batch-calling/jobs/{batch_job_id}",
        "auth_header": "X-API-Key",
        "auth_prefix": "",
    }
)


class ScriptedVendor(Sandbox):
    """Answers with whatever the test queued: vendor misbehaviour the real sandbox never shows."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__(SandboxClock(T0, scale=0))
        self.answers: list[SandboxResponse] = []

    def reset_state(self) -> None:
        """Forget queued answers."""
        self.answers = []

    @route("POST", r"/.*", "any_post")
    def any_post(self, request: SandboxRequest) -> SandboxResponse:
        """The next queued answer."""
        return self.answers.pop(0)

    @route("GET", r"/.*", "any_get")
    def any_get(self, request: SandboxRequest) -> SandboxResponse:
        """The next queued answer."""
        return self.answers.pop(0)


DEFAULT_SANDBOX = TalkifaiSandbox(SandboxClock(T0, scale=0))
# The sandbox is told its other shape in its own words, not through the client's layout class.
ALTERNATIVE_SANDBOX = TalkifaiSandbox(
    SandboxClock(T0, scale=0),
    start_path="/v2/batch-calling/jobs/{batch_job_id}/start",
    detail_path="/v2/batch-calling/jobs/{batch_job_id}",
    auth_header="X-API-Key",
    auth_prefix="",
)
SCRIPTED = ScriptedVendor()


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    mounts: dict[str, Sandbox] = {
        "": DEFAULT_SANDBOX,
        "/eu/talkifai": DEFAULT_SANDBOX,
        "/proxy/talkifai-v2": ALTERNATIVE_SANDBOX,
        "/scripted": SCRIPTED,
    }
    with SandboxServer(mounts) as running:
        yield running


@pytest.fixture
def sandbox() -> TalkifaiSandbox:
    """The default sandbox, fresh, its clock frozen at T0 (defaults are built from the clock)."""
    for each in (DEFAULT_SANDBOX, ALTERNATIVE_SANDBOX, SCRIPTED):
        each.clock.set(T0)
        each.clock.set_scale(0)
        each.reset()
    return DEFAULT_SANDBOX


@pytest.fixture
def make_client(server: SandboxServer, sandbox: TalkifaiSandbox) -> Iterator[Any]:
    clients: list[TalkifaiClient] = []

    def make(prefix: str = "", api_key: str = DEFAULT_API_KEY, **options: Any) -> TalkifaiClient:
        client = TalkifaiClient(server.url(prefix), api_key=api_key, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Any) -> TalkifaiClient:
    return make_client()


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test runs with DEBUG logging captured, and no record may carry a secret."""
    caplog.set_level(logging.DEBUG)
    yield
    # At teardown `caplog.records` holds only teardown records: read the test's own phases.
    records = caplog.get_records("setup") + caplog.get_records("call")
    leaked = [record.name for record in records if contains_secret(record.getMessage())]
    assert not leaked, f"a secret was logged by {leaked}"


def contains_secret(text: str | None) -> bool:
    return bool(text) and any(secret in text for secret in SECRETS)


def assert_no_secret_in(exchange: Exchange | None) -> None:
    assert exchange is not None
    # A boolean, not the text: a failing assertion must not print the secret either.
    leaked = contains_secret(json.dumps(exchange.as_dict()))
    assert not leaked, "an Exchange field carries a secret"


def assert_error_hides_secrets(error: VendorError) -> None:
    leaked = contains_secret(str(error)) or contains_secret(repr(error))
    assert not leaked, "an error message carries a secret"
    leaked = contains_secret(error.vendor_message)
    assert not leaked, "an error's vendor message carries a secret"
    assert_no_secret_in(error.exchange)


def assert_header_is(headers: dict[str, str], name: str, expected: str) -> None:
    matches = headers.get(name) == expected
    assert matches, f"header {name!r} is not the expected value"


def started_count(sandbox: TalkifaiSandbox) -> int:
    return sandbox.state()["total_api_starts"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- start: the documented successes ----------------------------------------------------------


def test_starting_a_scheduled_job_cancels_its_redis_job_and_enqueues_every_contact(
    make_client: Any, sandbox: TalkifaiSandbox
) -> None:
    client = make_client("/eu/talkifai")

    started = client.start_batch_job("job-scheduled-001")

    assert isinstance(started, BatchJobStarted)
    assert started.success is True
    assert started.message == "Cancelled scheduled job, starting immediately"
    assert started.batch_job_id == "job-scheduled-001"
    assert started.status == "running"
    assert started.contacts_enqueued == 120
    assert started.redis_job_cancelled is True
    assert started.started_at == T0
    assert started.started_at.tzinfo is not None
    assert started.started_at_reported is True
    assert started.exchange.url == client.base_url + "/batch/jobs/job-scheduled-001/start"
    assert started.exchange.status_code == 200
    assert_no_secret_in(started.exchange)
    state = sandbox.state()
    assert state["starts"]["job-scheduled-001"] == 1
    assert state["total_api_starts"] == 1
    assert state["total_contacts_enqueued"] == 120
    assert state["total_redis_jobs_cancelled"] == 1
    assert state["jobs"]["job-scheduled-001"]["status"] == "running"


def test_starting_a_pending_job_runs_it_without_cancelling_a_redis_job(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    started = client.start_batch_job("job-pending-001")

    assert started.message == "Starting pending job immediately"
    assert started.redis_job_cancelled is False
    assert started.contacts_enqueued == 80
    assert started.status == "running"
    assert sandbox.state()["starts"] == {
        "job-scheduled-001": 0,
        "job-pending-001": 1,
        "job-running-001": 0,
        "job-completed-001": 0,
        "job-failed-001": 0,
        "job-cancelled-001": 0,
    }
    assert sandbox.state()["total_redis_jobs_cancelled"] == 0


def test_start_is_an_empty_post_with_the_key_as_a_bearer_token(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    started = client.start_batch_job("job-pending-001")

    [received] = sandbox.received_on("start_batch_job")
    assert received.method == "POST"
    assert received.path == "/batch/jobs/job-pending-001/start"
    assert received.body == ""
    assert received.headers["content-length"] == "0"
    assert "content-type" not in received.headers
    assert received.headers["accept"] == "application/json"
    assert_header_is(received.headers, "authorization", f"Bearer {DEFAULT_API_KEY}")
    assert received.effect == {
        "started": "job-pending-001",
        "contacts_enqueued": 80,
        "redis_job_cancelled": False,
    }
    assert started.exchange.method == "POST"
    assert started.exchange.request_body is None
    assert started.exchange.request_headers["Authorization"] == f"Bearer {REDACTED}"


def test_a_job_id_is_sent_as_one_percent_encoded_path_segment(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.control("add_job", {"id": "Q1 renewals #2?x=1&y", "status": "pending", "contacts": 3})

    started = client.start_batch_job("Q1 renewals #2?x=1&y")

    assert started.batch_job_id == "Q1 renewals #2?x=1&y"
    [received] = sandbox.received_on("start_batch_job")
    assert received.path == "/batch/jobs/Q1%20renewals%20%232%3Fx%3D1%26y/start"
    assert sandbox.state()["starts"]["Q1 renewals #2?x=1&y"] == 1


def test_concurrent_starts_of_one_job_start_it_exactly_once(
    make_client: Any, sandbox: TalkifaiSandbox
) -> None:
    outcomes: list[str] = []

    def start() -> None:
        try:
            make_client().start_batch_job("job-pending-001")
            outcomes.append("started")
        except AlreadyRunning:
            outcomes.append("already_running")

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["already_running"] * 5 + ["started"]
    assert started_count(sandbox) == 1
    assert sandbox.state()["total_contacts_enqueued"] == 80


def test_calls_are_logged_without_the_key(
    client: TalkifaiClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.start_batch_job("job-pending-001")
    with pytest.raises(AlreadyRunning):
        client.start_batch_job("job-pending-001")

    messages = [record.getMessage() for record in caplog.records]
    assert any("/batch/jobs/job-pending-001/start -> 200" in message for message in messages)
    assert any("-> 400" in message for message in messages)
    assert not any(contains_secret(message) for message in messages)


# -- start: the documented refusals --------------------------------------------------------------


def test_starting_a_running_job_is_rejected_as_already_running(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    with pytest.raises(AlreadyRunning) as caught:
        client.start_batch_job("job-running-001")

    error = caught.value
    assert error.failure_class is FailureClass.REJECTED
    assert error.code == "already_running"
    assert error.status_code == 400
    assert error.vendor_message == "Job already running"
    assert advice_for(error) == "The job is already calling; nothing to do."
    assert error.exchange is not None and error.exchange.status_code == 400
    assert_error_hides_secrets(error)
    assert started_count(sandbox) == 0
    assert sandbox.received_on("start_batch_job")[0].effect is None


def test_a_second_start_is_already_running_and_the_job_started_once(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    client.start_batch_job("job-scheduled-001")

    with pytest.raises(AlreadyRunning):
        client.start_batch_job("job-scheduled-001")

    assert started_count(sandbox) == 1
    assert sandbox.state()["total_contacts_enqueued"] == 120


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_starting_a_finished_job_is_rejected_as_invalid_status(
    client: TalkifaiClient, sandbox: TalkifaiSandbox, status: str
) -> None:
    with pytest.raises(InvalidStatus) as caught:
        client.start_batch_job(f"job-{status}-001")

    error = caught.value
    assert error.failure_class is FailureClass.REJECTED
    assert error.code == "invalid_status"
    assert error.status_code == 400
    assert error.vendor_message == f"Cannot start {status} job"
    assert error.job_status == status
    assert "create a new batch job" in advice_for(error).lower()
    assert_error_hides_secrets(error)
    assert sandbox.state()["jobs"][f"job-{status}-001"]["status"] == status
    assert started_count(sandbox) == 0


def test_an_unknown_job_is_rejected_as_job_not_found(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    with pytest.raises(JobNotFound) as caught:
        client.start_batch_job("job-that-does-not-exist")

    assert caught.value.code == "job_not_found"
    assert caught.value.status_code == 404
    assert caught.value.vendor_message == "Batch job not found"
    assert caught.value.failure_class is FailureClass.REJECTED
    assert started_count(sandbox) == 0


def test_another_organisations_job_is_not_found(make_client: Any, sandbox: TalkifaiSandbox) -> None:
    sandbox.control("add_key", {"key": OTHER_ORGANIZATION_KEY, "organization_id": "org_other"})
    client = make_client(api_key=OTHER_ORGANIZATION_KEY)

    with pytest.raises(JobNotFound) as caught:
        client.start_batch_job("job-pending-001")

    assert_error_hides_secrets(caught.value)
    assert sandbox.state()["jobs"]["job-pending-001"]["status"] == "pending"


def test_a_wrong_key_is_rejected_as_unauthorized_and_never_shown(
    make_client: Any, sandbox: TalkifaiSandbox
) -> None:
    client = make_client(api_key=WRONG_KEY)

    with pytest.raises(Unauthorized) as caught:
        client.start_batch_job("job-pending-001")

    error = caught.value
    assert error.code == "unauthorized"
    assert error.status_code == 401
    assert error.failure_class is FailureClass.REJECTED
    assert error.vendor_message == "Invalid API key"
    assert "API key" in advice_for(error)
    assert_error_hides_secrets(error)
    assert started_count(sandbox) == 0


def test_a_read_only_key_may_read_but_not_start(make_client: Any, sandbox: TalkifaiSandbox) -> None:
    client = make_client(api_key=DEFAULT_READONLY_API_KEY)

    with pytest.raises(Forbidden) as caught:
        client.start_batch_job("job-pending-001")
    detail = client.batch_job_detail("job-pending-001")

    assert caught.value.code == "forbidden"
    assert caught.value.status_code == 403
    assert_error_hides_secrets(caught.value)
    assert detail.status == "pending"
    assert started_count(sandbox) == 0


def test_over_the_rate_limit_is_throttled_with_the_wait_to_honour(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.control("set_rate_limit", {"per_minute": 2})
    client.batch_job_detail("job-pending-001")
    sandbox.clock.advance(15)
    client.batch_job_detail("job-pending-001")

    with pytest.raises(RateLimited) as caught:
        client.start_batch_job("job-pending-001")

    error = caught.value
    assert error.failure_class is FailureClass.THROTTLED
    assert error.code == "rate_limited"
    assert error.status_code == 429
    assert error.retry_after == 45
    assert_error_hides_secrets(error)
    assert started_count(sandbox) == 0
    sandbox.clock.advance(45)
    assert client.start_batch_job("job-pending-001").status == "running"


# -- start: server errors and transport failures -------------------------------------------------


def test_a_500_is_a_server_error_and_nothing_started(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.inject_fault("start_batch_job", Fault.SERVER_ERROR)

    with pytest.raises(TalkifaiServerError) as caught:
        client.start_batch_job("job-pending-001")

    error = caught.value
    assert error.failure_class is FailureClass.SERVER_ERROR
    assert error.code == "server_error"
    assert error.status_code == 500
    assert error.vendor_message == "Internal Server Error"
    assert_error_hides_secrets(error)
    assert started_count(sandbox) == 0
    assert sandbox.received_on("start_batch_job")[0].fault == "server_error"


def test_a_503_is_a_server_error_with_its_retry_after(scripted: TalkifaiClient) -> None:
    SCRIPTED.answers.append(SandboxResponse.text(503, "busy", headers={"Retry-After": "30"}))

    with pytest.raises(TalkifaiServerError) as caught:
        scripted.start_batch_job("job-pending-001")

    assert caught.value.status_code == 503
    assert caught.value.retry_after == 30


def test_a_504_on_start_is_outcome_unknown_but_on_detail_a_server_error(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.inject_fault("start_batch_job", Fault.SERVER_ERROR, status=504)
    sandbox.inject_fault("batch_job_detail", Fault.SERVER_ERROR, status=504)

    with pytest.raises(GatewayTimeout) as start_error:
        client.start_batch_job("job-pending-001")
    with pytest.raises(TalkifaiServerError) as detail_error:
        client.batch_job_detail("job-pending-001")

    assert start_error.value.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert start_error.value.code == "gateway_timeout"
    assert detail_error.value.failure_class is FailureClass.SERVER_ERROR
    assert detail_error.value.status_code == 504


def test_a_closed_port_is_not_sent(sandbox: TalkifaiSandbox) -> None:
    client = TalkifaiClient(f"http://127.0.0.1:{closed_port()}/api", api_key=DEFAULT_API_KEY)

    with pytest.raises(NotSent) as caught:
        client.start_batch_job("job-pending-001")

    assert caught.value.failure_class is FailureClass.NOT_SENT
    assert caught.value.code == "connection_failed"
    assert advice_for(caught.value) == ADVICE_BY_FAILURE_CLASS[FailureClass.NOT_SENT]
    assert_error_hides_secrets(caught.value)
    assert started_count(sandbox) == 0


def test_no_answer_in_time_is_outcome_unknown_though_the_job_started(
    make_client: Any, sandbox: TalkifaiSandbox
) -> None:
    sandbox.inject_fault("start_batch_job", Fault.DELAY_AFTER_PROCESSING, seconds=0.6)
    client = make_client(read_timeout=0.15)

    with pytest.raises(OutcomeUnknown) as caught:
        client.start_batch_job("job-pending-001")

    assert caught.value.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert caught.value.code == "no_answer"
    assert_error_hides_secrets(caught.value)
    assert started_count(sandbox) == 1


def test_a_connection_dropped_after_processing_is_outcome_unknown_and_the_job_started(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.inject_fault("start_batch_job", Fault.DROP_AFTER_PROCESSING)

    with pytest.raises(OutcomeUnknown) as caught:
        client.start_batch_job("job-scheduled-001")

    assert caught.value.code == "no_answer"
    assert started_count(sandbox) == 1
    assert sandbox.received_on("start_batch_job")[0].processed is True


def test_a_connection_dropped_before_processing_is_outcome_unknown_and_nothing_started(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.inject_fault("start_batch_job", Fault.DROP_BEFORE_PROCESSING)

    with pytest.raises(OutcomeUnknown) as caught:
        client.start_batch_job("job-scheduled-001")

    assert caught.value.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert started_count(sandbox) == 0
    assert sandbox.received_on("start_batch_job")[0].processed is False


# -- checks before sending ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch_job_id",
    ["", "a/b", "..", ".", " job-pending-001", "job\n1", "x" * 201, None],
)
def test_an_unusable_job_id_is_refused_before_sending(
    client: TalkifaiClient, sandbox: TalkifaiSandbox, batch_job_id: Any
) -> None:
    with pytest.raises(ConfigurationError):
        client.start_batch_job(batch_job_id)
    with pytest.raises(ConfigurationError):
        client.batch_job_detail(batch_job_id)

    assert sandbox.received == []


@pytest.mark.parametrize(
    ("base_url", "api_key"),
    [
        ("http://127.0.0.1:1", ""),
        ("http://127.0.0.1:1", "key\r\nX-Injected: 1"),
        ("http://127.0.0.1:1", " padded-key"),
        ("ftp://127.0.0.1/talkifai", DEFAULT_API_KEY),
        ("talkifai.example", DEFAULT_API_KEY),
    ],
)
def test_an_unusable_connection_is_refused_before_sending(base_url: str, api_key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TalkifaiClient(base_url, api_key=api_key)

    assert not contains_secret(str(caught.value))


# -- detail --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_job_id", "status", "can_start_now", "is_finished"),
    [
        ("job-scheduled-001", "scheduled", True, False),
        ("job-pending-001", "pending", True, False),
        ("job-running-001", "running", False, False),
        ("job-completed-001", "completed", False, True),
        ("job-failed-001", "failed", False, True),
        ("job-cancelled-001", "cancelled", False, True),
    ],
)
def test_detail_reads_each_default_job(
    client: TalkifaiClient,
    batch_job_id: str,
    status: str,
    can_start_now: bool,
    is_finished: bool,
) -> None:
    detail = client.batch_job_detail(batch_job_id)

    assert isinstance(detail, BatchJobDetail)
    assert detail.batch_job_id == batch_job_id
    assert detail.status == status
    assert detail.can_start_now is can_start_now
    assert detail.is_finished is is_finished
    assert detail.name
    assert detail.contacts_total and detail.contacts_total > 0
    assert detail.exchange.method == "GET"
    assert_no_secret_in(detail.exchange)


def test_detail_of_a_scheduled_job_shows_its_schedule(client: TalkifaiClient) -> None:
    detail = client.batch_job_detail("job-scheduled-001")

    assert detail.scheduled_at == T0 + timedelta(days=1)
    assert detail.started_at is None
    assert detail.completed_at is None
    assert detail.contacts_total == 120
    assert detail.contacts_processed == 0
    assert detail.status_breakdown == {"completed": 0, "pending": 120}


def test_a_started_job_progresses_and_completes_on_the_sandbox_clock(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.control("set_run_duration", {"seconds": 1000})
    client.start_batch_job("job-pending-001")

    running = client.batch_job_detail("job-pending-001")
    sandbox.clock.advance(500)
    half_way = client.batch_job_detail("job-pending-001")
    sandbox.clock.advance(500)
    completed = client.batch_job_detail("job-pending-001")

    assert running.status == "running" and running.started_at == T0
    assert running.estimated_completion_at == T0 + timedelta(seconds=1000)
    assert half_way.status == "running" and half_way.contacts_processed == 40
    assert completed.status == "completed"
    assert completed.completed_at == T0 + timedelta(seconds=1000)
    assert completed.contacts_processed == 80 and completed.successful_calls == 80
    assert completed.is_finished and not completed.can_start_now


def test_a_scheduled_job_starts_by_itself_at_its_time_and_then_cannot_be_started(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.clock.advance(timedelta(days=1).total_seconds())

    detail = client.batch_job_detail("job-scheduled-001")
    with pytest.raises(AlreadyRunning):
        client.start_batch_job("job-scheduled-001")

    assert detail.status == "running"
    assert detail.started_at == T0 + timedelta(days=1)
    state = sandbox.state()
    assert state["total_api_starts"] == 0
    assert state["total_scheduled_starts"] == 1


def test_detail_of_an_unknown_job_is_job_not_found(client: TalkifaiClient) -> None:
    with pytest.raises(JobNotFound) as caught:
        client.batch_job_detail("job-missing")

    assert caught.value.status_code == 404


def test_detail_with_a_wrong_key_is_unauthorized(make_client: Any) -> None:
    with pytest.raises(Unauthorized) as caught:
        make_client(api_key=WRONG_KEY).batch_job_detail("job-pending-001")

    assert_error_hides_secrets(caught.value)


def test_detail_500_is_a_server_error(client: TalkifaiClient, sandbox: TalkifaiSandbox) -> None:
    sandbox.inject_fault("batch_job_detail", Fault.SERVER_ERROR)

    with pytest.raises(TalkifaiServerError):
        client.batch_job_detail("job-pending-001")


def test_detail_without_an_answer_is_outcome_unknown(
    client: TalkifaiClient, sandbox: TalkifaiSandbox
) -> None:
    sandbox.inject_fault("batch_job_detail", Fault.DROP_BEFORE_PROCESSING)

    with pytest.raises(OutcomeUnknown):
        client.batch_job_detail("job-pending-001")


# -- layouts: configurable paths and auth ------------------------------------------------------


def test_another_layout_under_a_prefix_starts_and_reads_with_an_api_key_header(
    make_client: Any, sandbox: TalkifaiSandbox
) -> None:
    client = make_client("/proxy/talkifai-v2", layout=ALTERNATIVE_LAYOUT)

    started = client.start_batch_job("job-pending-001")
    detail = client.batch_job_detail("job-pending-001")

    assert started.contacts_enqueued == 80
    assert detail.status == "running"
    [received] = ALTERNATIVE_SANDBOX.received_on("start_batch_job")
    assert received.path == "/v2/batch-calling/jobs/job-pending-001/start"
    assert_header_is(received.headers, "x-api-key", DEFAULT_API_KEY)
    assert "authorization" not in received.headers
    assert started.exchange.url.endswith(
        "/proxy/talkifai-v2/v2/batch-calling/jobs/job-pending-001/start"
    )
    assert started.exchange.request_headers["X-API-Key"] == REDACTED
    assert ALTERNATIVE_SANDBOX.state()["total_api_starts"] == 1
    assert sandbox.state()["total_api_starts"] == 0


def test_the_default_layout_against_another_layout_finds_no_endpoint(
    make_client: Any,
) -> None:
    client = make_client("/proxy/talkifai-v2")

    with pytest.raises(EndpointNotFound) as caught:
        client.start_batch_job("job-pending-001")

    assert caught.value.failure_class is FailureClass.REJECTED
    assert caught.value.code == "endpoint_not_found"
    assert ALTERNATIVE_SANDBOX.state()["total_api_starts"] == 0


def test_the_right_paths_with_the_wrong_auth_scheme_are_unauthorized(make_client: Any) -> None:
    layout = TalkifaiApiLayout.from_overrides(
        {
            "start_path": ALTERNATIVE_LAYOUT.start_path,
            "detail_path": ALTERNATIVE_LAYOUT.detail_path,
        }
    )

    with pytest.raises(Unauthorized) as caught:
        make_client("/proxy/talkifai-v2", layout=layout).start_batch_job("job-pending-001")

    assert caught.value.vendor_message == "Missing API key"


def test_a_layout_round_trips_through_a_plain_dict() -> None:
    assert TalkifaiApiLayout.from_overrides(None) == TalkifaiApiLayout()
    assert TalkifaiApiLayout.from_overrides(ALTERNATIVE_LAYOUT.as_dict()) == ALTERNATIVE_LAYOUT
    assert TalkifaiApiLayout().as_dict() == {
        "start_path": "/batch/jobs/{batch_job_id}/start",
        "detail_path": "/batch/jobs/{batch_job_id}",
        "auth_header": "Authorization",
        "auth_prefix": "Bearer ",
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"start_pth": "/x/{batch_job_id}"},
        {"start_path": "/batch/jobs/start"},
        {"start_path": "batch/jobs/{batch_job_id}/start"},
        {"detail_path": "/jobs/{batch_job_id}/{batch_job_id}"},
        {"detail_path": "/jobs?id={batch_job_id}"},
        {"auth_header": "X API Key"},
        {"auth_header": ""},
        {"auth_prefix": "Bearer\r\n"},
        {"auth_prefix": 5},
    ],
)
def test_an_unusable_layout_is_a_configuration_error(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        TalkifaiApiLayout.from_overrides(overrides)


# -- answers the vendor should not give, still classified -------------------------------------


@pytest.fixture
def scripted(make_client: Any) -> TalkifaiClient:
    """A client of the scripted fake: queue answers on SCRIPTED, then call."""
    return make_client("/scripted")


def json_answer(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> SandboxResponse:
    return SandboxResponse.json(status, payload, headers=headers)


@pytest.mark.parametrize(
    ("answer", "error_class", "failure_class", "code"),
    [
        (
            json_answer(200, {"success": False, "error": {"code": "already_running"}}),
            AlreadyRunning,
            FailureClass.REJECTED,
            "already_running",
        ),
        (
            json_answer(200, {"success": False, "message": "Something went wrong"}),
            StartNotConfirmed,
            FailureClass.OUTCOME_UNKNOWN,
            "start_not_confirmed",
        ),
        (
            SandboxResponse.text(200, "<html>maintenance</html>"),
            UnreadableStartAnswer,
            FailureClass.OUTCOME_UNKNOWN,
            "unreadable_answer",
        ),
        (
            json_answer(200, {"success": True, "message": "ok"}),
            UnreadableStartAnswer,
            FailureClass.OUTCOME_UNKNOWN,
            "unreadable_answer",
        ),
        (
            json_answer(200, {"success": True, "batchJobId": "job-other"}),
            UnreadableStartAnswer,
            FailureClass.OUTCOME_UNKNOWN,
            "unreadable_answer",
        ),
        (
            json_answer(404, {"error": "job_not_found", "message": "Batch job not found"}),
            JobNotFound,
            FailureClass.REJECTED,
            "job_not_found",
        ),
        (
            json_answer(400, {"code": "invalid_status", "message": "Cannot start failed job"}),
            InvalidStatus,
            FailureClass.REJECTED,
            "invalid_status",
        ),
        (
            json_answer(400, {"detail": "Job already running"}),
            AlreadyRunning,
            FailureClass.REJECTED,
            "already_running",
        ),
        (
            json_answer(400, {"detail": {"code": "INVALID_STATUS", "message": "nope"}}),
            InvalidStatus,
            FailureClass.REJECTED,
            "invalid_status",
        ),
        (
            SandboxResponse.text(400, "Bad Request"),
            RequestRejected,
            FailureClass.REJECTED,
            "request_rejected",
        ),
        (
            json_answer(409, {"error": {"code": "job_locked", "message": "Job is locked"}}),
            RequestRejected,
            FailureClass.REJECTED,
            "request_rejected",
        ),
        (
            json_answer(422, {"detail": [{"loc": ["path", "batch_job_id"], "msg": "bad"}]}),
            RequestRejected,
            FailureClass.REJECTED,
            "request_rejected",
        ),
        (
            json_answer(404, {"detail": "Not Found"}),
            EndpointNotFound,
            FailureClass.REJECTED,
            "endpoint_not_found",
        ),
        (
            SandboxResponse(302, b"", {"Location": "https://api.talkifai.dev/batch"}),
            UnexpectedRedirect,
            FailureClass.REJECTED,
            "unexpected_redirect",
        ),
        (
            json_answer(401, {"detail": "Not authenticated"}),
            Unauthorized,
            FailureClass.REJECTED,
            "unauthorized",
        ),
        (
            json_answer(403, {"detail": "Not authenticated"}),
            Forbidden,
            FailureClass.REJECTED,
            "forbidden",
        ),
        (json_answer(429, {}), RateLimited, FailureClass.THROTTLED, "rate_limited"),
        (
            SandboxResponse.text(502, "Bad Gateway"),
            TalkifaiServerError,
            FailureClass.SERVER_ERROR,
            "server_error",
        ),
    ],
)
def test_every_start_answer_lands_in_exactly_one_failure_class(
    scripted: TalkifaiClient,
    answer: SandboxResponse,
    error_class: type[VendorError],
    failure_class: FailureClass,
    code: str,
) -> None:
    SCRIPTED.answers.append(answer)

    with pytest.raises(VendorError) as caught:
        scripted.start_batch_job("job-pending-001")

    error = caught.value
    assert type(error) is error_class
    assert error.failure_class is failure_class
    assert error.code == code
    assert error.status_code == answer.status
    assert advice_for(error) == error_class.advice  # type: ignore[attr-defined]
    assert_error_hides_secrets(error)


def test_a_vendor_code_we_do_not_know_is_kept_in_the_message(scripted: TalkifaiClient) -> None:
    SCRIPTED.answers.append(
        json_answer(409, {"error": {"code": "job_locked", "message": "Job is locked"}})
    )

    with pytest.raises(RequestRejected) as caught:
        scripted.start_batch_job("job-pending-001")

    assert "job_locked" in str(caught.value)
    assert caught.value.vendor_message == "Job is locked"


def test_a_429_without_retry_after_names_no_wait(scripted: TalkifaiClient) -> None:
    SCRIPTED.answers.append(json_answer(429, {"detail": "Too Many Requests"}))

    with pytest.raises(RateLimited) as caught:
        scripted.start_batch_job("job-pending-001")

    assert caught.value.retry_after is None


def test_a_vendor_message_echoing_the_key_is_redacted(scripted: TalkifaiClient) -> None:
    SCRIPTED.answers.append(json_answer(401, {"detail": f"Invalid API key {DEFAULT_API_KEY}"}))

    with pytest.raises(Unauthorized) as caught:
        scripted.start_batch_job("job-pending-001")

    assert caught.value.vendor_message == f"Invalid API key {REDACTED}"
    assert_error_hides_secrets(caught.value)


def test_a_success_without_start_time_or_counts_is_still_a_start(scripted: TalkifaiClient) -> None:
    SCRIPTED.answers.append(
        json_answer(200, {"success": True, "batchJobId": "job-pending-001", "startedAt": "soon"})
    )

    started = scripted.start_batch_job("job-pending-001")

    assert started.status == "running"
    assert started.contacts_enqueued is None
    assert started.redis_job_cancelled is None
    assert started.started_at_reported is False
    assert started.started_at.tzinfo is not None


def test_a_naive_start_time_is_read_as_utc(scripted: TalkifaiClient) -> None:
    SCRIPTED.answers.append(
        json_answer(
            200,
            {
                "success": True,
                "batchJobId": "job-pending-001",
                "status": "running",
                "contactsEnqueued": "12",
                "redisJobCancelled": False,
                "startedAt": "2025-02-28T13:30:00",
            },
        )
    )

    started = scripted.start_batch_job("job-pending-001")

    assert started.started_at == T0
    assert started.contacts_enqueued == 12


@pytest.mark.parametrize(
    "answer",
    [
        SandboxResponse.text(200, "not json"),
        json_answer(200, ["job-pending-001"]),
        json_answer(200, {"id": "job-pending-001"}),
    ],
)
def test_an_unreadable_detail_is_a_server_error(
    scripted: TalkifaiClient, answer: SandboxResponse
) -> None:
    SCRIPTED.answers.append(answer)

    with pytest.raises(UnreadableDetail) as caught:
        scripted.batch_job_detail("job-pending-001")

    assert caught.value.failure_class is FailureClass.SERVER_ERROR
    assert caught.value.code == "unreadable_detail"


def test_a_detail_in_an_envelope_with_few_fields_is_tolerated(scripted: TalkifaiClient) -> None:
    SCRIPTED.answers.append(json_answer(200, {"batchJob": {"status": "pending"}}))

    detail = scripted.batch_job_detail("job-pending-001")

    assert detail.batch_job_id == "job-pending-001"
    assert detail.status == "pending"
    assert detail.can_start_now
    assert detail.name == ""
    assert detail.scheduled_at is None and detail.contacts_total is None
    assert detail.status_breakdown == {}


def test_a_detail_error_envelope_is_classified_by_its_code(scripted: TalkifaiClient) -> None:
    SCRIPTED.answers.append(
        json_answer(200, {"success": False, "error": {"code": "job_not_found", "message": "x"}})
    )

    with pytest.raises(JobNotFound):
        scripted.batch_job_detail("job-pending-001")
