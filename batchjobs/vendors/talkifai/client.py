"""TalkifAI batch calling: start a batch job immediately, and read a batch job's detail.

The vendor doc (shared/vendor-docs/talkifai-start-batch-job.txt) documents the start call's
answer fields, its behaviour by job status and its error codes, but names neither the URL paths
nor the auth header. Those live in one place, `TalkifaiApiLayout`, configurable per connection.

What the doc leaves open, and what this client does about it:

- Request body of the start call: none. The call is fully described by its path parameter; an
  empty POST (Content-Length: 0, no Content-Type) is what the vendor's own curl examples send.
- Error answer shape: not documented. The client reads the error code from any of
  `{"success": false, "error": {"code": ..., "message": ...}}` (what our sandbox answers),
  `{"error": "<code>", "message": ...}`, `{"code": ..., "message": ...}` and FastAPI's
  `{"detail": ...}` (a string or an object of the shapes above). When no code is given, the
  documented wordings ("Job already running", "Cannot start completed job", "... not found")
  are recognised in the message.
- How each answer lands in the five failure classes:

  =====================================  ==============================  =====================
  answer                                 start_batch_job                 batch_job_detail
  =====================================  ==============================  =====================
  2xx, readable, success                 BatchJobStarted                 BatchJobDetail
  2xx, error envelope with a code        Rejected (that code, or         same
                                         request_rejected if unknown)
  2xx, success false without a code      OutcomeUnknown                  Rejected
                                         start_not_confirmed             request_rejected
  2xx, unreadable / no batchJobId        OutcomeUnknown unreadable_answer     ServerError
                                                                         unreadable_detail
  3xx                                    Rejected unexpected_redirect    same
  400 already_running                    Rejected already_running        same
  400 invalid_status                     Rejected invalid_status         same
  404 job_not_found (or that code)       Rejected job_not_found          same
  404 without that code                  Rejected endpoint_not_found     same
  401 / 403                              Rejected unauthorized/forbidden same
  other 4xx                              Rejected request_rejected       same
  429                                    Throttled rate_limited          same
  504                                    OutcomeUnknown gateway_timeout  ServerError
  other 5xx                              ServerError server_error        same
  no answer after sending                OutcomeUnknown no_answer        same
  nothing sent                           NotSent connection_failed       same
  =====================================  ==============================  =====================

  A 2xx on the start call means the vendor processed the request, so an answer we cannot read,
  or one saying `success: false` without a reason, may hide a job that did start: that is
  OUTCOME UNKNOWN, never success, and never a plain retry (read the job's detail first). A 504
  comes from a gateway that stopped waiting for TalkifAI, which may still have started the job.
  The detail call changes nothing, so an unreadable detail is the vendor's fault: SERVER ERROR.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import quote

from django.utils.translation import gettext_lazy

from dashboard.vendors.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    ConfigurationError,
    Exchange,
    FailureClass,
    NotSent,
    OutcomeUnknown,
    Rejected,
    ServerError,
    Throttled,
    VendorError,
    VendorHttp,
    VendorResponse,
    parse_retry_after,
)

logger = logging.getLogger(__name__)

BATCH_JOB_ID_PLACEHOLDER = "{batch_job_id}"
# An id is one path segment; 200 characters is far above any id the vendor hands out.
MAX_BATCH_JOB_ID_LENGTH = 200
# RFC 9110 token characters: what a header name may contain.
HEADER_NAME_PATTERN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
CANNOT_START_PATTERN = re.compile(r"cannot start (?P<status>[a-z_]+) job", re.IGNORECASE)
MAX_VENDOR_MESSAGE_CHARS = 500


class BatchJobStatus(StrEnum):
    """The statuses a TalkifAI batch job can be in."""

    SCHEDULED = "scheduled"  # waits for its scheduled start time (a Redis defer job)
    PENDING = "pending"  # created without a schedule, waits for a manual start
    RUNNING = "running"  # calling its contacts
    COMPLETED = "completed"  # every contact processed
    FAILED = "failed"  # stopped on an error
    CANCELLED = "cancelled"  # cancelled by a user


STARTABLE_STATUSES = frozenset({BatchJobStatus.SCHEDULED, BatchJobStatus.PENDING})
FINISHED_STATUSES = frozenset(
    {BatchJobStatus.COMPLETED, BatchJobStatus.FAILED, BatchJobStatus.CANCELLED}
)


@dataclass(frozen=True)
class TalkifaiApiLayout:
    """Where the TalkifAI endpoints live and how the API key is presented.

    The vendor doc does not state the paths nor the auth header, so these defaults are ours, to
    be confirmed per account. They follow TalkifAI's public API reference
    (`POST /batch/jobs/{batch_job_id}/start`, `GET /batch/jobs/{batch_job_id}`,
    `Authorization: Bearer <API key>`). Another scheme, e.g. `X-API-Key: <key>`, is
    `auth_header="X-API-Key", auth_prefix=""`.

    Paths are appended to the connection's base URL (which may carry its own prefix) and must
    contain `{batch_job_id}` exactly once; a path may carry a fixed query string.
    """

    start_path: str = "/batch/jobs/{batch_job_id}/start"
    detail_path: str = "/batch/jobs/{batch_job_id}"
    auth_header: str = "Authorization"
    auth_prefix: str = "Bearer "

    def __post_init__(self) -> None:
        for name in ("start_path", "detail_path"):
            validate_path_template(name, getattr(self, name))
        if not isinstance(self.auth_header, str) or not HEADER_NAME_PATTERN.match(self.auth_header):
            raise ConfigurationError(
                f"auth_header must be an HTTP header name, got {self.auth_header!r}."
            )
        if not isinstance(self.auth_prefix, str) or any(
            character in self.auth_prefix for character in "\r\n\0"
        ):
            raise ConfigurationError("auth_prefix must be a single-line string.")

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None) -> TalkifaiApiLayout:
        """A layout from a plain dict of overrides (as stored in connection settings).

        Missing keys keep their defaults; an unknown key is a ConfigurationError, so a typo in
        the settings is caught instead of silently ignored.
        """
        overrides = dict(overrides or {})
        known = {layout_field.name for layout_field in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(
                f"Unknown TalkifAI layout setting(s) {unknown}; known: {sorted(known)}."
            )
        for name, value in overrides.items():
            if not isinstance(value, str):
                raise ConfigurationError(f"TalkifAI layout setting {name!r} must be a string.")
        return cls(**overrides)

    def as_dict(self) -> dict[str, str]:
        """The layout as a plain dict, the inverse of `from_overrides`."""
        return asdict(self)

    def start_route(self, batch_job_id: str) -> str:
        """The start path for one job (the id URL-quoted as one path segment)."""
        return self.start_path.replace(BATCH_JOB_ID_PLACEHOLDER, quote_batch_job_id(batch_job_id))

    def detail_route(self, batch_job_id: str) -> str:
        """The detail path for one job (the id URL-quoted as one path segment)."""
        return self.detail_path.replace(BATCH_JOB_ID_PLACEHOLDER, quote_batch_job_id(batch_job_id))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The header that carries the API key."""
        return {self.auth_header: f"{self.auth_prefix}{api_key}"}


def validate_path_template(name: str, template: object) -> None:
    """Raise ConfigurationError unless `template` is a usable path with one job-id placeholder."""
    if not isinstance(template, str) or not template.startswith("/"):
        raise ConfigurationError(f"{name} must be a path starting with '/', got {template!r}.")
    path_part = template.split("?", 1)[0]
    if path_part.count(BATCH_JOB_ID_PLACEHOLDER) != 1 or template.count("{") != 1:
        raise ConfigurationError(
            f"{name} must contain {BATCH_JOB_ID_PLACEHOLDER} exactly once, in its path part."
        )
    if "#" in template or any(character.isspace() for character in template):
        raise ConfigurationError(f"{name} must not contain a fragment or whitespace.")


def validate_batch_job_id(batch_job_id: object) -> str:
    """The id, unchanged, or ConfigurationError when it cannot be one path segment.

    Ids are not trimmed: " job-1" is a typo to report, not to guess at. "." and ".." are refused
    because URL normalisation would turn them into a different path.
    """
    if not isinstance(batch_job_id, str) or not batch_job_id:
        raise ConfigurationError("A batch job id is required.")
    if batch_job_id != batch_job_id.strip():
        raise ConfigurationError("The batch job id has leading or trailing spaces.")
    if "/" in batch_job_id or "\\" in batch_job_id:
        raise ConfigurationError("A batch job id cannot contain '/' or '\\'.")
    if batch_job_id in (".", ".."):
        raise ConfigurationError("A batch job id cannot be '.' or '..'.")
    if not batch_job_id.isprintable():
        raise ConfigurationError("A batch job id cannot contain control characters.")
    if len(batch_job_id) > MAX_BATCH_JOB_ID_LENGTH:
        raise ConfigurationError(
            f"A batch job id is at most {MAX_BATCH_JOB_ID_LENGTH} characters long."
        )
    return batch_job_id


def quote_batch_job_id(batch_job_id: str) -> str:
    """The validated id, percent-encoded so that it stays exactly one path segment."""
    return quote(validate_batch_job_id(batch_job_id), safe="")


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchJobStarted:
    """TalkifAI's answer to a successful start: the job is now calling its contacts.

    `contacts_enqueued` and `redis_job_cancelled` are None when the vendor left them out.
    `started_at` is the vendor's `startedAt`; when that is missing or unreadable it is the time
    the answer arrived (`started_at_reported` then is False).
    """

    success: bool
    message: str
    batch_job_id: str
    status: str
    contacts_enqueued: int | None
    redis_job_cancelled: bool | None
    started_at: datetime
    exchange: Exchange
    started_at_reported: bool = True


@dataclass(frozen=True)
class BatchJobDetail:
    """A batch job as TalkifAI describes it. Every field the vendor leaves out is None/empty."""

    batch_job_id: str
    name: str
    status: str
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    contacts_total: int | None
    exchange: Exchange
    description: str = ""
    contacts_processed: int | None = None
    successful_calls: int | None = None
    failed_calls: int | None = None
    created_at: datetime | None = None
    estimated_completion_at: datetime | None = None
    status_breakdown: dict[str, int] = field(default_factory=dict)

    @property
    def can_start_now(self) -> bool:
        """Whether a start call would be accepted (only scheduled and pending jobs start)."""
        return self.status in STARTABLE_STATUSES

    @property
    def is_running(self) -> bool:
        """Whether the job is calling its contacts now."""
        return self.status == BatchJobStatus.RUNNING

    @property
    def is_finished(self) -> bool:
        """Whether the job reached an end state (completed, failed or cancelled)."""
        return self.status in FINISHED_STATUSES


# -- errors ---------------------------------------------------------------------------------------


class TalkifaiError(VendorError):
    """Base of the TalkifAI-specific errors: each adds a stable `error_code` and UI advice.

    Never raised itself: every subclass also derives from exactly one of the five failure
    classes, which gives it its `failure_class`.
    """

    error_code: ClassVar[str]


class JobNotFound(TalkifaiError, Rejected):
    """TalkifAI has no such batch job for this API key's organisation."""

    error_code = "job_not_found"
    advice = gettext_lazy(
        "TalkifAI has no batch job with this id for this API key. Check the id in TalkifAI Studio "
        "and that the connection uses the key of the organisation that owns the job."
    )


class InvalidStatus(TalkifaiError, Rejected):
    """The job is completed, failed or cancelled: it cannot be started again."""

    error_code = "invalid_status"
    advice = gettext_lazy(
        "Completed, failed and cancelled jobs can't be started. Create a new batch job in "
        "TalkifAI for these contacts."
    )

    def __init__(self, message: str, *, job_status: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.job_status = job_status


class AlreadyRunning(TalkifaiError, Rejected):
    """The job is already calling its contacts."""

    error_code = "already_running"
    advice = gettext_lazy("The job is already calling; nothing to do.")


class Unauthorized(TalkifaiError, Rejected):
    """TalkifAI did not accept the API key (missing, wrong or revoked)."""

    error_code = "unauthorized"
    advice = gettext_lazy(
        "TalkifAI did not accept the API key. Check the key in the connection settings "
        "(TalkifAI Studio → Settings → API Keys) and the connection's auth header setting."
    )


class Forbidden(TalkifaiError, Rejected):
    """The API key is valid but not allowed to do this."""

    error_code = "forbidden"
    advice = gettext_lazy(
        "The API key is valid but not allowed to do this. Use a key with batch-calling rights."
    )


class EndpointNotFound(TalkifaiError, Rejected):
    """A 404 that is not about the job: the base URL or the configured paths are wrong."""

    error_code = "endpoint_not_found"
    advice = gettext_lazy(
        "TalkifAI has no such endpoint. Check the connection's base URL and API paths; nothing "
        "was started."
    )


class UnexpectedRedirect(TalkifaiError, Rejected):
    """The server answered with a redirect instead of acting (usually a wrong base URL)."""

    error_code = "unexpected_redirect"
    advice = gettext_lazy(
        "The server redirected the call elsewhere. Fix the connection's base URL (https?)."
    )


class RequestRejected(TalkifaiError, Rejected):
    """Any other refusal (4xx, or an error envelope with a code we do not know)."""

    error_code = "request_rejected"
    advice = gettext_lazy(
        "TalkifAI refused the request; its message says why. Nothing was started."
    )


class RateLimited(TalkifaiError, Throttled):
    """TalkifAI asked us to slow down (429)."""

    error_code = "rate_limited"
    advice = gettext_lazy(
        "TalkifAI is rate limiting this API key. Wait the time it names, then try again."
    )


class TalkifaiServerError(TalkifaiError, ServerError):
    """TalkifAI failed while handling the call (5xx)."""

    error_code = "server_error"
    advice = gettext_lazy(
        "TalkifAI had an internal error. Check the job's detail before trying again."
    )


class UnreadableDetail(TalkifaiError, ServerError):
    """The detail call answered 2xx with something that is not a batch job."""

    error_code = "unreadable_detail"
    advice = gettext_lazy(
        "TalkifAI answered the status check with something unreadable. Try again later."
    )


class GatewayTimeout(TalkifaiError, OutcomeUnknown):
    """A gateway gave up waiting for TalkifAI (504): the start may still have happened."""

    error_code = "gateway_timeout"
    advice = gettext_lazy(
        "A gateway stopped waiting for TalkifAI, which may still have started the job. Check the "
        "job's detail before starting it again."
    )


class StartNotConfirmed(TalkifaiError, OutcomeUnknown):
    """A 2xx saying `success: false` with no reason: the job may or may not have started."""

    error_code = "start_not_confirmed"
    advice = gettext_lazy(
        "TalkifAI processed the call but did not confirm the start. Check the job's detail "
        "before starting it again."
    )


class UnreadableStartAnswer(TalkifaiError, OutcomeUnknown):
    """A 2xx to the start call that we cannot read: the job may have started."""

    error_code = "unreadable_answer"
    advice = gettext_lazy(
        "TalkifAI accepted the call but its answer was unreadable; the job may have started. "
        "Check the job's detail before starting it again."
    )


# Advice for the errors `VendorHttp` raises itself (nothing sent, no answer).
ADVICE_BY_FAILURE_CLASS: dict[FailureClass, str] = {
    FailureClass.NOT_SENT: gettext_lazy(
        "The call never reached TalkifAI. It is safe to try again."
    ),
    FailureClass.REJECTED: gettext_lazy("TalkifAI refused the call; nothing was started."),
    FailureClass.THROTTLED: gettext_lazy("TalkifAI asked to slow down. Wait, then try again."),
    FailureClass.SERVER_ERROR: gettext_lazy(
        "TalkifAI had an internal error. Check the job before retrying."
    ),
    FailureClass.OUTCOME_UNKNOWN: (
        gettext_lazy(
            "The call reached TalkifAI but no answer came back; the job may have started. Check the "
            "job's detail before starting it again."
        )
    ),
}


def advice_for(error: VendorError) -> str:
    """Plain-words advice for the UI about any error a TalkifAI call raised."""
    advice = getattr(type(error), "advice", "")
    return str(advice or ADVICE_BY_FAILURE_CLASS[error.failure_class])


# Vendor error codes that name one of our classes, whatever the HTTP status that carried them.
ERROR_CLASS_BY_VENDOR_CODE: dict[str, type[TalkifaiError]] = {
    JobNotFound.error_code: JobNotFound,
    InvalidStatus.error_code: InvalidStatus,
    AlreadyRunning.error_code: AlreadyRunning,
    Unauthorized.error_code: Unauthorized,
    Forbidden.error_code: Forbidden,
}


@dataclass(frozen=True)
class VendorErrorReport:
    """The code and message found in an error answer; empty strings when absent."""

    code: str
    message: str


def read_vendor_error(body: bytes) -> VendorErrorReport:
    """The vendor's error code and message, from any of the error shapes the client accepts."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        return VendorErrorReport("", text[:MAX_VENDOR_MESSAGE_CHARS])
    code, message = _code_and_message(payload)
    if not code:
        code = _code_from_wording(message)
    return VendorErrorReport(code.strip().lower(), message[:MAX_VENDOR_MESSAGE_CHARS])


def _code_and_message(payload: Any) -> tuple[str, str]:
    if isinstance(payload, str):
        # A bare string may be a code ("job_not_found") or a sentence; both are worth showing.
        return (payload if re.fullmatch(r"[a-z_]+", payload) else "", payload)
    if not isinstance(payload, dict):
        return "", json.dumps(payload) if payload is not None else ""
    code = ""
    message = ""
    for name in ("code", "errorCode", "error_code"):
        if isinstance(payload.get(name), str):
            code = payload[name]
            break
    if isinstance(payload.get("message"), str):
        message = payload["message"]
    for nested_name in ("error", "detail"):
        nested = payload.get(nested_name)
        if nested is None or nested is False:
            continue
        nested_code, nested_message = _code_and_message(nested)
        code = code or nested_code
        message = message or nested_message
    return code, message


def _code_from_wording(message: str) -> str:
    """The documented error code a message's wording reveals, when the answer named none."""
    lowered = message.lower()
    if "already running" in lowered:
        return AlreadyRunning.error_code
    if CANNOT_START_PATTERN.search(message):
        return InvalidStatus.error_code
    if "job" in lowered and "not found" in lowered:
        return JobNotFound.error_code
    return ""


# -- parsing helpers ------------------------------------------------------------------------------


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string (naive values are UTC, per the doc)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_count(value: object) -> int | None:
    """A non-negative integer from a JSON number or numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


# -- the client -----------------------------------------------------------------------------------


class TalkifaiClient:
    """Starts TalkifAI batch jobs and reads their detail, for one connection (one API key).

    `base_url` is the API root (e.g. `https://api.talkifai.dev`, possibly with a path prefix);
    `layout` says where the endpoints are and how the key is sent (see `TalkifaiApiLayout`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        layout: TalkifaiApiLayout | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigurationError("A TalkifAI API key is required.")
        if api_key != api_key.strip() or not api_key.isprintable():
            # A header value with a line break would smuggle headers; spaces are copy-paste slips.
            raise ConfigurationError("The TalkifAI API key contains spaces or control characters.")
        self.layout = layout or TalkifaiApiLayout()
        self._api_key = api_key
        self._http = VendorHttp(
            base_url,
            secrets=[api_key],
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    @property
    def base_url(self) -> str:
        """The API root this client calls."""
        return self._http.base_url

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", **self.layout.auth_headers(self._api_key)}

    def start_batch_job(self, batch_job_id: str) -> BatchJobStarted:
        """Start a scheduled or pending batch job now (POST, no body).

        Raises ConfigurationError before sending for an unusable id, else one of the errors in
        the module docstring's table.
        """
        route = self.layout.start_route(batch_job_id)
        response, exchange = self._http.request("POST", route, headers=self._headers())
        if not 200 <= response.status_code < 300:
            raise self._error_for(response, exchange, starting=True)
        payload = _json_object(response.content)
        if payload is None:
            raise self._unreadable_start(exchange, "The answer is not a JSON object.")
        if payload.get("success") is not True:
            report = read_vendor_error(response.content)
            if report.code:
                raise self._error_for(response, exchange, starting=True, report=report)
            raise self._build(
                StartNotConfirmed,
                "TalkifAI answered without confirming the start; the job may have started.",
                response,
                exchange,
                report,
            )
        answered_id = payload.get("batchJobId")
        if not isinstance(answered_id, str) or not answered_id:
            raise self._unreadable_start(exchange, "The answer names no batchJobId.")
        if answered_id != batch_job_id:
            raise self._unreadable_start(
                exchange, f"The answer names another batch job ({answered_id!r})."
            )
        started_at = parse_timestamp(payload.get("startedAt"))
        redis_job_cancelled = payload.get("redisJobCancelled")
        result = BatchJobStarted(
            success=True,
            message=self._http.redact(_text(payload.get("message"))) or "",
            batch_job_id=answered_id,
            status=_text(payload.get("status")) or BatchJobStatus.RUNNING.value,
            contacts_enqueued=parse_count(payload.get("contactsEnqueued")),
            redis_job_cancelled=redis_job_cancelled
            if isinstance(redis_job_cancelled, bool)
            else None,
            started_at=started_at or datetime.now(UTC),
            started_at_reported=started_at is not None,
            exchange=exchange,
        )
        logger.info(
            "TalkifAI batch job %s started: %s contacts enqueued",
            answered_id,
            result.contacts_enqueued,
        )
        return result

    def batch_job_detail(self, batch_job_id: str) -> BatchJobDetail:
        """Read one batch job: status, schedule, timing and progress counts."""
        route = self.layout.detail_route(batch_job_id)
        response, exchange = self._http.request("GET", route, headers=self._headers())
        if not 200 <= response.status_code < 300:
            raise self._error_for(response, exchange, starting=False)
        payload = _json_object(response.content)
        # Tolerate a job wrapped in an envelope; some APIs answer {"batchJob": {...}}.
        for envelope in ("batchJob", "data"):
            if payload is not None and "status" not in payload:
                inner = payload.get(envelope)
                payload = inner if isinstance(inner, dict) else payload
        if payload is None or not isinstance(payload.get("status"), str):
            if payload is not None and payload.get("success") is False:
                raise self._error_for(response, exchange, starting=False)
            raise self._build(
                UnreadableDetail,
                "TalkifAI answered the detail call with something that is not a batch job.",
                response,
                exchange,
                VendorErrorReport("", ""),
            )
        breakdown = payload.get("statusBreakdown")
        return BatchJobDetail(
            batch_job_id=_text(payload.get("id"))
            or _text(payload.get("batchJobId"))
            or batch_job_id,
            name=_text(payload.get("name")),
            status=payload["status"],
            scheduled_at=parse_timestamp(payload.get("scheduledStartTime")),
            started_at=parse_timestamp(payload.get("actualStartTime")),
            completed_at=parse_timestamp(payload.get("completedAt")),
            contacts_total=parse_count(payload.get("totalContacts"))
            if "totalContacts" in payload
            else parse_count(payload.get("contactsTotal")),
            description=_text(payload.get("description")),
            contacts_processed=parse_count(payload.get("contactsProcessed")),
            successful_calls=parse_count(payload.get("successfulCalls")),
            failed_calls=parse_count(payload.get("failedCalls")),
            created_at=parse_timestamp(payload.get("createdAt")),
            estimated_completion_at=parse_timestamp(payload.get("estimatedCompletionTime")),
            status_breakdown={
                str(name): count
                for name, value in (breakdown.items() if isinstance(breakdown, dict) else ())
                if (count := parse_count(value)) is not None
            },
            exchange=exchange,
        )

    # -- error mapping ------------------------------------------------------------------------

    def _build(
        self,
        error_class: type[TalkifaiError],
        message: str,
        response: VendorResponse,
        exchange: Exchange,
        report: VendorErrorReport,
        **extra: Any,
    ) -> VendorError:
        vendor_message = self._http.redact(report.message) or ""
        return error_class(
            self._http.redact(message) or "",
            code=error_class.error_code,
            status_code=response.status_code,
            vendor_message=vendor_message,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            exchange=exchange,
            **extra,
        )

    def _unreadable_start(self, exchange: Exchange, reason: str) -> VendorError:
        return UnreadableStartAnswer(
            self._http.redact(
                f"TalkifAI accepted the start call but its answer is unreadable: {reason}"
            )
            or "",
            code=UnreadableStartAnswer.error_code,
            status_code=exchange.status_code,
            exchange=exchange,
        )

    def _error_for(
        self,
        response: VendorResponse,
        exchange: Exchange,
        *,
        starting: bool,
        report: VendorErrorReport | None = None,
    ) -> VendorError:
        """The error for a non-success answer (see the module docstring's table)."""
        status = response.status_code
        report = report or read_vendor_error(response.content)
        said = f": {report.message}" if report.message else ""
        if status == 429:
            return self._build(
                RateLimited, f"TalkifAI is rate limiting (429){said}", response, exchange, report
            )
        if status >= 500:
            if status == 504 and starting:
                return self._build(
                    GatewayTimeout,
                    "A gateway timed out waiting for TalkifAI (504); the job may have started.",
                    response,
                    exchange,
                    report,
                )
            return self._build(
                TalkifaiServerError,
                f"TalkifAI failed with HTTP {status}{said}",
                response,
                exchange,
                report,
            )
        if 300 <= status < 400:
            return self._build(
                UnexpectedRedirect,
                f"TalkifAI redirected the call (HTTP {status}) instead of answering it.",
                response,
                exchange,
                report,
            )
        if status == 401:
            error_class: type[TalkifaiError] = Unauthorized
        elif status == 403:
            error_class = Forbidden
        elif report.code in ERROR_CLASS_BY_VENDOR_CODE:
            error_class = ERROR_CLASS_BY_VENDOR_CODE[report.code]
        elif status == 404:
            error_class = EndpointNotFound
        else:
            # Any other 4xx, or a 2xx error envelope whose code we do not know.
            error_class = RequestRejected
        code_note = f" [{report.code}]" if report.code and error_class is RequestRejected else ""
        extra: dict[str, Any] = {}
        if error_class is InvalidStatus:
            match = CANNOT_START_PATTERN.search(report.message)
            extra["job_status"] = match.group("status").lower() if match else None
        return self._build(
            error_class,
            f"TalkifAI refused the call (HTTP {status}{code_note}){said}",
            response,
            exchange,
            report,
            **extra,
        )


__all__ = [
    "ADVICE_BY_FAILURE_CLASS",
    "FINISHED_STATUSES",
    "STARTABLE_STATUSES",
    "AlreadyRunning",
    "BatchJobDetail",
    "BatchJobStarted",
    "BatchJobStatus",
    "ConfigurationError",
    "EndpointNotFound",
    "Forbidden",
    "GatewayTimeout",
    "InvalidStatus",
    "JobNotFound",
    "NotSent",
    "OutcomeUnknown",
    "RateLimited",
    "RequestRejected",
    "StartNotConfirmed",
    "TalkifaiApiLayout",
    "TalkifaiClient",
    "TalkifaiError",
    "TalkifaiServerError",
    "Unauthorized",
    "UnexpectedRedirect",
    "UnreadableDetail",
    "UnreadableStartAnswer",
    "advice_for",
    "read_vendor_error",
]
