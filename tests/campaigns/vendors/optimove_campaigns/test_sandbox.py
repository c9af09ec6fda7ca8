"""The Optimove Smart Campaigns sandbox's own rules: auth, validation, rate limit, lifecycle."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from campaigns.vendors.optimove_campaigns.sandbox import (
    DEMO_API_KEY,
    DEMO_BRAND_KEY,
    GOAL_SCORED_GENERATOR_ID,
    MATCH_START_GENERATOR_ID,
    NEWSLETTER_GENERATOR_ID,
    OTHER_API_KEY,
    OTHER_BRAND_GENERATOR_ID,
    OTHER_BRAND_KEY,
    Brand,
    EventGenerator,
    OptimoveCampaignsSandbox,
)
from dashboard.vendors.sandbox import SandboxClock, SandboxRequest, SandboxServer

START = datetime(2026, 1, 16, 12, 0, 0, tzinfo=UTC)
RUN_PATH = f"/event-generators/{MATCH_START_GENERATOR_ID}/run"
DEMO_HEADERS = {"x-api-key": DEMO_API_KEY, "x-brand-key": DEMO_BRAND_KEY}
OTHER_HEADERS = {"x-api-key": OTHER_API_KEY, "x-brand-key": OTHER_BRAND_KEY}
JSON_HEADERS = {**DEMO_HEADERS, "content-type": "application/json"}
RUN_BODY = b'{"topic_key":"event_reminders+NFL","context":{"match_id":"abc123"}}'


@pytest.fixture
def sandbox() -> OptimoveCampaignsSandbox:
    """The sandbox with the demo defaults, on a clock frozen at START."""
    return OptimoveCampaignsSandbox(SandboxClock(start=START, scale=0))


def call(
    sandbox: OptimoveCampaignsSandbox,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, Any, dict[str, str]]:
    """Dispatch one request as the HTTP server would, without a socket: (status, JSON, headers)."""
    request = SandboxRequest(
        method=method,
        path=path,
        query={},
        headers={name.lower(): value for name, value in (headers or {}).items()},
        body=body,
    )
    response, _ = sandbox.dispatch(request)
    assert response is not None
    return response.status, json.loads(response.body), response.headers


def run(
    sandbox: OptimoveCampaignsSandbox,
    generator_id: str = MATCH_START_GENERATOR_ID,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = RUN_BODY,
) -> tuple[int, Any, dict[str, str]]:
    """POST a run (the demo brand's keys and a valid body unless told otherwise)."""
    return call(
        sandbox,
        "POST",
        f"/event-generators/{generator_id}/run",
        headers=JSON_HEADERS if headers is None else headers,
        body=body,
    )


def status_of(
    sandbox: OptimoveCampaignsSandbox, execution_id: str, headers: dict[str, str] = DEMO_HEADERS
) -> tuple[int, Any, dict[str, str]]:
    """GET an execution's status."""
    return call(sandbox, "GET", f"/executions/{execution_id}/status", headers=headers)


# -- auth, validation, lookups -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "error", "message"),
    [
        ({"content-type": "application/json"}, 401, "Unauthorized", "Invalid or missing API key"),
        (
            {**JSON_HEADERS, "x-api-key": "sandbox-optimove-brand-key"},
            401,
            "Unauthorized",
            "Invalid or missing API key",
        ),
        (
            {"x-api-key": DEMO_API_KEY, "content-type": "application/json"},
            403,
            "Forbidden",
            "API key does not have permission for this brand",
        ),
        (
            {**JSON_HEADERS, "x-brand-key": OTHER_BRAND_KEY},
            403,
            "Forbidden",
            "API key does not have permission for this brand",
        ),
    ],
)
def test_run_authentication(
    sandbox: OptimoveCampaignsSandbox,
    headers: dict[str, str],
    status: int,
    error: str,
    message: str,
) -> None:
    answer = run(sandbox, headers=headers)

    assert answer[:2] == (status, {"error": error, "message": message})
    assert sandbox.executions == {}
    assert sandbox.received[0].effect == {
        "rejected": {"status": status, "error": error, "message": message}
    }


@pytest.mark.parametrize(
    ("headers", "body", "detail"),
    [
        ({**DEMO_HEADERS}, RUN_BODY, "Content-Type must be application/json"),
        ({**DEMO_HEADERS, "content-type": "text/plain"}, RUN_BODY, "Content-Type must be"),
        (JSON_HEADERS, b'{"topic_key": "t", "context": {}', "Request body is not valid JSON"),
        (JSON_HEADERS, b"", "Request body is not valid JSON"),
        (JSON_HEADERS, b"\xff\xfe", "Request body is not valid JSON"),
        (JSON_HEADERS, b'{"topic_key":"t","context":{"x":NaN}}', "Request body is not valid JSON"),
        (JSON_HEADERS, b'["t", {}]', "Request body must be a JSON object"),
        (JSON_HEADERS, b'{"context": {}}', "topic_key is required"),
        (JSON_HEADERS, b'{"topic_key": "", "context": {}}', "topic_key must be a non-empty"),
        (JSON_HEADERS, b'{"topic_key": 5, "context": {}}', "topic_key must be a non-empty"),
        (JSON_HEADERS, b'{"topic_key": "t"}', "context is required"),
        (JSON_HEADERS, b'{"topic_key": "t", "context": null}', "context must be a JSON object"),
        (JSON_HEADERS, b'{"topic_key": "t", "context": "x"}', "context must be a JSON object"),
    ],
)
def test_invalid_run_bodies_are_400(
    sandbox: OptimoveCampaignsSandbox, headers: dict[str, str], body: bytes, detail: str
) -> None:
    status, payload, _ = run(sandbox, headers=headers, body=body)

    assert status == 400
    assert payload["error"] == "Bad Request"
    assert payload["message"] == "Invalid request body (missing required fields, invalid JSON)"
    assert payload["detail"].startswith(detail)
    assert sandbox.executions == {}


def test_content_type_with_a_charset_is_json(sandbox: OptimoveCampaignsSandbox) -> None:
    headers = {**DEMO_HEADERS, "content-type": "application/json; charset=utf-8"}

    assert run(sandbox, headers=headers)[0] == 202


@pytest.mark.parametrize(
    ("generator_id", "status", "error", "message"),
    [
        (
            "99999999-abcd-abcd-abcd-999999999999",
            404,
            "Not Found",
            "event_generator_id not found or doesn't belong to your brand",
        ),
        (
            "not-even-a-uuid",
            404,
            "Not Found",
            "event_generator_id not found or doesn't belong to your brand",
        ),
        (
            OTHER_BRAND_GENERATOR_ID,
            404,
            "Not Found",
            "event_generator_id not found or doesn't belong to your brand",
        ),
        (
            NEWSLETTER_GENERATOR_ID,
            422,
            "Unprocessable Entity",
            'Event Generator exists but is not type "API Triggered (Preference Center)"',
        ),
    ],
)
def test_unknown_foreign_and_non_api_triggered_generators(
    sandbox: OptimoveCampaignsSandbox, generator_id: str, status: int, error: str, message: str
) -> None:
    answer = run(sandbox, generator_id)

    assert answer[:2] == (status, {"error": error, "message": message})
    assert sandbox.executions == {}


def test_checks_come_in_the_documented_order(sandbox: OptimoveCampaignsSandbox) -> None:
    # Unknown generator and a bad body: the auth failures win, then the body, then the lookup.
    unknown = "99999999-abcd-abcd-abcd-999999999999"
    bad_body = b"not json"

    assert run(sandbox, unknown, headers={}, body=bad_body)[0] == 401
    assert run(sandbox, unknown, headers={"x-api-key": DEMO_API_KEY}, body=bad_body)[0] == 403
    assert run(sandbox, unknown, body=bad_body)[0] == 400
    assert run(sandbox, unknown)[0] == 404
    assert run(sandbox, NEWSLETTER_GENERATOR_ID)[0] == 422
    assert sandbox.state()["rejected"] == {"401": 1, "403": 1, "400": 1, "404": 1, "422": 1}


def test_a_percent_encoded_generator_id_is_decoded(sandbox: OptimoveCampaignsSandbox) -> None:
    encoded = GOAL_SCORED_GENERATOR_ID.replace("-", "%2D")

    status, payload, _ = run(sandbox, encoded)

    assert status == 202
    assert sandbox.executions[payload["execution_id"]].event_generator_id == (
        GOAL_SCORED_GENERATOR_ID
    )


# -- runs and executions -----------------------------------------------------------------------


def test_a_run_is_queued_and_identical_runs_are_not_deduplicated(
    sandbox: OptimoveCampaignsSandbox,
) -> None:
    first = run(sandbox)
    second = run(sandbox)

    assert first[0] == second[0] == 202
    assert first[1]["status"] == "queued"
    assert set(first[1]) == {"execution_id", "status"}
    assert first[1]["execution_id"] != second[1]["execution_id"]
    assert first[2]["Content-Type"].startswith("application/json")
    state = sandbox.state()
    assert state["runs_accepted"] == {"demo-brand": 2}
    assert [execution["context"] for execution in state["executions"]] == [
        {"match_id": "abc123"},
        {"match_id": "abc123"},
    ]
    assert [request.effect for request in sandbox.received] == [
        {"execution_id": first[1]["execution_id"]},
        {"execution_id": second[1]["execution_id"]},
    ]


def test_an_execution_moves_through_its_statuses_on_the_clock(
    sandbox: OptimoveCampaignsSandbox,
) -> None:
    execution_id = run(sandbox)[1]["execution_id"]
    seen = []
    for step in (0, 0.999, 0.001, 1.5, 0.5, 3600):
        sandbox.clock.advance(step)
        status, payload, _ = status_of(sandbox, execution_id)
        assert status == 200
        seen.append(payload)

    assert [payload["status"] for payload in seen] == [
        "queued",
        "queued",
        "processing",
        "processing",
        "published",
        "published",
    ]
    assert seen[0] == {
        "execution_id": execution_id,
        "status": "queued",
        "created_at": "2026-01-16T12:00:00Z",
        "updated_at": "2026-01-16T12:00:00Z",
        "event_generator_id": MATCH_START_GENERATOR_ID,
        "topic_key": "event_reminders+NFL",
    }
    assert seen[2]["updated_at"] == "2026-01-16T12:00:01Z"
    assert seen[-1] == {
        **seen[0],
        "status": "published",
        "updated_at": "2026-01-16T12:00:03Z",
        "audience_size": 127_450,
    }
    assert sandbox.state()["status_reads"] == {"demo-brand": 6}
    assert sandbox.received[-1].effect == {"read": execution_id}


def test_a_failing_topic_ends_failed_with_an_error(sandbox: OptimoveCampaignsSandbox) -> None:
    body = b'{"topic_key":"will-Fail-always","context":{}}'
    execution_id = run(sandbox, body=body)[1]["execution_id"]
    sandbox.clock.advance(3)

    payload = status_of(sandbox, execution_id)[1]

    assert payload["status"] == "failed"
    assert payload["error_code"] == "audience_resolution_failed"
    assert payload["error_message"] == (
        "Audience resolution failed: Preference Centre topic 'will-Fail-always' could not be "
        "resolved."
    )
    assert "audience_size" not in payload


def test_audience_sizes_are_configured_or_derived_deterministically() -> None:
    generator = EventGenerator("g", "G", audiences={"nfl": 7})

    assert generator.audience_size("nfl") == 7
    assert generator.audience_size("nba") == generator.audience_size("nba")
    assert 1000 <= generator.audience_size("nba") < 100_000
    assert generator.audience_size("nba") != generator.audience_size("nhl")
    # crc32, not hash(): the same in every process (the demo's worker and web server agree).
    assert generator.audience_size("event_reminders") == 69_305


def test_durations_are_configurable(sandbox: OptimoveCampaignsSandbox) -> None:
    quick = OptimoveCampaignsSandbox(
        SandboxClock(start=START, scale=0), processing_after_seconds=0, complete_after_seconds=0.5
    )
    execution_id = run(quick)[1]["execution_id"]
    assert status_of(quick, execution_id)[1]["status"] == "processing"
    quick.clock.advance(0.5)
    assert status_of(quick, execution_id)[1]["status"] == "published"

    sandbox.control("set_durations", {"processing_after_seconds": 10, "complete_after_seconds": 20})
    slow = run(sandbox)[1]["execution_id"]
    sandbox.clock.advance(19)
    assert status_of(sandbox, slow)[1]["status"] == "processing"
    with pytest.raises(ValueError, match="durations"):
        sandbox.control(
            "set_durations", {"processing_after_seconds": 5, "complete_after_seconds": 1}
        )


def test_status_of_unknown_and_foreign_executions(sandbox: OptimoveCampaignsSandbox) -> None:
    theirs = call(
        sandbox,
        "POST",
        f"/event-generators/{OTHER_BRAND_GENERATOR_ID}/run",
        headers={**OTHER_HEADERS, "content-type": "application/json"},
        body=RUN_BODY,
    )
    assert theirs[0] == 202

    assert status_of(sandbox, "exec-abc-123-xyz")[:2] == (
        404,
        {"error": "Not Found", "message": "Execution ID not found"},
    )
    assert status_of(sandbox, theirs[1]["execution_id"])[:2] == (
        403,
        {
            "error": "Forbidden",
            "message": "API key does not have permission for this execution's brand",
        },
    )
    assert status_of(sandbox, theirs[1]["execution_id"], headers={})[0] == 401
    assert status_of(sandbox, theirs[1]["execution_id"], headers=OTHER_HEADERS)[0] == 200


# -- rate limit --------------------------------------------------------------------------------


def test_the_rate_limit_is_per_brand_per_second_across_both_endpoints(
    sandbox: OptimoveCampaignsSandbox,
) -> None:
    sandbox.clock.set(START + timedelta(milliseconds=250))
    sandbox.control("set_rate_limit", {"per_second": 3, "brand": "demo-brand"})
    execution_id = run(sandbox)[1]["execution_id"]
    assert status_of(sandbox, execution_id)[0] == 200
    assert run(sandbox)[0] == 202

    status, payload, headers = run(sandbox)
    assert status == 429
    assert payload == {
        "error": "Too Many Requests",
        "message": "Rate limit exceeded (3 req/s per brand)",
    }
    assert headers["Retry-After"] == "1"
    assert status_of(sandbox, execution_id)[0] == 429
    # Another brand has its own budget; unauthenticated requests spend nobody's.
    other = call(
        sandbox,
        "POST",
        f"/event-generators/{OTHER_BRAND_GENERATOR_ID}/run",
        headers={**OTHER_HEADERS, "content-type": "application/json"},
        body=RUN_BODY,
    )
    assert other[0] == 202
    assert run(sandbox, headers={})[0] == 401

    # A sliding window: the first request (at .250) leaves it one second later, not at the
    # next whole second.
    sandbox.clock.advance(0.75)
    assert run(sandbox)[0] == 429
    sandbox.clock.advance(0.249999)
    assert run(sandbox)[0] == 429
    sandbox.clock.advance(0.000001)
    assert [run(sandbox)[0] for _ in range(4)] == [202, 202, 202, 429]

    state = sandbox.state()
    assert state["throttled"] == {"demo-brand": 5}
    assert state["runs_accepted"] == {"demo-brand": 5, "other-brand": 1}
    assert state["brands"]["demo-brand"]["rate_limit_per_second"] == 3
    assert state["brands"]["other-brand"]["rate_limit_per_second"] == 500


def test_a_burst_across_a_whole_second_never_gets_twice_the_limit_through(
    sandbox: OptimoveCampaignsSandbox,
) -> None:
    # A fixed window would admit 3 at .900 and 3 more at 1.100: 6 within 0.2 s.
    sandbox.control("set_rate_limit", {"per_second": 3, "brand": "demo-brand"})
    sandbox.clock.set(START + timedelta(milliseconds=900))
    assert [run(sandbox)[0] for _ in range(3)] == [202, 202, 202]

    sandbox.clock.set(START + timedelta(milliseconds=1100))
    status, _, headers = run(sandbox)
    assert status == 429
    assert headers["Retry-After"] == "1"

    sandbox.clock.set(START + timedelta(milliseconds=1900))
    assert [run(sandbox)[0] for _ in range(4)] == [202, 202, 202, 429]
    assert sandbox.state()["runs_accepted"] == {"demo-brand": 6}


def test_no_one_second_interval_holds_more_than_the_limit(
    sandbox: OptimoveCampaignsSandbox,
) -> None:
    sandbox.control("set_rate_limit", {"per_second": 10, "brand": "demo-brand"})
    admitted: list[float] = []
    # 40 requests every 37 ms (27/s offered), over several whole-second boundaries.
    for step in range(40):
        at = step * 0.037
        sandbox.clock.set(START + timedelta(seconds=at))
        if run(sandbox)[0] == 202:
            admitted.append(at)

    for start in admitted:
        inside = [moment for moment in admitted if start <= moment < start + 1.0]
        assert len(inside) <= 10
    # The window slides: the sandbox keeps admitting at the limit, not in bursts per second.
    assert len(admitted) >= 14


def test_a_lowered_limit_waits_for_enough_requests_to_leave(
    sandbox: OptimoveCampaignsSandbox,
) -> None:
    sandbox.clock.set(START)
    for _ in range(5):
        assert run(sandbox)[0] == 202
    sandbox.control("set_rate_limit", {"per_second": 2, "brand": "demo-brand"})
    assert run(sandbox)[0] == 429
    sandbox.clock.advance(1)
    assert run(sandbox)[0] == 202


def test_a_burst_over_500_per_second_over_http_gets_429_with_retry_after() -> None:
    sandbox = OptimoveCampaignsSandbox(SandboxClock(start=START, scale=0))
    statuses: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def burst(url: str) -> None:
        with requests.Session() as session:
            for _ in range(20):
                response = session.post(url, data=RUN_BODY, headers=JSON_HEADERS, timeout=10)
                with lock:
                    statuses.append((response.status_code, response.headers.get("Retry-After")))

    with SandboxServer({"/smart-campaigns/v1": sandbox}) as server:
        url = server.url("/smart-campaigns/v1") + RUN_PATH
        threads = [threading.Thread(target=burst, args=(url,)) for _ in range(26)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(statuses) == 520
        assert statuses.count((202, None)) == 500
        assert statuses.count((429, "1")) == 20
        state = sandbox.state()
        assert state["runs_accepted"] == {"demo-brand": 500}
        assert state["throttled"] == {"demo-brand": 20}
        assert len(state["executions"]) == 500

        sandbox.clock.advance(1)
        assert (
            requests.post(url, data=RUN_BODY, headers=JSON_HEADERS, timeout=10).status_code == 202
        )


# -- controls, state, reset --------------------------------------------------------------------


def test_control_actions(sandbox: OptimoveCampaignsSandbox) -> None:
    sandbox.control(
        "add_brand",
        {
            "brand": "acme",
            "api_key": "acme-api",
            "brand_key": "acme-brand",
            "rate_limit_per_second": 9,
        },
    )
    sandbox.control(
        "add_event_generator",
        {
            "brand": "acme",
            "event_generator_id": "44444444-abcd-abcd-abcd-444444444444",
            "name": "Creator Goes Live",
            "audiences": {"creators": 42},
            "fail_topics": ["broken-topic"],
        },
    )
    sandbox.control(
        "add_event_generator",
        {
            "brand": "acme",
            "event_generator_id": "55555555-abcd-abcd-abcd-555555555555",
            "name": "Birthday",
            "type": "scheduled",
        },
    )
    acme = {
        "x-api-key": "acme-api",
        "x-brand-key": "acme-brand",
        "content-type": "application/json",
    }
    live = "44444444-abcd-abcd-abcd-444444444444"

    ok = run(sandbox, live, headers=acme, body=b'{"topic_key":"creators","context":{}}')
    broken = run(sandbox, live, headers=acme, body=b'{"topic_key":"broken-topic","context":{}}')
    assert ok[0] == broken[0] == 202
    assert run(sandbox, "55555555-abcd-abcd-abcd-555555555555", headers=acme)[0] == 422
    assert run(sandbox, live)[0] == 404  # demo-brand cannot see acme's generator
    sandbox.clock.advance(3)
    assert status_of(sandbox, ok[1]["execution_id"], headers=acme)[1]["audience_size"] == 42
    assert status_of(sandbox, broken[1]["execution_id"], headers=acme)[1]["status"] == "failed"

    forced = sandbox.control(
        "set_execution_status",
        {
            "execution_id": ok[1]["execution_id"],
            "status": "failed",
            "error_code": "frequency_cap",
            "error_message": "Capped.",
        },
    )
    assert (forced["status"], forced["error_code"], forced["error_message"]) == (
        "failed",
        "frequency_cap",
        "Capped.",
    )
    sandbox.clock.advance(60)
    assert status_of(sandbox, ok[1]["execution_id"], headers=acme)[1]["updated_at"] == (
        "2026-01-16T12:00:03Z"
    )

    assert sandbox.control("set_rate_limit", {"per_second": 50}) == {
        "demo-brand": 50,
        "other-brand": 50,
        "acme": 50,
    }
    assert sandbox.control("inject_server_error", {}) == {"pending": 1}
    assert run(sandbox)[:2] == (
        500,
        {"error": "Internal Server Error", "message": "Server-side issue"},
    )
    assert run(sandbox)[0] == 202

    with pytest.raises(KeyError):
        sandbox.control("launch_rockets", {})
    with pytest.raises(KeyError):
        sandbox.control("set_execution_status", {"execution_id": "exec-nope", "status": "queued"})
    with pytest.raises(ValueError, match="already belongs"):
        sandbox.control("add_brand", {"brand": "x", "api_key": "acme-api", "brand_key": "k"})
    with pytest.raises(ValueError, match="per_second"):
        sandbox.control("set_rate_limit", {"per_second": 0})


def test_state_never_shows_keys_and_reset_restores_the_constructors_registry(
    sandbox: OptimoveCampaignsSandbox,
) -> None:
    sandbox.control("add_brand", {"brand": "acme", "api_key": "acme-api", "brand_key": "acme-b"})
    sandbox.control("set_rate_limit", {"per_second": 1})
    run(sandbox)
    run(sandbox)

    text = json.dumps(sandbox.state())
    for key in (DEMO_API_KEY, DEMO_BRAND_KEY, OTHER_API_KEY, OTHER_BRAND_KEY, "acme-api"):
        assert key not in text

    sandbox.reset()

    state = sandbox.state()
    assert set(state["brands"]) == {"demo-brand", "other-brand"}
    assert state["brands"]["demo-brand"]["rate_limit_per_second"] == 500
    assert state["executions"] == []
    assert state["runs_accepted"] == state["throttled"] == state["rejected"] == {}
    assert sandbox.received == []
    assert run(sandbox)[0] == 202


def test_brands_can_be_given_to_the_constructor() -> None:
    sandbox = OptimoveCampaignsSandbox(
        SandboxClock(start=START, scale=0),
        brands=[
            Brand(
                "solo",
                "solo-api",
                "solo-brand",
                {MATCH_START_GENERATOR_ID: EventGenerator(MATCH_START_GENERATOR_ID, "Match")},
                rate_limit_per_second=1,
            )
        ],
    )
    solo = {
        "x-api-key": "solo-api",
        "x-brand-key": "solo-brand",
        "content-type": "application/json",
    }

    assert run(sandbox)[0] == 401
    assert run(sandbox, headers=solo)[0] == 202
    assert run(sandbox, headers=solo)[0] == 429


def test_the_control_api_over_http() -> None:
    sandbox = OptimoveCampaignsSandbox(SandboxClock(start=START, scale=0))
    with SandboxServer({"/optimove": sandbox}) as server, requests.Session() as session:
        control = server.url("/optimove") + "/__sandbox__"
        added = session.post(
            f"{control}/control/add_event_generator",
            json={
                "brand": "demo-brand",
                "event_generator_id": "66666666-abcd-abcd-abcd-666666666666",
                "name": "Product Restocked",
                "audiences": {"restock": 12},
            },
            timeout=5,
        )
        assert added.status_code == 200
        assert added.json()["ok"] is True

        run_url = (
            server.url("/optimove") + "/event-generators/66666666-abcd-abcd-abcd-666666666666/run"
        )
        ran = session.post(
            run_url,
            data=b'{"topic_key":"restock","context":{"sku":"X1"}}',
            headers=JSON_HEADERS,
            timeout=5,
        )
        assert ran.status_code == 202
        execution_id = ran.json()["execution_id"]

        assert session.post(f"{control}/clock", json={"advance": 3}, timeout=5).status_code == 200
        state = session.get(f"{control}/state", timeout=5).json()
        assert state["name"] == "optimove-campaigns"
        [execution] = state["state"]["executions"]
        assert execution["execution_id"] == execution_id
        assert (execution["status"], execution["audience_size"]) == ("published", 12)
        assert execution["context"] == {"sku": "X1"}
        assert [entry["route"] for entry in state["received"]] == ["run"]

        forced = session.post(
            f"{control}/control/set_execution_status",
            json={"execution_id": execution_id, "status": "processing"},
            timeout=5,
        )
        assert forced.json()["result"]["status"] == "processing"
        unknown = session.post(f"{control}/control/launch_rockets", json={}, timeout=5)
        assert unknown.status_code == 400
        assert session.post(f"{control}/reset", timeout=5).json() == {"ok": True}
        assert session.get(f"{control}/state", timeout=5).json()["state"]["executions"] == []
