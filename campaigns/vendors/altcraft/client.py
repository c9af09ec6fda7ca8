"""Altcraft client: bulk trigger launch, bulk import + trigger task, and task status.

Three documented routes, all `POST` with a JSON body that carries the API token itself (so the
token is handed to `VendorHttp` as a secret: every recorded body has it replaced):

- `{base}/api/v1.1/campaigns/triggers/start_batch` launches a trigger campaign for existing
  profiles found by a matching mode, and answers with the profile ids it reached;
- `{base}/api/v1.1/campaigns/triggers/import_and_start_batch_task` imports (adds or updates)
  profiles and then launches the campaign, in the background: it answers with a task id;
- `{base}/api/v1.1/tasks/status` reports a task's status, progress and result.

How answers are classified (one failure class each, see `dashboard.vendors.http`):

- HTTP 2xx with an envelope whose `error` is 0: success.
- HTTP 2xx whose envelope has a non-zero `error`: REJECTED (`AltcraftRejected`, code
  `altcraft_error_<n>`), carrying `error_text` and `error_debug`. Altcraft reports most refusals
  this way, under HTTP 200, so the status code alone never means success.
- The documented body-size refusal (`error_debug` "http: request body too large", whatever the
  HTTP status) is REJECTED with its own code, `body_too_large` (`VendorBodyLimitExceeded`).
- HTTP 429: THROTTLED (`AltcraftThrottled`, code `rate_limited`, `retry_after` from the
  Retry-After header). HTTP 5xx: SERVER ERROR (`AltcraftServerError`, code `http_<status>`).
  Other HTTP 4xx: REJECTED (envelope code when there is one, else `http_<status>`). HTTP 3xx
  (redirects are never followed: a followed POST may be replayed as a GET or resent): REJECTED,
  code `unexpected_redirect`, as the vendor did not act on this URL.
- HTTP 2xx that cannot be read (not JSON, no integer `error`, a malformed result):
  for the two launching calls, OUTCOME UNKNOWN (`UnreadableLaunchAnswer`, code
  `unreadable_answer`): the vendor may well have launched the campaign before its answer got
  garbled, so the run engine must not resend blindly. For `task_status`, which changes nothing
  at the vendor, SERVER ERROR (`UnreadableStatusAnswer`, same code): the vendor misbehaved, and
  asking again is harmless.
- Transport failures (from `VendorHttp`): NOT SENT (`AltcraftNotSent`, `connection_failed`) or
  OUTCOME UNKNOWN (`no_answer`: `NoAnswer` for launches, `StatusNoAnswer` for status reads).

Every error class carries an `advice` sentence for the UI.

Bad parameters raise `ConfigurationError` before anything is sent, including a body larger than
the vendor's limit (10 MB, i.e. 10,000,000 bytes by default, measured on the exact minified
bytes that would be sent): `BodyTooLarge`. `split_start_batch_data` and `split_import_data` cut
a large audience into chunks whose bodies each fit under the limit.

Task status: the docs show two result shapes. The JSON example (parsed) is
`{"error": 0, "error_text": "", "result": [{"profile_id": ...}]}`; the XML example is
`{"captured": 0, "errors": [], "status": "ok"}` (tolerated: no profile ids, no result error, the
raw result is kept on `TaskStatus.result`).

Profile ids: start_batch answers one `{"profile_id": ...}` per profile reached, about 300,000 for
a 10 MB body. Its answer is read entry by entry (`_launch_envelope`), never parsed whole, and the
ids are kept as `ProfileIds`, one buffer plus an offset table: a list of 300,000 parsed objects
would take over 60 MB of a send worker's memory.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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
    VendorHttp,
    VendorResponse,
    minified_json,
    parse_retry_after,
)

logger = logging.getLogger(__name__)

START_BATCH_ROUTE = "api/v1.1/campaigns/triggers/start_batch"
IMPORT_AND_START_BATCH_TASK_ROUTE = "api/v1.1/campaigns/triggers/import_and_start_batch_task"
TASK_STATUS_ROUTE = "api/v1.1/tasks/status"

# "The request body size is limited by default to 10 Mb": decimal megabytes, as the vendor's
# limit is a byte count configured per installation (hence configurable per client).
DEFAULT_BODY_LIMIT_BYTES = 10_000_000

MATCHING_MODES = ("email", "email_profile", "phone", "profile_id", "custom")
# The key each start_batch data item must carry, per matching mode.
START_BATCH_ITEM_KEYS = {
    "email": "email",
    "email_profile": "email",
    "phone": "phone",
    "profile_id": "profile_id",
    "custom": "field_value",
}
TIMEOUT_UNITS = ("days", "hours", "minutes")

# Statuses after which a task never changes again. "completed" is the documented one; the others
# cover the failure spellings a task API plausibly uses (the sandbox says "failed").
TERMINAL_TASK_STATUSES = frozenset({"completed", "failed", "error", "cancelled", "canceled"})
FAILED_TASK_STATUSES = frozenset({"failed", "error", "cancelled", "canceled"})

BODY_TOO_LARGE_DEBUG = "request body too large"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


# -- results ---------------------------------------------------------------------------------


class ProfileIds(Sequence[str]):
    """Profile ids held compactly: their UTF-8 bytes in one buffer and where each ends.

    A read-only sequence of str (index, slice, iterate, len; equal to a list of the same ids).
    300,000 ObjectId-like ids take about 9.6 MB instead of a list of str objects (~25 MB), and
    never exist as the parsed answer's dicts (~60 MB more).
    """

    __slots__ = ("_data", "_ends")

    def __init__(self, profile_ids: Iterable[str] = ()) -> None:
        self._data = bytearray()
        self._ends = array("Q")
        for profile_id in profile_ids:
            self.append(profile_id)

    def append(self, profile_id: str) -> None:
        """Add one id at the end (only while the answer is read)."""
        self._data += profile_id.encode("utf-8")
        self._ends.append(len(self._data))

    def extend(self, profile_ids: list[str]) -> None:
        """Add a block of ids at the end (only while the answer is read)."""
        encoded = [profile_id.encode("utf-8") for profile_id in profile_ids]
        ends = itertools.accumulate(map(len, encoded), initial=len(self._data))
        self._data += b"".join(encoded)
        self._ends.extend(itertools.islice(ends, 1, None))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError("profile id index out of range")
        start = self._ends[position - 1] if position else 0
        return self._data[start : self._ends[position]].decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        start = 0
        for end in self._ends:
            yield self._data[start:end].decode("utf-8")
            start = end

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProfileIds | list | tuple):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(repr(profile_id) for profile_id in self[:3])
        more = f", ... {len(self)} in all" if len(self) > 3 else ""
        return f"ProfileIds([{shown}{more}])"


@dataclass(frozen=True)
class BatchLaunchResult:
    """A trigger campaign launched by `start_batch`: the profiles Altcraft sent it to."""

    profile_ids: ProfileIds
    error_text: str
    exchange: Exchange


@dataclass(frozen=True)
class ImportTaskAccepted:
    """An import + launch task Altcraft accepted; poll it with `task_status(task_id)`."""

    task_id: str
    error_text: str
    exchange: Exchange


@dataclass(frozen=True)
class TaskStatus:
    """Where an import + launch task stands.

    `profile_ids` are the profiles the campaign was sent to (known once the task completed),
    `result_error` / `result_error_text` the task's own outcome (None / "" while it runs or when
    the result carries none), `result` the result object exactly as the vendor sent it.
    """

    task_id: str
    status: str
    progress: int
    is_terminal: bool
    profile_ids: ProfileIds
    result_error: int | None
    result_error_text: str
    result: dict[str, Any] | None
    exchange: Exchange

    @property
    def failed(self) -> bool:
        """True when the task ended without launching: a failure status or a non-zero result error."""
        return self.status in FAILED_TASK_STATUSES or self.result_error not in (None, 0)


# -- errors ----------------------------------------------------------------------------------


class BodyTooLarge(ConfigurationError):
    """The request body would exceed the vendor's size limit; nothing was sent."""

    def __init__(self, size_bytes: int, limit_bytes: int, detail: str = "") -> None:
        super().__init__(
            f"The request body would be {size_bytes} bytes, over Altcraft's limit of "
            f"{limit_bytes} bytes{detail}. Send the audience in several batches."
        )
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class AltcraftRejected(Rejected):
    """Altcraft refused the request (non-zero `error` in its envelope, or HTTP 4xx).

    `code` is `altcraft_error_<error>` (`http_<status>` without an envelope), `error_number`
    the envelope's `error` (None without an envelope) and `error_debug` its `error_debug`.
    """

    advice: ClassVar[str] = gettext_lazy(
        "Altcraft refused the request and launched nothing; its message says why (token, "
        "trigger campaign, parameters). Fix the cause, then send again."
    )

    def __init__(
        self, message: str, *, error_number: int | None, error_debug: str, **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.error_number = error_number
        self.error_debug = error_debug


class VendorBodyLimitExceeded(AltcraftRejected):
    """Altcraft refused the body as too large ("http: request body too large")."""

    advice: ClassVar[str] = gettext_lazy(
        "This Altcraft installation accepts smaller bodies than configured here. Lower the "
        "body limit of the connection and send the audience in smaller batches."
    )


class AltcraftThrottled(Throttled):
    """HTTP 429: Altcraft is rate-limiting this token."""

    advice: ClassVar[str] = gettext_lazy(
        "Altcraft is rate-limiting this token and launched nothing. Send again after the wait."
    )


class AltcraftServerError(ServerError):
    """HTTP 5xx: a fault on Altcraft's side."""

    advice: ClassVar[str] = gettext_lazy(
        "Altcraft reported a fault on its side. It is usually temporary: try again later, and "
        "check the campaign in Altcraft first if this was a launch."
    )


class AltcraftNotSent(NotSent):
    """Nothing reached Altcraft (connection refused, DNS, TLS)."""

    advice: ClassVar[str] = gettext_lazy("Nothing reached Altcraft. It is safe to try again.")


class NoAnswer(OutcomeUnknown):
    """A launch or import was sent but no answer came back (timeout, reset)."""

    advice: ClassVar[str] = gettext_lazy(
        "The request was sent but no answer came back, so Altcraft may have launched the "
        "campaign (or started the import task). Check in Altcraft before sending again."
    )


class StatusNoAnswer(OutcomeUnknown):
    """A task status request got no answer; asking changes nothing at Altcraft."""

    advice: ClassVar[str] = gettext_lazy(
        "No answer about the task's status. Asking again is harmless."
    )


class UnreadableLaunchAnswer(OutcomeUnknown):
    """A launching call got a 2xx answer that cannot be read: the campaign may have gone out."""

    advice: ClassVar[str] = gettext_lazy(
        "Altcraft answered, but not in a form this client understands, so the campaign may "
        "have been launched. Check in Altcraft before sending again."
    )


class UnreadableStatusAnswer(ServerError):
    """A task status call got a 2xx answer that cannot be read (nothing changed at the vendor)."""

    advice: ClassVar[str] = gettext_lazy(
        "Altcraft's answer about the task could not be read. Asking again is harmless."
    )


# -- client ----------------------------------------------------------------------------------


class AltcraftClient:
    """Calls Altcraft's bulk trigger launch, bulk import + trigger task and task status routes.

    `base_url` is the installation's address (it may carry a path prefix); `token` the API token,
    sent in every body and redacted from every record; `body_limit_bytes` the installation's body
    size limit, checked before sending.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ConfigurationError("An Altcraft API token is required.")
        if _is_not_int(body_limit_bytes) or body_limit_bytes <= 0:
            raise ConfigurationError("body_limit_bytes must be a positive whole number of bytes.")
        self._token = token
        self.body_limit_bytes = body_limit_bytes
        self._http = VendorHttp(
            base_url,
            secrets=[token],
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # -- bulk trigger launch ---------------------------------------------------------------

    def start_batch(
        self,
        *,
        trigger_id: int,
        data: list[dict[str, Any]],
        matching: str = "email",
        field_name: str | None = None,
        content: dict[str, Any] | None = None,
        custom_data: dict[str, Any] | None = None,
        attach: list[dict[str, Any]] | None = None,
        skip_triggers: bool | None = None,
    ) -> BatchLaunchResult:
        """Launch trigger campaign `trigger_id` for the existing profiles that `data` matches.

        Each data item names one profile by the matching mode's key: `email` (matching `email`,
        `email_profile`), `phone`, `profile_id`, or `field_value` (matching `custom`, with
        `field_name` naming the profile field).
        """
        _check_start_batch_items(data, matching)
        payload = _start_batch_payload(
            token=self._token,
            trigger_id=trigger_id,
            data=data,
            matching=matching,
            field_name=field_name,
            content=content,
            custom_data=custom_data,
            attach=attach,
            skip_triggers=skip_triggers,
        )
        envelope, exchange = self._post(
            START_BATCH_ROUTE, payload, launching=True, read_answer=_launch_envelope
        )
        return self._launch_result(envelope, exchange)

    def _launch_result(self, envelope: dict[str, Any], exchange: Exchange) -> BatchLaunchResult:
        """start_batch's answer: the profile ids the campaign went to (both request forms)."""
        profile_ids = _profile_ids(envelope.get("result"))
        if profile_ids is None:
            raise self._unreadable(exchange, launching=True, why="its result is not a profile list")
        return BatchLaunchResult(
            profile_ids=profile_ids,
            error_text=_text(envelope.get("error_text")),
            exchange=exchange,
        )

    def split_start_batch_data(
        self,
        data: Sequence[dict[str, Any]],
        *,
        trigger_id: int,
        matching: str = "email",
        field_name: str | None = None,
        content: dict[str, Any] | None = None,
        custom_data: dict[str, Any] | None = None,
        attach: list[dict[str, Any]] | None = None,
        skip_triggers: bool | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Cut `data` into chunks, in order, so each `start_batch` body fits the size limit.

        Takes the same parameters as `start_batch`: they all count towards the body size.
        """
        _check_start_batch_items(data, matching)
        empty_payload = _start_batch_payload(
            token=self._token,
            trigger_id=trigger_id,
            data=[],
            matching=matching,
            field_name=field_name,
            content=content,
            custom_data=custom_data,
            attach=attach,
            skip_triggers=skip_triggers,
        )
        return split_items_to_fit(
            data,
            overhead_bytes=len(minified_json(empty_payload)),
            limit_bytes=self.body_limit_bytes,
        )

    def start_batch_encoded(self, *, data_json: bytes, **parameters: Any) -> BatchLaunchResult:
        """`start_batch` with its `data` already encoded as a minified JSON array.

        For a caller that checked and stored its items as the exact bytes to send (a large list
        read in chunks): the array is spliced into the body as is, never parsed into objects,
        so sending a 10 MB chunk costs about one copy of it in memory. Takes `start_batch`'s
        other parameters.
        """
        options = _with_defaults({**parameters, "data": []}, START_BATCH_OPTIONS)
        payload = _start_batch_payload(token=self._token, **options)
        body = _splice_data(payload, data_json)
        envelope, exchange = self._post_body(
            START_BATCH_ROUTE, body, launching=True, read_answer=_launch_envelope
        )
        return self._launch_result(envelope, exchange)

    def import_and_start_batch_task_encoded(
        self, *, data_json: bytes, **parameters: Any
    ) -> ImportTaskAccepted:
        """`import_and_start_batch_task` with `data` already encoded (see start_batch_encoded)."""
        options = _with_defaults({**parameters, "data": []}, IMPORT_OPTIONS)
        payload = _import_payload(token=self._token, **options)
        body = _splice_data(payload, data_json)
        envelope, exchange = self._post_body(
            IMPORT_AND_START_BATCH_TASK_ROUTE, body, launching=True
        )
        task_id = envelope.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise self._unreadable(exchange, launching=True, why="it names no task id")
        return ImportTaskAccepted(
            task_id=task_id, error_text=_text(envelope.get("error_text")), exchange=exchange
        )

    def start_batch_overhead_bytes(self, **parameters: Any) -> int:
        """The exact size of a `start_batch` body whose `data` is empty.

        A body with items is this plus each item's minified size plus a comma between items: what
        a caller that streams its items into chunks needs. Takes `start_batch`'s other parameters.
        """
        options = _with_defaults({**parameters, "data": []}, START_BATCH_OPTIONS)
        payload = _start_batch_payload(token=self._token, **options)
        return len(minified_json(payload))

    def import_overhead_bytes(self, **parameters: Any) -> int:
        """The exact size of an import task body whose `data` is empty (see above)."""
        options = _with_defaults({**parameters, "data": []}, IMPORT_OPTIONS)
        payload = _import_payload(token=self._token, **options)
        return len(minified_json(payload))

    # -- bulk import + trigger task --------------------------------------------------------

    def import_and_start_batch_task(
        self,
        *,
        trigger_id: int,
        data: list[dict[str, Any]],
        matching: str = "email",
        field_name: str | None = None,
        skip_triggers: bool | None = None,
        skip_invalid_subscriptions: bool | None = None,
        detect_geo: bool | None = None,
        resource_id: int | None = None,
        timeout: dict[str, int] | None = None,
        content: dict[str, Any] | None = None,
        custom_data: dict[str, Any] | None = None,
        attach: list[dict[str, Any]] | None = None,
    ) -> ImportTaskAccepted:
        """Start a task that imports (adds or updates) profiles, then launches `trigger_id`.

        Each data item is exactly `{"data": {...profile fields, "subscriptions": [...]}}`, with
        the matching value among the profile fields (or subscriptions), as the vendor's batch
        examples put it; an item with a key beside `data` is refused before sending.
        `timeout` is `{"days", "hours", "minutes"}` (any subset).
        """
        _check_import_items(data, matching, field_name)
        payload = _import_payload(
            token=self._token,
            trigger_id=trigger_id,
            data=data,
            matching=matching,
            field_name=field_name,
            skip_triggers=skip_triggers,
            skip_invalid_subscriptions=skip_invalid_subscriptions,
            detect_geo=detect_geo,
            resource_id=resource_id,
            timeout=timeout,
            content=content,
            custom_data=custom_data,
            attach=attach,
        )
        envelope, exchange = self._post(IMPORT_AND_START_BATCH_TASK_ROUTE, payload, launching=True)
        task_id = envelope.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise self._unreadable(exchange, launching=True, why="it names no task id")
        return ImportTaskAccepted(
            task_id=task_id, error_text=_text(envelope.get("error_text")), exchange=exchange
        )

    def split_import_data(
        self,
        data: Sequence[dict[str, Any]],
        *,
        trigger_id: int,
        matching: str = "email",
        field_name: str | None = None,
        skip_triggers: bool | None = None,
        skip_invalid_subscriptions: bool | None = None,
        detect_geo: bool | None = None,
        resource_id: int | None = None,
        timeout: dict[str, int] | None = None,
        content: dict[str, Any] | None = None,
        custom_data: dict[str, Any] | None = None,
        attach: list[dict[str, Any]] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Cut `data` into chunks, in order, so each import task body fits the size limit.

        Takes the same parameters as `import_and_start_batch_task`.
        """
        _check_import_items(data, matching, field_name)
        empty_payload = _import_payload(
            token=self._token,
            trigger_id=trigger_id,
            data=[],
            matching=matching,
            field_name=field_name,
            skip_triggers=skip_triggers,
            skip_invalid_subscriptions=skip_invalid_subscriptions,
            detect_geo=detect_geo,
            resource_id=resource_id,
            timeout=timeout,
            content=content,
            custom_data=custom_data,
            attach=attach,
        )
        return split_items_to_fit(
            data,
            overhead_bytes=len(minified_json(empty_payload)),
            limit_bytes=self.body_limit_bytes,
        )

    # -- task status -----------------------------------------------------------------------

    def task_status(self, task_id: str) -> TaskStatus:
        """The status, progress (0-100) and, once done, result of an import + launch task."""
        # No format check beyond "non-empty": the vendor's own example id is not a UUID.
        if not isinstance(task_id, str) or not task_id.strip():
            raise ConfigurationError("task_id must be a non-empty string.")
        payload = {"token": self._token, "task_id": task_id}
        envelope, exchange = self._post(TASK_STATUS_ROUTE, payload, launching=False)
        task = envelope.get("data")
        if not isinstance(task, dict):
            raise self._unreadable(exchange, launching=False, why="it carries no task data")
        status = task.get("status")
        progress = task.get("progress")
        result = task.get("result")
        if not isinstance(status, str) or not status:
            raise self._unreadable(exchange, launching=False, why="it names no task status")
        if _is_not_number(progress) or not 0 <= progress <= 100:
            raise self._unreadable(exchange, launching=False, why="its progress is not 0-100")
        if result is not None and not isinstance(result, dict):
            raise self._unreadable(exchange, launching=False, why="its result is not an object")
        profile_ids: ProfileIds | None = ProfileIds()
        result_error: int | None = None
        result_error_text = ""
        if result is not None:
            # The JSON shape nests a profile list under "result"; the XML shape has none.
            profile_ids = _profile_ids(result.get("result"))
            raw_error = result.get("error")
            result_error = None if _is_not_int(raw_error) else raw_error
            result_error_text = self._http.redact(_text(result.get("error_text"))) or ""
        if profile_ids is None:
            raise self._unreadable(
                exchange, launching=False, why="its result is not a profile list"
            )
        return TaskStatus(
            task_id=task_id,
            status=status,
            progress=int(progress),
            is_terminal=status in TERMINAL_TASK_STATUSES,
            profile_ids=profile_ids,
            result_error=result_error,
            result_error_text=result_error_text,
            result=result,
            exchange=exchange,
        )

    # -- plumbing --------------------------------------------------------------------------

    def _post(
        self,
        route: str,
        payload: dict[str, Any],
        *,
        launching: bool,
        read_answer: Callable[[bytes], dict[str, Any] | None] | None = None,
    ) -> tuple[dict[str, Any], Exchange]:
        """Send one body; return the success envelope or raise the failure's class."""
        return self._post_body(
            route, minified_json(payload), launching=launching, read_answer=read_answer
        )

    def _post_body(
        self,
        route: str,
        body: bytes,
        *,
        launching: bool,
        read_answer: Callable[[bytes], dict[str, Any] | None] | None = None,
    ) -> tuple[dict[str, Any], Exchange]:
        if len(body) > self.body_limit_bytes:
            raise BodyTooLarge(len(body), self.body_limit_bytes)
        try:
            response, exchange = self._http.request("POST", route, headers=JSON_HEADERS, body=body)
        except NotSent as error:
            raise AltcraftNotSent(error.message, code=error.code, exchange=error.exchange) from None
        except OutcomeUnknown as error:
            no_answer = NoAnswer if launching else StatusNoAnswer
            raise no_answer(error.message, code=error.code, exchange=error.exchange) from None
        envelope = (read_answer or _envelope)(response.content)
        self._raise_for_failure(response, exchange, envelope)
        if envelope is None:
            raise self._unreadable(exchange, launching=launching, why="it is not an envelope")
        return envelope, exchange

    def _raise_for_failure(
        self, response: VendorResponse, exchange: Exchange, envelope: dict[str, Any] | None
    ) -> None:
        status = response.status_code
        error_number = envelope["error"] if envelope else None
        error_text = self._http.redact(_text(envelope.get("error_text"))) if envelope else ""
        error_debug = self._http.redact(_text(envelope.get("error_debug"))) if envelope else ""
        details: dict[str, Any] = {
            "status_code": status,
            "vendor_message": error_text or "",
            "exchange": exchange,
        }
        if status == 429:
            raise AltcraftThrottled(
                "Altcraft is throttling this token; retry after the wait it names.",
                code="rate_limited",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                **details,
            )
        if status >= 500:
            raise AltcraftServerError(
                f"Altcraft answered HTTP {status}: a fault on its side.",
                code=f"http_{status}",
                **details,
            )
        if 300 <= status < 400:
            raise AltcraftRejected(
                f"Altcraft answered HTTP {status} (a redirect, not followed): check the base URL.",
                code="unexpected_redirect",
                error_number=error_number,
                error_debug=error_debug or "",
                **details,
            )
        refused = status >= 400 or (envelope is not None and error_number != 0)
        if not refused:
            return
        if BODY_TOO_LARGE_DEBUG in (error_debug or ""):
            raise VendorBodyLimitExceeded(
                "Altcraft refused the body as too large; send the audience in smaller batches.",
                code="body_too_large",
                error_number=error_number,
                error_debug=error_debug or "",
                **details,
            )
        code = f"altcraft_error_{error_number}" if envelope else f"http_{status}"
        described = f"error {error_number}: {error_text}" if envelope else f"HTTP {status}"
        raise AltcraftRejected(
            f"Altcraft refused the request ({described}).",
            code=code,
            error_number=error_number,
            error_debug=error_debug or "",
            **details,
        )

    def _unreadable(
        self, exchange: Exchange, *, launching: bool, why: str
    ) -> UnreadableLaunchAnswer | UnreadableStatusAnswer:
        logger.warning("unreadable Altcraft answer (HTTP %s): %s", exchange.status_code, why)
        if launching:
            return UnreadableLaunchAnswer(
                f"Altcraft answered but {why}; the campaign may have been launched.",
                code="unreadable_answer",
                status_code=exchange.status_code,
                exchange=exchange,
            )
        return UnreadableStatusAnswer(
            f"Altcraft answered but {why}.",
            code="unreadable_answer",
            status_code=exchange.status_code,
            exchange=exchange,
        )


# -- chunking --------------------------------------------------------------------------------


def split_items_to_fit(
    items: Sequence[dict[str, Any]], *, overhead_bytes: int, limit_bytes: int
) -> list[list[dict[str, Any]]]:
    """Cut `items` into consecutive chunks whose minified JSON body stays within `limit_bytes`.

    `overhead_bytes` is the size of the body with an empty `data` list. A body with n items is
    that plus each item's minified size plus n-1 separating commas, exactly: minified JSON of a
    list is its items' encodings joined by ",". Raises BodyTooLarge when one item alone cannot fit.
    """
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    current_size = overhead_bytes
    for index, item in enumerate(items):
        item_size = len(minified_json(item))
        if overhead_bytes + item_size > limit_bytes:
            raise BodyTooLarge(
                overhead_bytes + item_size, limit_bytes, detail=f" with data item {index} alone"
            )
        added = item_size + (1 if current else 0)
        if current and current_size + added > limit_bytes:
            chunks.append(current)
            current, current_size, added = [], overhead_bytes, item_size
        current.append(item)
        current_size += added
    if current:
        chunks.append(current)
    return chunks


# -- payloads and checks ---------------------------------------------------------------------

_EMPTY_DATA = b'"data":[]'


def _splice_data(payload: dict[str, Any], data_json: bytes) -> bytes:
    """The minified body of `payload` (whose `data` is empty) with `data_json` as its data.

    `data` follows only strings and integers in the payload (token, format, trigger_id,
    matching, field_name), whose encodings cannot hold an unescaped `"data":[]`: the first
    occurrence is the key itself, whatever `content` holds after it.
    """
    if not isinstance(data_json, bytes) or not data_json.startswith(b"[{"):
        raise ConfigurationError("data must be a non-empty JSON array of objects.")
    if not data_json.endswith(b"}]"):
        raise ConfigurationError("data must be a JSON array of objects.")
    body = minified_json(payload)
    position = body.find(_EMPTY_DATA)
    if position < 0:
        raise ConfigurationError("The request body has no data field to fill.")
    start = position + len(_EMPTY_DATA) - 2
    return b"".join((body[:start], data_json, body[start + 2 :]))


def _start_batch_payload(
    *,
    token: str,
    trigger_id: int,
    data: Sequence[dict[str, Any]],
    matching: str,
    field_name: str | None,
    content: dict[str, Any] | None,
    custom_data: dict[str, Any] | None,
    attach: list[dict[str, Any]] | None,
    skip_triggers: bool | None,
) -> dict[str, Any]:
    _check_trigger_and_matching(trigger_id, matching, field_name)
    _check_launch_extras(content, custom_data, attach)
    _check_optional_bool("skip_triggers", skip_triggers)
    payload: dict[str, Any] = {
        "token": token,
        "format": "json",
        "trigger_id": trigger_id,
        "matching": matching,
    }
    if field_name is not None:
        payload["field_name"] = field_name
    payload["data"] = list(data)
    _add_present(payload, skip_triggers=skip_triggers)
    _add_present(payload, content=content, custom_data=custom_data, attach=attach)
    return payload


def _import_payload(
    *,
    token: str,
    trigger_id: int,
    data: Sequence[dict[str, Any]],
    matching: str,
    field_name: str | None,
    skip_triggers: bool | None,
    skip_invalid_subscriptions: bool | None,
    detect_geo: bool | None,
    resource_id: int | None,
    timeout: dict[str, int] | None,
    content: dict[str, Any] | None,
    custom_data: dict[str, Any] | None,
    attach: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    _check_trigger_and_matching(trigger_id, matching, field_name)
    _check_launch_extras(content, custom_data, attach)
    _check_optional_bool("skip_triggers", skip_triggers)
    _check_optional_bool("skip_invalid_subscriptions", skip_invalid_subscriptions)
    _check_optional_bool("detect_geo", detect_geo)
    if resource_id is not None and (_is_not_int(resource_id) or resource_id <= 0):
        raise ConfigurationError("resource_id must be a positive integer.")
    if resource_id is not None and matching not in ("email", "email_profile", "phone"):
        raise ConfigurationError("resource_id is only used with email and phone matching.")
    if timeout is not None:
        _check_timeout(timeout)
    payload: dict[str, Any] = {
        "token": token,
        "format": "json",
        "trigger_id": trigger_id,
        "matching": matching,
    }
    if field_name is not None:
        payload["field_name"] = field_name
    payload["data"] = list(data)
    _add_present(
        payload,
        skip_triggers=skip_triggers,
        skip_invalid_subscriptions=skip_invalid_subscriptions,
        detect_geo=detect_geo,
        resource_id=resource_id,
        timeout=timeout,
        content=content,
        custom_data=custom_data,
        attach=attach,
    )
    return payload


def _add_present(payload: dict[str, Any], **optional: Any) -> None:
    # Absent rather than null: the vendor's defaults apply only to parameters left out.
    for name, value in optional.items():
        if value is not None:
            payload[name] = value


def _check_trigger_and_matching(trigger_id: int, matching: str, field_name: str | None) -> None:
    if _is_not_int(trigger_id) or trigger_id <= 0:
        raise ConfigurationError("trigger_id must be a positive integer.")
    if matching not in MATCHING_MODES:
        raise ConfigurationError(
            f"matching must be one of {', '.join(MATCHING_MODES)}; got {matching!r}."
        )
    if matching == "custom":
        if not isinstance(field_name, str) or not field_name.strip():
            raise ConfigurationError("matching 'custom' needs field_name (the profile field).")
    elif field_name is not None:
        raise ConfigurationError("field_name is only used with matching 'custom'.")


def _check_launch_extras(
    content: dict[str, Any] | None,
    custom_data: dict[str, Any] | None,
    attach: list[dict[str, Any]] | None,
) -> None:
    if content is not None and not isinstance(content, dict):
        raise ConfigurationError("content must be a JSON object.")
    if custom_data is not None and not isinstance(custom_data, dict):
        raise ConfigurationError("custom_data must be a JSON object.")
    if attach is not None and (
        not isinstance(attach, list) or not all(isinstance(file, dict) for file in attach)
    ):
        raise ConfigurationError("attach must be a list of file objects.")
    for name, value in (("content", content), ("custom_data", custom_data), ("attach", attach)):
        try:
            minified_json(value)
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"{name} is not JSON-serialisable: {error}") from None


def _check_optional_bool(name: str, value: bool | None) -> None:
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be true or false.")


def _check_timeout(timeout: dict[str, int]) -> None:
    if not isinstance(timeout, dict) or not timeout:
        raise ConfigurationError("timeout must be an object with days, hours and/or minutes.")
    unknown = set(timeout) - set(TIMEOUT_UNITS)
    if unknown:
        raise ConfigurationError(
            f"timeout takes only days, hours and minutes; got {sorted(unknown)}."
        )
    for unit, amount in timeout.items():
        if _is_not_int(amount) or amount < 0:
            raise ConfigurationError(f"timeout {unit} must be a whole number, zero or more.")


def _check_items_list(data: Sequence[dict[str, Any]]) -> None:
    if not isinstance(data, (list, tuple)) or not data:
        raise ConfigurationError("data must be a non-empty list of items.")


def _check_start_batch_items(data: Sequence[dict[str, Any]], matching: str) -> None:
    _check_items_list(data)
    key = START_BATCH_ITEM_KEYS.get(matching)
    if key is None:
        raise ConfigurationError(
            f"matching must be one of {', '.join(MATCHING_MODES)}; got {matching!r}."
        )
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ConfigurationError(f"data item {index} must be an object.")
        if not _present(item.get(key), allow_int=key == "field_value"):
            raise ConfigurationError(f"data item {index} needs {key!r} for matching {matching!r}.")
    _check_serialisable(data)


def _check_import_items(
    data: Sequence[dict[str, Any]], matching: str, field_name: str | None
) -> None:
    _check_items_list(data)
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise ConfigurationError(f"data item {index} must be an object with a 'data' object.")
        beside = sorted(key for key in item if key != "data")
        if beside:
            raise ConfigurationError(
                f"data item {index} has {beside[0]!r} beside 'data'; the matching value and "
                "every profile field belong inside 'data'."
            )
        if not import_item_has_matching_value(item, matching, field_name):
            raise ConfigurationError(
                f"data item {index} carries no value to match profiles by ({matching!r})."
            )
    _check_serialisable(data)


def import_item_has_matching_value(
    item: dict[str, Any], matching: str, field_name: str | None
) -> bool:
    """Whether an import item carries the value its matching mode looks profiles up by.

    The value is among the profile fields inside `data` (as the vendor's batch examples put
    it); `email` matching also accepts an email subscription, `phone` matching a `phones` field
    or a phone subscription.
    """
    fields = item.get("data") or {}
    subscriptions = fields.get("subscriptions") or []
    if not isinstance(subscriptions, list):
        subscriptions = []
    if matching in ("email", "email_profile"):
        if _present(fields.get("email")):
            return True
        return matching == "email" and any(
            isinstance(s, dict) and _present(s.get("email")) for s in subscriptions
        )
    if matching == "phone":
        if _present(fields.get("phone")):
            return True
        if _present(fields.get("phones")) or _non_empty_list(fields.get("phones")):
            return True
        return any(isinstance(s, dict) and _present(s.get("phone")) for s in subscriptions)
    if matching == "profile_id":
        return _present(fields.get("profile_id"))
    if matching == "custom":
        return _present(fields.get(field_name or ""), allow_int=True)
    return False


def _check_serialisable(data: Sequence[dict[str, Any]]) -> None:
    try:
        minified_json(list(data))
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"data is not JSON-serialisable: {error}") from None


# -- answer parsing --------------------------------------------------------------------------


def _envelope(content: bytes) -> dict[str, Any] | None:
    """The answer as an Altcraft envelope (an object with an integer `error`), or None."""
    try:
        parsed = json.loads(content.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(parsed, dict) or _is_not_int(parsed.get("error")):
        return None
    return parsed


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
# Up to 4096 result entries written minified (as a Go service does) or with single spaces, each
# with an id that needs no unescaping and followed by a comma: taken a block at a time, their
# ids read without building a dict each. Anything else (other layouts, escapes, the last entry)
# goes through the decoder one entry at a time.
_PLAIN_ENTRIES = re.compile(r'(?:\{"profile_id": ?"[^"\\\x00-\x1f]*"\}, ?){1,4096}')
_PLAIN_ID = re.compile(r'"profile_id": ?"([^"\\\x00-\x1f]*)"')


class _NotAProfileList:
    """Stands for a `result` array that is not a list of `{"profile_id": str}` entries."""


def _skip_whitespace(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    return match.end() if match else position


def _launch_envelope(content: bytes) -> dict[str, Any] | None:
    """start_batch's answer as an envelope (as `_envelope`), its `result` read entry by entry.

    The envelope's other values are decoded as usual; the `result` array becomes `ProfileIds`
    (or `_NotAProfileList`), each entry decoded alone and dropped once its id is kept, so the
    answer never exists as 300,000 parsed objects. Accepts exactly the JSON `json.loads` does.
    """
    try:
        text = content.decode("utf-8")
        envelope = _scan_envelope(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if envelope is None or _is_not_int(envelope.get("error")):
        return None
    return envelope


def _scan_envelope(text: str) -> dict[str, Any] | None:
    """The top-level object of `text`, or None when it is valid JSON but not an object.

    Raises ValueError when `text` is not JSON.
    """
    position = _skip_whitespace(text, 0)
    if not text.startswith("{", position):
        json.loads(text)  # raises on anything that is not JSON either
        return None
    envelope: dict[str, Any] = {}
    position = _skip_whitespace(text, position + 1)
    if text.startswith("}", position):
        position += 1
    else:
        while True:
            if not text.startswith('"', position):
                raise ValueError("an object key must be a string")
            key, position = _DECODER.raw_decode(text, position)
            position = _skip_whitespace(text, position)
            if not text.startswith(":", position):
                raise ValueError("':' expected")
            position = _skip_whitespace(text, position + 1)
            if key == "result" and text.startswith("[", position):
                envelope[key], position = _scan_profile_list(text, position)
            else:
                envelope[key], position = _DECODER.raw_decode(text, position)
            position = _skip_whitespace(text, position)
            if text.startswith(",", position):
                position = _skip_whitespace(text, position + 1)
            elif text.startswith("}", position):
                position += 1
                break
            else:
                raise ValueError("',' or '}' expected")
    if _skip_whitespace(text, position) != len(text):
        raise ValueError("extra data after the object")
    return envelope


def _scan_profile_list(text: str, position: int) -> tuple[Any, int]:
    """The array starting at `position` as ProfileIds (or _NotAProfileList), and where it ends."""
    profile_ids: ProfileIds | None = ProfileIds()
    position = _skip_whitespace(text, position + 1)
    if text.startswith("]", position):
        return profile_ids, position + 1
    while True:
        block = _PLAIN_ENTRIES.match(text, position)
        if block is not None:
            if profile_ids is not None:
                profile_ids.extend(_PLAIN_ID.findall(text, block.start(), block.end()))
            position = _skip_whitespace(text, block.end())
            continue
        entry, position = _DECODER.raw_decode(text, position)
        is_entry = isinstance(entry, dict) and isinstance(entry.get("profile_id"), str)
        entry_id = entry["profile_id"] if is_entry else None
        if entry_id is None:
            profile_ids = None  # read on: the answer must still be valid JSON
        elif profile_ids is not None:
            profile_ids.append(entry_id)
        position = _skip_whitespace(text, position)
        if text.startswith(",", position):
            position = _skip_whitespace(text, position + 1)
        elif text.startswith("]", position):
            break
        else:
            raise ValueError("',' or ']' expected")
    return (profile_ids if profile_ids is not None else _NotAProfileList()), position + 1


def _profile_ids(result: Any) -> ProfileIds | None:
    """Profile ids from a `[{"profile_id": ...}]` list; None when the list is malformed.

    A missing or null list is an empty one: a Go service marshals an empty result as null.
    """
    if isinstance(result, ProfileIds):
        return result
    if result is None:
        return ProfileIds()
    if not isinstance(result, list):
        return None
    profile_ids = ProfileIds()
    for entry in result:
        if not isinstance(entry, dict) or not isinstance(entry.get("profile_id"), str):
            return None
        profile_ids.append(entry["profile_id"])
    return profile_ids


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _present(value: Any, *, allow_int: bool = False) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return allow_int and isinstance(value, int) and not isinstance(value, bool)


def _non_empty_list(value: Any) -> bool:
    return isinstance(value, list) and any(_present(entry) for entry in value)


def _is_not_int(value: Any) -> bool:
    return not isinstance(value, int) or isinstance(value, bool)


def _is_not_number(value: Any) -> bool:
    return not isinstance(value, (int, float)) or isinstance(value, bool)


def _check_body_size(payload: dict[str, Any], body_limit_bytes: int) -> None:
    size = len(minified_json(payload))
    if size > body_limit_bytes:
        raise BodyTooLarge(size, body_limit_bytes)


def check_start_batch_parameters(
    *, body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES, **parameters: Any
) -> None:
    """Raise ConfigurationError (or BodyTooLarge) for parameters `start_batch` would refuse.

    Lets a caller check a request when it is made, long before a worker sends it.
    """
    _check_start_batch_items(parameters.get("data") or [], parameters.get("matching", "email"))
    payload = _start_batch_payload(
        token="x" * 32, **_with_defaults(parameters, START_BATCH_OPTIONS)
    )
    _check_body_size(payload, body_limit_bytes)


def check_import_parameters(
    *, body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES, **parameters: Any
) -> None:
    """Raise ConfigurationError (or BodyTooLarge) for parameters the import task would refuse."""
    _check_import_items(
        parameters.get("data") or [],
        parameters.get("matching", "email"),
        parameters.get("field_name"),
    )
    payload = _import_payload(token="x" * 32, **_with_defaults(parameters, IMPORT_OPTIONS))
    _check_body_size(payload, body_limit_bytes)


START_BATCH_OPTIONS = ("field_name", "content", "custom_data", "attach", "skip_triggers")
IMPORT_OPTIONS = (
    "field_name",
    "skip_triggers",
    "skip_invalid_subscriptions",
    "detect_geo",
    "resource_id",
    "timeout",
    "content",
    "custom_data",
    "attach",
)


def _with_defaults(parameters: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    known = {"trigger_id", "data", "matching", *optional}
    unknown = set(parameters) - known
    if unknown:
        raise ConfigurationError(f"Unknown parameters: {', '.join(sorted(unknown))}.")
    return {
        "trigger_id": parameters.get("trigger_id"),
        "data": parameters.get("data") or [],
        "matching": parameters.get("matching", "email"),
        **{name: parameters.get(name) for name in optional},
    }
