"""Contract tests: the Optimove TriggerDaily client against its sandbox, over real HTTP."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from batchjobs.vendors.optimove_daily.client import (
    AlreadyRunning,
    AlreadyTriggeredToday,
    BadRequest,
    ConfiguredIncorrectly,
    GatewayTimeout,
    NoAnswer,
    NotInCorrectState,
    OptimoveDailyClient,
    OptimoveServerError,
    RateLimited,
    TaskNotFound,
    TokenExpired,
    TriggerDailyResult,
    TriggerNotSent,
    Unauthorized,
    UnexpectedAnswer,
    UnexpectedStatus,
    ValidationFailed,
    effective_validation_wait_seconds,
    rejection_for_message,
)
from batchjobs.vendors.optimove_daily.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_EXPIRED_API_KEY,
    DEFAULT_TENANT,
    DEFAULT_THIRD_PARTY_API_KEY,
    MESSAGE_ALREADY_RUNNING,
    MESSAGE_ALREADY_TRIGGERED_TODAY,
    MESSAGE_CONFIGURED_INCORRECTLY,
    MESSAGE_NOT_IN_CORRECT_STATE,
    MESSAGE_TASK_NOT_FOUND,
    MESSAGE_VALIDATION_FAILED,
    OptimoveDailySandbox,
)
from dashboard.vendors.http import (
    REDACTED,
    ConfigurationError,
    Exchange,
    FailureClass,
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

START = datetime(2025, 3, 10, 8, 0, 0, tzinfo=UTC)
PREFIX = "/optimove/eu-west"
# The sandbox runs the doc's validation wait 1000 times faster; the client is told the same.
WAIT_SCALE = 0.001
ROUTE_PATH = "/BatchProcessAPI/TriggerDaily"
NULL_BODY = b'{"WaitTimeForValidationSeconds":null}'


class ScriptedSandbox(Sandbox):
    """Answers TriggerDaily with whatever the test scripts, for answers the real sandbox never gives."""

    name = "scripted-optimove-daily"

    def __init__(self) -> None:
        super().__init__(SandboxClock(START, scale=0))
        self.answer = SandboxResponse(200, b"")

    @route("POST", r"(?:/current)?/BatchProcessAPI/TriggerDaily", "trigger_daily")
    def trigger_daily(self, request: SandboxRequest) -> SandboxResponse:
        """Whatever `self.answer` is."""
        return self.answer


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[OptimoveDailySandbox, ScriptedSandbox, SandboxServer]]:
    sandbox = OptimoveDailySandbox(
        SandboxClock(START, scale=0),
        real_seconds_per_wait_second=WAIT_SCALE,
        start_latency_seconds=0.0,
    )
    scripted = ScriptedSandbox()
    with SandboxServer({PREFIX: sandbox, "/scripted": scripted, "": sandbox}) as server:
        yield sandbox, scripted, server


@pytest.fixture
def sandbox(
    servers: tuple[OptimoveDailySandbox, ScriptedSandbox, SandboxServer],
) -> OptimoveDailySandbox:
    optimove, _, _ = servers
    optimove.reset()
    optimove.clock.set(START)
    return optimove


@pytest.fixture
def scripted(
    servers: tuple[OptimoveDailySandbox, ScriptedSandbox, SandboxServer],
) -> ScriptedSandbox:
    _, scripted_sandbox, _ = servers
    scripted_sandbox.reset()
    return scripted_sandbox


@pytest.fixture
def server(servers: tuple[OptimoveDailySandbox, ScriptedSandbox, SandboxServer]) -> SandboxServer:
    return servers[2]


@pytest.fixture
def make_client(server: SandboxServer) -> Callable[..., OptimoveDailyClient]:
    def make(
        prefix: str = PREFIX, *, api_key: str = DEFAULT_API_KEY, **options: object
    ) -> OptimoveDailyClient:
        options.setdefault("real_seconds_per_wait_second", WAIT_SCALE)
        options.setdefault("read_timeout_margin_seconds", 5.0)
        return OptimoveDailyClient(server.url(prefix), api_key=api_key, **options)

    return make


def tenant_state(sandbox: OptimoveDailySandbox, tenant: str = DEFAULT_TENANT) -> dict:
    return sandbox.state()["tenants"][tenant]


def assert_secret_absent(secret: str, *things: object) -> None:
    for thing in things:
        if isinstance(thing, Exchange):
            text = json.dumps(thing.as_dict())
        elif isinstance(thing, VendorError):
            text = f"{thing} {thing!r} {thing.vendor_message} " + json.dumps(
                thing.exchange.as_dict() if thing.exchange else {}
            )
        else:
            text = str(thing)
        assert secret not in text


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "effective"),
    [(None, 5), (0, 5), (3, 5), (5, 5), (6, 6), (10, 10), (20, 20), (30, 30)],
)
def test_effective_validation_wait_follows_the_doc_table(value: int | None, effective: int):
    assert effective_validation_wait_seconds(value) == effective


def test_read_timeout_is_longer_than_the_effective_wait():
    client = OptimoveDailyClient("https://api.optimove.example", api_key="k-123")
    assert client.read_timeout_seconds(None) == 15.0
    assert client.read_timeout_seconds(30) == 40.0
    tight = OptimoveDailyClient(
        "https://api.optimove.example", api_key="k-123", read_timeout_margin_seconds=0.5
    )
    assert tight.read_timeout_seconds(20) == 20.5


# -- success ----------------------------------------------------------------------------------


def test_trigger_daily_succeeds_under_a_path_prefix(sandbox, make_client):
    client = make_client(PREFIX)

    result = client.trigger_daily()

    assert isinstance(result, TriggerDailyResult)
    assert result.requested_wait_seconds is None
    assert result.effective_wait_seconds == 5
    assert result.exchange.status_code == 200
    assert result.exchange.url.endswith(f"{PREFIX}{ROUTE_PATH}")
    assert result.exchange.request_headers["X-API-KEY"] == REDACTED
    assert result.exchange.request_body == NULL_BODY.decode()
    assert result.exchange.response_body == ""
    [received] = sandbox.received_on("trigger_daily")
    assert received.method == "POST"
    assert received.path == ROUTE_PATH
    assert received.headers["x-api-key"] == DEFAULT_API_KEY
    assert received.headers["content-type"] == "application/json"
    assert received.body == NULL_BODY.decode()
    assert received.status == 200
    assert received.effect == {
        "triggered": True,
        "tenant": DEFAULT_TENANT,
        "utc_date": "2025-03-10",
        "at": START.isoformat(),
        "effective_wait_seconds": 5,
        "route": "default",
    }
    state = tenant_state(sandbox)
    assert state["successful_triggers"] == 1
    assert state["status"] == "running"


@pytest.mark.parametrize(
    ("wait", "body", "effective"),
    [
        (0, b'{"WaitTimeForValidationSeconds":0}', 5),
        (5, b'{"WaitTimeForValidationSeconds":5}', 5),
        (10, b'{"WaitTimeForValidationSeconds":10}', 10),
        (20, b'{"WaitTimeForValidationSeconds":20}', 20),
        (30, b'{"WaitTimeForValidationSeconds":30}', 30),
    ],
)
def test_the_wait_is_sent_as_minified_json(sandbox, make_client, wait, body, effective):
    result = make_client().trigger_daily(wait_time_for_validation_seconds=wait)

    assert result.requested_wait_seconds == wait
    assert result.effective_wait_seconds == effective
    [received] = sandbox.received_on("trigger_daily")
    assert received.body.encode() == body
    assert received.effect["effective_wait_seconds"] == effective


def test_current_route_alias_on_a_base_url_without_prefix(sandbox, server, make_client):
    result = make_client("", use_current_route=True).trigger_daily()

    assert result.exchange.url == server.url() + "/current/BatchProcessAPI/TriggerDaily"
    [received] = sandbox.received_on("trigger_daily")
    assert received.path == "/current/BatchProcessAPI/TriggerDaily"
    assert received.effect["route"] == "current"
    assert tenant_state(sandbox)["successful_triggers"] == 1


# -- the documented 400 messages --------------------------------------------------------------


def _condition(name: str) -> Callable[[OptimoveDailySandbox, OptimoveDailyClient], None]:
    def prepare(sandbox: OptimoveDailySandbox, client: OptimoveDailyClient) -> None:
        sandbox.control("set_task_condition", {"tenant": DEFAULT_TENANT, "condition": name})

    return prepare


def _running(sandbox: OptimoveDailySandbox, client: OptimoveDailyClient) -> None:
    client.trigger_daily()
    sandbox.clock.advance(600)


def _triggered_today(sandbox: OptimoveDailySandbox, client: OptimoveDailyClient) -> None:
    client.trigger_daily()
    sandbox.control("finish_task", {"tenant": DEFAULT_TENANT})
    sandbox.clock.advance(600)


@pytest.mark.parametrize(
    ("prepare", "error_class", "code", "message"),
    [
        (_condition("not_found"), TaskNotFound, "task_not_found", MESSAGE_TASK_NOT_FOUND),
        (_running, AlreadyRunning, "already_running", MESSAGE_ALREADY_RUNNING),
        (
            _condition("not_triggerable"),
            NotInCorrectState,
            "not_in_correct_state",
            MESSAGE_NOT_IN_CORRECT_STATE,
        ),
        (
            _triggered_today,
            AlreadyTriggeredToday,
            "already_triggered_today",
            MESSAGE_ALREADY_TRIGGERED_TODAY,
        ),
        (
            _condition("misconfigured"),
            ConfiguredIncorrectly,
            "configured_incorrectly",
            MESSAGE_CONFIGURED_INCORRECTLY,
        ),
        (
            _condition("fails_validation"),
            ValidationFailed,
            "validation_failed",
            MESSAGE_VALIDATION_FAILED,
        ),
    ],
)
def test_each_documented_400_message_has_its_own_error(
    sandbox, make_client, prepare, error_class, code, message
):
    client = make_client()
    prepare(sandbox, client)
    triggers_before = tenant_state(sandbox)["successful_triggers"]

    with pytest.raises(error_class) as caught:
        client.trigger_daily()

    error = caught.value
    assert error.failure_class is FailureClass.REJECTED
    assert error.code == code == error_class.code
    assert error.status_code == 400
    assert error.vendor_message == message
    assert "\u2014" in error.vendor_message
    assert error.advice
    assert error.exchange.response_headers["Content-Type"] == "text/plain; charset=utf-8"
    assert tenant_state(sandbox)["successful_triggers"] == triggers_before
    assert sandbox.received_on("trigger_daily")[-1].effect["reason"] == code


def test_a_long_validation_is_not_taken_for_a_lost_answer(sandbox, make_client):
    # 30 s of validation wait run as 0.6 s; the client's read timeout follows (0.6 s + 0.4 s).
    sandbox.control(
        "set_task_condition", {"tenant": DEFAULT_TENANT, "condition": "fails_validation"}
    )
    sandbox.control("set_timing", {"real_seconds_per_wait_second": 0.02})
    client = make_client(real_seconds_per_wait_second=0.02, read_timeout_margin_seconds=0.4)

    started = time.monotonic()
    with pytest.raises(ValidationFailed):
        client.trigger_daily(wait_time_for_validation_seconds=30)

    assert time.monotonic() - started >= 0.6


# -- 401, 403, 429, 5xx -----------------------------------------------------------------------


@pytest.mark.parametrize("api_key", ["not-a-known-key", DEFAULT_THIRD_PARTY_API_KEY])
def test_unknown_keys_and_the_3rdparty_role_are_unauthorized(sandbox, make_client, api_key):
    with pytest.raises(Unauthorized) as caught:
        make_client(api_key=api_key).trigger_daily()

    assert caught.value.code == "unauthorized"
    assert caught.value.status_code == 401
    assert caught.value.failure_class is FailureClass.REJECTED
    assert tenant_state(sandbox)["counted_requests"] == 0
    assert tenant_state(sandbox)["successful_triggers"] == 0
    assert_secret_absent(api_key, caught.value)


def test_an_expired_key_is_token_expired(sandbox, make_client):
    with pytest.raises(TokenExpired) as caught:
        make_client(api_key=DEFAULT_EXPIRED_API_KEY).trigger_daily()

    assert caught.value.code == "token_expired"
    assert caught.value.status_code == 403
    assert caught.value.failure_class is FailureClass.REJECTED
    assert tenant_state(sandbox)["successful_triggers"] == 0


def test_a_second_request_in_the_window_is_throttled_for_the_whole_window(sandbox, make_client):
    client = make_client()
    client.trigger_daily()

    with pytest.raises(RateLimited) as caught:
        client.trigger_daily()
    assert caught.value.failure_class is FailureClass.THROTTLED
    assert caught.value.code == "rate_limited"
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 600.0

    # The vendor sends no Retry-After (the doc promises none): the client waits the whole window.
    sandbox.clock.advance(100)
    with pytest.raises(RateLimited) as caught:
        client.trigger_daily()
    assert caught.value.retry_after == 600.0
    assert "Retry-After" not in caught.value.exchange.response_headers
    state = tenant_state(sandbox)
    assert state["successful_triggers"] == 1
    assert state["rejections"] == {"rate_limited": 2}


def test_a_500_is_a_server_error(sandbox, make_client):
    sandbox.inject_fault("trigger_daily", Fault.SERVER_ERROR)

    with pytest.raises(OptimoveServerError) as caught:
        make_client().trigger_daily()

    assert caught.value.failure_class is FailureClass.SERVER_ERROR
    assert caught.value.code == "server_error"
    assert caught.value.status_code == 500
    assert tenant_state(sandbox)["successful_triggers"] == 0


def test_a_504_is_a_gateway_timeout(sandbox, make_client):
    sandbox.inject_fault("trigger_daily", Fault.SERVER_ERROR, status=504)

    with pytest.raises(GatewayTimeout) as caught:
        make_client().trigger_daily()

    assert caught.value.failure_class is FailureClass.SERVER_ERROR
    assert caught.value.code == "gateway_timeout"
    assert caught.value.status_code == 504


# -- not sent, configuration errors -----------------------------------------------------------


def test_a_closed_port_is_not_sent(sandbox):
    client = OptimoveDailyClient(f"http://127.0.0.1:{closed_port()}/x", api_key=DEFAULT_API_KEY)

    with pytest.raises(TriggerNotSent) as caught:
        client.trigger_daily()

    assert caught.value.failure_class is FailureClass.NOT_SENT
    assert caught.value.code == "connection_failed"
    assert caught.value.advice
    assert caught.value.exchange.status_code is None
    assert_secret_absent(DEFAULT_API_KEY, caught.value)


@pytest.mark.parametrize("wait", [31, -1, 100, True, False, 5.0, "5"])
def test_a_bad_wait_is_refused_before_sending(sandbox, make_client, wait):
    with pytest.raises(ConfigurationError):
        make_client().trigger_daily(wait_time_for_validation_seconds=wait)

    assert sandbox.received == []


@pytest.mark.parametrize("api_key", ["", "key with-space", "key\r\nX-Evil: 1", "ключ"])
def test_a_malformed_key_is_refused_at_construction(api_key):
    with pytest.raises(ConfigurationError) as caught:
        OptimoveDailyClient("https://api.optimove.example", api_key=api_key)

    if api_key:
        assert api_key not in str(caught.value)


@pytest.mark.parametrize("base_url", ["", "api.optimove.example", "ftp://x", "https://x/?a=1"])
def test_a_bad_base_url_is_refused_at_construction(base_url):
    with pytest.raises(ConfigurationError):
        OptimoveDailyClient(base_url, api_key=DEFAULT_API_KEY)


# -- outcome unknown --------------------------------------------------------------------------


def test_a_slow_answer_is_an_unknown_outcome_and_a_resend_settles_it(sandbox, make_client):
    sandbox.inject_fault("trigger_daily", Fault.DELAY_AFTER_PROCESSING, seconds=1.0)
    client = make_client(read_timeout_margin_seconds=0.3)

    with pytest.raises(NoAnswer) as caught:
        client.trigger_daily()

    assert caught.value.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert caught.value.code == "no_answer"
    assert caught.value.advice
    assert tenant_state(sandbox)["successful_triggers"] == 1
    # Reconciliation: after the rate window and the run, the re-sent trigger proves the first.
    sandbox.clock.advance(1201)
    with pytest.raises(AlreadyTriggeredToday):
        client.trigger_daily()
    assert tenant_state(sandbox)["successful_triggers"] == 1


def test_a_reset_after_processing_is_an_unknown_outcome(sandbox, make_client):
    sandbox.inject_fault("trigger_daily", Fault.DROP_AFTER_PROCESSING)

    with pytest.raises(NoAnswer) as caught:
        make_client().trigger_daily()

    assert caught.value.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert tenant_state(sandbox)["successful_triggers"] == 1
    [received] = sandbox.received_on("trigger_daily")
    assert received.processed is True
    assert received.status is None


def test_a_reset_before_processing_is_an_unknown_outcome_with_no_effect(sandbox, make_client):
    sandbox.inject_fault("trigger_daily", Fault.DROP_BEFORE_PROCESSING)

    with pytest.raises(NoAnswer) as caught:
        make_client().trigger_daily()

    assert caught.value.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert tenant_state(sandbox)["successful_triggers"] == 0
    [received] = sandbox.received_on("trigger_daily")
    assert received.processed is False


# -- answers only a scripted server gives -----------------------------------------------------


def _text(
    status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", **headers: str
) -> SandboxResponse:
    return SandboxResponse(status, body, {"Content-Type": content_type, **headers})


@pytest.mark.parametrize(
    ("answer", "error_class", "code"),
    [
        (_text(200, b"OK"), UnexpectedAnswer, "unexpected_answer"),
        (_text(200, b"<html>Sign in</html>", "text/html"), UnexpectedAnswer, "unexpected_answer"),
        (_text(204, b""), UnexpectedAnswer, "unexpected_answer"),
        (_text(202, b""), UnexpectedAnswer, "unexpected_answer"),
        (_text(302, b"", Location="https://elsewhere/"), UnexpectedStatus, "unexpected_status"),
        (_text(404, b"Not Found"), UnexpectedStatus, "unexpected_status"),
        (_text(415, b""), UnexpectedStatus, "unexpected_status"),
        (_text(502, b"Bad Gateway"), OptimoveServerError, "server_error"),
        (_text(503, b""), OptimoveServerError, "server_error"),
        (_text(504, b"Gateway Timeout"), GatewayTimeout, "gateway_timeout"),
        (_text(400, b"Request body must be minified (compact) JSON"), BadRequest, "bad_request"),
        (
            _text(400, b'{"title":"One or more validation errors occurred."}', "application/json"),
            BadRequest,
            "bad_request",
        ),
    ],
)
def test_undocumented_answers_land_in_one_class(scripted, make_client, answer, error_class, code):
    scripted.answer = answer

    with pytest.raises(error_class) as caught:
        make_client("/scripted").trigger_daily()

    assert caught.value.code == code
    assert caught.value.status_code == answer.status
    assert caught.value.advice


def test_a_200_with_only_whitespace_is_still_success(scripted, make_client):
    scripted.answer = _text(200, b"\r\n")

    assert make_client("/scripted").trigger_daily().effective_wait_seconds == 5


def test_an_unknown_400_carries_its_text(scripted, make_client):
    scripted.answer = _text(400, b"Cannot trigger daily \xe2\x80\x94 the moon is full\n")

    with pytest.raises(BadRequest) as caught:
        make_client("/scripted").trigger_daily()

    assert caught.value.vendor_message == "Cannot trigger daily \u2014 the moon is full"
    assert "the moon is full" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"Cannot trigger daily \xe2\x80\x94 it is already running\n", "text/plain; charset=utf-8"),
        (b"Cannot trigger daily \xe2\x80\x94 it is already running", "text/plain"),
        (
            b"Cannot trigger daily \xe2\x80\x94 it is already running",
            "text/plain; charset=ISO-8859-1",
        ),
        (b"  Cannot  trigger daily \xe2\x80\x94\tit is already running.\r\n", "text/plain"),
        (b"Cannot trigger daily - it is already running", "text/plain"),
        (b"Cannot trigger daily \x97 it is already running", "text/plain; charset=windows-1252"),
        (b"cannot trigger daily \xe2\x80\x93 It is already running", "text/plain; charset=utf-8"),
    ],
)
def test_documented_messages_are_matched_tolerantly(scripted, make_client, body, content_type):
    scripted.answer = _text(400, body, content_type)

    with pytest.raises(AlreadyRunning) as caught:
        make_client("/scripted").trigger_daily()

    assert caught.value.code == "already_running"


def test_the_exact_message_is_matched_first():
    assert rejection_for_message(MESSAGE_ALREADY_TRIGGERED_TODAY) is AlreadyTriggeredToday
    assert rejection_for_message("Cannot trigger daily") is BadRequest


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(None, 600.0), ("42", 42.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 600.0)],
)
def test_a_429_without_a_readable_retry_after_waits_the_whole_window(
    scripted, make_client, retry_after, expected
):
    headers = {"Retry-After": retry_after} if retry_after else {}
    scripted.answer = _text(429, b"", **headers)

    with pytest.raises(RateLimited) as caught:
        make_client("/scripted").trigger_daily()

    assert caught.value.retry_after == expected


# -- secrets ----------------------------------------------------------------------------------


def test_secrets_appear_in_no_exchange_error_or_log(sandbox, scripted, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    wrong_key = "wrong-optimove-key-0000"
    outcomes: list[object] = []

    client = make_client()
    outcomes.append(client.trigger_daily().exchange)
    for attempt in (client.trigger_daily, make_client(api_key=wrong_key).trigger_daily):
        with pytest.raises(VendorError) as caught:
            attempt()
        outcomes.append(caught.value)
    sandbox.clock.advance(600)
    sandbox.inject_fault("trigger_daily", Fault.DROP_AFTER_PROCESSING)
    with pytest.raises(NoAnswer) as caught:
        client.trigger_daily()
    outcomes.append(caught.value)
    # A vendor that echoes the key back must not get it recorded either.
    scripted.answer = _text(400, f"bad key {DEFAULT_API_KEY}".encode())
    with pytest.raises(BadRequest) as caught:
        make_client("/scripted").trigger_daily()
    outcomes.append(caught.value)
    assert caught.value.vendor_message == f"bad key {REDACTED}"
    with pytest.raises(TriggerNotSent) as caught:
        OptimoveDailyClient(
            f"http://127.0.0.1:{closed_port()}", api_key=DEFAULT_API_KEY
        ).trigger_daily()
    outcomes.append(caught.value)

    for secret in (DEFAULT_API_KEY, wrong_key):
        assert_secret_absent(secret, *outcomes)
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()
        assert secret not in repr(client)
