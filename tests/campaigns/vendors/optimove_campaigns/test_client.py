"""Contract tests: the Optimove Smart Campaigns client against its sandbox, over real HTTP."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaigns.vendors.optimove_campaigns import client as client_module
from campaigns.vendors.optimove_campaigns.client import (
    BadRequest,
    ConnectionFailed,
    EventGeneratorNotFound,
    ExecutionAccepted,
    ExecutionNotFound,
    ExecutionStatus,
    Forbidden,
    NoAnswer,
    NotApiTriggered,
    OptimoveCampaignsClient,
    OptimoveCampaignsError,
    OptimoveServerError,
    RateLimited,
    Unauthorized,
    UnexpectedAnswer,
    UnreadableAcceptance,
    UnreadableStatus,
)
from campaigns.vendors.optimove_campaigns.sandbox import (
    DEMO_API_KEY,
    DEMO_BRAND_KEY,
    GOAL_SCORED_GENERATOR_ID,
    MATCH_START_GENERATOR_ID,
    NEWSLETTER_GENERATOR_ID,
    OTHER_API_KEY,
    OTHER_BRAND_GENERATOR_ID,
    OTHER_BRAND_KEY,
    OptimoveCampaignsSandbox,
)
from dashboard.vendors.http import (
    REDACTED,
    ConfigurationError,
    Exchange,
    FailureClass,
    NotSent,
    OutcomeUnknown,
    Rejected,
    ServerError,
    Throttled,
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

PREFIX = "/smart-campaigns/v1"
START = datetime(2026, 2, 5, 19, 45, tzinfo=UTC)
WRONG_API_KEY = "not-the-optimove-api-key"
WRONG_BRAND_KEY = "not-the-optimove-brand-key"
SECRETS = (DEMO_API_KEY, DEMO_BRAND_KEY, OTHER_API_KEY, OTHER_BRAND_KEY, WRONG_API_KEY)
MATCH_CONTEXT = {
    "match_id": "nfl-2025-001",
    "match_name": "San Francisco 49ers vs Kansas City Chiefs",
    "league": "NFL",
    "start_time": "2025-10-12T18:00:00Z",
    "venue": "Levi's Stadium — Santa Clara",
    "minute": 12,
    "url": "https://example.com/nfl/49ers-chiefs",
}


class ScriptedVendor(Sandbox):
    """Answers whatever the test scripts: what the real sandbox never says (garbage, 3xx)."""

    name = "scripted-optimove"

    def __init__(self) -> None:
        super().__init__()
        self.answer = SandboxResponse.json(202, {})

    @route("POST", r"/event-generators/(?P<event_generator_id>[^/]+)/run", name="run")
    def run(self, request: SandboxRequest) -> SandboxResponse:
        """The scripted answer to a run."""
        return self.answer

    @route("GET", r"/executions/(?P<execution_id>[^/]+)/status", name="status")
    def status(self, request: SandboxRequest) -> SandboxResponse:
        """The scripted answer to a status read."""
        return self.answer


@pytest.fixture(scope="module")
def sandbox() -> OptimoveCampaignsSandbox:
    """The sandbox with the demo defaults, on a frozen clock."""
    return OptimoveCampaignsSandbox(SandboxClock(start=START, scale=0))


@pytest.fixture(scope="module")
def scripted() -> ScriptedVendor:
    """A fake vendor that says what the test scripts."""
    return ScriptedVendor()


@pytest.fixture(scope="module")
def server(sandbox: OptimoveCampaignsSandbox, scripted: ScriptedVendor) -> Any:
    """Both, over real HTTP: the sandbox under the production-like prefix and at the root."""
    # One server for the module: stopping one waits for its poll loop, which adds up.
    with SandboxServer({PREFIX: sandbox, "/scripted": scripted, "": sandbox}) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: OptimoveCampaignsSandbox, scripted: ScriptedVendor) -> None:
    """Every test starts from the defaults, nothing received, the clock frozen at START."""
    sandbox.reset()
    sandbox.clock.set_scale(0)
    sandbox.clock.set(START)
    scripted.reset()


@pytest.fixture(autouse=True)
def no_secret_is_logged(caplog: pytest.LogCaptureFixture) -> Any:
    """Every test also proves that no key reached any log record, at DEBUG."""
    caplog.set_level(logging.DEBUG)
    yield
    for secret in SECRETS:
        assert secret not in caplog.text


def make_client(base_url: str, **options: Any) -> OptimoveCampaignsClient:
    """A client with the demo brand's keys unless `options` say otherwise."""
    return OptimoveCampaignsClient(
        base_url,
        **{"api_key": DEMO_API_KEY, "brand_key": DEMO_BRAND_KEY, **options},
    )


@pytest.fixture
def client(server: SandboxServer) -> Any:
    """A client for the sandbox mounted under PREFIX."""
    client = make_client(server.url(PREFIX))
    yield client
    client.http.close()


@pytest.fixture
def scripted_client(server: SandboxServer) -> Any:
    """A client for the scripted vendor."""
    client = make_client(server.url("/scripted"))
    yield client
    client.http.close()


def assert_no_secrets(*things: Exchange | BaseException | None) -> None:
    """No key in any field of an Exchange, nor in an error's message, repr or vendor message."""
    for thing in things:
        if thing is None:
            continue
        if isinstance(thing, Exchange):
            text = json.dumps(thing.as_dict())
        else:
            text = " ".join([str(thing), repr(thing), getattr(thing, "vendor_message", "")])
            exchange = getattr(thing, "exchange", None)
            if exchange is not None:
                text += json.dumps(exchange.as_dict())
        for secret in SECRETS:
            assert secret not in text


def executions(sandbox: OptimoveCampaignsSandbox) -> list[dict[str, Any]]:
    """The executions the sandbox really created."""
    return sandbox.state()["executions"]


# -- run: success ------------------------------------------------------------------------------


def test_run_sends_the_documented_request_and_returns_the_queued_execution(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox, server: SandboxServer
) -> None:
    result = client.run_event_generator(
        MATCH_START_GENERATOR_ID, topic_key="event_reminders+NFL", context=MATCH_CONTEXT
    )

    assert isinstance(result, ExecutionAccepted)
    assert result.status == "queued"
    assert result.execution_id.startswith("exec-")
    expected_body = (
        '{"topic_key":"event_reminders+NFL","context":{"match_id":"nfl-2025-001",'
        '"match_name":"San Francisco 49ers vs Kansas City Chiefs","league":"NFL",'
        '"start_time":"2025-10-12T18:00:00Z","venue":"Levi\'s Stadium — Santa Clara",'
        '"minute":12,"url":"https://example.com/nfl/49ers-chiefs"}}'
    )
    [received] = sandbox.received_on("run")
    assert received.method == "POST"
    assert received.path == f"/event-generators/{MATCH_START_GENERATOR_ID}/run"
    assert received.headers["x-api-key"] == DEMO_API_KEY
    assert received.headers["x-brand-key"] == DEMO_BRAND_KEY
    assert received.headers["content-type"] == "application/json"
    assert received.headers["content-length"] == str(len(expected_body.encode("utf-8")))
    assert received.body == expected_body
    assert received.status == 202
    assert received.effect == {"execution_id": result.execution_id}

    state = sandbox.state()
    assert state["runs_accepted"] == {"demo-brand": 1}
    [execution] = state["executions"]
    assert execution["execution_id"] == result.execution_id
    assert execution["event_generator_id"] == MATCH_START_GENERATOR_ID
    assert execution["topic_key"] == "event_reminders+NFL"
    assert execution["context"] == MATCH_CONTEXT

    exchange = result.exchange
    assert exchange.method == "POST"
    assert exchange.url == f"{server.url(PREFIX)}/event-generators/{MATCH_START_GENERATOR_ID}/run"
    assert exchange.request_headers["x-api-key"] == REDACTED
    assert exchange.request_headers["x-brand-key"] == REDACTED
    assert exchange.request_body == expected_body
    assert exchange.status_code == 202
    assert json.loads(exchange.response_body or "") == {
        "execution_id": result.execution_id,
        "status": "queued",
    }
    assert_no_secrets(exchange)
    with pytest.raises(FrozenInstanceError):
        result.status = "published"  # type: ignore[misc]


def test_base_url_without_prefix_and_with_a_trailing_slash(
    server: SandboxServer, sandbox: OptimoveCampaignsSandbox
) -> None:
    client = make_client(server.url() + "/")

    result = client.run_event_generator(GOAL_SCORED_GENERATOR_ID, topic_key="t", context={})

    assert result.exchange.url == f"{server.url()}/event-generators/{GOAL_SCORED_GENERATOR_ID}/run"
    assert sandbox.received_on("run")[0].path == f"/event-generators/{GOAL_SCORED_GENERATOR_ID}/run"


def test_the_docs_non_uuid_example_id_is_accepted_and_runs(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox
) -> None:
    result = client.run_event_generator(
        "11111111-xyz-xyz-xyz-111111111111",
        topic_key="00000000-abcd",
        context={"team_name": "Arsenal", "minute": 67, "score": "2-1", "nested": {"a": [1, None]}},
    )

    assert [execution["execution_id"] for execution in executions(sandbox)] == [result.execution_id]


def test_the_same_event_twice_is_two_executions(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox
) -> None:
    first = client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={"a": 1})
    second = client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={"a": 1})

    assert first.execution_id != second.execution_id
    assert len(executions(sandbox)) == 2
    assert sandbox.state()["runs_accepted"] == {"demo-brand": 2}


def test_hundreds_of_runs_through_one_client_from_many_threads(
    server: SandboxServer, sandbox: OptimoveCampaignsSandbox
) -> None:
    client = make_client(server.url(PREFIX), pool_maxsize=250)
    assert client.http.pool_maxsize == 250
    results: list[ExecutionAccepted] = []

    def send_ten() -> None:
        for index in range(10):
            results.append(
                client.run_event_generator(
                    MATCH_START_GENERATOR_ID, topic_key="t", context={"n": index}
                )
            )

    threads = [threading.Thread(target=send_ten) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({result.execution_id for result in results}) == 100
    assert sandbox.state()["runs_accepted"] == {"demo-brand": 100}


# -- run: refused before sending ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_generator_id", "topic_key", "context", "complaint"),
    [
        ("", "t", {}, "not an Event Generator ID"),
        ("Match Start Notifications", "t", {}, "not an Event Generator ID"),
        ("00000000-abcd", "t", {}, "not an Event Generator ID"),
        ("../../executions/x/status", "t", {}, "not an Event Generator ID"),
        ("00000000-abcd-abcd-abcd-0000/0000", "t", {}, "not an Event Generator ID"),
        ("00000000-abcd-abcd-abcd-000000000000?x=1", "t", {}, "not an Event Generator ID"),
        ("00000000-abcd-abcd-abcd-000000000000 ", "t", {}, "not an Event Generator ID"),
        ("{00000000-abcd-abcd-abcd-000000000000}", "t", {}, "not an Event Generator ID"),
        ("00000000-abcd-abcd-abcd-" + "0" * 100, "t", {}, "not an Event Generator ID"),
        (1234, "t", {}, "must be a string"),
        (MATCH_START_GENERATOR_ID, "", {}, "topic_key must be a non-empty string"),
        (MATCH_START_GENERATOR_ID, "   ", {}, "topic_key must be a non-empty string"),
        (MATCH_START_GENERATOR_ID, None, {}, "topic_key must be a non-empty string"),
        (MATCH_START_GENERATOR_ID, " nfl", {}, "must not start or end with whitespace"),
        (MATCH_START_GENERATOR_ID, "t", None, "context must be a JSON object"),
        (MATCH_START_GENERATOR_ID, "t", [], "context must be a JSON object"),
        (MATCH_START_GENERATOR_ID, "t", "{}", "context must be a JSON object"),
        (MATCH_START_GENERATOR_ID, "t", {"at": START}, "context.at is a datetime"),
        (MATCH_START_GENERATOR_ID, "t", {"x": {"y": float("nan")}}, "context.x.y is nan"),
        (MATCH_START_GENERATOR_ID, "t", {1: "one"}, "non-string key"),
        (MATCH_START_GENERATOR_ID, "t", {"ids": {1, 2}}, "context.ids is a set"),
    ],
)
def test_bad_run_parameters_are_refused_before_sending(
    client: OptimoveCampaignsClient,
    sandbox: OptimoveCampaignsSandbox,
    event_generator_id: Any,
    topic_key: Any,
    context: Any,
    complaint: str,
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(complaint)):
        client.run_event_generator(event_generator_id, topic_key=topic_key, context=context)

    assert sandbox.received == []


@pytest.mark.parametrize("execution_id", ["", ".", "..", "a/b", "a\\b", "exec 1", "exec\n1", 7])
def test_bad_execution_ids_are_refused_before_sending(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox, execution_id: Any
) -> None:
    with pytest.raises(ConfigurationError, match="execution_id"):
        client.execution_status(execution_id)

    assert sandbox.received == []


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"api_key": ""}, "api_key must be a non-empty string"),
        ({"api_key": None}, "api_key must be a non-empty string"),
        ({"api_key": DEMO_API_KEY + "\n"}, "api_key must be printable ASCII"),
        ({"api_key": " " + DEMO_API_KEY}, "api_key must be printable ASCII"),
        ({"brand_key": DEMO_BRAND_KEY + "é"}, "brand_key must be printable ASCII"),
        ({"brand_key": ""}, "brand_key must be a non-empty string"),
        ({"base_url": "opti-x.optimove.net/smart-campaigns/v1"}, "absolute http"),
        ({"base_url": "https://opti-x.optimove.net/v1?brand=1"}, "query string"),
        ({"pool_maxsize": 0}, "pool_maxsize"),
    ],
)
def test_unusable_configuration_is_refused_without_echoing_secrets(
    server: SandboxServer, options: dict[str, Any], complaint: str
) -> None:
    base_url = options.pop("base_url", server.url(PREFIX))

    with pytest.raises(ConfigurationError, match=complaint) as raised:
        make_client(base_url, **options)

    assert_no_secrets(raised.value)


# -- run: the vendor refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "brand_key", "event_generator_id", "error_class", "code", "status", "message"),
    [
        (
            WRONG_API_KEY,
            DEMO_BRAND_KEY,
            MATCH_START_GENERATOR_ID,
            Unauthorized,
            "unauthorized",
            401,
            "Invalid or missing API key",
        ),
        (
            DEMO_API_KEY,
            OTHER_BRAND_KEY,
            MATCH_START_GENERATOR_ID,
            Forbidden,
            "forbidden",
            403,
            "API key does not have permission for this brand",
        ),
        (
            DEMO_API_KEY,
            DEMO_BRAND_KEY,
            "99999999-abcd-abcd-abcd-999999999999",
            EventGeneratorNotFound,
            "event_generator_not_found",
            404,
            "event_generator_id not found or doesn't belong to your brand",
        ),
        (
            DEMO_API_KEY,
            DEMO_BRAND_KEY,
            OTHER_BRAND_GENERATOR_ID,
            EventGeneratorNotFound,
            "event_generator_not_found",
            404,
            "event_generator_id not found or doesn't belong to your brand",
        ),
        (
            DEMO_API_KEY,
            DEMO_BRAND_KEY,
            NEWSLETTER_GENERATOR_ID,
            NotApiTriggered,
            "not_api_triggered",
            422,
            'Event Generator exists but is not type "API Triggered (Preference Center)"',
        ),
    ],
)
def test_run_rejections_carry_the_vendors_reason(
    server: SandboxServer,
    sandbox: OptimoveCampaignsSandbox,
    api_key: str,
    brand_key: str,
    event_generator_id: str,
    error_class: type[OptimoveCampaignsError],
    code: str,
    status: int,
    message: str,
) -> None:
    client = make_client(server.url(PREFIX), api_key=api_key, brand_key=brand_key)

    with pytest.raises(error_class) as raised:
        client.run_event_generator(event_generator_id, topic_key="t", context={})

    error = raised.value
    assert isinstance(error, Rejected)
    assert error.failure_class is FailureClass.REJECTED
    assert error.code == code
    assert error.status_code == status
    assert error.vendor_message == message
    assert message in str(error)
    assert error.advice
    assert error.retry_after is None
    assert error.exchange is not None
    assert error.exchange.status_code == status
    assert executions(sandbox) == []
    [received] = sandbox.received_on("run")
    assert received.effect is not None
    assert received.effect["rejected"]["status"] == status
    assert_no_secrets(error)


@pytest.mark.parametrize(
    ("topic_key", "context", "detail"),
    [
        ("", {}, "topic_key must be a non-empty string"),
        ("t", ["not", "an", "object"], "context must be a JSON object"),
    ],
)
def test_a_400_is_bad_request_with_the_vendors_detail(
    client: OptimoveCampaignsClient,
    sandbox: OptimoveCampaignsSandbox,
    monkeypatch: pytest.MonkeyPatch,
    topic_key: str,
    context: Any,
    detail: str,
) -> None:
    # The client refuses these itself; switching its checks off shows what Optimove answers.
    monkeypatch.setattr(client_module, "check_topic_key", lambda value: None)
    monkeypatch.setattr(client_module, "check_context", lambda value: None)

    with pytest.raises(BadRequest) as raised:
        client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key=topic_key, context=context)

    error = raised.value
    assert error.failure_class is FailureClass.REJECTED
    assert error.code == "bad_request"
    assert error.status_code == 400
    assert error.vendor_message == (
        f"Invalid request body (missing required fields, invalid JSON): {detail}"
    )
    assert executions(sandbox) == []


def test_over_the_rate_limit_is_throttled_with_the_retry_after_to_honour(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox
) -> None:
    sandbox.control("set_rate_limit", {"per_second": 2})
    accepted = client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})
    client.execution_status(accepted.execution_id)

    with pytest.raises(RateLimited) as raised:
        client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})
    with pytest.raises(RateLimited):
        client.execution_status(accepted.execution_id)

    error = raised.value
    assert isinstance(error, Throttled)
    assert error.failure_class is FailureClass.THROTTLED
    assert error.code == "rate_limited"
    assert error.status_code == 429
    assert error.retry_after == 1.0
    assert error.vendor_message == "Rate limit exceeded (2 req/s per brand)"
    assert error.exchange is not None
    assert error.exchange.response_headers["Retry-After"] == "1"
    state = sandbox.state()
    assert state["runs_accepted"] == {"demo-brand": 1}
    assert state["throttled"] == {"demo-brand": 2}

    sandbox.clock.advance(1)
    client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})
    assert sandbox.state()["runs_accepted"] == {"demo-brand": 2}


def test_a_429_without_retry_after_falls_back_to_one_second(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox
) -> None:
    sandbox.inject_fault("run", Fault.SERVER_ERROR, status=429)

    with pytest.raises(RateLimited) as raised:
        client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})

    assert raised.value.retry_after == 1.0
    assert raised.value.vendor_message == "Too Many Requests"


# -- server errors and transport failures ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text"),
    [(500, "Internal Server Error"), (502, "Bad Gateway"), (503, "Service Unavailable")],
)
def test_5xx_is_a_server_error_and_nothing_was_triggered(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox, status: int, text: str
) -> None:
    sandbox.inject_fault("run", Fault.SERVER_ERROR, status=status)

    with pytest.raises(OptimoveServerError) as raised:
        client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})

    error = raised.value
    assert isinstance(error, ServerError)
    assert error.failure_class is FailureClass.SERVER_ERROR
    assert error.code == "server_error"
    assert error.status_code == status
    assert error.vendor_message == text
    assert "5 minutes" in error.advice
    assert executions(sandbox) == []
    assert_no_secrets(error)


def test_the_documented_500_body_is_read_on_both_endpoints(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox
) -> None:
    sandbox.control("inject_server_error", {"count": 2})

    with pytest.raises(OptimoveServerError) as run_error:
        client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})
    with pytest.raises(OptimoveServerError) as status_error:
        client.execution_status("exec-1")

    assert run_error.value.vendor_message == "Server-side issue"
    assert status_error.value.vendor_message == "Server-side issue"
    assert executions(sandbox) == []


def test_a_closed_port_is_not_sent(sandbox: OptimoveCampaignsSandbox) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{closed_port}{PREFIX}")

    with pytest.raises(ConnectionFailed) as raised:
        client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})

    error = raised.value
    assert isinstance(error, NotSent)
    assert error.failure_class is FailureClass.NOT_SENT
    assert error.code == "connection_failed"
    assert error.advice
    assert error.exchange is not None
    assert error.exchange.status_code is None
    assert error.exchange.request_headers["x-api-key"] == REDACTED
    assert_no_secrets(error)


@pytest.mark.parametrize(
    ("fault", "executions_created"),
    [
        (Fault.DELAY_AFTER_PROCESSING, 1),
        (Fault.DROP_AFTER_PROCESSING, 1),
        (Fault.DROP_BEFORE_PROCESSING, 0),
    ],
)
def test_no_answer_after_sending_is_outcome_unknown(
    server: SandboxServer,
    sandbox: OptimoveCampaignsSandbox,
    fault: Fault,
    executions_created: int,
) -> None:
    client = make_client(server.url(PREFIX), read_timeout=0.3)
    sandbox.inject_fault("run", fault, seconds=1.0)

    with pytest.raises(NoAnswer) as raised:
        client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})

    error = raised.value
    assert isinstance(error, OutcomeUnknown)
    assert error.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert error.code == "no_answer"
    assert "Mission Control" in error.advice
    assert error.exchange is not None
    assert error.exchange.status_code is None
    assert error.exchange.error
    # What the user is warned about: the vendor may really have acted.
    assert len(executions(sandbox)) == executions_created
    assert_no_secrets(error)


def test_a_dropped_status_read_is_outcome_unknown(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox
) -> None:
    accepted = client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})
    sandbox.inject_fault("status", Fault.DROP_AFTER_PROCESSING)

    with pytest.raises(NoAnswer):
        client.execution_status(accepted.execution_id)

    assert client.execution_status(accepted.execution_id).status == "queued"


# -- answers the client cannot read ------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        SandboxResponse.text(202, "Accepted"),
        SandboxResponse.json(202, {"status": "queued"}),
        SandboxResponse.json(202, {"execution_id": "", "status": "queued"}),
        SandboxResponse.json(202, {"execution_id": 42, "status": "queued"}),
        SandboxResponse.json(202, {"execution_id": "exec/1", "status": "queued"}),
        SandboxResponse.json(202, ["exec-1"]),
        SandboxResponse(204),
    ],
)
def test_a_2xx_without_a_usable_execution_id_is_outcome_unknown(
    scripted_client: OptimoveCampaignsClient, scripted: ScriptedVendor, answer: SandboxResponse
) -> None:
    scripted.answer = answer

    with pytest.raises(UnreadableAcceptance) as raised:
        scripted_client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})

    error = raised.value
    assert error.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert error.code == "unreadable_acceptance"
    assert error.status_code == answer.status
    assert "Mission Control" in error.advice


def test_a_2xx_with_an_execution_id_but_no_status_is_accepted_as_queued(
    scripted_client: OptimoveCampaignsClient, scripted: ScriptedVendor
) -> None:
    scripted.answer = SandboxResponse.json(200, {"execution_id": "exec-abc-123-xyz"})

    result = scripted_client.run_event_generator(
        MATCH_START_GENERATOR_ID, topic_key="t", context={}
    )

    assert (result.execution_id, result.status) == ("exec-abc-123-xyz", "queued")


STATUS_DOCUMENT = {
    "execution_id": "exec-abc-123-xyz",
    "status": "published",
    "created_at": "2026-01-16T12:00:00Z",
    "updated_at": "2026-01-16T12:00:05Z",
    "event_generator_id": "00000000-abcd-abcd-abcd-000000000000",
    "topic_key": "event_reminders+NFL",
    "audience_size": 1250,
}


@pytest.mark.parametrize(
    "answer",
    [
        SandboxResponse.text(200, "<html>maintenance</html>"),
        SandboxResponse.json(200, {**STATUS_DOCUMENT, "created_at": None}),
        SandboxResponse.json(200, {**STATUS_DOCUMENT, "updated_at": "yesterday"}),
        SandboxResponse.json(200, {**STATUS_DOCUMENT, "status": ""}),
        SandboxResponse.json(200, {**STATUS_DOCUMENT, "audience_size": "1250"}),
        SandboxResponse.json(200, {**STATUS_DOCUMENT, "audience_size": True}),
        SandboxResponse.json(200, {**STATUS_DOCUMENT, "error_code": 17}),
        SandboxResponse.json(200, {**STATUS_DOCUMENT, "execution_id": "exec-someone-else"}),
        SandboxResponse.json(
            200, {name: value for name, value in STATUS_DOCUMENT.items() if name != "topic_key"}
        ),
    ],
)
def test_an_unreadable_status_answer_is_a_server_error(
    scripted_client: OptimoveCampaignsClient, scripted: ScriptedVendor, answer: SandboxResponse
) -> None:
    scripted.answer = answer

    with pytest.raises(UnreadableStatus) as raised:
        scripted_client.execution_status("exec-abc-123-xyz")

    error = raised.value
    assert error.failure_class is FailureClass.SERVER_ERROR
    assert error.code == "unreadable_status"
    assert error.status_code == 200


def test_the_docs_status_example_is_read_and_offsets_become_utc(
    scripted_client: OptimoveCampaignsClient, scripted: ScriptedVendor
) -> None:
    scripted.answer = SandboxResponse.json(
        200, {**STATUS_DOCUMENT, "updated_at": "2026-01-16T14:00:05+02:00"}
    )

    status = scripted_client.execution_status("exec-abc-123-xyz")

    assert status.created_at == datetime(2026, 1, 16, 12, 0, 0, tzinfo=UTC)
    assert status.updated_at == datetime(2026, 1, 16, 12, 0, 5, tzinfo=UTC)
    assert status.updated_at.utcoffset() == timedelta(0)
    assert status.audience_size == 1250
    assert status.is_terminal


@pytest.mark.parametrize(
    ("call", "status"),
    [("run", 302), ("run", 413), ("run", 405), ("status", 422), ("status", 409)],
)
def test_undocumented_refusals_are_rejected_as_unexpected(
    scripted_client: OptimoveCampaignsClient, scripted: ScriptedVendor, call: str, status: int
) -> None:
    scripted.answer = SandboxResponse.json(
        status, {"message": "nope"}, headers={"Location": "https://example.com/"}
    )

    with pytest.raises(UnexpectedAnswer) as raised:
        if call == "run":
            scripted_client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})
        else:
            scripted_client.execution_status("exec-1")

    assert raised.value.failure_class is FailureClass.REJECTED
    assert raised.value.code == "unexpected_status"
    assert raised.value.status_code == status
    assert raised.value.vendor_message == "nope"


# -- execution status --------------------------------------------------------------------------


def test_execution_status_follows_queued_processing_published(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox, server: SandboxServer
) -> None:
    accepted = client.run_event_generator(
        MATCH_START_GENERATOR_ID, topic_key="event_reminders+NFL", context=MATCH_CONTEXT
    )

    queued = client.execution_status(accepted.execution_id)
    sandbox.clock.advance(1)
    processing = client.execution_status(accepted.execution_id)
    sandbox.clock.advance(2)
    published = client.execution_status(accepted.execution_id)

    assert isinstance(queued, ExecutionStatus)
    assert (queued.status, queued.is_terminal, queued.audience_size) == ("queued", False, None)
    assert queued.created_at == queued.updated_at == START
    assert queued.created_at.tzinfo is not None
    assert (processing.status, processing.is_terminal) == ("processing", False)
    assert processing.updated_at == START + timedelta(seconds=1)
    assert published.status == "published"
    assert published.is_terminal and published.is_known_status
    assert published.audience_size == 127_450
    assert published.updated_at == START + timedelta(seconds=3)
    assert published.created_at == START
    assert published.event_generator_id == MATCH_START_GENERATOR_ID
    assert published.topic_key == "event_reminders+NFL"
    assert (published.error_code, published.error_message) == (None, None)

    received = sandbox.received_on("status")
    assert len(received) == 3
    assert received[0].method == "GET"
    assert received[0].path == f"/executions/{accepted.execution_id}/status"
    assert received[0].headers["x-api-key"] == DEMO_API_KEY
    assert received[0].headers["x-brand-key"] == DEMO_BRAND_KEY
    assert received[0].body == ""
    assert published.exchange.url == (
        f"{server.url(PREFIX)}/executions/{accepted.execution_id}/status"
    )
    assert published.exchange.request_headers["x-api-key"] == REDACTED
    assert_no_secrets(published.exchange)
    # Reading has no effect: still one execution.
    assert sandbox.state()["runs_accepted"] == {"demo-brand": 1}


def test_a_failed_execution_carries_the_vendors_error(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox
) -> None:
    accepted = client.run_event_generator(
        GOAL_SCORED_GENERATOR_ID, topic_key="goal-alerts-FAIL", context={}
    )
    sandbox.clock.advance(3)

    status = client.execution_status(accepted.execution_id)

    assert status.status == "failed"
    assert status.is_terminal
    assert status.audience_size is None
    assert status.error_code == "audience_resolution_failed"
    assert status.error_message == (
        "Audience resolution failed: Preference Centre topic 'goal-alerts-FAIL' could not be "
        "resolved."
    )


def test_an_unknown_status_is_kept_raw_and_is_not_terminal(
    client: OptimoveCampaignsClient, sandbox: OptimoveCampaignsSandbox
) -> None:
    accepted = client.run_event_generator(MATCH_START_GENERATOR_ID, topic_key="t", context={})
    sandbox.control(
        "set_execution_status", {"execution_id": accepted.execution_id, "status": "cancelled"}
    )

    status = client.execution_status(accepted.execution_id)

    assert status.status == "cancelled"
    assert not status.is_terminal
    assert not status.is_known_status


@pytest.mark.parametrize(
    ("api_key", "brand_key", "which", "error_class", "code", "status", "message"),
    [
        (
            WRONG_API_KEY,
            DEMO_BRAND_KEY,
            "mine",
            Unauthorized,
            "unauthorized",
            401,
            "Invalid or missing API key",
        ),
        (
            DEMO_API_KEY,
            WRONG_BRAND_KEY,
            "mine",
            Forbidden,
            "forbidden",
            403,
            "API key does not have permission for this execution's brand",
        ),
        (
            DEMO_API_KEY,
            DEMO_BRAND_KEY,
            "other brand's",
            Forbidden,
            "forbidden",
            403,
            "API key does not have permission for this execution's brand",
        ),
        (
            DEMO_API_KEY,
            DEMO_BRAND_KEY,
            "unknown",
            ExecutionNotFound,
            "execution_not_found",
            404,
            "Execution ID not found",
        ),
    ],
)
def test_status_rejections_carry_the_vendors_reason(
    server: SandboxServer,
    api_key: str,
    brand_key: str,
    which: str,
    error_class: type[OptimoveCampaignsError],
    code: str,
    status: int,
    message: str,
) -> None:
    mine = make_client(server.url(PREFIX)).run_event_generator(
        MATCH_START_GENERATOR_ID, topic_key="t", context={}
    )
    theirs = make_client(
        server.url(PREFIX), api_key=OTHER_API_KEY, brand_key=OTHER_BRAND_KEY
    ).run_event_generator(OTHER_BRAND_GENERATOR_ID, topic_key="t", context={})
    execution_id = {
        "mine": mine.execution_id,
        "other brand's": theirs.execution_id,
        "unknown": "exec-abc-123-xyz",
    }[which]
    client = make_client(server.url(PREFIX), api_key=api_key, brand_key=brand_key)

    with pytest.raises(error_class) as raised:
        client.execution_status(execution_id)

    error = raised.value
    assert error.failure_class is FailureClass.REJECTED
    assert (error.code, error.status_code, error.vendor_message) == (code, status, message)
    assert error.advice
    assert_no_secrets(error)


def test_every_error_class_has_one_failure_class_a_stable_code_and_advice() -> None:
    error_classes = [
        ConnectionFailed,
        NoAnswer,
        UnreadableAcceptance,
        BadRequest,
        Unauthorized,
        Forbidden,
        EventGeneratorNotFound,
        ExecutionNotFound,
        NotApiTriggered,
        UnexpectedAnswer,
        RateLimited,
        OptimoveServerError,
        UnreadableStatus,
    ]
    five = (NotSent, Rejected, Throttled, ServerError, OutcomeUnknown)

    assert len({error_class.error_code for error_class in error_classes}) == len(error_classes)
    for error_class in error_classes:
        assert sum(issubclass(error_class, base) for base in five) == 1
        assert error_class.advice
        error = error_class("message")
        assert isinstance(error, VendorError)
        assert error.code == error_class.error_code
