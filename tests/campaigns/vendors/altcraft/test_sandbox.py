"""The Altcraft sandbox's own rules: answers, matching, tasks over time, limits, controls."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from campaigns.vendors.altcraft.sandbox import (
    DEFAULT_ACCOUNTS,
    DEFAULT_TOKEN,
    INACTIVE_TRIGGER_ID,
    AltcraftSandbox,
)
from dashboard.vendors.sandbox import SandboxClock, SandboxRequest, SandboxServer

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
START_BATCH = "/api/v1.1/campaigns/triggers/start_batch"
IMPORT = "/api/v1.1/campaigns/triggers/import_and_start_batch_task"
STATUS = "/api/v1.1/tasks/status"
EXAMPLE1_ID = "6606e08f10bcdd88297057a7"
EXAMPLE2_ID = "66101437dc4594c2934da6da"


@pytest.fixture
def sandbox() -> AltcraftSandbox:
    return AltcraftSandbox(SandboxClock(START, scale=0))


class Answer:
    """What the sandbox answered: status, headers and the parsed JSON body."""

    def __init__(self, status: int, headers: dict[str, str], body: Any) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def call(
    sandbox: AltcraftSandbox, path: str, payload: Any = None, raw: bytes | None = None
) -> Answer:
    """Dispatch one request to the sandbox without HTTP (the rules, not the transport)."""
    body = raw if raw is not None else json.dumps(payload).encode()
    request = SandboxRequest(
        method="POST",
        path=path,
        query={},
        headers={"content-type": "application/json"},
        body=body,
    )
    response, _ = sandbox.dispatch(request)
    assert response is not None
    return Answer(response.status, response.headers, json.loads(response.body))


def launch(sandbox: AltcraftSandbox, **overrides: Any) -> Answer:
    payload = {
        "token": DEFAULT_TOKEN,
        "trigger_id": 8,
        "format": "json",
        "matching": "email",
        "data": [{"email": "example1@example.com"}],
        **overrides,
    }
    return call(sandbox, START_BATCH, {k: v for k, v in payload.items() if v is not None})


def start_task(sandbox: AltcraftSandbox, data: list[dict[str, Any]], **overrides: Any) -> str:
    payload = {"token": DEFAULT_TOKEN, "trigger_id": 96, "data": data, **overrides}
    answer = call(sandbox, IMPORT, payload)
    assert answer.body["error"] == 0, answer.body
    return answer.body["task_id"]


def task(sandbox: AltcraftSandbox, task_id: str, token: str = DEFAULT_TOKEN) -> Answer:
    return call(sandbox, STATUS, {"token": token, "task_id": task_id})


def envelope(error: int, error_text: str, error_debug: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error}
    if error_debug is not None:
        body["error_debug"] = error_debug
    body["error_text"] = error_text
    return body


# -- documented answers ----------------------------------------------------------------------


def test_the_docs_start_batch_example_gets_the_docs_answer(sandbox: AltcraftSandbox) -> None:
    answer = launch(
        sandbox, data=[{"email": "example1@example.com"}, {"email": "example2@example.com"}]
    )

    assert answer.status == 200
    assert answer.body == {
        "error": 0,
        "error_text": "Successful operation",
        "result": [{"profile_id": EXAMPLE1_ID}, {"profile_id": EXAMPLE2_ID}],
    }
    assert list(answer.body) == ["error", "error_text", "result"]  # the docs' key order
    [received] = sandbox.received_on("start_batch")
    assert received.effect == {
        "launch": 1,
        "trigger_id": 8,
        "profile_ids": [EXAMPLE1_ID, EXAMPLE2_ID],
        "unmatched": 0,
    }


def test_a_body_over_the_limit_gets_the_documented_answer(sandbox: AltcraftSandbox) -> None:
    sandbox.control("set_body_limit", {"bytes": 300})
    payload = {"token": DEFAULT_TOKEN, "trigger_id": 8, "data": [{"email": "example1@example.com"}]}
    base = json.dumps(payload).encode()
    payload["content"] = {"pad": "x" * (300 - len(base) - len(', "content": {"pad": ""}'))}
    at_limit = json.dumps(payload).encode()
    assert len(at_limit) == 300

    assert call(sandbox, START_BATCH, raw=at_limit).body["error"] == 0
    for path in (START_BATCH, IMPORT, STATUS):
        answer = call(sandbox, path, raw=at_limit + b" ")
        assert answer.status == 400
        assert answer.body == envelope(400, "Invalid request", "http: request body too large")
        assert list(answer.body) == ["error", "error_debug", "error_text"]
    assert sandbox.state()["launch_count"] == 1


def test_the_default_body_limit_is_ten_million_bytes(sandbox: AltcraftSandbox) -> None:
    assert sandbox.body_limit_bytes == 10_000_000
    assert sandbox.state()["body_limit_bytes"] == 10_000_000


def test_a_body_over_the_servers_hard_cap_gets_the_same_answer(sandbox: AltcraftSandbox) -> None:
    request = SandboxRequest("POST", START_BATCH, {}, {}, b"")
    response = sandbox.body_too_large(request, 200_000_000)

    assert response.status == 400
    assert json.loads(response.body) == envelope(
        400, "Invalid request", "http: request body too large"
    )


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "debug"),
    [
        (b"{not json", "invalid character"),
        (b"\xff\xfe", "invalid character"),
        (b"[1, 2]", "cannot unmarshal array into Go value of type api.Request"),
        (
            json.dumps({"token": DEFAULT_TOKEN, "trigger_id": "8"}).encode(),
            "cannot unmarshal string into Go struct field Request.trigger_id of type int",
        ),
        (
            json.dumps({"token": DEFAULT_TOKEN, "trigger_id": 8, "data": {"email": "a"}}).encode(),
            "cannot unmarshal object into Go struct field Request.data",
        ),
        (
            json.dumps({"token": DEFAULT_TOKEN, "trigger_id": True}).encode(),
            "cannot unmarshal bool into Go struct field Request.trigger_id",
        ),
    ],
)
def test_undecodable_bodies_are_invalid_requests(
    sandbox: AltcraftSandbox, raw: bytes, debug: str
) -> None:
    answer = call(sandbox, START_BATCH, raw=raw)

    assert answer.status == 400
    assert answer.body["error"] == 400
    assert answer.body["error_text"] == "Invalid request"
    assert debug in answer.body["error_debug"]


@pytest.mark.parametrize(
    ("overrides", "error", "error_text", "error_debug"),
    [
        ({"token": None}, 401, "Invalid token", None),
        ({"token": "not-a-token"}, 401, "Invalid token", None),
        ({"trigger_id": None}, 422, "Invalid parameter", "trigger_id: required"),
        ({"trigger_id": 777}, 404, "Trigger campaign not found", "trigger_id: 777"),
        (
            {"trigger_id": INACTIVE_TRIGGER_ID},
            409,
            "Trigger campaign is not active",
            "trigger_id: 2",
        ),
        ({"matching": "sms"}, 422, "Invalid parameter", 'matching: unknown mode "sms"'),
        (
            {"matching": "custom", "data": [{"field_value": "003"}]},
            422,
            "Invalid parameter",
            'field_name: required for matching "custom"',
        ),
        ({"data": None}, 422, "Invalid parameter", "data: required"),
        ({"data": []}, 422, "Invalid parameter", "data: required"),
        (
            {"data": [{"email": "example1@example.com"}, {"phone": "+79000000000"}]},
            422,
            "Invalid parameter",
            'data[1]: email is required for matching "email"',
        ),
        (
            {"matching": "phone"},
            422,
            "Invalid parameter",
            'data[0]: phone is required for matching "phone"',
        ),
        (
            {"format": "xml"},
            422,
            "Invalid parameter",
            "format: only json is served by this sandbox",
        ),
    ],
)
def test_start_batch_refusals_answer_http_200_with_an_error_envelope(
    sandbox: AltcraftSandbox,
    overrides: dict[str, Any],
    error: int,
    error_text: str,
    error_debug: str | None,
) -> None:
    payload = {
        "token": DEFAULT_TOKEN,
        "trigger_id": 8,
        "matching": "email",
        "data": [{"email": "example1@example.com"}],
        **overrides,
    }
    answer = call(sandbox, START_BATCH, {k: v for k, v in payload.items() if v is not None})

    assert answer.status == 200
    assert answer.body == envelope(error, error_text, error_debug)
    assert sandbox.state()["launch_count"] == 0
    assert sandbox.received_on("start_batch")[0].effect == {
        "rejected": error,
        "error_text": error_text,
    }


@pytest.mark.parametrize(
    ("overrides", "error_debug"),
    [
        ({"data": [{"email": "a@b.co"}]}, "data[0]: data object is required"),
        (
            {"data": [{"data": {"_fname": "Ann"}, "email": "a@b.co"}]},
            'data[0]: unknown field "email" (the matching value belongs inside data)',
        ),
        (
            {"matching": "profile_id", "data": [{"profile_id": "0" * 24, "data": {}}]},
            'data[0]: unknown field "profile_id" (the matching value belongs inside data)',
        ),
        ({"timeout": {"minutes": -5}}, "timeout.minutes: must be a non-negative integer"),
        ({"matching": "custom"}, 'field_name: required for matching "custom"'),
    ],
)
def test_import_refusals_answer_http_200_with_an_error_envelope(
    sandbox: AltcraftSandbox, overrides: dict[str, Any], error_debug: str
) -> None:
    payload = {
        "token": DEFAULT_TOKEN,
        "trigger_id": 96,
        "data": [{"data": {"email": "a@b.co"}}],
        **overrides,
    }
    answer = call(sandbox, IMPORT, payload)

    assert answer.status == 200
    assert answer.body == envelope(422, "Invalid parameter", error_debug)
    assert sandbox.state()["tasks"] == {}


def test_task_status_refusals(sandbox: AltcraftSandbox) -> None:
    assert call(sandbox, STATUS, {"token": DEFAULT_TOKEN}).body == envelope(
        422, "Invalid parameter", "task_id: required"
    )
    assert task(sandbox, "1c1a5861-6d4c-4d6f-bd6a-3ca4f46b217d").body == envelope(
        404, "Task not found"
    )
    assert task(sandbox, "anything", token="nope").body == envelope(401, "Invalid token")


# -- profiles and matching -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matching", "field_name", "data", "expected"),
    [
        ("email", None, [{"email": " Example1@EXAMPLE.com "}], [EXAMPLE1_ID]),
        ("email", None, [{"email": "nobody@example.com"}], []),
        ("email", None, [{"email": "example1@example.com"}] * 3, [EXAMPLE1_ID]),
        ("phone", None, [{"phone": "79000000000"}], [EXAMPLE1_ID]),
        (
            "profile_id",
            None,
            [{"profile_id": EXAMPLE2_ID}, {"profile_id": "f" * 24}],
            [EXAMPLE2_ID],
        ),
        ("custom", "Custom_ID", [{"field_value": "002"}], [EXAMPLE2_ID]),
        ("custom", "Custom_id", [{"field_value": "002"}], []),  # field names are case-sensitive
        ("custom", "Custom_ID", [{"field_value": 3}], []),  # "003" is not "3"
    ],
)
def test_start_batch_matching_rules(
    sandbox: AltcraftSandbox,
    matching: str,
    field_name: str | None,
    data: list[dict[str, Any]],
    expected: list[str],
) -> None:
    answer = launch(sandbox, matching=matching, field_name=field_name, data=data)

    assert [entry["profile_id"] for entry in answer.body["result"]] == expected
    assert sandbox.state()["launch_count"] == (1 if expected else 0)


def test_email_matching_looks_at_subscriptions_and_email_profile_does_not(
    sandbox: AltcraftSandbox,
) -> None:
    created = sandbox.control(
        "add_profile",
        {
            "data": {
                "email": "home@example.com",
                "subscriptions": [
                    {"channel": "email", "email": "work@example.com", "resource_id": 21}
                ],
            }
        },
    )["profile_id"]

    by_email = launch(sandbox, data=[{"email": "work@example.com"}])
    by_profile_email = launch(
        sandbox, matching="email_profile", data=[{"email": "work@example.com"}]
    )

    assert by_email.body["result"] == [{"profile_id": created}]
    assert by_profile_email.body["result"] == []


def test_match_every_item_answers_one_profile_id_per_recipient(sandbox: AltcraftSandbox) -> None:
    """For benchmarks: every recipient is a known profile, so the answer is as long as the
    real service's for a real audience (one id per recipient), not empty."""
    data = [{"email": f"person{index}@example.com"} for index in range(1000)]
    data.append({"email": "PERSON7@example.com"})  # the same profile as person7, matched twice
    data.append({"email": "example1@example.com"})  # a stored profile still wins
    assert launch(sandbox, data=data[:3]).body["result"] == []  # off by default

    assert sandbox.control("set_match_every_item", {"enabled": True}) == {"match_every_item": True}
    answer = launch(sandbox, data=data)
    again = launch(sandbox, data=data[:1])

    ids = [entry["profile_id"] for entry in answer.body["result"]]
    assert len(ids) == 1001 and len(set(ids)) == 1001
    assert all(OBJECT_ID.match(profile_id) for profile_id in ids)
    assert ids[-1] == "6606e08f10bcdd88297057a7"
    assert again.body["result"] == [{"profile_id": ids[0]}]
    assert sandbox.state()["launched_profile_count"] == 1002
    with pytest.raises(ValueError, match="true or false"):
        sandbox.control("set_match_every_item", {"enabled": "yes"})
    sandbox.reset_state()
    assert sandbox.state()["match_every_item"] is False


def test_custom_values_compare_as_strings_and_the_oldest_profile_wins(
    sandbox: AltcraftSandbox,
) -> None:
    older = sandbox.control("add_profile", {"data": {"loyalty_tier": 3}})["profile_id"]
    sandbox.control("add_profile", {"data": {"loyalty_tier": "3"}})

    answer = launch(
        sandbox, matching="custom", field_name="loyalty_tier", data=[{"field_value": "3"}]
    )

    assert answer.body["result"] == [{"profile_id": older}]


def test_generated_profile_ids_look_like_the_vendors(sandbox: AltcraftSandbox) -> None:
    first = sandbox.control("add_profile", {"data": {"email": "a@example.com"}})["profile_id"]
    second = sandbox.control("add_profile", {"data": {"email": "b@example.com"}})["profile_id"]

    assert re.fullmatch(r"[0-9a-f]{24}", first) and re.fullmatch(r"[0-9a-f]{24}", second)
    assert first != second
    assert first.startswith(f"{int(START.timestamp()):08x}")


# -- import tasks over time ------------------------------------------------------------------


def test_a_task_progresses_with_the_clock_and_acts_only_when_it_completes(
    sandbox: AltcraftSandbox,
) -> None:
    task_id = start_task(sandbox, [{"data": {"email": "new@example.com", "_fname": "New"}}])
    assert re.fullmatch(r"[0-9a-f-]{36}", task_id)

    seen = []
    for _ in range(6):
        body = task(sandbox, task_id).body
        seen.append((body["data"]["status"], body["data"]["progress"]))
        if body["data"]["status"] != "completed":
            assert body["data"]["result"] is None
            assert sandbox.state()["launch_count"] == 0
            assert sandbox.state()["profiles_created"] == 0
        sandbox.clock.advance(1)

    assert seen == [
        ("pending", 0),
        ("processing", 20),
        ("processing", 40),
        ("processing", 60),
        ("processing", 80),
        ("completed", 100),
    ]
    body = task(sandbox, task_id).body
    assert list(body) == ["data", "error", "error_text"]
    assert body["error_text"] == "Successful operation"
    [profile] = body["data"]["result"]["result"]
    assert body["data"]["result"] == {"error": 0, "error_text": "", "result": [profile]}
    state = sandbox.state()
    assert state["launch_count"] == 1 and state["profiles_created"] == 1
    assert state["tasks"][task_id]["status"] == "completed"
    assert sandbox.profile(profile["profile_id"])["_fname"] == "New"


def test_state_brings_tasks_up_to_date_and_each_task_keeps_its_duration(
    sandbox: AltcraftSandbox,
) -> None:
    first = start_task(sandbox, [{"data": {"email": "a@example.com"}}])
    sandbox.control("set_task_duration", {"seconds": 60})
    second = start_task(sandbox, [{"data": {"email": "b@example.com"}}])
    sandbox.clock.advance(30)

    tasks = sandbox.state()["tasks"]

    assert (tasks[first]["status"], tasks[first]["progress"]) == ("completed", 100)
    assert (tasks[second]["status"], tasks[second]["progress"]) == ("processing", 50)
    assert sandbox.state()["launch_count"] == 1


def test_a_zero_duration_task_completes_at_once(sandbox: AltcraftSandbox) -> None:
    sandbox.control("set_task_duration", {"seconds": 0})
    task_id = start_task(sandbox, [{"data": {"email": "a@example.com"}}])

    assert task(sandbox, task_id).body["data"]["status"] == "completed"


def test_import_updates_found_profiles_and_creates_the_others(sandbox: AltcraftSandbox) -> None:
    task_id = start_task(
        sandbox,
        [
            {"data": {"email": "EXAMPLE2@example.com", "_lname": "Beckham"}},
            {"data": {"email": "fresh@example.com"}},
            {"data": {"email": "fresh@example.com", "city": "Leeds"}},
        ],
    )
    sandbox.clock.advance(5)

    ids = [e["profile_id"] for e in task(sandbox, task_id).body["data"]["result"]["result"]]

    assert ids[0] == EXAMPLE2_ID and len(ids) == 2  # the second "fresh" updated the first
    assert sandbox.profile(EXAMPLE2_ID)["_lname"] == "Beckham"
    assert sandbox.profile(EXAMPLE2_ID)["_fname"] == "David"  # merged, not replaced
    assert sandbox.profile(ids[1])["city"] == "Leeds"
    state = sandbox.state()
    assert (state["profiles_created"], state["profiles_updated"]) == (1, 2)
    assert state["accounts"]["demo"]["profile_count"] == 3
    # The updated profile is found by its new field afterwards.
    assert launch(sandbox, data=[{"email": "fresh@example.com"}]).body["result"] == [
        {"profile_id": ids[1]}
    ]


@pytest.mark.parametrize(("skip_invalid", "imported"), [(False, 1), (True, 2)])
def test_invalid_subscriptions_fail_the_item_unless_skipped(
    sandbox: AltcraftSandbox, skip_invalid: bool, imported: int
) -> None:
    # The docs' XML example carries an email subscription "@example.com": invalid.
    items = [
        {"data": {"email": "example3@example.com"}},
        {
            "data": {
                "email": "example32@example.com",
                "subscriptions": [
                    {"channel": "email", "email": "@example.com", "resource_id": 21},
                    {"channel": "phone", "phone": "+79000880000", "resource_id": 20},
                ],
            }
        },
    ]
    task_id = start_task(sandbox, items, skip_invalid_subscriptions=skip_invalid)
    sandbox.clock.advance(5)

    result = task(sandbox, task_id).body["data"]["result"]
    state = sandbox.state()

    assert len(result["result"]) == imported
    assert state["profiles_created"] == imported
    if skip_invalid:
        profile = sandbox.profile(result["result"][1]["profile_id"])
        assert profile["subscriptions"] == [
            {"channel": "phone", "phone": "+79000880000", "resource_id": 20}
        ]
    else:
        assert state["tasks"][task_id]["failed_items"] == [
            {"index": 1, "reason": "invalid subscription"}
        ]


def test_import_by_profile_id_only_updates_existing_profiles(sandbox: AltcraftSandbox) -> None:
    task_id = start_task(
        sandbox,
        [
            {"data": {"profile_id": EXAMPLE1_ID, "city": "Madrid"}},
            {"data": {"profile_id": "0" * 24, "city": "Paris"}},
        ],
        matching="profile_id",
    )
    sandbox.clock.advance(5)

    result = task(sandbox, task_id).body["data"]["result"]["result"]

    assert result == [{"profile_id": EXAMPLE1_ID}]
    assert sandbox.profile(EXAMPLE1_ID)["city"] == "Madrid"
    assert sandbox.state()["tasks"][task_id]["failed_items"] == [
        {"index": 1, "reason": "profile not found"}
    ]


def test_resource_id_restricts_matching_to_that_resources_subscriptions(
    sandbox: AltcraftSandbox,
) -> None:
    # example1@example.com is subscribed in resource 21 only.
    in_other = start_task(sandbox, [{"data": {"email": "example1@example.com"}}], resource_id=20)
    sandbox.clock.advance(5)
    in_same = start_task(sandbox, [{"data": {"email": "example1@example.com"}}], resource_id=21)
    sandbox.clock.advance(5)

    assert task(sandbox, in_other).body["data"]["result"]["result"] != [{"profile_id": EXAMPLE1_ID}]
    assert task(sandbox, in_same).body["data"]["result"]["result"] == [{"profile_id": EXAMPLE1_ID}]


def test_fail_task_and_timeouts(sandbox: AltcraftSandbox) -> None:
    failing = start_task(sandbox, [{"data": {"email": "a@example.com"}}])
    sandbox.clock.advance(2)
    sandbox.control("fail_task", {"task_id": failing, "error": 503, "error_text": "Queue lost"})
    done = start_task(sandbox, [{"data": {"email": "b@example.com"}}])
    sandbox.clock.advance(5)

    assert task(sandbox, failing).body["data"] == {
        "status": "failed",
        "progress": 40,
        "result": {"error": 503, "error_text": "Queue lost", "result": []},
    }
    with pytest.raises(ValueError, match="already completed"):
        sandbox.control("fail_task", {"task_id": done})
    with pytest.raises(ValueError, match="already failed"):
        sandbox.control("fail_task", {"task_id": failing})
    with pytest.raises(KeyError):
        sandbox.control("fail_task", {"task_id": "no-such-task"})
    assert sandbox.state()["launch_count"] == 1

    sandbox.control("set_task_duration", {"seconds": 3 * 3600})
    timed_out = start_task(sandbox, [{"data": {"email": "c@example.com"}}], timeout={"hours": 1})
    unlimited = start_task(
        sandbox,
        [{"data": {"email": "d@example.com"}}],
        timeout={"days": 0, "hours": 0, "minutes": 0},
    )
    sandbox.clock.advance(3600)

    assert task(sandbox, timed_out).body["data"]["result"]["error"] == 408
    assert task(sandbox, timed_out).body["data"]["progress"] == 33
    assert task(sandbox, unlimited).body["data"]["status"] == "processing"


# -- rate limit --------------------------------------------------------------------------------


def test_rate_limit_is_per_token_on_a_fixed_window_of_sandbox_time(
    sandbox: AltcraftSandbox,
) -> None:
    sandbox.control("add_token", {"token": "second-token", "account": "demo"})
    sandbox.control("set_rate_limit", {"token": DEFAULT_TOKEN, "requests": 2, "per_seconds": 10})

    assert launch(sandbox).status == 200
    sandbox.clock.advance(4)
    assert launch(sandbox).status == 200
    throttled = launch(sandbox)
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "6"
    assert throttled.body == envelope(429, "Too many requests")
    assert task(sandbox, "x").status == 429  # every route counts
    assert launch(sandbox, token="second-token").status == 200  # other tokens do not
    assert launch(sandbox, token="unknown").body["error"] == 401

    sandbox.clock.advance(6)
    assert launch(sandbox).status == 200
    assert sandbox.state()["launch_count"] == 4
    assert sandbox.state()["rate_limits"] == [
        {"account": "demo", "requests": 2, "per_seconds": 10.0}
    ]

    sandbox.control("set_rate_limit", {"token": DEFAULT_TOKEN, "requests": None})
    assert all(launch(sandbox).status == 200 for _ in range(5))


def test_no_rate_limit_by_default(sandbox: AltcraftSandbox) -> None:
    assert all(launch(sandbox).status == 200 for _ in range(50))


# -- accounts, controls, state ---------------------------------------------------------------


def test_default_accounts_are_documented_ones(sandbox: AltcraftSandbox) -> None:
    demo = sandbox.state()["accounts"]["demo"]

    assert demo["triggers"] == {
        "1": {"name": "Welcome series", "active": True},
        "2": {"name": "Spring sale (stopped)", "active": False},
        "8": {"name": "Abandoned cart", "active": True},
        "96": {"name": "Registration form", "active": True},
    }
    assert demo["profile_count"] == 2 and demo["token_count"] == 1
    assert DEFAULT_ACCOUNTS["demo"]["tokens"] == [DEFAULT_TOKEN]


def test_accounts_from_the_constructor_and_controls(sandbox: AltcraftSandbox) -> None:
    custom = AltcraftSandbox(
        SandboxClock(START, scale=0),
        accounts={"brand": {"tokens": ["brand-token"], "triggers": {5: {"name": "Promo"}}}},
        rate_limits={"brand-token": (1, 60)},
    )
    assert launch(custom, token="brand-token", trigger_id=5).body["result"] == []
    assert launch(custom, token="brand-token", trigger_id=5).status == 429
    assert launch(custom).body["error"] == 401  # no default account when accounts are given

    sandbox.control("add_token", {"token": "new-brand-token", "account": "new-brand"})
    assert launch(sandbox, token="new-brand-token").body["error"] == 404  # a new account is empty
    sandbox.control("add_trigger", {"token": "new-brand-token", "trigger_id": 8, "name": "Cart"})
    profile_id = sandbox.control(
        "add_profile", {"token": "new-brand-token", "data": {"email": "example1@example.com"}}
    )["profile_id"]
    assert launch(sandbox, token="new-brand-token").body["result"] == [{"profile_id": profile_id}]

    sandbox.control("add_trigger", {"trigger_id": 8, "active": False})
    assert launch(sandbox).body["error"] == 409
    assert sandbox.state()["accounts"]["demo"]["triggers"]["8"] == {
        "name": "Abandoned cart",
        "active": False,
    }
    with pytest.raises(KeyError):
        sandbox.control("no_such_action", {})
    with pytest.raises(KeyError):
        sandbox.control("set_rate_limit", {"token": "never-added", "requests": 1})


def test_reset_restores_the_constructor_configuration(sandbox: AltcraftSandbox) -> None:
    start_task(sandbox, [{"data": {"email": "a@example.com"}}])
    sandbox.control("set_body_limit", {"bytes": 10})
    sandbox.control("add_trigger", {"trigger_id": 8, "active": False})
    sandbox.control("set_task_duration", {"seconds": 99})

    sandbox.reset()

    state = sandbox.state()
    assert state["body_limit_bytes"] == 10_000_000
    assert state["task_duration_seconds"] == 5.0
    assert state["tasks"] == {} and state["launches"] == []
    assert state["accounts"]["demo"]["triggers"]["8"]["active"] is True
    assert launch(sandbox).body["error"] == 0


def test_state_shows_no_tokens(sandbox: AltcraftSandbox) -> None:
    sandbox.control("add_token", {"token": "hidden-token-123", "account": "demo"})
    sandbox.control("set_rate_limit", {"token": "hidden-token-123", "requests": 5})

    dumped = json.dumps(sandbox.state())

    assert "hidden-token-123" not in dumped and DEFAULT_TOKEN not in dumped


def test_the_control_api_over_http() -> None:
    sandbox = AltcraftSandbox(SandboxClock(START, scale=0))
    with SandboxServer({"/altcraft": sandbox}) as server:
        base = server.url("/altcraft")
        control = f"{base}/__sandbox__"
        with requests.Session() as http:
            added = http.post(
                f"{control}/control/add_trigger",
                json={"trigger_id": 42, "name": "Back in stock"},
                timeout=5,
            )
            launched = http.post(
                f"{base}{START_BATCH}",
                json={
                    "token": DEFAULT_TOKEN,
                    "trigger_id": 42,
                    "data": [{"email": "example2@example.com"}],
                },
                timeout=5,
            )
            task_id = http.post(
                f"{base}{IMPORT}",
                json={
                    "token": DEFAULT_TOKEN,
                    "trigger_id": 42,
                    "data": [{"data": {"email": "z@example.com"}}],
                },
                timeout=5,
            ).json()["task_id"]
            failed = http.post(f"{control}/control/fail_task", json={"task_id": task_id}, timeout=5)
            bad = http.post(f"{control}/control/set_body_limit", json={"bytes": 0}, timeout=5)
            unknown = http.post(f"{control}/control/nope", json={}, timeout=5)
            clock = http.post(f"{control}/clock", json={"advance": 60}, timeout=5)
            state = http.get(f"{control}/state", timeout=5).json()

    assert added.json() == {
        "ok": True,
        "result": {"account": "demo", "trigger_id": 42, "name": "Back in stock", "active": True},
    }
    assert launched.json()["result"] == [{"profile_id": EXAMPLE2_ID}]
    assert failed.json()["result"]["status"] == "failed"
    assert bad.status_code == 400 and unknown.status_code == 400
    assert clock.json()["now"] == "2025-03-01T12:01:00+00:00"
    assert state["name"] == "altcraft"
    assert state["state"]["launch_count"] == 1
    assert state["state"]["tasks"][task_id]["status"] == "failed"
    assert [r["route"] for r in state["received"]] == ["start_batch", "import_and_start_batch_task"]
