"""Client for Optimove's Batch Process TriggerDaily endpoint.

Doc: /work/shared/vendor-docs/optimove-batch-trigger-daily.txt

One call, `OptimoveDailyClient.trigger_daily()`: `POST {base_url}/BatchProcessAPI/TriggerDaily`
(or the documented alias `{base_url}/current/BatchProcessAPI/TriggerDaily`), header `X-API-KEY`,
`Content-Type: application/json`, a minified JSON body. Success is a `TriggerDailyResult`;
everything else raises one of the error classes below, each a subclass of one of the five
failure classes of `dashboard.vendors.http`, with a stable `code` and an `advice` sentence the UI
can show.

How answers map:

    200, empty body ............ TriggerDailyResult
    200 with a body, other 2xx . UnexpectedAnswer (OUTCOME UNKNOWN, unexpected_answer)
    400 documented message ..... TaskNotFound, AlreadyRunning, NotInCorrectState,
                                 AlreadyTriggeredToday, ConfiguredIncorrectly, ValidationFailed
                                 (REJECTED, one code each)
    400 any other text ......... BadRequest (REJECTED, bad_request)
    401 ........................ Unauthorized (REJECTED, unauthorized)
    403 ........................ TokenExpired (REJECTED, token_expired)
    429 ........................ RateLimited (THROTTLED, rate_limited; Retry-After or 600 s)
    500, other 5xx ............. OptimoveServerError (SERVER ERROR, server_error)
    504 ........................ GatewayTimeout (SERVER ERROR, gateway_timeout)
    other 1xx/3xx/4xx .......... UnexpectedStatus (REJECTED, unexpected_status)
    connection refused, DNS .... TriggerNotSent (NOT SENT, connection_failed)
    timeout/reset after sending  NoAnswer (OUTCOME UNKNOWN, no_answer)
    bad parameter or key ....... ConfigurationError, raised before anything is sent

Choices:

- No wait asked -> the body is `{"WaitTimeForValidationSeconds":null}`. The doc documents the
  parameter as a nullable integer and its table has a `null` row (5 s default only), so the
  explicit null is the documented form; `{}` would rely on omission meaning null, which the doc
  never says.
- A 200 whose body is not empty (whitespace aside), or any other 2xx, is not the documented
  success. It may be Optimove having acted and saying so differently, or something in between
  (a proxy, a captive portal) answering for it, so neither "triggered" nor "refused" is known:
  OUTCOME UNKNOWN. The run engine then reconciles by re-sending after the rate window, where
  "already triggered today" proves the first call went through.
- 3xx answers are REJECTED: redirects come from the gateway or routing (e.g. http -> https)
  before the action runs, and redirects are never followed (a POST must not be replayed).
- The read timeout is the effective validation wait plus a margin (default 10 s), so a
  legitimately long validation (up to 30 s) is never taken for a lost answer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import ClassVar

from django.utils.translation import gettext_lazy

from dashboard.vendors.http import (
    DEFAULT_CONNECT_TIMEOUT,
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

logger = logging.getLogger(__name__)

ROUTE = "BatchProcessAPI/TriggerDaily"
CURRENT_ROUTE = "current/BatchProcessAPI/TriggerDaily"
WAIT_PROPERTY = "WaitTimeForValidationSeconds"
DEFAULT_VALIDATION_WAIT_SECONDS = 5
MAXIMUM_VALIDATION_WAIT_SECONDS = 30
RATE_LIMIT_WINDOW_SECONDS = 600
DEFAULT_READ_TIMEOUT_MARGIN_SECONDS = 10.0
MAX_VENDOR_MESSAGE_CHARS = 2000


def effective_validation_wait_seconds(value: int | None) -> int:
    """How long Optimove holds the call validating that the batch started, per the doc's table.

    A built-in 5 seconds plus whatever is asked above 5: None -> 5, <= 5 -> 5, 10 -> 10, 30 -> 30.
    """
    if value is None:
        return DEFAULT_VALIDATION_WAIT_SECONDS
    return DEFAULT_VALIDATION_WAIT_SECONDS + max(0, value - DEFAULT_VALIDATION_WAIT_SECONDS)


def check_validation_wait(value: object) -> int | None:
    """Return `value` if it is None or an integer from 0 to 30, else raise ConfigurationError.

    Above 30 Optimove answers 504 without triggering; booleans are not integers here.
    """
    if value is None:
        return None
    if type(value) is not int:
        raise ConfigurationError(
            f"{WAIT_PROPERTY} must be a whole number of seconds or None, "
            f"got {type(value).__name__}."
        )
    if not 0 <= value <= MAXIMUM_VALIDATION_WAIT_SECONDS:
        raise ConfigurationError(
            f"{WAIT_PROPERTY} must be between 0 and {MAXIMUM_VALIDATION_WAIT_SECONDS}, got {value}."
        )
    return value


@dataclass(frozen=True)
class TriggerDailyResult:
    """Optimove accepted the trigger: the tenant's batch process has started."""

    exchange: Exchange
    requested_wait_seconds: int | None
    effective_wait_seconds: int


# -- errors ---------------------------------------------------------------------------------
# Every class carries its stable `code` and an `advice` sentence for the UI.


class TaskNotFound(Rejected):
    """400 "Cannot trigger daily — task not found"."""

    code: str = "task_not_found"
    advice: ClassVar[str] = gettext_lazy(
        "Optimove has no batch process configured for this tenant. It is set up during "
        "onboarding: ask Optimove to configure it, then trigger again."
    )


class AlreadyRunning(Rejected):
    """400 "Cannot trigger daily — it is already running".

    During reconciliation of an unknown outcome this also means the batch is under way, though
    the run may be the tenant's scheduled one rather than the earlier trigger.
    """

    code: str = "already_running"
    advice: ClassVar[str] = gettext_lazy(
        "The batch process is running right now. Wait for it to finish; nothing needs to be "
        "re-sent for this run."
    )


class NotInCorrectState(Rejected):
    """400 "Cannot trigger daily — it is not in correct state for running"."""

    code: str = "not_in_correct_state"
    advice: ClassVar[str] = gettext_lazy(
        "The batch task is in a state that cannot be started (for example paused or failed). "
        "Check it in Optimove or with Optimove support before triggering again."
    )


class AlreadyTriggeredToday(Rejected):
    """400 "Cannot trigger daily — it was already triggered today" (UTC day).

    Proof that an earlier trigger on this UTC day went through: when a previous call's outcome
    was unknown, re-sending the trigger and getting this answer settles it as triggered.
    """

    code: str = "already_triggered_today"
    advice: ClassVar[str] = gettext_lazy(
        "The batch process was already triggered today (UTC), so an earlier trigger went "
        "through. The next trigger is possible after 00:00 UTC."
    )


class ConfiguredIncorrectly(Rejected):
    """400 "Cannot trigger daily — task configured not correctly"."""

    code: str = "configured_incorrectly"
    advice: ClassVar[str] = gettext_lazy(
        "The batch task's schedule is misconfigured on Optimove's side. Ask Optimove support "
        "to fix it, then trigger again."
    )


class ValidationFailed(Rejected):
    """400 "Cannot trigger daily — validation for Task starting is failed"."""

    code: str = "validation_failed"
    advice: ClassVar[str] = gettext_lazy(
        "The batch task did not confirm it started within the validation wait. Check in "
        "Optimove whether it runs; if not, try again after the 10-minute window, possibly with "
        "a longer WaitTimeForValidationSeconds."
    )


class BadRequest(Rejected):
    """400 with a message the doc does not list (e.g. a body the endpoint could not read)."""

    code: str = "bad_request"
    advice: ClassVar[str] = gettext_lazy(
        "Optimove refused the request and did not trigger anything; its message says why. "
        "This usually needs a fix in TriggerDesk, not a retry."
    )


class Unauthorized(Rejected):
    """401: the API key is missing or invalid, or its role (3rdParty) may not trigger."""

    code: str = "unauthorized"
    advice: ClassVar[str] = gettext_lazy(
        "Optimove refused the API key: it is wrong, revoked, or has the 3rdParty role. Use an "
        "ApiRole or TransactionalMail key for this tenant."
    )


class TokenExpired(Rejected):
    """403: the API key's token has expired."""

    code: str = "token_expired"
    advice: ClassVar[str] = gettext_lazy(
        "The API key has expired. Ask Optimove for a new key and update it."
    )


class UnexpectedStatus(Rejected):
    """A 1xx, 3xx or 4xx status the doc does not list: the action did not run."""

    code: str = "unexpected_status"
    advice: ClassVar[str] = gettext_lazy(
        "Optimove answered with a status its documentation does not list; check the base URL "
        "and region, then try again."
    )


class RateLimited(Throttled):
    """429: one request per tenant per 10 minutes; `retry_after` says how long to wait."""

    code: str = "rate_limited"
    advice: ClassVar[str] = gettext_lazy(
        "Optimove allows one request per tenant every 10 minutes. Wait until the window ends, "
        "then try again."
    )


class OptimoveServerError(ServerError):
    """500 (or another 5xx the doc does not list)."""

    code: str = "server_error"
    advice: ClassVar[str] = gettext_lazy(
        "Optimove had an internal error. Try again after the 10-minute window; an answer "
        "'already triggered today' then means this attempt had gone through."
    )


class GatewayTimeout(ServerError):
    """504: the request exceeded Optimove's 30-second maximum."""

    code: str = "gateway_timeout"
    advice: ClassVar[str] = gettext_lazy(
        "Optimove's gateway gave up after 30 seconds. Try again after the 10-minute window; an "
        "answer 'already triggered today' then means this attempt had gone through."
    )


class UnexpectedAnswer(OutcomeUnknown):
    """A 2xx that is not the documented "200 with an empty body": Optimove may have acted."""

    code: str = "unexpected_answer"
    advice: ClassVar[str] = gettext_lazy(
        "Optimove answered in an undocumented way, so it is unknown whether the batch started. "
        "Do not trigger blindly: re-send after the 10-minute window; 'already triggered today' "
        "means it had started."
    )


class TriggerNotSent(NotSent):
    """Nothing reached Optimove (connection refused, DNS, TLS)."""

    code: str = "connection_failed"
    advice: ClassVar[str] = gettext_lazy("Nothing reached Optimove. It is safe to try again.")


class NoAnswer(OutcomeUnknown):
    """The trigger was sent but no answer came back (timeout, reset)."""

    code: str = "no_answer"
    advice: ClassVar[str] = gettext_lazy(
        "The trigger was sent but no answer came back, so Optimove may have started the "
        "batch. Re-send after the 10-minute window; 'already triggered today' means it had."
    )


REJECTION_BY_MESSAGE: dict[str, type[Rejected]] = {
    "Cannot trigger daily \u2014 task not found": TaskNotFound,
    "Cannot trigger daily \u2014 it is already running": AlreadyRunning,
    "Cannot trigger daily \u2014 it is not in correct state for running": NotInCorrectState,
    "Cannot trigger daily \u2014 it was already triggered today": AlreadyTriggeredToday,
    "Cannot trigger daily \u2014 task configured not correctly": ConfiguredIncorrectly,
    "Cannot trigger daily \u2014 validation for Task starting is failed": ValidationFailed,
}

# Hyphens and dashes a proxy or a re-encoding might put in place of the em dash, and the
# em dash's UTF-8 bytes read as Windows-1252.
_DASHES = re.compile("\u00e2\u20ac\u201d|[-\u2010\u2011\u2012\u2013\u2014\u2015\u2212]")
_WHITESPACE = re.compile(r"\s+")


def _normalised(message: str) -> str:
    text = _DASHES.sub("\u2014", message)
    text = _WHITESPACE.sub(" ", text).strip().rstrip(".").strip()
    return text.casefold()


_REJECTION_BY_NORMALISED_MESSAGE = {
    _normalised(message): error_class for message, error_class in REJECTION_BY_MESSAGE.items()
}


def rejection_for_message(message: str) -> type[Rejected]:
    """The error class for a 400's plain-text message; BadRequest when it is not documented.

    The exact text first, then tolerantly: whitespace and a trailing newline or period, letter
    case, and the em dash written as another dash.
    """
    exact = REJECTION_BY_MESSAGE.get(message)
    if exact is not None:
        return exact
    return _REJECTION_BY_NORMALISED_MESSAGE.get(_normalised(message), BadRequest)


def decode_text(content: bytes, content_type: str | None) -> str:
    """A plain-text answer's body as text.

    UTF-8 first whatever the header says: Optimove sends UTF-8 (its em dash), and a bare
    `text/plain` would otherwise be read as ISO-8859-1. The declared charset is the fallback.
    """
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    charset_match = re.search(r"charset=([\w.:-]+)", content_type or "", re.IGNORECASE)
    if charset_match:
        try:
            return content.decode(charset_match.group(1))
        except (LookupError, UnicodeDecodeError):
            pass
    return content.decode("utf-8", errors="replace")


def _is_printable_ascii(value: str) -> bool:
    return all(" " < character < "\x7f" for character in value)


class OptimoveDailyClient:
    """Triggers a tenant's Optimove daily batch process.

    `base_url` is the regional base URL (it may carry a path prefix); `api_key` the tenant's
    X-API-KEY. `use_current_route` selects the documented `/current/` alias.
    `read_timeout_margin_seconds` is added to the effective validation wait to make the read
    timeout. `real_seconds_per_wait_second` stays 1.0 against Optimove; only a sandbox that
    runs its validation wait faster needs a smaller value, so the read timeout shrinks with it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        use_current_route: bool = False,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout_margin_seconds: float = DEFAULT_READ_TIMEOUT_MARGIN_SECONDS,
        real_seconds_per_wait_second: float = 1.0,
    ) -> None:
        # A key with spaces or control characters would make the HTTP client refuse the header after
        # the call started, which would read as an unknown outcome: refuse it here instead.
        if not isinstance(api_key, str) or not api_key or not _is_printable_ascii(api_key):
            raise ConfigurationError(
                "The Optimove API key must be a non-empty string of printable ASCII characters."
            )
        if read_timeout_margin_seconds <= 0 or real_seconds_per_wait_second <= 0:
            raise ConfigurationError("Timeout margin and wait scale must be positive.")
        self._api_key = api_key
        self.route = CURRENT_ROUTE if use_current_route else ROUTE
        self.read_timeout_margin_seconds = read_timeout_margin_seconds
        self.real_seconds_per_wait_second = real_seconds_per_wait_second
        self.http = VendorHttp(
            base_url,
            secrets=[api_key],
            connect_timeout=connect_timeout,
        )

    def __repr__(self) -> str:
        return f"OptimoveDailyClient(base_url={self.http.base_url!r}, route={self.route!r})"

    def read_timeout_seconds(self, wait_time_for_validation_seconds: int | None) -> float:
        """Seconds to wait for the answer: the effective validation wait plus the margin."""
        effective = effective_validation_wait_seconds(wait_time_for_validation_seconds)
        return effective * self.real_seconds_per_wait_second + self.read_timeout_margin_seconds

    def trigger_daily(
        self, *, wait_time_for_validation_seconds: int | None = None
    ) -> TriggerDailyResult:
        """Trigger the tenant's daily batch process now (allowed once per UTC day).

        `wait_time_for_validation_seconds` (None or 0-30) asks Optimove to hold the call longer
        while it confirms the batch started. Raises ConfigurationError before sending when it is
        out of range, and one of this module's errors when Optimove does not confirm.
        """
        wait = check_validation_wait(wait_time_for_validation_seconds)
        body = minified_json({WAIT_PROPERTY: wait})
        try:
            response, exchange = self.http.request(
                "POST",
                self.route,
                headers={"X-API-KEY": self._api_key, "Content-Type": "application/json"},
                body=body,
                read_timeout=self.read_timeout_seconds(wait),
            )
        except NotSent as error:
            raise TriggerNotSent(
                error.message, code=TriggerNotSent.code, exchange=error.exchange
            ) from None
        except OutcomeUnknown as error:
            raise NoAnswer(error.message, code=NoAnswer.code, exchange=error.exchange) from None

        text = decode_text(response.content, response.headers.get("Content-Type"))
        if response.status_code == 200 and not text.strip():
            return TriggerDailyResult(
                exchange=exchange,
                requested_wait_seconds=wait,
                effective_wait_seconds=effective_validation_wait_seconds(wait),
            )
        error = self._error_for(response, self.http.redact(text) or "", exchange)
        logger.info(
            "optimove daily trigger not confirmed: %s (%s, HTTP %s)",
            error.code,
            error.failure_class,
            response.status_code,
        )
        raise error

    @staticmethod
    def _error_for(response: VendorResponse, text: str, exchange: Exchange) -> VendorError:
        status = response.status_code
        # A proxy's HTML page can be large: the exchange keeps the body, the error a readable part.
        vendor_message = text.strip()[:MAX_VENDOR_MESSAGE_CHARS]
        error_class: type[VendorError]
        retry_after: float | None = None
        if 200 <= status < 300:
            error_class = UnexpectedAnswer
        elif status == 400:
            error_class = rejection_for_message(text)
        elif status == 401:
            error_class = Unauthorized
        elif status == 403:
            error_class = TokenExpired
        elif status == 429:
            error_class = RateLimited
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None:
                retry_after = float(RATE_LIMIT_WINDOW_SECONDS)
        elif status == 504:
            error_class = GatewayTimeout
        elif status >= 500:
            error_class = OptimoveServerError
        else:
            error_class = UnexpectedStatus
        summary = f"Optimove answered HTTP {status} ({error_class.code})"
        message = f"{summary}: {vendor_message}" if vendor_message else f"{summary}."
        return error_class(
            message,
            code=error_class.code,
            status_code=status,
            vendor_message=vendor_message,
            retry_after=retry_after,
            exchange=exchange,
        )
