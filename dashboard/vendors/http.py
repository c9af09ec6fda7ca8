"""Shared HTTP plumbing for every vendor client.

Each vendor client wraps one `VendorHttp`. It owns the connection pool (urllib3: a timeout on
every call, no automatic retries or redirects: retrying is the run engine's decision) and turns
every transport failure into one of the five failure classes the run engine relies on to never
send twice.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlsplit

import certifi
from requests.adapters import HTTPAdapter
from urllib3 import HTTPHeaderDict, PoolManager, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationValueError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError as Urllib3SSLError

from dashboard.vendors import destinations

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
# Bodies kept on an attempt record are capped: a 10 MB Altcraft batch must not be copied into
# every audit view. The cap is generous enough to show any vendor's error answer whole.
MAX_RECORDED_BODY_CHARS = 64_000


class FailureClass(StrEnum):
    """Why a vendor call did not succeed, in the terms the run engine acts on."""

    NOT_SENT = "not_sent"  # nothing left this machine: safe to retry
    REJECTED = "rejected"  # the vendor answered 4xx (or an error envelope): it did not act
    THROTTLED = "throttled"  # the vendor answered 429: retry after the wait it names
    SERVER_ERROR = "server_error"  # the vendor answered 5xx
    OUTCOME_UNKNOWN = "outcome_unknown"  # sent, but no answer: the vendor may have acted


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and what came back, with every secret replaced by a placeholder."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str | None
    status_code: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str | None = None
    latency_ms: float = 0.0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy, for storing on a run attempt."""
        return asdict(self)


class VendorError(Exception):
    """A vendor call that did not succeed.

    `code` is a stable machine name for the outcome (e.g. `already_triggered_today`),
    `vendor_message` is the vendor's own words, `retry_after` the seconds to wait when the vendor
    names them.
    """

    failure_class: ClassVar[FailureClass]
    # What a person should do about it, in plain words; vendor errors override it.
    advice: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status_code: int | None = None,
        vendor_message: str = "",
        retry_after: float | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.vendor_message = vendor_message
        self.retry_after = retry_after
        self.exchange = exchange

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status_code={self.status_code!r}, "
            f"message={self.message!r})"
        )


class NotSent(VendorError):
    failure_class = FailureClass.NOT_SENT


class Rejected(VendorError):
    failure_class = FailureClass.REJECTED


class Throttled(VendorError):
    failure_class = FailureClass.THROTTLED


class ServerError(VendorError):
    failure_class = FailureClass.SERVER_ERROR


class OutcomeUnknown(VendorError):
    failure_class = FailureClass.OUTCOME_UNKNOWN


class ConfigurationError(ValueError):
    """The call cannot be made as asked (bad base URL, out-of-range parameter). Nothing was sent."""


class DestinationRefused(ConfigurationError):
    """The vendor URL points somewhere the server must not call (see destinations.py)."""


def minified_json(payload: Any) -> bytes:
    """Compact JSON (no spaces after separators), UTF-8: what every vendor here receives."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


def join_url(base_url: str, route: str) -> str:
    """Append a documented route to a base URL that may carry a path prefix."""
    return base_url.rstrip("/") + "/" + route.lstrip("/")


def validate_base_url(base_url: str) -> str:
    """Raise ConfigurationError unless the base URL is an absolute https URL of a public host
    (or a host on VENDOR_HOST_ALLOWLIST, which may also use http): see destinations.py."""
    try:
        parts = urlsplit(base_url or "")
    except ValueError:
        # A bracketed host that is not an IP address (`https://[x]`), an unclosed bracket.
        raise ConfigurationError(f"Base URL is not a valid URL: {base_url!r}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"Base URL must be an absolute http(s) URL, got {base_url!r}.")
    if parts.query or parts.fragment:
        raise ConfigurationError("Base URL must not carry a query string or fragment.")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "Base URL must not carry a user name or password; secrets go in the connection's "
            "secret fields."
        )
    try:
        destinations.check_base_url(base_url)
    except destinations.DestinationNotAllowed as error:
        raise DestinationRefused(str(error)) from None
    return base_url


class _CheckedDestinationMixin:
    """Resolve the host, check every address (destinations.checked_addresses), then connect to
    exactly those addresses: what was checked is what is called, so a name that resolves
    differently a moment later (DNS rebinding) cannot slip through. TLS still verifies the
    certificate against the host name."""

    def _new_conn(self) -> socket.socket:
        name = self._dns_host
        try:
            addresses = destinations.checked_addresses(name, self.port)
        except OSError as error:
            raise NameResolutionError(self.host, self, error) from error
        last_error: Exception | None = None
        for address in addresses:
            self._dns_host = address
            try:
                return super()._new_conn()
            except NewConnectionError as error:
                last_error = error
            finally:
                self._dns_host = name
        raise last_error or NewConnectionError(self, f"{self.host} has no address")


class CheckedHTTPConnection(_CheckedDestinationMixin, HTTPConnection):
    pass


class CheckedHTTPSConnection(_CheckedDestinationMixin, HTTPSConnection):
    pass


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


# The pool classes every vendor and webhook call uses: their connections only go to addresses
# the destination rule allows.
CHECKED_POOL_CLASSES = {"http": CheckedHTTPConnectionPool, "https": CheckedHTTPSConnectionPool}


class CheckedDestinationAdapter(HTTPAdapter):
    """requests' adapter whose connections only go to addresses the destination rule allows."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(CHECKED_POOL_CLASSES)


@dataclass(frozen=True)
class VendorResponse:
    """A vendor's answer, read whole: what the vendor clients look at."""

    status_code: int
    reason: str
    # Case-insensitive, as HTTP header names are (urllib3's HTTPHeaderDict).
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        """The body as text (UTF-8, unreadable bytes replaced): every vendor here answers UTF-8."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        return json.loads(self.content)


class VendorHttp:
    """A pooled HTTP client bound to one base URL and one set of secrets.

    urllib3 directly, not requests: on the engine's hot path a call through requests cost about
    twice the CPU of the same call through urllib3 (bench/README.md "Cost per send"), and nothing
    requests adds (cookies, proxies from the environment, redirects, retries) is wanted here.
    `secrets` are the values (API keys, tokens) that must never be recorded: every recorded
    header and body has them replaced by a placeholder. Every connection goes through the checked
    connection classes, so no call reaches a host the destination rule forbids. urllib3 never
    retries or follows a redirect here: a resend may be a second campaign.
    """

    def __init__(
        self,
        base_url: str,
        *,
        secrets: list[str] | tuple[str, ...] = (),
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        pool_maxsize: int = 10,
        ca_certs: str | None = None,
    ) -> None:
        self.base_url = validate_base_url(base_url)
        self._secrets = [s for s in secrets if s]
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Connections kept per host: as many as threads may call it at once, or they are opened
        # and discarded.
        self.pool_maxsize = pool_maxsize
        self._pools = PoolManager(
            num_pools=4,
            maxsize=pool_maxsize,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs or certifi.where(),
            retries=False,
        )
        self._pools.pool_classes_by_scheme = dict(CHECKED_POOL_CLASSES)

    def close(self) -> None:
        """Close the pooled connections."""
        self._pools.clear()

    def redact(self, text: str | None) -> str | None:
        """The text with every known secret value replaced by a placeholder."""
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _redact_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {name: self.redact(str(value)) or "" for name, value in headers.items()}

    def _record_body(self, body: bytes | str | None) -> str | None:
        if body is None:
            return None
        total = len(body)
        if isinstance(body, bytes) and total > 4 * MAX_RECORDED_BODY_CHARS + 4096:
            # A large body (a 10 MB Altcraft batch) is cut before it is decoded and redacted, not
            # copied whole three times; the margin keeps a secret across the cut whole.
            text = body[: 4 * MAX_RECORDED_BODY_CHARS + 4096].decode("utf-8", errors="replace")
            text = self.redact(text) or ""
            return text[:MAX_RECORDED_BODY_CHARS] + f"... [{total} bytes in all]"
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        text = self.redact(text)
        if text is not None and len(text) > MAX_RECORDED_BODY_CHARS:
            text = text[:MAX_RECORDED_BODY_CHARS] + f"... [{len(text)} characters in all]"
        return text

    def request(
        self,
        method: str,
        route: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        read_timeout: float | None = None,
    ) -> tuple[VendorResponse, Exchange]:
        """Send one request and return the response with its redacted record.

        Transport failures raise NotSent (nothing left this machine) or OutcomeUnknown (the
        request may have reached the vendor). HTTP status codes are left to the caller, which
        knows what each one means for its vendor.
        """
        url = join_url(self.base_url, route)
        headers = dict(headers or {})
        timeout = Timeout(connect=self.connect_timeout, read=read_timeout or self.read_timeout)
        started = time.perf_counter()

        def record(response: VendorResponse | None = None, error: str = "") -> Exchange:
            return Exchange(
                method=method,
                url=self.redact(url) or url,
                request_headers=self._redact_headers(headers),
                request_body=self._record_body(body),
                status_code=response.status_code if response is not None else None,
                response_headers=self._redact_headers(response.headers)
                if response is not None
                else {},
                response_body=self._record_body(response.content) if response is not None else None,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
                error=error,
            )

        if unwritable_header(headers):
            # Refused before a byte is sent: http.client would refuse it while the request is
            # put together, and a catch-all around the call could not tell that from a failure
            # after the request was written.
            exchange = record(error="a header could not be encoded")
            raise NotSent(
                "The request never left this machine: a header could not be encoded.",
                code="unencodable_request",
                exchange=exchange,
            )
        try:
            answer = self._pools.urlopen(
                method,
                url,
                body=body,
                headers=sent_headers(headers),
                timeout=timeout,
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except destinations.DestinationNotAllowed as error:
            logger.warning("vendor call %s %s refused: %s", method, self.redact(url), error)
            raise DestinationRefused(f"Not sent: {error}") from None
        except (Urllib3Error, OSError) as error:
            failure = classify_transport_error(error)
            description = self.redact(describe_transport_error(error)) or ""
            exchange = record(error=description)
            logger.warning(
                "vendor call %s %s failed before an answer: %s (%s)",
                method,
                self.redact(url),
                failure,
                description,
            )
            error_class = NotSent if failure is FailureClass.NOT_SENT else OutcomeUnknown
            raise error_class(
                "The request never left this machine."
                if failure is FailureClass.NOT_SENT
                else "The request was sent but no answer came back; the vendor may have acted.",
                code="connection_failed" if failure is FailureClass.NOT_SENT else "no_answer",
                exchange=exchange,
            ) from None
        response = VendorResponse(
            status_code=answer.status,
            reason=answer.reason or "",
            headers=answer.headers,
            content=answer.data,
        )
        exchange = record(response)
        logger.info(
            "vendor call %s %s -> %s in %.0f ms",
            method,
            self.redact(url),
            response.status_code,
            exchange.latency_ms,
        )
        return response, exchange


# Sent unless the client names them (what requests sent before VendorHttp used urllib3
# directly, less its Accept-Encoding: answers are recorded as they came, none compressed).
SENT_BY_DEFAULT = {"User-Agent": "TriggerDesk", "Accept": "*/*"}


def unwritable_header(headers: Mapping[str, str]) -> bool:
    """True when a header name or value cannot go on the wire as HTTP/1.1 has it: not Latin-1,
    or carrying a line break (a value with a line break would smuggle headers)."""
    for name, value in headers.items():
        line = f"{name}{value}"
        if "\r" in line or "\n" in line:
            return True
        try:
            line.encode("latin-1")
        except UnicodeEncodeError:
            return True
    return False


def sent_headers(headers: Mapping[str, str]) -> HTTPHeaderDict:
    """The client's headers over SENT_BY_DEFAULT, names compared without case."""
    sent = HTTPHeaderDict(SENT_BY_DEFAULT)
    for name, value in headers.items():
        sent[name] = value
    return sent


def classify_transport_error(error: Exception) -> FailureClass:
    """NOT_SENT when the failure happened before the request could leave, else OUTCOME_UNKNOWN.

    A refused or unresolvable connection, a connect timeout and a failed TLS handshake leave
    nothing at the vendor. Read timeouts, resets and truncated answers all happen after the
    request was written (or while it was): the vendor may have acted.
    """
    # NewConnectionError and NameResolutionError are ConnectTimeoutError subclasses in urllib3;
    # a URL it cannot parse (LocationValueError) is refused before any connection.
    if isinstance(error, (ConnectTimeoutError, Urllib3SSLError, LocationValueError)):
        return FailureClass.NOT_SENT
    return FailureClass.OUTCOME_UNKNOWN


def describe_transport_error(error: Exception) -> str:
    """A one-line description of a transport failure, without the URL's query."""
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class Reachability:
    """What opening a connection to a base URL showed, without sending a request."""

    reached: bool
    description: str


def reach(base_url: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Reachability:
    """Resolve the base URL's host, connect to it (TLS with the certificate checked for https)
    and close again, without writing a single byte of HTTP: for a vendor whose only endpoint
    acts (TriggerDaily), this is all a check may do. The destination rule applies as for a call.
    """
    try:
        validate_base_url(base_url)
    except ConfigurationError as error:
        return Reachability(False, f"Not tried: {error}")
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    if secure:
        connection: HTTPConnection = CheckedHTTPSConnection(
            host, port, timeout=connect_timeout, ca_certs=certifi.where()
        )
    else:
        connection = CheckedHTTPConnection(host, port, timeout=connect_timeout)
    try:
        connection.connect()
    except destinations.DestinationNotAllowed as error:
        return Reachability(False, f"Not tried: {error}")
    except NameResolutionError:
        return Reachability(False, f"The host name {host} could not be resolved (DNS).")
    except (Urllib3Error, OSError) as error:
        what = "a TLS connection" if secure else "a connection"
        return Reachability(
            False, f"Could not open {what} to {host}:{port}: {type(error).__name__}: {error}"
        )
    finally:
        connection.close()
    if secure:
        return Reachability(True, f"Reached {host}:{port} over TLS (certificate valid).")
    return Reachability(True, f"Reached {host}:{port} (plain HTTP, allow-listed host).")
