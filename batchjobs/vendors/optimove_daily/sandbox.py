"""A faithful fake of Optimove's Batch Process TriggerDaily endpoint, served over real HTTP.

Doc: /work/shared/vendor-docs/optimove-batch-trigger-daily.txt

Routes: `POST /BatchProcessAPI/TriggerDaily` and its alias `POST /current/BatchProcessAPI/TriggerDaily`
are one sandbox route, named `trigger_daily` (faults injected on it apply to both paths). Mount
it under a prefix (`SandboxServer({"/optimove-batch": OptimoveDailySandbox()})`) to play a
regional base URL that carries a path.

Defaults the demo can use (all restored by `reset()`):

    X-API-KEY                              tenant       role                expired
    sandbox-optimove-daily-key             demo         ApiRole (admin)     no
    sandbox-optimove-daily-mail-key        demo-mail    TransactionalMail   no
    sandbox-optimove-daily-3rdparty-key    demo         3rdParty            no   -> 401
    sandbox-optimove-daily-expired-key     demo         ApiRole             yes  -> 403

Every tenant has one batch task, condition "ok" unless set otherwise (`task_conditions=` or the
`set_task_condition` control). Conditions: "ok", "not_found", "not_triggerable",
"misconfigured", "fails_validation".

Checks, in this order (the first that fails answers):

1. API key: missing or unknown -> 401; expired -> 403; role 3rdParty -> 401. All with an empty
   body (the doc gives no body; ASP.NET's authentication handlers send none).
2. Per-tenant rate limit: one request per tenant per 600 s window of the sandbox clock, else 429.
3. Content-Type must be the doc's `application/json` (the media type compared without regard to
   letter case, as HTTP defines media types; the only parameter allowed is `charset=utf-8`)
   -> else 415. `application/*+json` and other JSON-ish types are refused: the doc names one.
4. Body: UTF-8 JSON object, minified, whose only property is the doc's `WaitTimeForValidationSeconds`
   spelled exactly (any other name, including another letter case, is refused), an integer or
   null -> else 400 with one of the plain-text messages below. A value above 30 -> 504 after holding for the
   30-second maximum (scaled, see "Validation wait").
5. The doc's precondition table, in its order: task not found, already running, not in correct
   state, already triggered today (UTC date of the sandbox clock), configured not correctly.
6. Trigger: the task becomes "running" for `task_run_seconds` of sandbox time (default 20 min)
   and the trigger's time and UTC date are recorded; then the validation wait; 200, empty body,
   `Content-Type: text/plain; charset=utf-8` as in the doc's example. A "fails_validation" task
   instead holds for the whole effective wait and answers 400 "validation for Task starting is
   failed".

Choices made where the doc is silent:

- Rate limit: the window is fixed, opened by the first counted request, and is not extended by
  the 429s inside it. The 429 carries no `Retry-After` and an empty body: the doc promises
  neither, only "wait for the current 10-minute window to expire", so a client must fall back to
  the full 600 s (the state's `rate_window_ends_at` tells a test when the window ends). Requests refused with
  401/403 do not count and are never limited: the limit is partitioned by the tenant of an
  accepted key, which a bad or expired key does not yield, and a 3rdParty key is refused by
  authorization before the limiter runs (ASP.NET middleware order: authentication,
  authorization, rate limiter). Every request past authorization counts, including those then
  refused with 400, 415 or 504 (the doc: "all API-key-authenticated requests").
- Body wording (the doc only says a non-minified request "will fail"): 400 with
  "Request body must be minified (compact) JSON" (whitespace outside strings, including a
  trailing newline), "Request body is not valid JSON" (empty, not UTF-8, not JSON),
  "Request body must be a JSON object", "WaitTimeForValidationSeconds must be an integer or
  null" (floats such as 5.0, strings, booleans, values outside a 32-bit integer).
  `{}` and `{"WaitTimeForValidationSeconds":null}` both mean "no extra wait". The property name
  matches case-insensitively and unknown properties are ignored, as ASP.NET's JSON binding
  does. Negative values are accepted and clamped like every value at or below 5.
- A value above 30 is refused as a whole (504, nothing triggered): the doc says any larger
  value "returns 504", which is only deterministic if the service never starts the task.
- "fails_validation": the task never started, so no trigger is recorded and the UTC day stays
  free; the next call (after the window) fails the same way until the condition changes.
- 500 only happens through fault injection (`Fault.SERVER_ERROR`).
- Paths match exactly as the doc writes them (`/BatchProcessAPI/TriggerDaily`,
  `/current/BatchProcessAPI/TriggerDaily`); any other letter case, or a trailing slash, is a 404.
  The doc is silent on case; ASP.NET would be lenient, but a sandbox that accepts what the doc
  does not write would never catch a client that misspells the route.

Validation wait: the endpoint holds the connection until the task starts. A healthy task starts
after `start_latency_seconds` of real time (default 0.05 s). A "fails_validation" task holds for
the effective wait (5 + max(0, value - 5) seconds) times `real_seconds_per_wait_second`
(default 1.0; tests use a tiny factor). The framework runs handlers under `self.lock`, so the
handler only decides how long to hold (a per-thread note) and `dispatch` sleeps after the lock
is released: one tenant's long validation never stalls another tenant's requests.

The effective wait is computed here independently of the client's
`effective_validation_wait_seconds`, so a mistake in one is caught by the contract tests.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from dashboard.vendors.sandbox import (
    FaultPlan,
    Sandbox,
    SandboxClock,
    SandboxRequest,
    SandboxResponse,
    route,
)

ROLE_ADMIN = "ApiRole"
ROLE_TRANSACTIONAL_MAIL = "TransactionalMail"
ROLE_THIRD_PARTY = "3rdParty"
ROLES = (ROLE_ADMIN, ROLE_TRANSACTIONAL_MAIL, ROLE_THIRD_PARTY)

CONDITION_OK = "ok"
CONDITION_NOT_FOUND = "not_found"
CONDITION_NOT_TRIGGERABLE = "not_triggerable"
CONDITION_MISCONFIGURED = "misconfigured"
CONDITION_FAILS_VALIDATION = "fails_validation"
CONDITIONS = (
    CONDITION_OK,
    CONDITION_NOT_FOUND,
    CONDITION_NOT_TRIGGERABLE,
    CONDITION_MISCONFIGURED,
    CONDITION_FAILS_VALIDATION,
)

# The documented messages, word for word (U+2014 em dash).
MESSAGE_TASK_NOT_FOUND = "Cannot trigger daily \u2014 task not found"
MESSAGE_ALREADY_RUNNING = "Cannot trigger daily \u2014 it is already running"
MESSAGE_NOT_IN_CORRECT_STATE = "Cannot trigger daily \u2014 it is not in correct state for running"
MESSAGE_ALREADY_TRIGGERED_TODAY = "Cannot trigger daily \u2014 it was already triggered today"
MESSAGE_CONFIGURED_INCORRECTLY = "Cannot trigger daily \u2014 task configured not correctly"
MESSAGE_VALIDATION_FAILED = "Cannot trigger daily \u2014 validation for Task starting is failed"

# Not in the doc: this sandbox's wording for bodies the endpoint cannot bind.
MESSAGE_NOT_MINIFIED = "Request body must be minified (compact) JSON"
MESSAGE_NOT_JSON = "Request body is not valid JSON"
MESSAGE_NOT_OBJECT = "Request body must be a JSON object"
MESSAGE_WAIT_NOT_INTEGER = "WaitTimeForValidationSeconds must be an integer or null"
MESSAGE_UNKNOWN_PROPERTY = "Unknown property: {name}"

WAIT_PROPERTY = "WaitTimeForValidationSeconds"
DEFAULT_VALIDATION_WAIT_SECONDS = 5
MAXIMUM_VALIDATION_WAIT_SECONDS = 30
RATE_WINDOW_SECONDS = 600
DEFAULT_TASK_RUN_SECONDS = 20 * 60
DEFAULT_START_LATENCY_SECONDS = 0.05
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)

DEFAULT_API_KEY = "sandbox-optimove-daily-key"
DEFAULT_TRANSACTIONAL_MAIL_API_KEY = "sandbox-optimove-daily-mail-key"
DEFAULT_THIRD_PARTY_API_KEY = "sandbox-optimove-daily-3rdparty-key"
DEFAULT_EXPIRED_API_KEY = "sandbox-optimove-daily-expired-key"
DEFAULT_TENANT = "demo"
DEFAULT_TRANSACTIONAL_MAIL_TENANT = "demo-mail"


@dataclass(frozen=True)
class ApiKey:
    """What an X-API-KEY value identifies: the calling tenant, its role, and whether it expired."""

    tenant: str
    role: str = ROLE_ADMIN
    expired: bool = False

    def __post_init__(self) -> None:
        if not self.tenant:
            raise ValueError("an API key needs a tenant")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")


DEFAULT_KEYS: dict[str, ApiKey] = {
    DEFAULT_API_KEY: ApiKey(DEFAULT_TENANT, ROLE_ADMIN),
    DEFAULT_TRANSACTIONAL_MAIL_API_KEY: ApiKey(
        DEFAULT_TRANSACTIONAL_MAIL_TENANT, ROLE_TRANSACTIONAL_MAIL
    ),
    DEFAULT_THIRD_PARTY_API_KEY: ApiKey(DEFAULT_TENANT, ROLE_THIRD_PARTY),
    DEFAULT_EXPIRED_API_KEY: ApiKey(DEFAULT_TENANT, ROLE_ADMIN, expired=True),
}


@dataclass
class BatchTask:
    """One tenant's daily batch task and the tenant's rate-limit window."""

    condition: str = CONDITION_OK
    running_until: datetime | None = None
    triggered_at: list[datetime] = field(default_factory=list)
    rate_window_ends_at: datetime | None = None
    counted_requests: int = 0
    rejections: dict[str, int] = field(default_factory=dict)

    def is_running(self, now: datetime) -> bool:
        """Whether a triggered run is still going at `now`."""
        return self.running_until is not None and now < self.running_until

    def triggered_on(self, day: date) -> bool:
        """Whether a successful trigger happened on the UTC date `day`."""
        # Any trigger, not just the last: tests may set the sandbox clock backwards.
        return any(moment.date() == day for moment in self.triggered_at)

    def describe(self, now: datetime) -> dict[str, Any]:
        """The task as JSON, for `state()`."""
        if self.is_running(now):
            status = "running"
        elif self.triggered_at:
            status = "finished"
        else:
            status = "idle"
        window_open = self.rate_window_ends_at is not None and now < self.rate_window_ends_at
        return {
            "condition": self.condition,
            "status": status,
            "running_until": self.running_until.isoformat() if self.running_until else None,
            "triggered_at": [moment.isoformat() for moment in self.triggered_at],
            "triggered_dates": [moment.date().isoformat() for moment in self.triggered_at],
            "successful_triggers": len(self.triggered_at),
            "rate_window_ends_at": self.rate_window_ends_at.isoformat()
            if self.rate_window_ends_at
            else None,
            "rate_window_open": window_open,
            "counted_requests": self.counted_requests,
            "rejections": dict(self.rejections),
        }


def _as_api_key(value: ApiKey | Mapping[str, Any]) -> ApiKey:
    if isinstance(value, ApiKey):
        return value
    return ApiKey(
        tenant=str(value["tenant"]),
        role=str(value.get("role", ROLE_ADMIN)),
        expired=bool(value.get("expired", False)),
    )


def _check_condition(condition: str) -> str:
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    return condition


def is_minified(text: str) -> bool:
    """Whether JSON text has no whitespace outside its string literals."""
    if not any(character in text for character in " \t\r\n"):
        return True
    inside_string = False
    escaped = False
    for character in text:
        if inside_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                inside_string = False
        elif character == '"':
            inside_string = True
        elif character in " \t\r\n":
            return False
    return True


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A property given twice has no single value to bind.
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("a property is given twice")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser would accept them.
    raise ValueError(f"{name} is not JSON")


class _BodyError(Exception):
    """The body cannot be bound; `message` is the plain-text 400 answer."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def parse_wait_seconds(body: bytes) -> int | None:
    """`WaitTimeForValidationSeconds` from a request body, as the endpoint binds it.

    Raises `_BodyError` with the 400 message when the body is not minified JSON, not an object,
    or the value is not an integer or null.
    """
    try:
        text = body.decode("utf-8")
        payload = json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_object_without_duplicates
        )
    except ValueError:
        raise _BodyError(MESSAGE_NOT_JSON, "invalid_json") from None
    if not is_minified(text):
        raise _BodyError(MESSAGE_NOT_MINIFIED, "not_minified")
    if not isinstance(payload, dict):
        raise _BodyError(MESSAGE_NOT_OBJECT, "not_an_object")
    for name in payload:
        if name != WAIT_PROPERTY:
            raise _BodyError(MESSAGE_UNKNOWN_PROPERTY.format(name=name), "unknown_property")
    value = payload.get(WAIT_PROPERTY)
    if value is None:
        return None
    if type(value) is not int or not INT32_MIN <= value <= INT32_MAX:
        raise _BodyError(MESSAGE_WAIT_NOT_INTEGER, "wait_not_integer")
    return value


def effective_wait_seconds(value: int | None) -> int:
    """The doc's table: a built-in 5 s plus whatever the caller asks above 5."""
    if value is None:
        return DEFAULT_VALIDATION_WAIT_SECONDS
    return DEFAULT_VALIDATION_WAIT_SECONDS + max(0, value - DEFAULT_VALIDATION_WAIT_SECONDS)


def _is_json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type is the doc's `application/json` (optionally `; charset=utf-8`)."""
    media_type, *parameters = (content_type or "").split(";")
    if media_type.strip().lower() != "application/json":
        return False
    for parameter in parameters:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return False
    return True


class OptimoveDailySandbox(Sandbox):
    """Optimove's TriggerDaily endpoint: keys and roles, per-tenant rate limit, task state rules.

    `keys` maps X-API-KEY values to `ApiKey` (or dicts with tenant/role/expired) and replaces the
    default keys when given. `task_conditions` sets tenants' task conditions (tenants not named
    are "ok"). `task_run_seconds` is how long (sandbox clock) a triggered run stays "running".
    `start_latency_seconds` (real) is how long a healthy task takes to start while the caller
    waits; `real_seconds_per_wait_second` scales the doc's validation wait into real sleeping.
    """

    name = "optimove-daily"

    def __init__(
        self,
        clock: SandboxClock | None = None,
        *,
        keys: Mapping[str, ApiKey | Mapping[str, Any]] | None = None,
        task_conditions: Mapping[str, str] | None = None,
        task_run_seconds: float = DEFAULT_TASK_RUN_SECONDS,
        start_latency_seconds: float = DEFAULT_START_LATENCY_SECONDS,
        real_seconds_per_wait_second: float = 1.0,
    ) -> None:
        super().__init__(clock)
        self._initial_keys = {
            api_key: _as_api_key(value)
            for api_key, value in (DEFAULT_KEYS if keys is None else keys).items()
        }
        self._initial_conditions = {
            tenant: _check_condition(condition)
            for tenant, condition in (task_conditions or {}).items()
        }
        self._initial_timing = {
            "task_run_seconds": float(task_run_seconds),
            "start_latency_seconds": float(start_latency_seconds),
            "real_seconds_per_wait_second": float(real_seconds_per_wait_second),
        }
        # How long the current thread must hold its connection once the lock is released.
        self._hold = threading.local()
        self.keys: dict[str, ApiKey] = {}
        self.tasks: dict[str, BatchTask] = {}
        self.task_run_seconds = 0.0
        self.start_latency_seconds = 0.0
        self.real_seconds_per_wait_second = 0.0
        self.reset_state()

    # -- framework hooks --------------------------------------------------------------------

    def reset_state(self) -> None:
        """Back to the constructor's keys, task conditions and timing; no triggers, no windows."""
        with self.lock:
            self.keys = dict(self._initial_keys)
            self.tasks = {}
            for api_key in self.keys.values():
                self.tasks.setdefault(api_key.tenant, BatchTask())
            for tenant, condition in self._initial_conditions.items():
                self.tasks.setdefault(tenant, BatchTask()).condition = condition
            self.task_run_seconds = self._initial_timing["task_run_seconds"]
            self.start_latency_seconds = self._initial_timing["start_latency_seconds"]
            self.real_seconds_per_wait_second = self._initial_timing["real_seconds_per_wait_second"]

    def state(self) -> dict[str, Any]:
        """Keys (without their values), timing, and per tenant: task condition and status,
        running_until, every successful trigger's time and UTC date, the trigger count, the
        rate-limit window, counted requests and rejections by reason."""
        now = self.clock.now()
        with self.lock:
            return {
                "keys": [
                    {"tenant": key.tenant, "role": key.role, "expired": key.expired}
                    for key in self.keys.values()
                ],
                "timing": {
                    "task_run_seconds": self.task_run_seconds,
                    "start_latency_seconds": self.start_latency_seconds,
                    "real_seconds_per_wait_second": self.real_seconds_per_wait_second,
                },
                "tenants": {tenant: task.describe(now) for tenant, task in self.tasks.items()},
            }

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        """Steer the sandbox.

        - add_key {api_key, tenant, role="ApiRole", expired=false}: add or replace a key.
        - set_task_condition {tenant, condition}: one of CONDITIONS (creates the tenant).
        - clear_rate_window {tenant}: the tenant's next request is allowed at once.
        - finish_task {tenant}: a running task finishes now (the day stays triggered).
        - set_timing {task_run_seconds?, start_latency_seconds?, real_seconds_per_wait_second?}.
        """
        if action == "add_key":
            api_key = str(payload["api_key"])
            if not api_key:
                raise ValueError("api_key must not be empty")
            key = _as_api_key(payload)
            self.keys[api_key] = key
            self.tasks.setdefault(key.tenant, BatchTask())
            return {"tenant": key.tenant, "role": key.role, "expired": key.expired}
        if action == "set_task_condition":
            condition = _check_condition(str(payload["condition"]))
            self.tasks.setdefault(str(payload["tenant"]), BatchTask()).condition = condition
            return {"tenant": payload["tenant"], "condition": condition}
        if action == "clear_rate_window":
            self.tasks[str(payload["tenant"])].rate_window_ends_at = None
            return {"tenant": payload["tenant"]}
        if action == "finish_task":
            task = self.tasks[str(payload["tenant"])]
            if task.is_running(self.clock.now()):
                task.running_until = self.clock.now()
            return {
                "tenant": payload["tenant"],
                "status": task.describe(self.clock.now())["status"],
            }
        if action == "set_timing":
            for name in self._initial_timing:
                if name in payload:
                    value = float(payload[name])
                    if value < 0:
                        raise ValueError(f"{name} must not be negative")
                    setattr(self, name, value)
            return {name: getattr(self, name) for name in self._initial_timing}
        raise KeyError(action)

    def dispatch(self, request: SandboxRequest) -> tuple[SandboxResponse | None, FaultPlan | None]:
        """Handle a request under the lock, then hold the connection with the lock released."""
        self._hold.seconds = 0.0
        try:
            response, plan = super().dispatch(request)
        finally:
            seconds = self._hold.seconds
            self._hold.seconds = 0.0
        if seconds > 0:
            time.sleep(seconds)
        return response, plan

    # -- the endpoint -----------------------------------------------------------------------

    @route("POST", r"(?P<alias>/current)?/BatchProcessAPI/TriggerDaily", "trigger_daily")
    def trigger_daily(self, request: SandboxRequest) -> SandboxResponse:
        """POST [/current]/BatchProcessAPI/TriggerDaily."""
        key = self.keys.get(request.header("x-api-key") or "")
        if key is None:
            return self._refuse(401, "", "unauthorized", None)
        if key.expired:
            return self._refuse(403, "", "token_expired", key.tenant)
        if key.role == ROLE_THIRD_PARTY:
            return self._refuse(401, "", "role_blocked", key.tenant)

        now = self.clock.now()
        task = self.tasks.setdefault(key.tenant, BatchTask())
        if task.rate_window_ends_at is not None and now < task.rate_window_ends_at:
            seconds_left = math.ceil((task.rate_window_ends_at - now).total_seconds())
            # The effect (never sent to the caller) tells tests how long the window still runs.
            return self._refuse(
                429, "", "rate_limited", key.tenant, window_seconds_left=max(1, seconds_left)
            )
        task.rate_window_ends_at = now + timedelta(seconds=RATE_WINDOW_SECONDS)
        task.counted_requests += 1

        if not _is_json_media_type(request.header("content-type")):
            return self._refuse(415, "", "unsupported_media_type", key.tenant)
        try:
            wait_seconds = parse_wait_seconds(request.body)
        except _BodyError as error:
            return self._refuse(400, error.message, error.reason, key.tenant)
        if wait_seconds is not None and wait_seconds > MAXIMUM_VALIDATION_WAIT_SECONDS:
            self._hold_for(MAXIMUM_VALIDATION_WAIT_SECONDS * self.real_seconds_per_wait_second)
            return self._refuse(504, "Gateway Timeout", "gateway_timeout", key.tenant)
        effective_wait = effective_wait_seconds(wait_seconds)

        refusal = self._precondition_failure(task, now)
        if refusal is not None:
            message, reason = refusal
            return self._refuse(400, message, reason, key.tenant)
        if task.condition == CONDITION_FAILS_VALIDATION:
            self._hold_for(effective_wait * self.real_seconds_per_wait_second)
            return self._refuse(400, MESSAGE_VALIDATION_FAILED, "validation_failed", key.tenant)

        task.running_until = now + timedelta(seconds=self.task_run_seconds)
        task.triggered_at.append(now)
        self._hold_for(self.start_latency_seconds)
        return SandboxResponse.text(
            200,
            "",
            effect={
                "triggered": True,
                "tenant": key.tenant,
                "utc_date": now.date().isoformat(),
                "at": now.isoformat(),
                "effective_wait_seconds": effective_wait,
                "route": "current" if request.params.get("alias") else "default",
            },
        )

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _precondition_failure(task: BatchTask, now: datetime) -> tuple[str, str] | None:
        # The doc's validation table, in its order; validation failure comes after triggering.
        if task.condition == CONDITION_NOT_FOUND:
            return MESSAGE_TASK_NOT_FOUND, "task_not_found"
        if task.is_running(now):
            return MESSAGE_ALREADY_RUNNING, "already_running"
        if task.condition == CONDITION_NOT_TRIGGERABLE:
            return MESSAGE_NOT_IN_CORRECT_STATE, "not_in_correct_state"
        if task.triggered_on(now.date()):
            return MESSAGE_ALREADY_TRIGGERED_TODAY, "already_triggered_today"
        if task.condition == CONDITION_MISCONFIGURED:
            return MESSAGE_CONFIGURED_INCORRECTLY, "configured_incorrectly"
        return None

    def _refuse(
        self,
        status: int,
        text: str,
        reason: str,
        tenant: str | None,
        *,
        window_seconds_left: int | None = None,
    ) -> SandboxResponse:
        if tenant is not None:
            task = self.tasks.setdefault(tenant, BatchTask())
            task.rejections[reason] = task.rejections.get(reason, 0) + 1
        effect: dict[str, Any] = {"triggered": False, "reason": reason, "tenant": tenant}
        if window_seconds_left is not None:
            effect["window_seconds_left"] = window_seconds_left
        return SandboxResponse.text(status, text, effect=effect)

    def _hold_for(self, seconds: float) -> None:
        self._hold.seconds = max(0.0, seconds)
