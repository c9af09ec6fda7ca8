"""The Optimove TriggerDaily sandbox's own rules: auth, rate window, body, task state, UTC days."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests

from batchjobs.vendors.optimove_daily.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_EXPIRED_API_KEY,
    DEFAULT_TENANT,
    DEFAULT_THIRD_PARTY_API_KEY,
    DEFAULT_TRANSACTIONAL_MAIL_API_KEY,
    DEFAULT_TRANSACTIONAL_MAIL_TENANT,
    MESSAGE_ALREADY_RUNNING,
    MESSAGE_ALREADY_TRIGGERED_TODAY,
    MESSAGE_CONFIGURED_INCORRECTLY,
    MESSAGE_NOT_IN_CORRECT_STATE,
    MESSAGE_NOT_JSON,
    MESSAGE_NOT_MINIFIED,
    MESSAGE_NOT_OBJECT,
    MESSAGE_TASK_NOT_FOUND,
    MESSAGE_VALIDATION_FAILED,
    MESSAGE_WAIT_NOT_INTEGER,
    ApiKey,
    OptimoveDailySandbox,
    is_minified,
)
from dashboard.vendors.sandbox import SandboxClock, SandboxServer
from tests.e2e.conftest import wait_for

START = datetime(2025, 3, 10, 8, 0, 0, tzinfo=UTC)
PREFIX = "/optimove-batch"
ROUTE_PATH = "/BatchProcessAPI/TriggerDaily"
NULL_BODY = b'{"WaitTimeForValidationSeconds":null}'


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[OptimoveDailySandbox, SandboxServer]]:
    sandbox = OptimoveDailySandbox(
        SandboxClock(START, scale=0),
        real_seconds_per_wait_second=0.001,
        start_latency_seconds=0.0,
    )
    with SandboxServer({PREFIX: sandbox}) as server:
        yield sandbox, server


@pytest.fixture
def sandbox(served: tuple[OptimoveDailySandbox, SandboxServer]) -> OptimoveDailySandbox:
    optimove = served[0]
    optimove.reset()
    optimove.clock.set(START)
    return optimove


@pytest.fixture
def base_url(served: tuple[OptimoveDailySandbox, SandboxServer]) -> str:
    return served[1].url(PREFIX)


@pytest.fixture
def post(base_url: str) -> Iterator[Callable[..., requests.Response]]:
    session = requests.Session()

    def send(
        body: bytes = NULL_BODY,
        *,
        key: str | None = DEFAULT_API_KEY,
        content_type: str | None = "application/json",
        path: str = ROUTE_PATH,
    ) -> requests.Response:
        headers = {}
        if key is not None:
            headers["X-API-KEY"] = key
        if content_type is not None:
            headers["Content-Type"] = content_type
        return session.post(base_url + path, data=body, headers=headers, timeout=5)

    yield send
    session.close()


def tenant_state(sandbox: OptimoveDailySandbox, tenant: str = DEFAULT_TENANT) -> dict:
    return sandbox.state()["tenants"][tenant]


def text_of(response: requests.Response) -> str:
    return response.content.decode("utf-8")


# -- success and routes -----------------------------------------------------------------------


def test_a_trigger_answers_200_with_an_empty_text_body(sandbox, post):
    response = post()

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    state = tenant_state(sandbox)
    assert state["successful_triggers"] == 1
    assert state["triggered_at"] == [START.isoformat()]
    assert state["triggered_dates"] == ["2025-03-10"]
    assert state["status"] == "running"
    assert state["running_until"] == (START + timedelta(minutes=20)).isoformat()
    assert state["rate_window_ends_at"] == (START + timedelta(seconds=600)).isoformat()


def test_the_alias_reaches_the_same_action(sandbox, post):
    assert post(path="/current/BatchProcessAPI/TriggerDaily").status_code == 200
    assert tenant_state(sandbox)["successful_triggers"] == 1
    assert sandbox.received[-1].effect["route"] == "current"


@pytest.mark.parametrize(
    "path",
    [
        "/batchprocessapi/triggerdaily",
        "/Current/BATCHPROCESSAPI/TriggerDaily",
        "/current/BatchProcessApi/TriggerDaily",
        "/BatchProcessAPI/TriggerDaily/",
        "/BatchProcessAPI/Triggerdaily",
    ],
)
def test_only_the_documented_spelling_of_the_path_is_routed(sandbox, post, path):
    assert post(path=path).status_code == 404
    assert tenant_state(sandbox)["counted_requests"] == 0
    assert tenant_state(sandbox)["successful_triggers"] == 0


# -- authentication and authorization ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "status"),
    [
        (None, 401),
        ("", 401),
        ("no-such-key", 401),
        (DEFAULT_THIRD_PARTY_API_KEY, 401),
        (DEFAULT_EXPIRED_API_KEY, 403),
    ],
)
def test_refused_keys_do_not_count_against_the_rate_limit(sandbox, post, key, status):
    response = post(key=key)

    assert response.status_code == status
    assert response.content == b""
    assert tenant_state(sandbox)["counted_requests"] == 0
    assert tenant_state(sandbox)["successful_triggers"] == 0
    assert post().status_code == 200


def test_the_transactional_mail_role_may_trigger(sandbox, post):
    assert post(key=DEFAULT_TRANSACTIONAL_MAIL_API_KEY).status_code == 200
    assert tenant_state(sandbox, DEFAULT_TRANSACTIONAL_MAIL_TENANT)["successful_triggers"] == 1
    assert tenant_state(sandbox)["successful_triggers"] == 0


def test_an_expired_3rdparty_key_is_reported_as_expired(sandbox, post):
    sandbox.control(
        "add_key",
        {"api_key": "old-partner", "tenant": DEFAULT_TENANT, "role": "3rdParty", "expired": True},
    )
    assert post(key="old-partner").status_code == 403


# -- rate limit -------------------------------------------------------------------------------


def test_one_request_per_tenant_per_600_seconds(sandbox, post):
    sandbox.control("set_task_condition", {"tenant": DEFAULT_TENANT, "condition": "not_found"})
    assert post().status_code == 400

    refused = post()
    assert refused.status_code == 429
    # The doc promises no Retry-After: "wait for the current 10-minute window to expire".
    assert "Retry-After" not in refused.headers
    assert refused.content == b""

    sandbox.clock.advance(599.5)
    assert post().status_code == 429
    # The 429s inside the window did not extend it.
    sandbox.clock.advance(0.5)
    assert post().status_code == 400
    state = tenant_state(sandbox)
    assert state["counted_requests"] == 2
    assert state["rejections"] == {"task_not_found": 2, "rate_limited": 2}
    assert sandbox.received[1].effect == {
        "triggered": False,
        "reason": "rate_limited",
        "tenant": DEFAULT_TENANT,
        "window_seconds_left": 600,
    }


def test_the_window_is_per_tenant_not_per_key(sandbox, post):
    sandbox.control("add_key", {"api_key": "second-demo-key", "tenant": DEFAULT_TENANT})
    assert post().status_code == 200

    assert post(key="second-demo-key").status_code == 429
    assert post(key=DEFAULT_TRANSACTIONAL_MAIL_API_KEY).status_code == 200


def test_requests_with_a_bad_body_count_against_the_window(sandbox, post):
    assert post(b"nonsense").status_code == 400
    assert post().status_code == 429
    assert post(content_type=None).status_code == 429
    assert tenant_state(sandbox)["successful_triggers"] == 0


def test_clear_rate_window_lets_the_next_request_through(sandbox, post):
    post(b"nonsense")
    sandbox.control("clear_rate_window", {"tenant": DEFAULT_TENANT})
    assert post().status_code == 200


# -- body -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"WaitTimeForValidationSeconds": 5}', MESSAGE_NOT_MINIFIED),
        (b'{"WaitTimeForValidationSeconds":5}\n', MESSAGE_NOT_MINIFIED),
        (b'{ "WaitTimeForValidationSeconds":5}', MESSAGE_NOT_MINIFIED),
        (b"{\n}", MESSAGE_NOT_MINIFIED),
        (b"", MESSAGE_NOT_JSON),
        (b"WaitTimeForValidationSeconds=5", MESSAGE_NOT_JSON),
        (b'{"WaitTimeForValidationSeconds":NaN}', MESSAGE_NOT_JSON),
        (b"\xff\xfe{}", MESSAGE_NOT_JSON),
        (b"[]", MESSAGE_NOT_OBJECT),
        (b"5", MESSAGE_NOT_OBJECT),
        (b'{"WaitTimeForValidationSeconds":5.0}', MESSAGE_WAIT_NOT_INTEGER),
        (b'{"WaitTimeForValidationSeconds":5.5}', MESSAGE_WAIT_NOT_INTEGER),
        (b'{"WaitTimeForValidationSeconds":"5"}', MESSAGE_WAIT_NOT_INTEGER),
        (b'{"WaitTimeForValidationSeconds":true}', MESSAGE_WAIT_NOT_INTEGER),
        (b'{"WaitTimeForValidationSeconds":2147483648}', MESSAGE_WAIT_NOT_INTEGER),
        (b'{"waittimeforvalidationseconds":12}', "Unknown property: waittimeforvalidationseconds"),
        (b'{"WaitTimeForValidationseconds":12}', "Unknown property: WaitTimeForValidationseconds"),
        (b'{"WaitTimeForValidationSeconds":7,"Note":"x"}', "Unknown property: Note"),
        (b'{"Note":"an escaped \\" quote, then space"}', "Unknown property: Note"),
        (b'{"WaitTimeForValidationSeconds":7,"WaitTimeForValidationSeconds":8}', MESSAGE_NOT_JSON),
    ],
)
def test_an_unreadable_body_is_a_400_with_a_plain_text_reason(sandbox, post, body, message):
    response = post(body)

    assert response.status_code == 400
    assert text_of(response) == message
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert tenant_state(sandbox)["successful_triggers"] == 0


@pytest.mark.parametrize(
    ("body", "effective"),
    [
        (b"{}", 5),
        (NULL_BODY, 5),
        (b'{"WaitTimeForValidationSeconds":-3}', 5),
        (b'{"WaitTimeForValidationSeconds":30}', 30),
        (b'{"WaitTimeForValidationSeconds":12}', 12),
    ],
)
def test_readable_bodies_trigger(sandbox, post, body, effective):
    response = post(body)

    assert response.status_code == 200
    assert sandbox.received[-1].effect["effective_wait_seconds"] == effective


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/problem+json",
        "application/vnd.api+json",
        "text/json",
        "application/json; charset=latin-1",
        "application/jsonx",
    ],
)
def test_a_body_that_is_not_declared_json_is_unsupported(sandbox, post, content_type):
    assert post(content_type=content_type).status_code == 415
    assert tenant_state(sandbox)["successful_triggers"] == 0


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json"]
)
def test_the_documented_content_type_is_accepted(sandbox, post, content_type):
    assert post(content_type=content_type).status_code == 200


def test_a_wait_above_30_holds_for_30_seconds_then_answers_504_without_triggering(sandbox, post):
    sandbox.control("set_timing", {"real_seconds_per_wait_second": 0.01})

    started = time.monotonic()
    response = post(b'{"WaitTimeForValidationSeconds":31}')

    assert time.monotonic() - started >= 0.3
    assert response.status_code == 504
    assert text_of(response) == "Gateway Timeout"
    assert tenant_state(sandbox)["successful_triggers"] == 0
    assert tenant_state(sandbox)["rejections"] == {"gateway_timeout": 1}


def test_is_minified_ignores_whitespace_inside_strings():
    assert is_minified('{"a":"b c","d":[1,2]}')
    assert is_minified('{"a":"\\\\","b":1}')
    assert not is_minified('{"a":"\\\\", "b":1}')
    assert not is_minified('{"a":1} ')


# -- task conditions and their order ----------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("not_found", MESSAGE_TASK_NOT_FOUND),
        ("not_triggerable", MESSAGE_NOT_IN_CORRECT_STATE),
        ("misconfigured", MESSAGE_CONFIGURED_INCORRECTLY),
        ("fails_validation", MESSAGE_VALIDATION_FAILED),
    ],
)
def test_each_condition_answers_its_documented_message(sandbox, post, condition, message):
    sandbox.control("set_task_condition", {"tenant": DEFAULT_TENANT, "condition": condition})

    response = post()

    assert response.status_code == 400
    assert response.content == message.encode("utf-8")
    assert "\u2014".encode() in response.content
    assert tenant_state(sandbox)["successful_triggers"] == 0
    assert tenant_state(sandbox)["status"] == "idle"


def _trigger_then(sandbox: OptimoveDailySandbox, post, *, finish: bool, condition: str) -> None:
    assert post().status_code == 200
    if finish:
        sandbox.control("finish_task", {"tenant": DEFAULT_TENANT})
    sandbox.control("set_task_condition", {"tenant": DEFAULT_TENANT, "condition": condition})
    sandbox.control("clear_rate_window", {"tenant": DEFAULT_TENANT})


@pytest.mark.parametrize(
    ("finish", "condition", "message"),
    [
        (False, "not_found", MESSAGE_TASK_NOT_FOUND),  # not found beats running
        (False, "not_triggerable", MESSAGE_ALREADY_RUNNING),  # running beats wrong state
        (True, "not_triggerable", MESSAGE_NOT_IN_CORRECT_STATE),  # wrong state beats today
        (True, "misconfigured", MESSAGE_ALREADY_TRIGGERED_TODAY),  # today beats misconfigured
        (True, "fails_validation", MESSAGE_ALREADY_TRIGGERED_TODAY),  # today beats validation
        (False, "ok", MESSAGE_ALREADY_RUNNING),
        (True, "ok", MESSAGE_ALREADY_TRIGGERED_TODAY),
    ],
)
def test_preconditions_are_checked_in_the_doc_order(sandbox, post, finish, condition, message):
    _trigger_then(sandbox, post, finish=finish, condition=condition)

    response = post()

    assert response.status_code == 400
    assert text_of(response) == message


def test_a_triggered_task_runs_for_the_configured_time_then_finishes(sandbox, post):
    assert post().status_code == 200
    sandbox.clock.advance(1199)
    assert tenant_state(sandbox)["status"] == "running"
    assert text_of(post()) == MESSAGE_ALREADY_RUNNING

    sandbox.clock.advance(1)
    assert tenant_state(sandbox)["status"] == "finished"
    sandbox.control("clear_rate_window", {"tenant": DEFAULT_TENANT})
    assert text_of(post()) == MESSAGE_ALREADY_TRIGGERED_TODAY
    assert tenant_state(sandbox)["successful_triggers"] == 1


def test_finish_task_ends_the_run_at_once(sandbox, post):
    post()
    result = sandbox.control("finish_task", {"tenant": DEFAULT_TENANT})

    assert result == {"tenant": DEFAULT_TENANT, "status": "finished"}
    assert tenant_state(sandbox)["running_until"] == START.isoformat()


def test_a_failed_validation_records_no_trigger_and_leaves_the_day_free(sandbox, post):
    sandbox.control(
        "set_task_condition", {"tenant": DEFAULT_TENANT, "condition": "fails_validation"}
    )
    assert text_of(post()) == MESSAGE_VALIDATION_FAILED

    sandbox.control("set_task_condition", {"tenant": DEFAULT_TENANT, "condition": "ok"})
    sandbox.clock.advance(600)
    assert post().status_code == 200
    assert tenant_state(sandbox)["successful_triggers"] == 1


# -- UTC days ---------------------------------------------------------------------------------


def test_once_per_utc_day_across_midnight(sandbox, post):
    sandbox.clock.set(datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC))
    assert post().status_code == 200

    sandbox.clock.set(datetime(2025, 3, 11, 0, 20, 0, tzinfo=UTC))
    assert post().status_code == 200
    assert tenant_state(sandbox)["triggered_dates"] == ["2025-03-10", "2025-03-11"]


def test_first_and_last_second_of_a_utc_day_are_the_same_day(sandbox, post):
    sandbox.clock.set(datetime(2025, 3, 10, 0, 0, 0, tzinfo=UTC))
    assert post().status_code == 200

    sandbox.clock.set(datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC))
    assert text_of(post()) == MESSAGE_ALREADY_TRIGGERED_TODAY


def test_the_day_is_the_utc_day_not_the_local_one(sandbox, post):
    # 01:00 in UTC+2 on the 11th is still the 10th in UTC.
    sandbox.clock.set(datetime(2025, 3, 11, 1, 0, tzinfo=timezone(timedelta(hours=2))))
    assert post().status_code == 200
    sandbox.clock.set(datetime(2025, 3, 10, 23, 40, tzinfo=UTC))
    sandbox.control("clear_rate_window", {"tenant": DEFAULT_TENANT})
    sandbox.control("finish_task", {"tenant": DEFAULT_TENANT})

    assert text_of(post()) == MESSAGE_ALREADY_TRIGGERED_TODAY
    assert tenant_state(sandbox)["triggered_dates"] == ["2025-03-10"]


# -- the validation wait ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "hold"), [(NULL_BODY, 0.1), (b'{"WaitTimeForValidationSeconds":15}', 0.3)]
)
def test_a_failing_validation_holds_for_the_effective_wait(sandbox, post, body, hold):
    sandbox.control(
        "set_task_condition", {"tenant": DEFAULT_TENANT, "condition": "fails_validation"}
    )
    sandbox.control("set_timing", {"real_seconds_per_wait_second": 0.02})

    started = time.monotonic()
    response = post(body)

    assert time.monotonic() - started >= hold
    assert text_of(response) == MESSAGE_VALIDATION_FAILED


def test_a_healthy_task_answers_after_its_start_latency(sandbox, post):
    sandbox.control("set_timing", {"start_latency_seconds": 0.15})

    started = time.monotonic()
    assert post().status_code == 200
    assert time.monotonic() - started >= 0.15


def test_a_long_hold_does_not_block_other_tenants(sandbox, post, base_url):
    """Another tenant is answered while one tenant's validation is still held (an order of
    events, not a duration: the hold is seconds long, the other answer needs none of it)."""
    sandbox.control("add_key", {"api_key": "slow-key", "tenant": "slow"})
    sandbox.control("set_task_condition", {"tenant": "slow", "condition": "fails_validation"})
    sandbox.control("set_timing", {"real_seconds_per_wait_second": 0.5})
    answers: list[tuple[str, int]] = []

    def slow_call() -> None:
        response = requests.post(
            base_url + ROUTE_PATH,
            data=b'{"WaitTimeForValidationSeconds":10}',
            headers={"X-API-KEY": "slow-key", "Content-Type": "application/json"},
            timeout=120,
        )
        answers.append(("slow", response.status_code))

    slow = threading.Thread(target=slow_call)
    slow.start()
    wait_for(lambda: sandbox.received, timeout=60, message="the slow tenant's request")

    answers.append(("other", post().status_code))
    assert requests.get(base_url + "/__sandbox__/state", timeout=30).status_code == 200
    slow.join(timeout=120)
    assert answers == [("other", 200), ("slow", 400)]


# -- state, control, reset --------------------------------------------------------------------


def test_state_lists_keys_without_their_values(sandbox):
    state = sandbox.state()

    assert {"tenant": DEFAULT_TENANT, "role": "ApiRole", "expired": False} in state["keys"]
    for api_key in (DEFAULT_API_KEY, DEFAULT_EXPIRED_API_KEY, DEFAULT_THIRD_PARTY_API_KEY):
        assert api_key not in json.dumps(state)
    assert set(state["tenants"]) == {DEFAULT_TENANT, DEFAULT_TRANSACTIONAL_MAIL_TENANT}


def test_constructor_keys_and_conditions_replace_the_defaults_and_survive_reset():
    sandbox = OptimoveDailySandbox(
        keys={"acme-key": {"tenant": "acme", "role": "TransactionalMail"}},
        task_conditions={"acme": "misconfigured", "other": "not_found"},
    )
    sandbox.control("add_key", {"api_key": "extra", "tenant": "extra"})
    sandbox.control("set_task_condition", {"tenant": "acme", "condition": "ok"})

    sandbox.reset()

    assert sandbox.keys == {"acme-key": ApiKey("acme", "TransactionalMail")}
    assert sandbox.state()["tenants"]["acme"]["condition"] == "misconfigured"
    assert sandbox.state()["tenants"]["other"]["condition"] == "not_found"
    assert "extra" not in sandbox.state()["tenants"]


@pytest.mark.parametrize(
    ("action", "payload", "error"),
    [
        ("set_task_condition", {"tenant": DEFAULT_TENANT, "condition": "sleepy"}, ValueError),
        ("add_key", {"api_key": "k", "tenant": "t", "role": "Admin"}, ValueError),
        ("add_key", {"api_key": "", "tenant": "t"}, ValueError),
        ("add_key", {"tenant": "t"}, KeyError),
        ("clear_rate_window", {"tenant": "nobody"}, KeyError),
        ("finish_task", {"tenant": "nobody"}, KeyError),
        ("set_timing", {"start_latency_seconds": -1}, ValueError),
        ("launch_rockets", {}, KeyError),
    ],
)
def test_bad_control_requests_raise(sandbox, action, payload, error):
    with pytest.raises(error):
        sandbox.control(action, payload)


def test_the_control_api_over_http(sandbox, base_url, post):
    control = base_url + "/__sandbox__"

    added = requests.post(
        control + "/control/add_key",
        json={"api_key": "partner-key", "tenant": "partner", "role": "ApiRole"},
        timeout=5,
    )
    assert added.json() == {
        "ok": True,
        "result": {"tenant": "partner", "role": "ApiRole", "expired": False},
    }
    assert post(key="partner-key").status_code == 200
    assert (
        requests.post(
            control + "/control/finish_task", json={"tenant": "partner"}, timeout=5
        ).json()["result"]["status"]
        == "finished"
    )
    requests.post(control + "/control/clear_rate_window", json={"tenant": "partner"}, timeout=5)
    requests.post(
        control + "/control/set_task_condition",
        json={"tenant": "partner", "condition": "not_found"},
        timeout=5,
    )
    assert text_of(post(key="partner-key")) == MESSAGE_TASK_NOT_FOUND
    unknown = requests.post(control + "/control/launch_rockets", json={}, timeout=5)
    assert unknown.status_code == 400
    clock = requests.post(control + "/clock", json={"advance": 86400}, timeout=5)
    assert clock.json()["now"] == (START + timedelta(days=1)).isoformat()

    state = requests.get(control + "/state", timeout=5).json()
    assert state["name"] == "optimove-daily"
    partner = state["state"]["tenants"]["partner"]
    assert partner["condition"] == "not_found"
    assert partner["successful_triggers"] == 1
    assert partner["rejections"] == {"task_not_found": 1}
    assert [request["status"] for request in state["received"]] == [200, 400]
    assert state["received"][0]["effect"]["triggered"] is True

    assert requests.post(control + "/reset", timeout=5).json() == {"ok": True}
    assert "partner" not in sandbox.state()["tenants"]
