"""A small framework for the vendor sandboxes: real HTTP servers that behave as the vendor docs say.

A vendor sandbox subclasses `Sandbox`, declares its routes with `@route`, and keeps its state
under `self.lock`. The framework adds what every sandbox needs:

- an injectable clock (`SandboxClock`) so time rules (10-minute windows, UTC days, executions
  that progress) are tested without sleeping;
- fault injection per route (`Fault`), so tests can produce every failure class;
- a record of every request received and what it caused, so tests count real effects;
- a control API under `{prefix}/__sandbox__/` so a sandbox in another process (make demo, a
  Celery worker's end-to-end test) can be inspected and steered over HTTP.

Several sandboxes can be mounted on one server under path prefixes
(`http://127.0.0.1:8100/optimove-batch`), which is also how the clients' base-URL prefixes are
exercised.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

CONTROL_SEGMENT = "__sandbox__"
MAX_RECEIVED = 200_000


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Server Error"


class SandboxClock:
    """Wall-clock time that tests can set, advance or speed up.

    `now()` is `anchor + (monotonic elapsed since anchoring) * scale`. A scale of 0 freezes time.
    """

    def __init__(self, start: datetime | None = None, scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._anchor = start or datetime.now(UTC)
        self._anchored_at = time.monotonic()
        self._scale = scale

    def now(self) -> datetime:
        """The sandbox's current time, timezone-aware UTC."""
        with self._lock:
            elapsed = (time.monotonic() - self._anchored_at) * self._scale
            return self._anchor + timedelta(seconds=elapsed)

    def set(self, when: datetime) -> None:
        """Jump to `when` (naive values are taken as UTC)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        with self._lock:
            self._anchor = when.astimezone(UTC)
            self._anchored_at = time.monotonic()

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        self.set(self.now() + timedelta(seconds=seconds))

    def set_scale(self, scale: float) -> None:
        """Make sandbox time run `scale` times as fast as real time (0 freezes it)."""
        current = self.now()
        with self._lock:
            self._anchor = current
            self._anchored_at = time.monotonic()
            self._scale = scale

    @property
    def scale(self) -> float:
        return self._scale


class Fault(StrEnum):
    """What a route does instead of (or on top of) answering normally."""

    DELAY_AFTER_PROCESSING = "delay_after_processing"  # acts, then answers after `seconds`
    DROP_AFTER_PROCESSING = "drop_after_processing"  # acts, then resets the connection
    DROP_BEFORE_PROCESSING = "drop_before_processing"  # reads the request, resets, does nothing
    SERVER_ERROR = "server_error"  # answers `status` (500 by default) and does nothing


@dataclass
class FaultPlan:
    fault: Fault
    times: int = 1  # how many requests it applies to; -1 means until cleared
    seconds: float = 35.0
    status: int = 500


@dataclass
class SandboxRequest:
    method: str
    path: str  # the path after the mount prefix, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route pattern

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class SandboxResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # What the request caused in the sandbox's state (for tests to count real effects).
    effect: dict[str, Any] | None = None

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        effect: dict[str, Any] | None = None,
    ) -> SandboxResponse:
        body = json.dumps(payload).encode("utf-8")
        return cls(
            status,
            body,
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
            effect,
        )

    @classmethod
    def text(
        cls,
        status: int,
        text: str,
        *,
        headers: dict[str, str] | None = None,
        effect: dict[str, Any] | None = None,
    ) -> SandboxResponse:
        return cls(
            status,
            text.encode("utf-8"),
            {"Content-Type": "text/plain; charset=utf-8", **(headers or {})},
            effect,
        )


@dataclass
class ReceivedRequest:
    """One request as the sandbox saw it, and what became of it."""

    sequence: int
    at: str  # sandbox clock, ISO 8601
    route: str
    method: str
    path: str
    headers: dict[str, str]
    body: str
    status: int | None = None  # None when the connection was dropped
    fault: str | None = None
    processed: bool = False
    effect: dict[str, Any] | None = None

    def json(self) -> Any:
        return json.loads(self.body)


def route(method: str, pattern: str, name: str | None = None) -> Callable:
    """Declare a sandbox handler for `method` and a regex `pattern` (named groups become params).

    The handler takes `(self, request)` and returns a SandboxResponse; it runs under the
    sandbox's lock.
    """

    def decorate(function: Callable) -> Callable:
        function._sandbox_route = (
            method.upper(),
            re.compile(f"^{pattern}$"),
            name or function.__name__,
        )
        return function

    return decorate


class Sandbox:
    """Base class for a vendor sandbox. Subclasses add routes and state."""

    name = "sandbox"

    def __init__(self, clock: SandboxClock | None = None) -> None:
        self.clock = clock or SandboxClock()
        self.lock = threading.RLock()
        self.received: list[ReceivedRequest] = []
        self._sequence = itertools.count(1)
        self._faults: dict[str, list[FaultPlan]] = {}
        self._routes: list[tuple[str, re.Pattern, str, Callable]] = []
        for attribute in dir(type(self)):
            function = getattr(type(self), attribute)
            spec = getattr(function, "_sandbox_route", None)
            if spec:
                method, pattern, route_name = spec
                self._routes.append((method, pattern, route_name, getattr(self, attribute)))

    # -- for subclasses ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The vendor-side state, JSON-serialisable, for tests and the control API."""
        return {}

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        """Vendor-specific steering (e.g. put a task in a state). Raise KeyError when unknown."""
        raise KeyError(action)

    def reset_state(self) -> None:
        """Forget vendor-side state (subclasses extend)."""

    def body_too_large(self, request: SandboxRequest, length: int) -> SandboxResponse:
        """The answer to a body over the server's hard cap (subclasses answer as their vendor)."""
        return SandboxResponse.text(413, "request body too large")

    # -- faults, records --------------------------------------------------------------------

    def route_names(self) -> list[str]:
        return sorted({name for _, _, name, _ in self._routes})

    def inject_fault(
        self,
        route_name: str,
        fault: Fault | str,
        *,
        times: int = 1,
        seconds: float = 35.0,
        status: int = 500,
    ) -> None:
        """Make the next `times` requests to `route_name` fail in the given way."""
        if route_name not in self.route_names():
            raise KeyError(f"unknown route {route_name!r}; routes: {self.route_names()}")
        with self.lock:
            self._faults.setdefault(route_name, []).append(
                FaultPlan(Fault(fault), times=times, seconds=seconds, status=status)
            )

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget received requests, faults and vendor-side state."""
        with self.lock:
            self.received.clear()
            self._faults.clear()
            self.reset_state()

    def received_on(self, route_name: str) -> list[ReceivedRequest]:
        with self.lock:
            return [r for r in self.received if r.route == route_name]

    def _take_fault(self, route_name: str) -> FaultPlan | None:
        plans = self._faults.get(route_name)
        if not plans:
            return None
        plan = plans[0]
        if plan.times > 0:
            plan.times -= 1
            if plan.times == 0:
                plans.pop(0)
        return plan

    # -- dispatch ---------------------------------------------------------------------------

    def dispatch(self, request: SandboxRequest) -> tuple[SandboxResponse | None, FaultPlan | None]:
        """Handle a request. Returns (response or None to drop the connection, fault applied)."""
        for method, pattern, route_name, handler in self._routes:
            match = pattern.match(request.path)
            if not match or method != request.method:
                continue
            request.params = {k: v for k, v in match.groupdict().items() if v is not None}
            with self.lock:
                record = ReceivedRequest(
                    sequence=next(self._sequence),
                    at=self.clock.now().isoformat(),
                    route=route_name,
                    method=request.method,
                    path=request.path,
                    headers=dict(request.headers),
                    body=request.body.decode("utf-8", errors="replace"),
                )
                self.received.append(record)
                if len(self.received) > MAX_RECEIVED:
                    # Bounded memory under benchmark load; the newest requests are what tests read.
                    del self.received[: len(self.received) - MAX_RECEIVED]
                plan = self._take_fault(route_name)
                record.fault = plan.fault.value if plan else None
                if plan and plan.fault is Fault.DROP_BEFORE_PROCESSING:
                    return None, plan
                if plan and plan.fault is Fault.SERVER_ERROR:
                    record.status = plan.status
                    return SandboxResponse.text(plan.status, _reason_phrase(plan.status)), plan
                response = handler(request)
                record.processed = True
                record.effect = response.effect
                if plan and plan.fault is Fault.DROP_AFTER_PROCESSING:
                    return None, plan
                record.status = response.status
                return response, plan
        return SandboxResponse.json(404, {"error": "not_found", "path": request.path}), None

    def control_api(self, method: str, action: str, body: bytes) -> SandboxResponse:
        """The `__sandbox__` endpoints: state, faults, clock, reset and vendor controls."""
        try:
            payload = json.loads(body.decode("utf-8")) if body else {}
        except ValueError:
            return SandboxResponse.json(400, {"error": "invalid_json"})
        try:
            if method == "GET" and action == "state":
                with self.lock:
                    return SandboxResponse.json(
                        200,
                        {
                            "name": self.name,
                            "now": self.clock.now().isoformat(),
                            "received": [_redacted_record(r) for r in self.received],
                            "state": self.state(),
                        },
                    )
            if method == "POST" and action == "faults":
                self.inject_fault(
                    payload["route"],
                    payload["fault"],
                    times=int(payload.get("times", 1)),
                    seconds=float(payload.get("seconds", 35.0)),
                    status=int(payload.get("status", 500)),
                )
                return SandboxResponse.json(200, {"ok": True})
            if method == "DELETE" and action == "faults":
                self.clear_faults()
                return SandboxResponse.json(200, {"ok": True})
            if method == "POST" and action == "clock":
                if "set" in payload:
                    self.clock.set(datetime.fromisoformat(payload["set"]))
                if "advance" in payload:
                    self.clock.advance(float(payload["advance"]))
                if "scale" in payload:
                    self.clock.set_scale(float(payload["scale"]))
                return SandboxResponse.json(200, {"now": self.clock.now().isoformat()})
            if method == "POST" and action == "reset":
                self.reset()
                return SandboxResponse.json(200, {"ok": True})
            if method == "POST" and action.startswith("control/"):
                with self.lock:
                    result = self.control(action.removeprefix("control/"), payload)
                return SandboxResponse.json(200, {"ok": True, "result": result})
        except (KeyError, ValueError, TypeError) as error:
            return SandboxResponse.json(400, {"error": "bad_control_request", "detail": str(error)})
        return SandboxResponse.json(404, {"error": "unknown_control_action", "action": action})


CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-brand-key", "cookie"})
BODY_TOKEN = re.compile(r'("token"\s*:\s*)"(?:[^"\\]|\\.)*"')


def _redacted_record(record: ReceivedRequest) -> dict[str, Any]:
    """A received request for the control API, without the credentials it carried.

    Tests in the same process read `Sandbox.received` unredacted; over HTTP (a browser, another
    process's log) the keys stay hidden, even though they are only sandbox keys.
    """
    data = asdict(record)
    data["headers"] = {
        name: "[redacted]" if name.lower() in CREDENTIAL_HEADERS else value
        for name, value in data["headers"].items()
    }
    data["body"] = BODY_TOKEN.sub(r'\1"[redacted]"', data["body"])
    return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients' connection pooling is exercised
    # Headers and body go out as separate writes; with Nagle on, the body waits ~40 ms for the
    # client's delayed ACK on every kept-alive request.
    disable_nagle_algorithm = True
    server: _SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox %s - %s", self.address_string(), format % args)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        limit = self.server.max_body_bytes
        if length > limit:
            # Read (and discard) what was sent so the client sees an answer, not a reset.
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            body = b""
            too_large = True
        else:
            body = self.rfile.read(length) if length else b""
            too_large = False
        sandbox, sub_path = self.server.resolve(parts.path)
        if sandbox is None:
            self._send(
                SandboxResponse.json(404, {"error": "no_sandbox_mounted", "path": parts.path})
            )
            return
        if sub_path.startswith(f"/{CONTROL_SEGMENT}/"):
            action = sub_path.removeprefix(f"/{CONTROL_SEGMENT}/")
            self._send(sandbox.control_api(self.command, action, body))
            return
        request = SandboxRequest(
            method=self.command,
            path=sub_path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if too_large:
            response = sandbox.body_too_large(request, length)
            self._send(response)
            return
        response, plan = sandbox.dispatch(request)
        if response is None:
            self._drop()
            return
        if plan and plan.fault is Fault.DELAY_AFTER_PROCESSING:
            time.sleep(plan.seconds)
        self._send(response)

    def _send(self, response: SandboxResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drop(self) -> None:
        """Reset the connection without answering (SO_LINGER 0 makes close() send an RST)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], mounts: dict[str, Sandbox], max_body_bytes: int):
        self.mounts = {
            ("/" + prefix.strip("/")).rstrip("/"): sandbox for prefix, sandbox in mounts.items()
        }
        self.max_body_bytes = max_body_bytes
        super().__init__(address, _Handler)

    def resolve(self, path: str) -> tuple[Sandbox | None, str]:
        # Longest prefix first, so "/" can coexist with "/altcraft".
        for prefix in sorted(self.mounts, key=len, reverse=True):
            if prefix == "":
                return self.mounts[prefix], path
            if path == prefix or path.startswith(prefix + "/"):
                return self.mounts[prefix], path[len(prefix) :] or "/"
        return None, path


class SandboxServer:
    """Serves one or more sandboxes over real HTTP on a loopback port, in a background thread.

    `mounts` maps a path prefix ("" for the root) to a sandbox.
    """

    def __init__(
        self,
        mounts: dict[str, Sandbox] | Sandbox,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 120_000_000,
    ) -> None:
        if isinstance(mounts, Sandbox):
            mounts = {"": mounts}
        self._server = _SandboxHTTPServer((host, port), mounts, max_body_bytes)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    def url(self, prefix: str = "") -> str:
        """The base URL of the sandbox mounted at `prefix`."""
        base = f"http://{self.host}:{self.port}"
        prefix = prefix.strip("/")
        return f"{base}/{prefix}" if prefix else base

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
