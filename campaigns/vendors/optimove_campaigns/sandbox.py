"""A faithful fake of Optimove's API-triggered campaigns (Smart Campaigns) API.

Source: /work/shared/vendor-docs/optimove-api-triggered-campaigns.txt. Routes (after the mount
prefix, which plays the part of `https://opti-x.optimove.net/smart-campaigns/v1`):

- `POST /event-generators/{event_generator_id}/run` -> 202 `{"execution_id": ..., "status": "queued"}`
- `GET /executions/{execution_id}/status` -> 200 with the execution's document

Defaults (what `make demo` uses; `default_brands()` builds them):

- brand `demo-brand`: x-api-key `sandbox-optimove-api-key`, x-brand-key
  `sandbox-optimove-brand-key`, 500 requests/second, with the Event Generators
  - `00000000-abcd-abcd-abcd-000000000000` "Match Start Notifications" (API-triggered),
  - `11111111-xyz-xyz-xyz-111111111111` "Goal Scored Notifications" (API-triggered; the doc's
    own example id, which is not a real UUID but is accepted),
  - `22222222-abcd-abcd-abcd-222222222222` "Weekly Newsletter" (type `scheduled`: runs get 422);
- brand `other-brand`: x-api-key `sandbox-optimove-other-api-key`, x-brand-key
  `sandbox-optimove-other-brand-key`, with `33333333-abcd-abcd-abcd-333333333333` "Other Brand
  Promotions" (so a demo-brand run on it is a 404, and reading another brand's execution a 403).
- Audience sizes: the topic keys `event_reminders+NFL` (127450), `00000000-abcd` (1250) and
  `0000-abcd` (980) have fixed sizes; any other topic gets `1000 + crc32(topic_key) % 99000`,
  so the same topic always resolves to the same size, in every process.
- Failing topics: a topic key containing "fail" (any case), or listed in a generator's
  `fail_topics`, makes the execution end `failed` with error_code `audience_resolution_failed`
  and error_message "Audience resolution failed: Preference Centre topic '<topic>' could not be
  resolved."

Rules, in the order they are checked (the doc names the codes, not the order):

1. 401 when x-api-key is missing or unknown.
2. 403 when x-brand-key is missing or is not the brand key of the API key's brand.
3. 429 when the brand is over its limit: 500 requests per second per brand, counted across both
   endpoints over a sliding one-second window of the sandbox clock: a request is admitted only
   if fewer than 500 of the brand's admitted requests arrived in the second before it (a request
   admitted at t counts until t + 1 s). That is the strictest reading of "500 requests/second":
   no interval of one second ever holds more than 500 admitted requests, wherever it starts.
   (A fixed window lets up to twice the limit through across its boundary, and so does a token
   bucket whose capacity is a whole second's worth; the doc does not say which algorithm the
   vendor runs, so the sandbox enforces the rate itself.) The answer carries the doc's
   `Retry-After`: whole seconds until the oldest counted request leaves the window, at least 1
   (always 1 for a one-second window). Requests answered 401/403 are not counted (they cannot be
   attributed to a brand); 429s are not counted. Memory: one timestamp per admitted request in
   the last second, at most the limit per brand.
4. Run: 400 when Content-Type is not application/json, the body is not UTF-8 JSON (NaN and
   Infinity included, as a JSON-strict vendor would), not an object, `topic_key` is missing or not
   a non-empty string, or `context` is missing or not an object. Body checks come before the
   Event Generator lookup, as a framework validating the body before the handler runs would.
5. Run: 404 when the Event Generator is unknown or belongs to another brand (any id shape: the
   sandbox does not second-guess ids with a 400). Status: 404 when the execution is unknown,
   403 when it belongs to another brand (the doc's "API key does not have permission for this
   execution's brand").
6. Run: 422 when the Event Generator exists but is not API-triggered.

Error bodies (the doc shows none) are `{"error": <the doc's Error Code>, "message": <the doc's
Description>}`, plus `"detail"` naming the exact problem on a 400. A 500 (see the
`inject_server_error` control) is `{"error": "Internal Server Error", "message": "Server-side
issue"}`.

Executions (no deduplication: two identical runs are two executions, as the doc's FAQ says) are
`queued` at creation, `processing` one second later, and `published` (with `audience_size`) or
`failed` (with `error_code`, `error_message`) three seconds after creation, all on the sandbox
clock; the durations are constructor arguments and a control action, and each execution keeps
the durations in force when it was created. `updated_at` is the time of the last transition.
`audience_size` appears only once published, error fields only once failed; absent fields are
omitted, as in the doc's example. Times are ISO 8601 UTC to the second with a `Z`. Execution ids
look like the doc's `exec-abc-123-xyz`: `exec-<uuid4>`.

Control actions (`control(action, payload)`, also `POST {prefix}/__sandbox__/control/<action>`):

- `add_brand` {brand, api_key, brand_key, rate_limit_per_second?}
- `add_event_generator` {brand, event_generator_id, name, type? ("api_triggered" or anything
  else -> 422), audiences? {topic_key: size}, fail_topics? [topic_key]}
- `set_execution_status` {execution_id, status, audience_size?, error_code?, error_message?}:
  forces a status (any string, so clients can be shown one they do not know); it sticks, and
  updated_at becomes now.
- `set_rate_limit` {per_second, brand?}: one brand, or every brand when `brand` is absent.
- `set_durations` {processing_after_seconds?, complete_after_seconds?}: for new executions.
- `inject_server_error` {count?}: the next `count` requests (1 by default) answer the
  documented 500 and do nothing.

`reset()` forgets executions, counters and injected errors and restores the brands, keys,
Event Generators, limits and durations given to the constructor. `state()` never shows keys.
"""

from __future__ import annotations

import copy
import json
import math
import uuid
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from dashboard.vendors.sandbox import (
    Sandbox,
    SandboxClock,
    SandboxRequest,
    SandboxResponse,
    route,
)

API_TRIGGERED = "api_triggered"

QUEUED = "queued"
PROCESSING = "processing"
PUBLISHED = "published"
FAILED = "failed"

DEFAULT_RATE_LIMIT_PER_SECOND = 500
RATE_WINDOW_MICROSECONDS = 1_000_000  # the "per second" of the limit
DEFAULT_PROCESSING_AFTER_SECONDS = 1.0
DEFAULT_COMPLETE_AFTER_SECONDS = 3.0

DEMO_BRAND = "demo-brand"
DEMO_API_KEY = "sandbox-optimove-api-key"
DEMO_BRAND_KEY = "sandbox-optimove-brand-key"
MATCH_START_GENERATOR_ID = "00000000-abcd-abcd-abcd-000000000000"
GOAL_SCORED_GENERATOR_ID = "11111111-xyz-xyz-xyz-111111111111"
NEWSLETTER_GENERATOR_ID = "22222222-abcd-abcd-abcd-222222222222"
OTHER_BRAND = "other-brand"
OTHER_API_KEY = "sandbox-optimove-other-api-key"
OTHER_BRAND_KEY = "sandbox-optimove-other-brand-key"
OTHER_BRAND_GENERATOR_ID = "33333333-abcd-abcd-abcd-333333333333"

FAIL_TOPIC_MARKER = "fail"
FAILURE_ERROR_CODE = "audience_resolution_failed"
FORCED_FAILURE_ERROR_CODE = "execution_failed"

# The doc's "Error Code" column, used as the `error` of every error body.
REASON_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}

# The doc's "Description" column, word for word.
BAD_REQUEST_MESSAGE = "Invalid request body (missing required fields, invalid JSON)"
UNAUTHORIZED_MESSAGE = "Invalid or missing API key"
FORBIDDEN_RUN_MESSAGE = "API key does not have permission for this brand"
FORBIDDEN_STATUS_MESSAGE = "API key does not have permission for this execution's brand"
GENERATOR_NOT_FOUND_MESSAGE = "event_generator_id not found or doesn't belong to your brand"
NOT_API_TRIGGERED_MESSAGE = (
    'Event Generator exists but is not type "API Triggered (Preference Center)"'
)
EXECUTION_NOT_FOUND_MESSAGE = "Execution ID not found"
SERVER_ERROR_MESSAGE = "Server-side issue"


def rate_limit_message(per_second: int) -> str:
    """The 429 message, naming the brand's limit as the doc does ("500 req/s per brand")."""
    return f"Rate limit exceeded ({per_second} req/s per brand)"


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC to the second with a `Z`, as in the doc's examples."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class EventGenerator:
    """One Event Generator of a brand, as marketing configured it in Smart Campaigns."""

    event_generator_id: str
    name: str
    type: str = API_TRIGGERED
    audiences: dict[str, int] = field(default_factory=dict)  # topic_key -> subscribers
    fail_topics: list[str] = field(default_factory=list)

    def audience_size(self, topic_key: str) -> int:
        """Subscribers of the topic: configured, else derived from the key (stable everywhere)."""
        if topic_key in self.audiences:
            return self.audiences[topic_key]
        return 1000 + zlib.crc32(topic_key.encode("utf-8")) % 99_000

    def fails(self, topic_key: str) -> bool:
        """Whether executions for this topic end `failed`."""
        return topic_key in self.fail_topics or FAIL_TOPIC_MARKER in topic_key.lower()

    def describe(self) -> dict[str, Any]:
        """The generator as `state()` shows it."""
        return {
            "name": self.name,
            "type": self.type,
            "audiences": dict(self.audiences),
            "fail_topics": list(self.fail_topics),
        }


@dataclass
class Brand:
    """A brand with its key pair, its Event Generators and its rate limit."""

    name: str
    api_key: str
    brand_key: str
    event_generators: dict[str, EventGenerator] = field(default_factory=dict)
    rate_limit_per_second: int = DEFAULT_RATE_LIMIT_PER_SECOND


@dataclass
class Execution:
    """One accepted run, progressing on the sandbox clock unless a status was forced."""

    execution_id: str
    brand: str
    event_generator_id: str
    topic_key: str
    context: dict[str, Any]
    created_at: datetime
    processing_at: datetime
    finished_at: datetime
    audience_size: int
    error_code: str | None = None
    error_message: str | None = None
    forced_status: str | None = None
    forced_at: datetime | None = None

    def status_at(self, now: datetime) -> tuple[str, datetime]:
        """The status at `now` and when it was entered."""
        if self.forced_status is not None and self.forced_at is not None:
            return self.forced_status, self.forced_at
        if now >= self.finished_at:
            return (FAILED if self.error_code else PUBLISHED), self.finished_at
        if now >= self.processing_at:
            return PROCESSING, self.processing_at
        return QUEUED, self.created_at

    def document(self, now: datetime) -> dict[str, Any]:
        """The status endpoint's answer at `now`."""
        status, updated_at = self.status_at(now)
        document: dict[str, Any] = {
            "execution_id": self.execution_id,
            "status": status,
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(updated_at),
            "event_generator_id": self.event_generator_id,
            "topic_key": self.topic_key,
        }
        if status == PUBLISHED:
            document["audience_size"] = self.audience_size
        elif status == FAILED:
            document["error_code"] = self.error_code or FORCED_FAILURE_ERROR_CODE
            document["error_message"] = self.error_message or "Execution failed."
        return document


def default_brands() -> list[Brand]:
    """The demo's brands, keys and Event Generators (see the module docstring)."""
    sample_audiences = {"event_reminders+NFL": 127_450, "00000000-abcd": 1250, "0000-abcd": 980}
    return [
        Brand(
            name=DEMO_BRAND,
            api_key=DEMO_API_KEY,
            brand_key=DEMO_BRAND_KEY,
            event_generators={
                MATCH_START_GENERATOR_ID: EventGenerator(
                    MATCH_START_GENERATOR_ID,
                    "Match Start Notifications",
                    audiences=dict(sample_audiences),
                ),
                GOAL_SCORED_GENERATOR_ID: EventGenerator(
                    GOAL_SCORED_GENERATOR_ID,
                    "Goal Scored Notifications",
                    audiences=dict(sample_audiences),
                ),
                NEWSLETTER_GENERATOR_ID: EventGenerator(
                    NEWSLETTER_GENERATOR_ID, "Weekly Newsletter", type="scheduled"
                ),
            },
        ),
        Brand(
            name=OTHER_BRAND,
            api_key=OTHER_API_KEY,
            brand_key=OTHER_BRAND_KEY,
            event_generators={
                OTHER_BRAND_GENERATOR_ID: EventGenerator(
                    OTHER_BRAND_GENERATOR_ID, "Other Brand Promotions"
                ),
            },
        ),
    ]


class OptimoveCampaignsSandbox(Sandbox):
    """Optimove's Smart Campaigns API: run Event Generators, read executions' status."""

    name = "optimove-campaigns"

    def __init__(
        self,
        clock: SandboxClock | None = None,
        *,
        brands: list[Brand] | None = None,
        processing_after_seconds: float = DEFAULT_PROCESSING_AFTER_SECONDS,
        complete_after_seconds: float = DEFAULT_COMPLETE_AFTER_SECONDS,
    ) -> None:
        super().__init__(clock)
        self._initial_brands = copy.deepcopy(brands if brands is not None else default_brands())
        self._initial_durations = (processing_after_seconds, complete_after_seconds)
        self.reset_state()

    # -- registry ---------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Forget executions and counters; restore the constructor's brands and durations."""
        self.brands: dict[str, Brand] = {}
        self._brand_by_api_key: dict[str, Brand] = {}
        for brand in copy.deepcopy(self._initial_brands):
            self._register(brand)
        self.processing_after_seconds, self.complete_after_seconds = self._initial_durations
        self.executions: dict[str, Execution] = {}
        # brand -> sandbox-clock times (microseconds) of its admitted requests in the last second.
        self._admitted: dict[str, deque[int]] = {}
        self.runs_accepted: Counter[str] = Counter()
        self.status_reads: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.rejected: Counter[int] = Counter()
        self._server_errors_pending = 0

    def _register(self, brand: Brand) -> None:
        owner = self._brand_by_api_key.get(brand.api_key)
        if owner is not None and owner.name != brand.name:
            raise ValueError(f"that API key already belongs to brand {owner.name!r}")
        previous = self.brands.get(brand.name)
        if previous is not None:
            self._brand_by_api_key.pop(previous.api_key, None)
        self.brands[brand.name] = brand
        self._brand_by_api_key[brand.api_key] = brand

    # -- helpers ----------------------------------------------------------------------------

    def _error(
        self,
        status: int,
        message: str,
        *,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SandboxResponse:
        payload: dict[str, Any] = {"error": REASON_PHRASES[status], "message": message}
        if detail:
            payload["detail"] = detail
        self.rejected[status] += 1
        return SandboxResponse.json(
            status,
            payload,
            headers=headers,
            effect={"rejected": {"status": status, **payload}},
        )

    def _admit(self, request: SandboxRequest, forbidden_message: str) -> Brand | SandboxResponse:
        """Authenticate and rate-limit: the caller's brand, or the answer that refuses it."""
        if self._server_errors_pending > 0:
            self._server_errors_pending -= 1
            return self._error(500, SERVER_ERROR_MESSAGE)
        brand = self._brand_by_api_key.get(request.header("x-api-key") or "")
        if brand is None:
            return self._error(401, UNAUTHORIZED_MESSAGE)
        if request.header("x-brand-key") != brand.brand_key:
            return self._error(403, forbidden_message)
        retry_after = self._take_rate_slot(brand)
        if retry_after is not None:
            self.throttled[brand.name] += 1
            return self._error(
                429,
                rate_limit_message(brand.rate_limit_per_second),
                headers={"Retry-After": str(retry_after)},
            )
        return brand

    def _take_rate_slot(self, brand: Brand) -> int | None:
        """Admit one request in the brand's sliding window: None, or whole seconds to wait."""
        # Whole microseconds, so that "exactly one second later" is exact.
        now = round(self.clock.now().timestamp() * 1_000_000)
        admitted = self._admitted.setdefault(brand.name, deque())
        if admitted and admitted[-1] > now:
            # The sandbox clock was set back: what was admitted "later" no longer says anything.
            admitted.clear()
        while admitted and admitted[0] <= now - RATE_WINDOW_MICROSECONDS:
            admitted.popleft()
        if len(admitted) >= brand.rate_limit_per_second:
            # A limit lowered by `set_rate_limit` may leave more than it allows; the oldest that
            # must leave before one more fits decides the wait.
            oldest_to_leave = admitted[len(admitted) - brand.rate_limit_per_second]
            return max(1, math.ceil((oldest_to_leave + RATE_WINDOW_MICROSECONDS - now) / 1_000_000))
        admitted.append(now)
        return None

    @staticmethod
    def _run_body(request: SandboxRequest) -> dict[str, Any] | str:
        """The run body, checked as the vendor checks it, or the words for what is wrong with it."""
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return "Content-Type must be application/json"
        try:
            body = json.loads(request.body.decode("utf-8"), parse_constant=_refuse_constant)
        except ValueError:
            return "Request body is not valid JSON"
        if not isinstance(body, dict):
            return "Request body must be a JSON object"
        topic_key = body.get("topic_key")
        if "topic_key" not in body:
            return "topic_key is required"
        if not isinstance(topic_key, str) or not topic_key.strip():
            return "topic_key must be a non-empty string"
        if "context" not in body:
            return "context is required"
        if not isinstance(body["context"], dict):
            return "context must be a JSON object"
        return body

    # -- routes -----------------------------------------------------------------------------

    @route("POST", r"/event-generators/(?P<event_generator_id>[^/]+)/run", name="run")
    def run(self, request: SandboxRequest) -> SandboxResponse:
        """Trigger an execution of an API-triggered Event Generator."""
        admitted = self._admit(request, FORBIDDEN_RUN_MESSAGE)
        if isinstance(admitted, SandboxResponse):
            return admitted
        brand = admitted
        body = self._run_body(request)
        if isinstance(body, str):
            return self._error(400, BAD_REQUEST_MESSAGE, detail=body)
        generator = brand.event_generators.get(unquote(request.params["event_generator_id"]))
        if generator is None:
            return self._error(404, GENERATOR_NOT_FOUND_MESSAGE)
        if generator.type != API_TRIGGERED:
            return self._error(422, NOT_API_TRIGGERED_MESSAGE)
        now = self.clock.now()
        topic_key: str = body["topic_key"]
        fails = generator.fails(topic_key)
        execution = Execution(
            execution_id=f"exec-{uuid.uuid4()}",
            brand=brand.name,
            event_generator_id=generator.event_generator_id,
            topic_key=topic_key,
            context=body["context"],
            created_at=now,
            processing_at=now + timedelta(seconds=self.processing_after_seconds),
            finished_at=now + timedelta(seconds=self.complete_after_seconds),
            audience_size=generator.audience_size(topic_key),
            error_code=FAILURE_ERROR_CODE if fails else None,
            error_message=(
                f"Audience resolution failed: Preference Centre topic {topic_key!r} could not"
                " be resolved."
                if fails
                else None
            ),
        )
        self.executions[execution.execution_id] = execution
        self.runs_accepted[brand.name] += 1
        return SandboxResponse.json(
            202,
            {"execution_id": execution.execution_id, "status": QUEUED},
            effect={"execution_id": execution.execution_id},
        )

    @route("GET", r"/executions/(?P<execution_id>[^/]+)/status", name="status")
    def status(self, request: SandboxRequest) -> SandboxResponse:
        """An execution's current status and details."""
        admitted = self._admit(request, FORBIDDEN_STATUS_MESSAGE)
        if isinstance(admitted, SandboxResponse):
            return admitted
        execution = self.executions.get(unquote(request.params["execution_id"]))
        if execution is None:
            return self._error(404, EXECUTION_NOT_FOUND_MESSAGE)
        if execution.brand != admitted.name:
            return self._error(403, FORBIDDEN_STATUS_MESSAGE)
        self.status_reads[admitted.name] += 1
        return SandboxResponse.json(
            200,
            execution.document(self.clock.now()),
            effect={"read": execution.execution_id},
        )

    def body_too_large(self, request: SandboxRequest, length: int) -> SandboxResponse:
        """The gateway's answer to an oversized body, in the vendor's error shape."""
        return SandboxResponse.json(
            413, {"error": REASON_PHRASES[413], "message": "Request body too large"}
        )

    # -- state and control ------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Brands (without keys), executions as of now, and counts of real effects."""
        with self.lock:
            now = self.clock.now()
            return {
                "brands": {
                    brand.name: {
                        "rate_limit_per_second": brand.rate_limit_per_second,
                        "event_generators": {
                            generator_id: generator.describe()
                            for generator_id, generator in brand.event_generators.items()
                        },
                    }
                    for brand in self.brands.values()
                },
                "durations": {
                    "processing_after_seconds": self.processing_after_seconds,
                    "complete_after_seconds": self.complete_after_seconds,
                },
                "executions": [
                    {
                        **execution.document(now),
                        "brand": execution.brand,
                        "context": execution.context,
                    }
                    for execution in self.executions.values()
                ],
                "runs_accepted": dict(self.runs_accepted),
                "status_reads": dict(self.status_reads),
                "throttled": dict(self.throttled),
                "rejected": {str(status): count for status, count in self.rejected.items()},
            }

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        """Steer the sandbox; see the module docstring for the actions and their payloads."""
        with self.lock:
            if action == "add_brand":
                return self._add_brand(payload)
            if action == "add_event_generator":
                return self._add_event_generator(payload)
            if action == "set_execution_status":
                return self._set_execution_status(payload)
            if action == "set_rate_limit":
                return self._set_rate_limit(payload)
            if action == "set_durations":
                return self._set_durations(payload)
            if action == "inject_server_error":
                count = int(payload.get("count", 1))
                if count < 0:
                    raise ValueError("count must be 0 or more")
                self._server_errors_pending = count
                return {"pending": count}
        raise KeyError(action)

    def _add_brand(self, payload: dict[str, Any]) -> dict[str, Any]:
        name, api_key, brand_key = (
            _required_text(payload, "brand"),
            _required_text(payload, "api_key"),
            _required_text(payload, "brand_key"),
        )
        limit = int(payload.get("rate_limit_per_second", DEFAULT_RATE_LIMIT_PER_SECOND))
        if limit < 1:
            raise ValueError("rate_limit_per_second must be at least 1")
        existing = self.brands.get(name)
        self._register(
            Brand(
                name=name,
                api_key=api_key,
                brand_key=brand_key,
                event_generators=existing.event_generators if existing else {},
                rate_limit_per_second=limit,
            )
        )
        return {"brand": name}

    def _add_event_generator(self, payload: dict[str, Any]) -> dict[str, Any]:
        brand = self.brands[_required_text(payload, "brand")]
        generator_id = _required_text(payload, "event_generator_id")
        audiences = payload.get("audiences") or {}
        fail_topics = payload.get("fail_topics") or []
        if not isinstance(audiences, dict) or not all(
            isinstance(size, int) and size >= 0 for size in audiences.values()
        ):
            raise ValueError("audiences must map topic keys to sizes (0 or more)")
        if not isinstance(fail_topics, list):
            raise ValueError("fail_topics must be a list of topic keys")
        brand.event_generators[generator_id] = EventGenerator(
            event_generator_id=generator_id,
            name=_required_text(payload, "name"),
            type=str(payload.get("type", API_TRIGGERED)),
            audiences={str(topic): size for topic, size in audiences.items()},
            fail_topics=[str(topic) for topic in fail_topics],
        )
        return {"brand": brand.name, "event_generator_id": generator_id}

    def _set_execution_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        execution = self.executions[_required_text(payload, "execution_id")]
        execution.forced_status = _required_text(payload, "status")
        execution.forced_at = self.clock.now()
        if payload.get("audience_size") is not None:
            execution.audience_size = int(payload["audience_size"])
        if payload.get("error_code") is not None:
            execution.error_code = str(payload["error_code"])
        if payload.get("error_message") is not None:
            execution.error_message = str(payload["error_message"])
        return execution.document(self.clock.now())

    def _set_rate_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        per_second = int(payload["per_second"])
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        if payload.get("brand") is not None:
            targets = [self.brands[str(payload["brand"])]]
        else:
            targets = list(self.brands.values())
        for brand in targets:
            brand.rate_limit_per_second = per_second
        return {brand.name: per_second for brand in targets}

    def _set_durations(self, payload: dict[str, Any]) -> dict[str, float]:
        processing = float(payload.get("processing_after_seconds", self.processing_after_seconds))
        complete = float(payload.get("complete_after_seconds", self.complete_after_seconds))
        if not 0 <= processing <= complete:
            raise ValueError("durations must satisfy 0 <= processing_after <= complete_after")
        self.processing_after_seconds, self.complete_after_seconds = processing, complete
        return {"processing_after_seconds": processing, "complete_after_seconds": complete}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _required_text(payload: dict[str, Any], name: str) -> str:
    value = payload[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value
