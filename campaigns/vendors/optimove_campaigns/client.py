"""Client for Optimove's API-triggered campaigns (Smart Campaigns) API.

Source: /work/shared/vendor-docs/optimove-api-triggered-campaigns.txt. One call to
`run_event_generator` makes Optimove send a campaign to every subscriber of a Preference Centre
topic; `execution_status` follows that execution until it is `published` or `failed`.

How every answer is classified (the run engine relies on it to never send a campaign twice,
and Optimove does not deduplicate: two identical runs are two campaigns):

- 2xx with a usable `execution_id` -> `ExecutionAccepted` (any 2xx, not only the documented 202:
  the vendor says it queued the execution and named it).
- 2xx on run without a usable `execution_id` (not JSON, no id, an id we could not poll) ->
  `UnreadableAcceptance`, an OUTCOME UNKNOWN: a 2xx means Optimove most likely queued the
  execution, so retrying could send the campaign twice, yet it cannot be followed.
- 200 on status that breaks the documented shape -> `UnreadableStatus`, a SERVER ERROR: reading
  a status has no effect, so nothing is unknown about what Optimove did; the vendor answered
  wrongly, and the read can be repeated later like any 5xx.
- 400 `bad_request`, 401 `unauthorized`, 403 `forbidden`, 404 `event_generator_not_found`
  (run) / `execution_not_found` (status), 422 `not_api_triggered` (run) -> REJECTED.
- Any other 3xx/4xx -> `UnexpectedAnswer` (REJECTED, `unexpected_status`): the request was
  refused or redirected before Optimove's API handled it (redirects are never followed).
- 429 -> `RateLimited` (THROTTLED, `rate_limited`), `retry_after` from Retry-After, else 1 s.
- 5xx -> `OptimoveServerError` (SERVER ERROR, `server_error`): the doc says retry with
  exponential backoff, and contact support if it persists for more than 5 minutes.
- Transport failures -> `ConnectionFailed` (NOT SENT) or `NoAnswer` (OUTCOME UNKNOWN), from
  `VendorHttp`'s classification.

Parameters are checked before anything is sent (`ConfigurationError`):

- `event_generator_id`: five hyphen-separated groups of ASCII letters and digits, at most 100
  characters. That is every canonical UUID (any case) and the doc's own example ids such as
  `11111111-xyz-xyz-xyz-111111111111`, which are UUID-shaped but not UUIDs; Optimove's own
  answer (404) stays the authority on whether the id exists. It refuses names, topic keys
  pasted by mistake (`00000000-abcd`), braces, spaces and anything path-breaking; the id is
  URL-quoted all the same.
- `topic_key`: a non-empty string without surrounding whitespace (a padded key would resolve
  another topic, or none).
- `context`: a dict of JSON values (string keys; no NaN or Infinity, which are not JSON).
- `execution_id` (status): non-empty, printable, no "/" or "\\", not "." or "..".
- Keys: non-empty printable ASCII without surrounding whitespace. Anything else cannot be sent
  as a header: the HTTP library would fail with an unclassified error (non-ASCII) or an error
  text quoting the key in escaped form, which redaction by value does not catch.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from django.utils.translation import gettext_lazy

from dashboard.vendors.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    ConfigurationError,
    Exchange,
    NotSent,
    OutcomeUnknown,
    Rejected,
    ServerError,
    Throttled,
    VendorError,
    VendorHttp,
    VendorResponse,
    minified_json,
    parse_retry_after,
)

PRODUCTION_BASE_URL = "https://opti-x.optimove.net/smart-campaigns/v1"

# The run engine sends hundreds of runs per second through one client; VendorHttp's default pool
# of 10 would open and discard a connection for most of them.
DEFAULT_POOL_MAXSIZE = 100
# The doc names Retry-After but not a default; one second is the rate limit's own window.
FALLBACK_RETRY_AFTER_SECONDS = 1.0
MAX_VENDOR_MESSAGE_CHARS = 500

QUEUED = "queued"
PROCESSING = "processing"
PUBLISHED = "published"
FAILED = "failed"
KNOWN_STATUSES = frozenset({QUEUED, PROCESSING, PUBLISHED, FAILED})
TERMINAL_STATUSES = frozenset({PUBLISHED, FAILED})

EVENT_GENERATOR_ID_PATTERN = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+){4}")
MAX_EVENT_GENERATOR_ID_CHARS = 100
PRINTABLE_ASCII_PATTERN = re.compile(r"[\x20-\x7e]+")


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionAccepted:
    """Optimove validated and queued the run; it is not yet delivered (poll its status)."""

    execution_id: str
    status: str
    exchange: Exchange


@dataclass(frozen=True)
class ExecutionStatus:
    """Where an execution stands.

    `status` is kept as Optimove sent it; a value the doc does not list is not terminal, so a
    poller keeps polling rather than declaring an unknown outcome final.
    """

    execution_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    event_generator_id: str
    topic_key: str
    audience_size: int | None
    error_code: str | None
    error_message: str | None
    exchange: Exchange

    @property
    def is_terminal(self) -> bool:
        """Whether the execution is over (published or failed)."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_known_status(self) -> bool:
        """Whether the status is one the doc lists."""
        return self.status in KNOWN_STATUSES


# -- errors ------------------------------------------------------------------------------------


class OptimoveCampaignsError(VendorError):
    """Base of this client's errors: each subclass has a stable `code` and plain-words `advice`.

    Subclasses also derive from one of the five failure classes, which sets `failure_class`.
    """

    error_code: ClassVar[str] = "optimove_error"
    advice: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        vendor_message: str = "",
        retry_after: float | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code or self.error_code,
            status_code=status_code,
            vendor_message=vendor_message,
            retry_after=retry_after,
            exchange=exchange,
        )


class ConnectionFailed(OptimoveCampaignsError, NotSent):
    """Nothing reached Optimove (connection refused, DNS, TLS)."""

    error_code = "connection_failed"
    advice = gettext_lazy(
        "Optimove could not be reached and nothing was sent. It is safe to try again."
    )


class NoAnswer(OptimoveCampaignsError, OutcomeUnknown):
    """The request was sent but no answer came back (timeout, reset)."""

    error_code = "no_answer"
    advice = gettext_lazy(
        "The request reached Optimove but no answer came back, so the campaign may have been "
        "queued. Check Mission Control before triggering again: Optimove does not deduplicate, "
        "so a second trigger sends a second campaign. A status check can simply be repeated."
    )


class UnreadableAcceptance(OptimoveCampaignsError, OutcomeUnknown):
    """Optimove answered 2xx to a run without an execution id we can follow."""

    error_code = "unreadable_acceptance"
    advice = gettext_lazy(
        "Optimove accepted the trigger but its answer could not be read, so the campaign was "
        "probably queued. Check Mission Control before triggering again."
    )


class BadRequest(OptimoveCampaignsError, Rejected):
    """400: invalid request body (missing required fields, invalid JSON)."""

    error_code = "bad_request"
    advice = gettext_lazy("Validate JSON syntax and ensure all required fields are present.")


class Unauthorized(OptimoveCampaignsError, Rejected):
    """401: invalid or missing API key."""

    error_code = "unauthorized"
    advice = gettext_lazy("Verify the API keys in Optimove Personalize Admin → Developer Tools.")


class Forbidden(OptimoveCampaignsError, Rejected):
    """403: the API key has no permission for this brand (or this execution's brand)."""

    error_code = "forbidden"
    advice = gettext_lazy("Contact your Optimove Customer Success team.")


class EventGeneratorNotFound(OptimoveCampaignsError, Rejected):
    """404 on run: the Event Generator does not exist or belongs to another brand."""

    error_code = "event_generator_not_found"
    advice = gettext_lazy("Get the correct Event Generator ID from the marketing team.")


class ExecutionNotFound(OptimoveCampaignsError, Rejected):
    """404 on status: no such execution."""

    error_code = "execution_not_found"
    advice = gettext_lazy("Verify the execution ID is correct.")


class NotApiTriggered(OptimoveCampaignsError, Rejected):
    """422: the Event Generator exists but is not API-triggered (Preference Center)."""

    error_code = "not_api_triggered"
    advice = gettext_lazy("Verify the Event Generator is configured for API-triggered campaigns.")


class UnexpectedAnswer(OptimoveCampaignsError, Rejected):
    """A 3xx or 4xx the doc does not list: refused or redirected before the API acted."""

    error_code = "unexpected_status"
    advice = gettext_lazy(
        "Optimove refused the request with an answer its documentation does not list; nothing "
        "was triggered. Check the base URL and the recorded answer."
    )


class RateLimited(OptimoveCampaignsError, Throttled):
    """429: over 500 requests per second for the brand."""

    error_code = "rate_limited"
    advice = gettext_lazy(
        "Too many requests for this brand: wait for the time Optimove names, then retry."
    )


class OptimoveServerError(OptimoveCampaignsError, ServerError):
    """5xx: a server-side issue at Optimove."""

    error_code = "server_error"
    advice = gettext_lazy(
        "Retry with exponential backoff. If it persists for more than 5 minutes, contact "
        "Optimove support."
    )


class UnreadableStatus(OptimoveCampaignsError, ServerError):
    """200 on status with an answer that does not follow the documented shape."""

    error_code = "unreadable_status"
    advice = gettext_lazy(
        "Optimove's status answer could not be read. Check the status again later."
    )


RUN_ERRORS: dict[int, type[OptimoveCampaignsError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: EventGeneratorNotFound,
    422: NotApiTriggered,
}
STATUS_ERRORS: dict[int, type[OptimoveCampaignsError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: ExecutionNotFound,
}


# -- client ------------------------------------------------------------------------------------


class OptimoveCampaignsClient:
    """Triggers Optimove API-triggered campaigns and reads their executions' status.

    `base_url` is the documented base (`PRODUCTION_BASE_URL`) or a sandbox's, and may carry a
    path prefix. Both keys are secrets: they are sent as headers and redacted everywhere else.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        brand_key: str,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
    ) -> None:
        check_header_secret("api_key", api_key)
        check_header_secret("brand_key", brand_key)
        if pool_maxsize < 1:
            raise ConfigurationError("pool_maxsize must be at least 1.")
        self._headers = {"x-api-key": api_key, "x-brand-key": brand_key}
        self.http = VendorHttp(
            base_url,
            secrets=(api_key, brand_key),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            pool_maxsize=pool_maxsize,
        )

    def run_event_generator(
        self, event_generator_id: str, *, topic_key: str, context: dict[str, Any]
    ) -> ExecutionAccepted:
        """Trigger one execution: Optimove sends the campaign to the topic's subscribers.

        Not idempotent: every successful call is one more campaign. Raises ConfigurationError
        (nothing sent) or an `OptimoveCampaignsError` subclass.
        """
        check_event_generator_id(event_generator_id)
        check_topic_key(topic_key)
        check_context(context)
        body = minified_json({"topic_key": topic_key, "context": context})
        response, exchange = self._send(
            "POST",
            f"event-generators/{quote(event_generator_id, safe='')}/run",
            headers={**self._headers, "Content-Type": "application/json"},
            body=body,
        )
        if not 200 <= response.status_code < 300:
            raise self._failure(response, exchange, RUN_ERRORS)
        payload = _json_object(response)
        execution_id = payload.get("execution_id") if payload is not None else None
        if not isinstance(execution_id, str) or not is_usable_execution_id(execution_id):
            raise UnreadableAcceptance(
                f"Optimove answered {response.status_code} to the trigger without an execution "
                "ID that can be followed; the campaign was probably queued.",
                status_code=response.status_code,
                vendor_message=self._vendor_message(response),
                exchange=exchange,
            )
        status = payload.get("status") if payload is not None else None
        # The doc: "Always queued on successful request acceptance".
        return ExecutionAccepted(
            execution_id=execution_id,
            status=status if isinstance(status, str) and status else QUEUED,
            exchange=exchange,
        )

    def execution_status(self, execution_id: str) -> ExecutionStatus:
        """The execution's current status and details. Safe to repeat."""
        check_execution_id(execution_id)
        response, exchange = self._send(
            "GET",
            f"executions/{quote(execution_id, safe='')}/status",
            headers=dict(self._headers),
        )
        if not 200 <= response.status_code < 300:
            raise self._failure(response, exchange, STATUS_ERRORS)
        try:
            return _parse_status(_json_object(response), execution_id, exchange)
        except (KeyError, TypeError, ValueError) as error:
            raise UnreadableStatus(
                f"Optimove's status answer ({response.status_code}) could not be read: {error}",
                status_code=response.status_code,
                vendor_message=self._vendor_message(response),
                exchange=exchange,
            ) from None

    # -- plumbing ---------------------------------------------------------------------------

    def _send(
        self, method: str, route: str, *, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[VendorResponse, Exchange]:
        # Re-raised as this client's classes so every error the UI sees carries advice.
        try:
            return self.http.request(method, route, headers=headers, body=body)
        except NotSent as error:
            raise ConnectionFailed(error.message, exchange=error.exchange) from None
        except OutcomeUnknown as error:
            raise NoAnswer(error.message, exchange=error.exchange) from None

    def _failure(
        self,
        response: VendorResponse,
        exchange: Exchange,
        documented: dict[int, type[OptimoveCampaignsError]],
    ) -> OptimoveCampaignsError:
        status_code = response.status_code
        vendor_message = self._vendor_message(response)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status_code == 429:
            error_class: type[OptimoveCampaignsError] = RateLimited
            if retry_after is None:
                retry_after = FALLBACK_RETRY_AFTER_SECONDS
        elif status_code >= 500:
            error_class = OptimoveServerError
        else:
            error_class = documented.get(status_code, UnexpectedAnswer)
            retry_after = None
        reason = f" {response.reason}" if response.reason else ""
        said = f": {vendor_message}" if vendor_message else ""
        return error_class(
            f"Optimove answered {status_code}{reason}{said}",
            status_code=status_code,
            vendor_message=vendor_message,
            retry_after=retry_after,
            exchange=exchange,
        )

    def _vendor_message(self, response: VendorResponse) -> str:
        """The vendor's reason in its own words: a JSON body's message (and detail), else text."""
        payload = _json_object(response)
        if payload is not None:
            # `error` is the reason phrase ("Bad Request"): the message only when nothing else is.
            message = next(
                (
                    payload[name].strip()
                    for name in ("message", "error_message", "error_description", "error")
                    if isinstance(payload.get(name), str) and payload[name].strip()
                ),
                "",
            )
            detail = payload.get("detail")
            if detail is not None and not isinstance(detail, str):
                detail = json.dumps(detail, ensure_ascii=False)
            text = ": ".join(part for part in (message, (detail or "").strip()) if part)
        else:
            text = " ".join(response.content.decode("utf-8", errors="replace").split())
        if len(text) > MAX_VENDOR_MESSAGE_CHARS:
            text = text[:MAX_VENDOR_MESSAGE_CHARS] + "…"
        return self.http.redact(text) or ""


# -- checks ------------------------------------------------------------------------------------


def check_header_secret(name: str, value: object) -> None:
    """Raise ConfigurationError unless `value` can be sent as a header (never echoing it)."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string.")
    if value != value.strip() or not PRINTABLE_ASCII_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{name} must be printable ASCII without surrounding spaces (check how it was pasted)."
        )


def check_event_generator_id(value: object) -> None:
    """Raise ConfigurationError unless `value` is UUID-shaped (see the module docstring)."""
    if not isinstance(value, str):
        raise ConfigurationError("event_generator_id must be a string.")
    if len(value) > MAX_EVENT_GENERATOR_ID_CHARS or not EVENT_GENERATOR_ID_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"event_generator_id {value[:MAX_EVENT_GENERATOR_ID_CHARS]!r} is not an Event "
            "Generator ID: expected a UUID such as 00000000-abcd-abcd-abcd-000000000000."
        )


def check_topic_key(value: object) -> None:
    """Raise ConfigurationError unless `value` is a non-empty topic key without padding."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError("topic_key must be a non-empty string.")
    if value != value.strip():
        raise ConfigurationError("topic_key must not start or end with whitespace.")


def check_context(value: object) -> None:
    """Raise ConfigurationError unless `value` is a JSON object (a dict of JSON values)."""
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"context must be a JSON object (dict), not {type(value).__name__}."
        )
    _check_json_value(value, "context", depth=0)


def check_execution_id(value: object) -> None:
    """Raise ConfigurationError unless `value` can name an execution in a URL path."""
    if not isinstance(value, str) or not is_usable_execution_id(value):
        raise ConfigurationError(
            "execution_id must be the non-empty ID returned by a run (no spaces or slashes)."
        )


def is_usable_execution_id(value: str) -> bool:
    """Whether an execution ID can be put in a status URL and mean that execution."""
    return (
        bool(PRINTABLE_ASCII_PATTERN.fullmatch(value))
        and " " not in value
        and "/" not in value
        and "\\" not in value
        and value not in (".", "..")
    )


def _check_json_value(value: object, where: str, depth: int) -> None:
    if depth > 64:
        raise ConfigurationError(f"{where} is nested too deeply.")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigurationError(f"{where} is {value}, which JSON cannot carry.")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigurationError(f"{where} has a non-string key {key!r}.")
            _check_json_value(item, f"{where}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_value(item, f"{where}[{index}]", depth + 1)
        return
    raise ConfigurationError(f"{where} is a {type(value).__name__}, not a JSON value.")


# -- parsing -----------------------------------------------------------------------------------


def _json_object(response: VendorResponse) -> dict[str, Any] | None:
    try:
        payload = json.loads(response.content)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _parse_status(
    payload: dict[str, Any] | None, asked_for: str, exchange: Exchange
) -> ExecutionStatus:
    if payload is None:
        raise ValueError("the body is not a JSON object")
    execution_id = _text(payload, "execution_id")
    if execution_id != asked_for:
        # Recording another execution's status on this run would be worse than no status.
        raise ValueError(f"it describes execution {execution_id!r}, not {asked_for!r}")
    audience_size = payload.get("audience_size")
    if audience_size is not None and (
        isinstance(audience_size, bool) or not isinstance(audience_size, int) or audience_size < 0
    ):
        raise ValueError("audience_size is not a count")
    return ExecutionStatus(
        execution_id=execution_id,
        status=_text(payload, "status"),
        created_at=_moment(payload, "created_at"),
        updated_at=_moment(payload, "updated_at"),
        event_generator_id=_text(payload, "event_generator_id"),
        topic_key=_text(payload, "topic_key"),
        audience_size=audience_size,
        error_code=_optional_text(payload, "error_code"),
        error_message=_optional_text(payload, "error_message"),
        exchange=exchange,
    )


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is missing or not a string")
    return value


def _optional_text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _moment(payload: dict[str, Any], name: str) -> datetime:
    moment = datetime.fromisoformat(_text(payload, name))
    # The doc's times are UTC ("...Z"); one without an offset is read as UTC too.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
