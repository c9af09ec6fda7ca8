"""Worker heartbeats: how the sweeper tells a dead worker from a slow call, sooner than a timeout.

Every process that calls a vendor for a run keeps a short-lived key in Redis alive from a daemon
thread ("triggerdesk:worker:<host>:<pid>"), written once synchronously before its first call.
Each attempt records which process made it (RunAttempt.worker). A run in sending whose worker's
key has lapsed was abandoned by a dead process: the sweeper moves it to outcome unknown at once
instead of waiting for the operation's max_send_seconds.

Safety: a lapsed key only ever moves a run to outcome unknown (never back to queued), and an
answer that still arrives from a live but starved worker counts (the worker's compare-and-set
accepts sending or outcome unknown). Emptying Redis makes every worker look dead until its next
renewal (HEARTBEAT_EVERY_SECONDS), with the same safe outcome. Without Redis (the embedded demo broker) there are no
heartbeats and the sweeper falls back to max_send_seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from dashboard.runs.rate_limits import rate_limiter

logger = logging.getLogger(__name__)

# A live worker renews its key this often...
HEARTBEAT_EVERY_SECONDS = 2.0
# ...and the key outlives a missed renewal by far: a process under heavy load still renews it.
HEARTBEAT_TTL_SECONDS = 10.0

_started_for_pid: int | None = None
_start_lock = threading.Lock()


def worker_identity() -> str:
    """This process as an auditor and the sweeper know it: "hostname:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _key(identity: str) -> str:
    return f"triggerdesk:worker:{identity}"


def _redis() -> object | None:
    return getattr(rate_limiter(), "redis", None)


def ensure_heartbeat() -> str:
    """Keep this process's heartbeat alive (started once per process, after any fork); its
    identity. The key exists when this returns, so no call leaves before its worker is seen."""
    global _started_for_pid
    identity = worker_identity()
    pid = os.getpid()
    if _started_for_pid == pid:
        return identity
    with _start_lock:
        if _started_for_pid == pid:
            return identity
        client = _redis()
        if client is not None:
            try:
                _beat_once(client, identity)
            except Exception:
                logger.warning("could not write the worker heartbeat", exc_info=True)
            threading.Thread(
                target=_beat_forever, args=(client, identity), name="run-heartbeat", daemon=True
            ).start()
        _started_for_pid = pid
    return identity


def beat_now() -> str:
    """Write this process's heartbeat at once (besides the thread's renewals); its identity."""
    identity = ensure_heartbeat()
    client = _redis()
    if client is not None:
        _beat_once(client, identity)
    return identity


def _beat_once(client: object, identity: str) -> None:
    client.set(_key(identity), "1", px=int(HEARTBEAT_TTL_SECONDS * 1000))  # type: ignore[attr-defined]


def _beat_forever(client: object, identity: str) -> None:
    while True:
        time.sleep(HEARTBEAT_EVERY_SECONDS)
        try:
            _beat_once(client, identity)
        except Exception:  # Redis away for a moment: try again at the next beat
            logger.warning("could not renew the worker heartbeat", exc_info=True)


def workers_alive(identities: set[str]) -> dict[str, bool] | None:
    """Which of these workers' heartbeats are fresh; None when heartbeats are not kept here
    (no Redis) or cannot be read now, so the caller must not conclude anything from them."""
    client = _redis()
    if client is None or not identities:
        return None if client is None else {}
    ordered = sorted(identities)
    try:
        values = client.mget([_key(identity) for identity in ordered])  # type: ignore[attr-defined]
    except Exception:
        logger.warning("could not read worker heartbeats", exc_info=True)
        return None
    return {identity: value is not None for identity, value in zip(ordered, values, strict=True)}
