"""Shared HTTP plumbing for every vendor client.

Each vendor client wraps one `VendorHttp`. It owns the keep-alive connections (Python's
`http.client`: a timeout on every call, no automatic retries or redirects: retrying is the run
engine's decision) and turns every transport failure into one of the five failure classes the
run engine relies on to never send twice.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import certifi
from requests.adapters import HTTPAdapter
from urllib3 import HTTPHeaderDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

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
        # By hand, not dataclasses.asdict: that deep-copies every value recursively, and every
        # recorded call (two per event-generator run) pays for it.
        return {
            "method": self.method,
            "url": self.url,
            "request_headers": dict(self.request_headers),
            "request_body": self.request_body,
            "status_code": self.status_code,
            "response_headers": dict(self.response_headers),
            "response_body": self.response_body,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


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

    Python's `http.client` on keep-alive connections of its own, not requests nor urllib3: on
    the engine's hot path every layer above `http.client` cost CPU on each call (requests about
    0.63 ms, urllib3 0.24 ms, `http.client` 0.13 ms: bench/README.md "Vendor calls on
    http.client's own connections"), and none
    of what they add (cookies, proxies from the environment, redirects, retries, URL
    normalisation) is wanted here. `secrets` are the values (API keys, tokens) that must never be
    recorded: every recorded header and body has them replaced by a placeholder. Every connection
    goes to an address the destination rule allows (`destinations.checked_addresses`), and what
    was checked is what is called. Nothing is ever retried or followed here: a resend may be a
    second campaign. The failure class is decided by where the call failed: while connecting
    (nothing left this machine) or after (the vendor may have acted).
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
        # Idle connections kept: as many as threads may call it at once, or they are opened and
        # discarded.
        self.pool_maxsize = pool_maxsize
        parts = urlsplit(self.base_url)
        self._secure = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._secure else 80)
        self._ca_certs = ca_certs or certifi.where()
        self._tls: ssl.SSLContext | None = None
        self._idle: list[_VendorConnection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

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

        def failed(failure: FailureClass, error: BaseException) -> VendorError:
            description = self.redact(describe_transport_error(error)) or ""
            logger.warning(
                "vendor call %s %s failed before an answer: %s (%s)",
                method,
                self.redact(url),
                failure,
                description,
            )
            if failure is FailureClass.NOT_SENT:
                return NotSent(
                    "The request never left this machine.",
                    code="connection_failed",
                    exchange=record(error=description),
                )
            return OutcomeUnknown(
                "The request was sent but no answer came back; the vendor may have acted.",
                code="no_answer",
                exchange=record(error=description),
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
        target = request_target(url)
        connection = self._idle_connection()
        if connection is None:
            try:
                connection = self._connect()
            except destinations.DestinationNotAllowed as error:
                logger.warning("vendor call %s %s refused: %s", method, self.redact(url), error)
                raise DestinationRefused(f"Not sent: {error}") from None
            except (OSError, UnicodeError) as error:
                # Refused, unresolvable, timed out or a failed TLS handshake: not one byte of
                # the request was written.
                raise failed(FailureClass.NOT_SENT, error) from None
        answered = False
        try:
            connection.sock.settimeout(read_timeout or self.read_timeout)
            connection.request(method, target, body=body, headers=sent_headers(headers))
            answer = connection.getresponse()
            content = answer.read()
            answered = True
        except (http.client.HTTPException, OSError) as error:
            # Written, or being written: a reset, a read timeout, a truncated or garbled answer.
            raise failed(FailureClass.OUTCOME_UNKNOWN, error) from None
        finally:
            if answered and connection.sock is not None and not answer.will_close:
                self._put_back(connection)
            else:
                connection.close()
        response = VendorResponse(
            status_code=answer.status,
            reason=answer.reason or "",
            headers=HTTPHeaderDict(answer.getheaders()),
            content=content,
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

    def _idle_connection(self) -> _VendorConnection | None:
        """The most recently used idle connection still open (one the vendor closed meanwhile
        is dropped here, before a request is written to it), or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            if connection.sock is not None and not readable_now(connection.sock):
                return connection
            # An idle connection that is readable was closed by the vendor (or holds bytes no
            # request asked for): never written to.
            connection.close()

    def _put_back(self, connection: _VendorConnection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_maxsize:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self) -> _VendorConnection:
        """A new connection, open: to the first checked address that answers, over TLS with the
        certificate checked against the host name for https."""
        tls = None
        if self._secure:
            if self._tls is None:
                self._tls = ssl.create_default_context(cafile=self._ca_certs)
            tls = self._tls
        connection = _VendorConnection(self._host, self._port, timeout=self.connect_timeout)
        connection.open(tls)
        return connection


class _VendorConnection(http.client.HTTPConnection):
    """One keep-alive connection, opened by `open` only: http.client never reconnects it on its
    own (`auto_open` off), so a request is never silently written to a connection other than
    the one whose opening was checked and classed."""

    auto_open = 0

    def open(self, tls: ssl.SSLContext | None) -> None:
        """Connect to an address the destination rule allows (every resolved one is checked)."""
        addresses = destinations.checked_addresses(self.host, self.port)
        last_error: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, self.port), self.timeout)
            except OSError as error:
                last_error = error
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if tls is not None:
                    sock = tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
            self.sock = sock
            return
        raise last_error or OSError(f"{self.host} has no address")

    def connect(self) -> None:
        # Only `open` connects (auto_open is off); reaching here is a bug, not a reconnect.
        raise http.client.NotConnected("a vendor connection is opened by VendorHttp only")


def readable_now(sock: socket.socket) -> bool:
    """True when the socket has something to read right now (for an idle keep-alive connection:
    the peer closed it)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


# Characters a request target may carry as they are (RFC 3986 path and query); any other is
# percent-encoded, as urllib3 did before (http.client refuses a space or a control character).
_TARGET_SAFE = "/?#[]@!$&'()*+,;=-._~:%"
_TARGET_UNSAFE = re.compile(f"[^A-Za-z0-9{re.escape(_TARGET_SAFE)}]")


def request_target(url: str) -> str:
    """The path and query of `url` as they go on the request line."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if _TARGET_UNSAFE.search(target):
        target = quote(target, safe=_TARGET_SAFE)
    return target


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


def sent_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers over SENT_BY_DEFAULT, names compared without case."""
    named = {name.lower() for name in headers}
    sent = {name: value for name, value in SENT_BY_DEFAULT.items() if name.lower() not in named}
    sent.update(headers)
    return sent


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
    acts (TriggerDaily), this is all a check may do. The connection is opened exactly as a
    call's would be (`VendorHttp`), the destination rule included.
    """
    try:
        vendor = VendorHttp(base_url, connect_timeout=connect_timeout)
    except ConfigurationError as error:
        return Reachability(False, f"Not tried: {error}")
    host, port = vendor._host, vendor._port
    try:
        vendor._connect().close()
    except destinations.DestinationNotAllowed as error:
        return Reachability(False, f"Not tried: {error}")
    except socket.gaierror:
        return Reachability(False, f"The host name {host} could not be resolved (DNS).")
    except (OSError, UnicodeError) as error:
        what = "a TLS connection" if vendor._secure else "a connection"
        return Reachability(
            False, f"Could not open {what} to {host}:{port}: {type(error).__name__}: {error}"
        )
    if vendor._secure:
        return Reachability(True, f"Reached {host}:{port} over TLS (certificate valid).")
    return Reachability(True, f"Reached {host}:{port} (plain HTTP, allow-listed host).")
