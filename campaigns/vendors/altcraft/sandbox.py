"""Altcraft sandbox: bulk trigger launch, bulk import + trigger task, task status.

Serves, as the vendor docs describe them (JSON only):

- `POST /api/v1.1/campaigns/triggers/start_batch` (route `start_batch`)
- `POST /api/v1.1/campaigns/triggers/import_and_start_batch_task` (route
  `import_and_start_batch_task`)
- `POST /api/v1.1/tasks/status` (route `task_status`)

Defaults (the demo uses them): one account, "demo", with API token `sandbox-altcraft-token`;
active trigger campaigns 1 ("Welcome series"), 8 ("Abandoned cart") and 96 ("Registration
form"), and trigger 2 ("Spring sale (stopped)"), which exists but is not active. Two profiles
exist, so the docs' start_batch examples answer as documented: `6606e08f10bcdd88297057a7`
(example1@example.com, phones +79000000000, Custom_ID "003") and `66101437dc4594c2934da6da`
(example2@example.com, phones +79000000001, Custom_ID "002"). Body limit 10,000,000 bytes, no
rate limit, import tasks take 5 seconds of sandbox time.

Error answers. The docs document one, the body-size refusal, and list no codes; the others are
chosen here in the same style (the envelope's `error` mirrors an HTTP status number) and are
stable. Envelope keys are in alphabetical order, as the docs show them (a Go map marshals so):

| situation                                        | HTTP | error | error_text                    |
|--------------------------------------------------|------|-------|-------------------------------|
| body over the limit (error_debug "http: request  | 400  | 400   | Invalid request               |
|   body too large", as documented)                |      |       |                               |
| body not JSON, or a field of the wrong JSON type | 400  | 400   | Invalid request               |
|   (error_debug: Go's decoder message)            |      |       |                               |
| token missing or unknown                         | 200  | 401   | Invalid token                 |
| the token's rate limit exceeded (Retry-After)    | 429  | 429   | Too many requests             |
| trigger_id missing, bad matching, custom without | 200  | 422   | Invalid parameter             |
|   field_name, data missing/empty, an item without|      |       |   (error_debug names which)   |
|   its matching value, format other than json,    |      |       |                               |
|   bad timeout, task_id missing                   |      |       |                               |
| trigger_id not a campaign of the token's account | 200  | 404   | Trigger campaign not found    |
| trigger campaign not active                      | 200  | 409   | Trigger campaign is not active|
| task_id not a task of the token's account        | 200  | 404   | Task not found                |

Choices where the docs are silent:

- Profiles live in a per-account store. `start_batch` only finds existing profiles: items that
  match nobody are skipped (not an error) and left out of `result`; when nobody matches, the
  answer is still a success with an empty result and no launch happens. A profile matched twice
  in one request is sent the campaign once. The answer lists every profile sent to, one
  `{"profile_id": ...}` per profile, as the docs' example does: about 300,000 for a 10 MB body.
  Benchmarks and large-list tests that do not want to add a million profiles first switch on
  `match_every_item` (control `set_match_every_item`): an item that matches no stored profile
  then matches a profile of its own, whose id is derived from the item's value (the same value,
  the same id), as an account that already holds the whole audience answers. The import task creates the profiles it cannot find
  and updates (merges fields, adds subscriptions) those it finds.
- Matching: `email` looks at the profile's `email` field and its email subscriptions,
  `email_profile` at the field only (both case-insensitive); `phone` at the `phones` field
  (string or list) and phone subscriptions, digits only; `profile_id` at the id; `custom` at
  the profile field `field_name` (names are case-sensitive, values compared as strings, so 3
  and "3" are equal). With `resource_id`, only subscriptions of that resource count. Import
  items carry their matching value inside `data`, as every example of the batch doc does: an
  item is exactly `{"data": {...}}`, and a key beside `data` (say `"email"`) is refused with 422
  "data[i]: unknown field ..." (the batch doc documents no other key of an item; the single-
  profile import's top-level matching fields are not part of this request). When several
  profiles match, the oldest wins. Profile ids are 24 hex characters,
  ObjectId-like: sandbox-clock seconds, a fixed machine part, a counter.
- Import tasks: the task id is a UUID. Status is "pending" while progress is 0, "processing"
  while 0 < progress < 100, "completed" at 100; progress grows linearly with sandbox time over
  the task duration (set per sandbox; each task keeps the duration it started with). The import
  and the launch happen when the task completes (status reads and `state()` bring tasks up to
  date), so a task failed before that launches nothing. A failed task has status "failed", keeps
  the progress it had, and its result carries the error: `{"error": n, "error_text": ...,
  "result": []}`. `timeout` ({days, hours, minutes}; all zero means none) fails the task with
  error 408 "Task timeout exceeded" when the task would outlast it. While a task runs its
  result is null; when completed it is the docs' JSON shape with the launched profile ids.
- Import validity: an email subscription needs an address like a@b.c, a phone subscription a
  number of 10-15 digits. With `skip_invalid_subscriptions` the invalid subscription is dropped
  and the profile imported; without it that item is not imported (the others are). An item
  with `profile_id` matching whose profile does not exist is not imported either. Such items
  show in the task's `failed_items` in `state()`; the vendor's result shape has no place for them.
- `skip_triggers` ("skip trigger events") is recorded on the launch; it does not stop the launch
  the request asks for. `detect_geo`, `attach` and `custom_data` are recorded, not acted on.
- Rate limit: none by default. A per-token limit (N requests per window of S seconds, fixed
  window on the sandbox clock) can be configured; it counts every API request made with that
  token and answers HTTP 429 with a Retry-After header.
- Only JSON is served: `format` other than "json" is refused (422) instead of answered in XML.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dashboard.vendors.sandbox import (
    Sandbox,
    SandboxClock,
    SandboxRequest,
    SandboxResponse,
    route,
)

# A well-known fake, published so the demo can use it: not a credential.
DEFAULT_TOKEN = "sandbox-altcraft-token"  # noqa: S105
DEFAULT_ACCOUNT = "demo"
ACTIVE_TRIGGER_IDS = (1, 8, 96)
INACTIVE_TRIGGER_ID = 2
DEFAULT_BODY_LIMIT_BYTES = 10_000_000
DEFAULT_TASK_DURATION_SECONDS = 5.0

DEFAULT_ACCOUNTS: dict[str, dict[str, Any]] = {
    DEFAULT_ACCOUNT: {
        "tokens": [DEFAULT_TOKEN],
        "triggers": {
            1: {"name": "Welcome series", "active": True},
            INACTIVE_TRIGGER_ID: {"name": "Spring sale (stopped)", "active": False},
            8: {"name": "Abandoned cart", "active": True},
            96: {"name": "Registration form", "active": True},
        },
        "profiles": [
            {
                "profile_id": "6606e08f10bcdd88297057a7",
                "data": {
                    "_fname": "Victoria",
                    "email": "example1@example.com",
                    "phones": "+79000000000",
                    "Custom_ID": "003",
                    "subscriptions": [
                        {"channel": "email", "email": "example1@example.com", "resource_id": 21}
                    ],
                },
            },
            {
                "profile_id": "66101437dc4594c2934da6da",
                "data": {
                    "_fname": "David",
                    "email": "example2@example.com",
                    "phones": "+79000000001",
                    "Custom_ID": "002",
                },
            },
        ],
    }
}

MATCHING_MODES = ("email", "email_profile", "phone", "profile_id", "custom")
START_BATCH_ITEM_KEYS = {
    "email": "email",
    "email_profile": "email",
    "phone": "phone",
    "profile_id": "profile_id",
    "custom": "field_value",
}
TERMINAL_STATUSES = ("completed", "failed")
MACHINE_PART = "a1c7a0f7e1"  # the middle of every generated ObjectId-like profile id
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NON_DIGITS = re.compile(r"\D")

# Field name -> (accepted Python types, the Go type named in the decoder's message).
REQUEST_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "token": ((str,), "string"),
    "format": ((str,), "string"),
    "trigger_id": ((int,), "int"),
    "matching": ((str,), "string"),
    "field_name": ((str,), "string"),
    "data": ((list,), "[]api.DataItem"),
    "content": ((dict,), "map[string]interface {}"),
    "custom_data": ((dict,), "map[string]interface {}"),
    "attach": ((list,), "[]api.File"),
    "skip_triggers": ((bool,), "bool"),
    "skip_invalid_subscriptions": ((bool,), "bool"),
    "detect_geo": ((bool,), "bool"),
    "resource_id": ((int,), "int"),
    "timeout": ((dict,), "api.Timeout"),
    "task_id": ((str,), "string"),
}


class ErrorAnswer(Exception):
    """An error envelope to answer with (raised inside handlers to stop early)."""

    def __init__(
        self,
        status: int,
        error: int,
        error_text: str,
        error_debug: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error_text)
        self.status = status
        self.error = error
        self.error_text = error_text
        self.error_debug = error_debug
        self.headers = headers or {}

    def response(self, effect: dict[str, Any]) -> SandboxResponse:
        payload: dict[str, Any] = {"error": self.error}
        if self.error_debug is not None:
            payload["error_debug"] = self.error_debug
        payload["error_text"] = self.error_text
        return SandboxResponse.json(self.status, payload, headers=self.headers, effect=effect)


def invalid_parameter(debug: str) -> ErrorAnswer:
    """The 422 envelope for a parameter the vendor cannot work with."""
    return ErrorAnswer(200, 422, "Invalid parameter", debug)


def body_too_large_answer() -> ErrorAnswer:
    """The documented answer to a body over the limit."""
    return ErrorAnswer(400, 400, "Invalid request", "http: request body too large")


@dataclass
class Profile:
    """One profile: its fields (without subscriptions) and its subscriptions."""

    profile_id: str
    sequence: int  # creation order: the oldest of several matches wins
    fields: dict[str, Any]
    subscriptions: list[dict[str, Any]]


@dataclass
class Account:
    """An Altcraft account: its trigger campaigns and its profile store."""

    name: str
    triggers: dict[int, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)  # insertion order = age
    # Indexes, rebuilt per profile on every change: normalised value -> profile ids, oldest first.
    profile_emails: dict[str, list[str]] = field(default_factory=dict)
    subscription_emails: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    profile_phones: dict[str, list[str]] = field(default_factory=dict)
    subscription_phones: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    custom_indexes: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def index(self, profile: Profile) -> None:
        """Add a profile to the lookup indexes."""
        for email in _profile_emails(profile):
            self.profile_emails.setdefault(email, []).append(profile.profile_id)
        for phone in _profile_phones(profile):
            self.profile_phones.setdefault(phone, []).append(profile.profile_id)
        for subscription in profile.subscriptions:
            entry = (profile.profile_id, subscription.get("resource_id"))
            email = _subscription_email(subscription)
            if email is not None:
                self.subscription_emails.setdefault(email, []).append(entry)
            phone = _subscription_phone(subscription)
            if phone is not None:
                self.subscription_phones.setdefault(phone, []).append(entry)
        # Custom-field indexes are built on demand; any change makes them stale.
        self.custom_indexes.clear()

    def unindex(self, profile: Profile) -> None:
        """Remove a profile from the lookup indexes (before changing it)."""
        profile_id = profile.profile_id
        for email in _profile_emails(profile):
            self.profile_emails[email] = [i for i in self.profile_emails[email] if i != profile_id]
        for phone in _profile_phones(profile):
            self.profile_phones[phone] = [i for i in self.profile_phones[phone] if i != profile_id]
        for subscription in profile.subscriptions:
            for index, key in (
                (self.subscription_emails, _subscription_email(subscription)),
                (self.subscription_phones, _subscription_phone(subscription)),
            ):
                if key is not None:
                    index[key] = [(i, r) for i, r in index.get(key, []) if i != profile_id]
        self.custom_indexes.clear()

    def find(
        self, matching: str, value: Any, *, field_name: str | None, resource_id: Any = None
    ) -> str | None:
        """The id of the oldest profile that `value` matches under `matching`, or None."""
        if matching in ("email", "email_profile"):
            if not isinstance(value, str):
                return None
            key = value.strip().lower()
            candidates = [] if resource_id is not None else list(self.profile_emails.get(key, []))
            if matching == "email":
                candidates += _in_resource(self.subscription_emails.get(key, []), resource_id)
            return self._oldest(candidates)
        if matching == "phone":
            if not isinstance(value, str):
                return None
            key = NON_DIGITS.sub("", value)
            candidates = [] if resource_id is not None else list(self.profile_phones.get(key, []))
            candidates += _in_resource(self.subscription_phones.get(key, []), resource_id)
            return self._oldest(candidates)
        if matching == "profile_id":
            return value if isinstance(value, str) and value in self.profiles else None
        if matching == "custom" and field_name:
            index = self.custom_indexes.get(field_name)
            if index is None:
                index = {}
                for profile in self.profiles.values():
                    if field_name in profile.fields:
                        key = _custom_key(profile.fields[field_name])
                        index.setdefault(key, []).append(profile.profile_id)
                self.custom_indexes[field_name] = index
            candidates = index.get(_custom_key(value), [])
            return candidates[0] if candidates else None
        return None

    def _oldest(self, candidates: list[str]) -> str | None:
        if not candidates:
            return None
        return min(candidates, key=lambda profile_id: self.profiles[profile_id].sequence)


@dataclass
class ImportTask:
    """One import + launch task, brought up to date from the sandbox clock when read."""

    task_id: str
    account: str
    trigger_id: int
    created_at: datetime
    duration_seconds: float
    timeout_seconds: float | None
    request: dict[str, Any]  # the parameters the import and launch will use
    status: str = "pending"
    progress: int = 0
    result: dict[str, Any] | None = None
    finished_at: datetime | None = None
    failed_items: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        """The task as `state()` shows it."""
        return {
            "account": self.account,
            "trigger_id": self.trigger_id,
            "status": self.status,
            "progress": self.progress,
            "item_count": len(self.request["data"]),
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "result": self.result,
            "failed_items": self.failed_items,
        }


class AltcraftSandbox(Sandbox):
    """A faithful fake of Altcraft's bulk trigger launch, import + trigger task and task status.

    `accounts` maps an account name to `{"tokens": [...], "triggers": {id: {"name", "active"}},
    "profiles": [{"profile_id"?: ..., "data": {...}}]}` (default: `DEFAULT_ACCOUNTS`);
    `rate_limits` maps a token to `(requests, per_seconds)`.
    """

    name = "altcraft"

    def __init__(
        self,
        clock: SandboxClock | None = None,
        *,
        accounts: dict[str, dict[str, Any]] | None = None,
        body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES,
        task_duration_seconds: float = DEFAULT_TASK_DURATION_SECONDS,
        rate_limits: dict[str, tuple[int, float]] | None = None,
    ) -> None:
        super().__init__(clock)
        self._initial_accounts = copy.deepcopy(
            accounts if accounts is not None else DEFAULT_ACCOUNTS
        )
        self._initial_body_limit_bytes = body_limit_bytes
        self._initial_task_duration_seconds = task_duration_seconds
        self._initial_rate_limits = dict(rate_limits or {})
        self.reset_state()

    # -- configuration and state -------------------------------------------------------------

    def reset_state(self) -> None:
        """Back to the configuration the sandbox was built with."""
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, str] = {}  # token -> account name
        self.launches: list[dict[str, Any]] = []
        self.tasks: dict[str, ImportTask] = {}
        self.profiles_created = 0
        self.profiles_updated = 0
        self.body_limit_bytes = self._initial_body_limit_bytes
        self.task_duration_seconds = self._initial_task_duration_seconds
        self.match_every_item = False
        self.rate_limits: dict[str, tuple[int, float]] = dict(self._initial_rate_limits)
        self._rate_windows: dict[str, tuple[datetime, int]] = {}
        self._profile_counter = itertools.count(1)
        for name, spec in self._initial_accounts.items():
            account = self._account_named(name)
            for token in spec.get("tokens", []):
                self.tokens[token] = name
            for trigger_id, trigger in spec.get("triggers", {}).items():
                account.triggers[int(trigger_id)] = {
                    "name": trigger.get("name", f"Trigger {trigger_id}"),
                    "active": bool(trigger.get("active", True)),
                }
            for profile in spec.get("profiles", []):
                self._create_profile(
                    account, copy.deepcopy(profile.get("data", {})), profile.get("profile_id")
                )

    def state(self) -> dict[str, Any]:
        """Accounts, launches (what was really sent), imported profiles and tasks."""
        with self.lock:
            for task in self.tasks.values():
                self._refresh(task)
            return {
                "accounts": {
                    name: {
                        "token_count": sum(1 for owner in self.tokens.values() if owner == name),
                        "triggers": {str(i): dict(t) for i, t in account.triggers.items()},
                        "profile_count": len(account.profiles),
                    }
                    for name, account in self.accounts.items()
                },
                "launch_count": len(self.launches),
                "launched_profile_count": sum(len(x["profile_ids"]) for x in self.launches),
                "launches": copy.deepcopy(self.launches),
                "profiles_created": self.profiles_created,
                "profiles_updated": self.profiles_updated,
                "imported_profiles": self.profiles_created + self.profiles_updated,
                "tasks": {task_id: task.view() for task_id, task in self.tasks.items()},
                "body_limit_bytes": self.body_limit_bytes,
                "task_duration_seconds": self.task_duration_seconds,
                "match_every_item": self.match_every_item,
                # Keyed by account, not token: state is shown in test output and dashboards.
                "rate_limits": [
                    {"account": self.tokens.get(token), "requests": limit, "per_seconds": seconds}
                    for token, (limit, seconds) in self.rate_limits.items()
                ],
            }

    def profile(self, profile_id: str, account: str = DEFAULT_ACCOUNT) -> dict[str, Any] | None:
        """A profile's fields and subscriptions (for tests), or None."""
        with self.lock:
            found = self.accounts[account].profiles.get(profile_id)
            if found is None:
                return None
            return {
                **copy.deepcopy(found.fields),
                "subscriptions": copy.deepcopy(found.subscriptions),
            }

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        """add_token, add_trigger, add_profile, fail_task, set_body_limit, set_match_every_item,
        set_rate_limit, set_task_duration (see each `_control_*` method for its payload)."""
        handler = getattr(self, f"_control_{action}", None)
        if handler is None:
            raise KeyError(action)
        with self.lock:
            return handler(payload)

    def _control_add_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{token, account="demo"}: a new token for an account (created empty if new)."""
        token = payload["token"]
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        name = str(payload.get("account", DEFAULT_ACCOUNT))
        self._account_named(name)
        self.tokens[token] = name
        return {"account": name}

    def _control_add_trigger(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{trigger_id, name?, active=true, account="demo" | token}: add or update a campaign."""
        account = self._account_for_control(payload)
        trigger_id = int(payload["trigger_id"])
        current = account.triggers.get(trigger_id, {"name": f"Trigger {trigger_id}"})
        account.triggers[trigger_id] = {
            "name": payload.get("name", current["name"]),
            "active": bool(payload.get("active", True)),
        }
        return {"account": account.name, "trigger_id": trigger_id, **account.triggers[trigger_id]}

    def _control_add_profile(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{data, profile_id?, account="demo" | token}: add a profile; answers its id."""
        account = self._account_for_control(payload)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise ValueError("data must be an object of profile fields")
        profile = self._create_profile(account, copy.deepcopy(data), payload.get("profile_id"))
        return {"profile_id": profile.profile_id}

    def _control_fail_task(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{task_id, error=500, error_text="Task failed"}: fail a task that has not finished."""
        task = self.tasks[payload["task_id"]]
        self._refresh(task)
        if task.status in TERMINAL_STATUSES:
            raise ValueError(f"task already {task.status}")
        self._fail(
            task,
            int(payload.get("error", 500)),
            str(payload.get("error_text", "Task failed")),
            self.clock.now(),
        )
        return task.view()

    def _control_set_body_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{bytes}: the body size limit of every route."""
        limit = int(payload["bytes"])
        if limit <= 0:
            raise ValueError("bytes must be positive")
        self.body_limit_bytes = limit
        return {"body_limit_bytes": limit}

    def _control_set_match_every_item(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{enabled}: whether a start_batch item that matches no stored profile matches a profile
        of its own (id derived from its value) instead of being skipped."""
        enabled = payload["enabled"]
        if not isinstance(enabled, bool):
            raise ValueError("enabled must be true or false")
        self.match_every_item = enabled
        return {"match_every_item": enabled}

    def _control_set_rate_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{token, requests, per_seconds=1}: limit a token (requests null or 0 removes it)."""
        token = payload["token"]
        if token not in self.tokens:
            raise KeyError("unknown token")
        requests_allowed = payload.get("requests")
        self._rate_windows.pop(token, None)
        if not requests_allowed:
            self.rate_limits.pop(token, None)
            return {"rate_limited": False}
        per_seconds = float(payload.get("per_seconds", 1))
        if per_seconds <= 0:
            raise ValueError("per_seconds must be positive")
        self.rate_limits[token] = (int(requests_allowed), per_seconds)
        return {"rate_limited": True, "requests": int(requests_allowed), "per_seconds": per_seconds}

    def _control_set_task_duration(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{seconds}: how long new import tasks take, in sandbox time."""
        seconds = float(payload["seconds"])
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self.task_duration_seconds = seconds
        return {"task_duration_seconds": seconds}

    def body_too_large(self, request: SandboxRequest, length: int) -> SandboxResponse:
        """Over the server's hard cap: the same documented answer as over the vendor's limit."""
        return body_too_large_answer().response({"rejected": "body_too_large"})

    # -- routes ------------------------------------------------------------------------------

    @route("POST", r"/api/v1\.1/campaigns/triggers/start_batch", "start_batch")
    def start_batch(self, request: SandboxRequest) -> SandboxResponse:
        """Launch a trigger campaign for the existing profiles the data items match."""
        try:
            payload, account = self._authorised_payload(request)
            trigger_id = self._launchable_trigger(payload, account)
            matching, field_name = self._matching(payload)
            items = self._data_items(payload)
            key = START_BATCH_ITEM_KEYS[matching]
            for index, item in enumerate(items):
                if not isinstance(item, dict) or not _present(item.get(key), key == "field_value"):
                    raise invalid_parameter(
                        f'data[{index}]: {key} is required for matching "{matching}"'
                    )
        except ErrorAnswer as answer:
            return answer.response({"rejected": answer.error, "error_text": answer.error_text})
        profile_ids: list[str] = []
        seen: set[str] = set()
        unmatched = 0
        for item in items:
            profile_id = account.find(matching, item[key], field_name=field_name)
            if profile_id is None and self.match_every_item:
                profile_id = _audience_profile_id(account.name, matching, item[key])
            if profile_id is None:
                unmatched += 1
            elif profile_id not in seen:
                seen.add(profile_id)
                profile_ids.append(profile_id)
        launch = None
        if profile_ids:
            launch = self._launch(account, trigger_id, profile_ids, payload, "start_batch", None)
        return SandboxResponse.json(
            200,
            {
                "error": 0,
                "error_text": "Successful operation",
                "result": [{"profile_id": profile_id} for profile_id in profile_ids],
            },
            effect={
                "launch": launch["sequence"] if launch else None,
                "trigger_id": trigger_id,
                "profile_ids": profile_ids,
                "unmatched": unmatched,
            },
        )

    @route(
        "POST",
        r"/api/v1\.1/campaigns/triggers/import_and_start_batch_task",
        "import_and_start_batch_task",
    )
    def import_and_start_batch_task(self, request: SandboxRequest) -> SandboxResponse:
        """Accept a task that will import the profiles, then launch the trigger campaign."""
        try:
            payload, account = self._authorised_payload(request)
            trigger_id = self._launchable_trigger(payload, account)
            self._matching(payload)
            items = self._data_items(payload)
            for index, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
                    raise invalid_parameter(f"data[{index}]: data object is required")
                beside = sorted(key for key in item if key != "data")
                if beside:
                    raise invalid_parameter(
                        f'data[{index}]: unknown field "{beside[0]}" (the matching value '
                        "belongs inside data)"
                    )
            timeout_seconds = self._timeout_seconds(payload.get("timeout"))
        except ErrorAnswer as answer:
            return answer.response({"rejected": answer.error, "error_text": answer.error_text})
        now = self.clock.now()
        task = ImportTask(
            task_id=str(uuid.uuid4()),
            account=account.name,
            trigger_id=trigger_id,
            created_at=now,
            duration_seconds=self.task_duration_seconds,
            timeout_seconds=timeout_seconds,
            request=payload,
        )
        self.tasks[task.task_id] = task
        self._refresh(task)
        return SandboxResponse.json(
            200,
            {"error": 0, "error_text": "Successful operation", "task_id": task.task_id},
            effect={"task_created": task.task_id, "item_count": len(items)},
        )

    @route("POST", r"/api/v1\.1/tasks/status", "task_status")
    def task_status(self, request: SandboxRequest) -> SandboxResponse:
        """A task's status, progress and, once finished, result."""
        try:
            payload, account = self._authorised_payload(request)
            task_id = payload.get("task_id")
            if not task_id:
                raise invalid_parameter("task_id: required")
            task = self.tasks.get(task_id)
            if task is None or task.account != account.name:
                raise ErrorAnswer(200, 404, "Task not found")
        except ErrorAnswer as answer:
            return answer.response({"rejected": answer.error, "error_text": answer.error_text})
        self._refresh(task)
        return SandboxResponse.json(
            200,
            {
                "data": {"status": task.status, "progress": task.progress, "result": task.result},
                "error": 0,
                "error_text": "Successful operation",
            },
            effect={"task_id": task.task_id, "status": task.status, "progress": task.progress},
        )

    # -- request checks ----------------------------------------------------------------------

    def _authorised_payload(self, request: SandboxRequest) -> tuple[dict[str, Any], Account]:
        """The JSON body and the token's account, after the size, decoding, token and rate checks."""
        if len(request.body) > self.body_limit_bytes:
            raise body_too_large_answer()
        try:
            payload = request.json()
        except (ValueError, UnicodeDecodeError) as error:
            raise ErrorAnswer(400, 400, "Invalid request", _decoder_message(error)) from None
        if not isinstance(payload, dict):
            kind = _json_kind(payload)
            raise ErrorAnswer(
                400,
                400,
                "Invalid request",
                f"json: cannot unmarshal {kind} into Go value of type api.Request",
            )
        for name, value in payload.items():
            expected = REQUEST_FIELD_TYPES.get(name)
            if expected is None or value is None:
                continue
            types, go_type = expected
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ErrorAnswer(
                    400,
                    400,
                    "Invalid request",
                    f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                    f"Request.{name} of type {go_type}",
                )
        token = payload.get("token")
        account_name = self.tokens.get(token) if token else None
        if account_name is None:
            raise ErrorAnswer(200, 401, "Invalid token")
        self._count_request(token)
        if payload.get("format", "json") != "json":
            raise invalid_parameter("format: only json is served by this sandbox")
        return payload, self.accounts[account_name]

    def _count_request(self, token: str) -> None:
        limit = self.rate_limits.get(token)
        if limit is None:
            return
        allowed, per_seconds = limit
        now = self.clock.now()
        window_start, count = self._rate_windows.get(token, (now, 0))
        elapsed = (now - window_start).total_seconds()
        if elapsed >= per_seconds or elapsed < 0:
            window_start, count, elapsed = now, 0, 0.0
        if count >= allowed:
            wait = max(1, math.ceil(per_seconds - elapsed))
            raise ErrorAnswer(429, 429, "Too many requests", headers={"Retry-After": str(wait)})
        self._rate_windows[token] = (window_start, count + 1)

    def _launchable_trigger(self, payload: dict[str, Any], account: Account) -> int:
        trigger_id = payload.get("trigger_id")
        if not trigger_id:
            raise invalid_parameter("trigger_id: required")
        trigger = account.triggers.get(trigger_id)
        if trigger is None:
            raise ErrorAnswer(200, 404, "Trigger campaign not found", f"trigger_id: {trigger_id}")
        if not trigger["active"]:
            raise ErrorAnswer(
                200, 409, "Trigger campaign is not active", f"trigger_id: {trigger_id}"
            )
        return trigger_id

    def _matching(self, payload: dict[str, Any]) -> tuple[str, str | None]:
        matching = payload.get("matching") or "email"
        if matching not in MATCHING_MODES:
            raise invalid_parameter(f'matching: unknown mode "{matching}"')
        field_name = payload.get("field_name")
        if matching == "custom" and not field_name:
            raise invalid_parameter('field_name: required for matching "custom"')
        return matching, field_name if matching == "custom" else None

    def _data_items(self, payload: dict[str, Any]) -> list[Any]:
        items = payload.get("data")
        if not items:
            raise invalid_parameter("data: required")
        return items

    def _timeout_seconds(self, timeout: dict[str, Any] | None) -> float | None:
        if timeout is None:
            return None
        total = 0
        for unit, seconds in (("days", 86_400), ("hours", 3_600), ("minutes", 60)):
            amount = timeout.get(unit, 0)
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                raise invalid_parameter(f"timeout.{unit}: must be a non-negative integer")
            total += amount * seconds
        return float(total) or None

    # -- effects -----------------------------------------------------------------------------

    def _launch(
        self,
        account: Account,
        trigger_id: int,
        profile_ids: list[str],
        payload: dict[str, Any],
        source: str,
        task_id: str | None,
    ) -> dict[str, Any]:
        launch = {
            "sequence": len(self.launches) + 1,
            "at": self.clock.now().isoformat(),
            "account": account.name,
            "trigger_id": trigger_id,
            "source": source,
            "task_id": task_id,
            "profile_ids": list(profile_ids),
            "content": payload.get("content"),
            "custom_data": payload.get("custom_data"),
            "attach_count": len(payload.get("attach") or []),
            "skip_triggers": payload.get("skip_triggers"),
        }
        self.launches.append(launch)
        return launch

    def _refresh(self, task: ImportTask) -> None:
        """Bring a task up to date with the sandbox clock (importing and launching at 100%)."""
        if task.status in TERMINAL_STATUSES:
            return
        now = self.clock.now()
        elapsed = max(0.0, (now - task.created_at).total_seconds())
        duration = task.duration_seconds
        timeout = task.timeout_seconds
        if timeout is not None and duration > timeout and elapsed >= timeout:
            task.progress = math.floor(100 * timeout / duration)
            self._fail(task, 408, "Task timeout exceeded", now)
            return
        if elapsed >= duration:
            self._complete(task, now)
            return
        task.progress = min(99, math.floor(100 * elapsed / duration))
        task.status = "pending" if task.progress == 0 else "processing"

    def _fail(self, task: ImportTask, error: int, error_text: str, now: datetime) -> None:
        task.status = "failed"
        task.finished_at = now
        task.result = {"error": error, "error_text": error_text, "result": []}

    def _complete(self, task: ImportTask, now: datetime) -> None:
        account = self.accounts[task.account]
        request = task.request
        matching = request.get("matching") or "email"
        field_name = request.get("field_name") if matching == "custom" else None
        profile_ids: list[str] = []
        seen: set[str] = set()
        for index, item in enumerate(request["data"]):
            profile_id, failure = self._import_item(account, item, request, matching, field_name)
            if failure or profile_id is None:
                task.failed_items.append({"index": index, "reason": failure})
            elif profile_id not in seen:
                seen.add(profile_id)
                profile_ids.append(profile_id)
        task.status = "completed"
        task.progress = 100
        task.finished_at = now
        task.result = {
            "error": 0,
            "error_text": "",
            "result": [{"profile_id": profile_id} for profile_id in profile_ids],
        }
        if profile_ids:
            self._launch(
                account,
                task.trigger_id,
                profile_ids,
                request,
                "import_and_start_batch_task",
                task.task_id,
            )

    def _import_item(
        self,
        account: Account,
        item: dict[str, Any],
        request: dict[str, Any],
        matching: str,
        field_name: str | None,
    ) -> tuple[str | None, str | None]:
        """Create or update one profile. Returns (profile id, None) or (None, why not)."""
        fields = copy.deepcopy(item["data"])
        subscriptions = fields.pop("subscriptions", None) or []
        if not isinstance(subscriptions, list):
            return None, "subscriptions: must be an array"
        kept = []
        for subscription in subscriptions:
            if _valid_subscription(subscription):
                kept.append(subscription)
            elif not request.get("skip_invalid_subscriptions"):
                return None, "invalid subscription"
        values = _matching_values(fields, kept, matching, field_name)
        if not values:
            return None, f'no value to match by "{matching}"'
        resource_id = request.get("resource_id")
        found = None
        for value in values:
            found = account.find(matching, value, field_name=field_name, resource_id=resource_id)
            if found:
                break
        if found is None and matching == "profile_id":
            return None, "profile not found"
        if found is None:
            profile = self._create_profile(account, {**fields, "subscriptions": kept}, None)
            self.profiles_created += 1
            return profile.profile_id, None
        profile = account.profiles[found]
        account.unindex(profile)
        profile.fields.update(fields)
        for subscription in kept:
            if subscription not in profile.subscriptions:
                profile.subscriptions.append(subscription)
        account.index(profile)
        self.profiles_updated += 1
        return profile.profile_id, None

    # -- helpers -----------------------------------------------------------------------------

    def _account_named(self, name: str) -> Account:
        if name not in self.accounts:
            self.accounts[name] = Account(name=name)
        return self.accounts[name]

    def _account_for_control(self, payload: dict[str, Any]) -> Account:
        if "token" in payload:
            return self.accounts[self.tokens[payload["token"]]]
        return self.accounts[str(payload.get("account", DEFAULT_ACCOUNT))]

    def _create_profile(
        self, account: Account, data: dict[str, Any], profile_id: str | None
    ) -> Profile:
        subscriptions = data.pop("subscriptions", None) or []
        sequence = next(self._profile_counter)
        if profile_id is None:
            seconds = int(self.clock.now().timestamp()) & 0xFFFFFFFF
            profile_id = f"{seconds:08x}{MACHINE_PART}{sequence & 0xFFFFFF:06x}"
        profile = Profile(
            profile_id=profile_id,
            sequence=sequence,
            fields=data,
            subscriptions=list(subscriptions),
        )
        account.profiles[profile_id] = profile
        account.index(profile)
        return profile


def _present(value: Any, allow_int: bool = False) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return allow_int and isinstance(value, int) and not isinstance(value, bool)


def _custom_key(value: Any) -> str:
    # Values compare as the strings a field would store: 3 and "3" match.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _subscription_email(subscription: dict[str, Any]) -> str | None:
    email = subscription.get("email")
    return email.strip().lower() if isinstance(email, str) else None


def _subscription_phone(subscription: dict[str, Any]) -> str | None:
    phone = subscription.get("phone")
    return NON_DIGITS.sub("", phone) if isinstance(phone, str) else None


def _profile_emails(profile: Profile) -> list[str]:
    email = profile.fields.get("email")
    return [email.strip().lower()] if isinstance(email, str) and email.strip() else []


def _profile_phones(profile: Profile) -> list[str]:
    phones = profile.fields.get("phones")
    values = phones if isinstance(phones, list) else [phones]
    return [NON_DIGITS.sub("", p) for p in values if isinstance(p, str) and p.strip()]


def _in_resource(entries: list[tuple[str, Any]], resource_id: Any) -> list[str]:
    return [i for i, resource in entries if resource_id is None or resource == resource_id]


def _valid_subscription(subscription: Any) -> bool:
    if not isinstance(subscription, dict):
        return False
    if "email" in subscription or subscription.get("channel") == "email":
        return isinstance(subscription.get("email"), str) and bool(
            EMAIL_PATTERN.match(subscription["email"])
        )
    if "phone" in subscription or subscription.get("channel") == "phone":
        phone = subscription.get("phone")
        return isinstance(phone, str) and 10 <= len(NON_DIGITS.sub("", phone)) <= 15
    return True


def _matching_values(
    fields: dict[str, Any],
    subscriptions: list[dict[str, Any]],
    matching: str,
    field_name: str | None,
) -> list[Any]:
    """The values an import item (its `data`) can be matched by, most specific first."""
    candidates: list[Any] = []
    if matching in ("email", "email_profile"):
        candidates = [fields.get("email")]
        if matching == "email":
            candidates += [s.get("email") for s in subscriptions]
    elif matching == "phone":
        phones = fields.get("phones")
        candidates = [fields.get("phone")]
        candidates += phones if isinstance(phones, list) else [phones]
        candidates += [s.get("phone") for s in subscriptions]
    elif matching == "profile_id":
        candidates = [fields.get("profile_id")]
    elif matching == "custom":
        candidates = [fields.get(field_name or "")]
    return [value for value in candidates if _present(value, allow_int=matching == "custom")]


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _decoder_message(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "invalid character in string literal"
    return f"invalid character: {error}"


def _audience_profile_id(account: str, matching: str, value: Any) -> str:
    """The ObjectId-like id of the profile an item matches under `match_every_item`: 24 hex
    characters derived from the account, the matching mode and the value (compared as text)."""
    key = f"{account}\x00{matching}\x00{str(value).strip().lower()}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]
