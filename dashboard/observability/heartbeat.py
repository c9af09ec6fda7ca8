"""Heartbeats in Redis: each worker says which queues it consumes, and the sweeper says it ran.

/readyz, /metrics and the containers' health checks read them. Key scheme (one Redis database
per deployment, the broker's):

    triggerdesk:heartbeat:worker:<queue>:<worker hostname>  unix time of the last beat,
                                                          expires after WORKER_HEARTBEAT_TTL
    triggerdesk:heartbeat:sweep                           unix time of the last sweep (beat's
                                                          runs.sweep, run by a poll worker)

A worker beats from a daemon thread of its main process every WORKER_HEARTBEAT_INTERVAL
seconds, started on Celery's `worker_ready` and stopped on `worker_shutdown`. Without REDIS_URL
(the demo's filesystem broker) nothing is written and the checks say so.

The run engine keeps a second, different heartbeat (dashboard/runs/heartbeat.py,
`triggerdesk:worker:<host>:<pid>`): one per process that calls a vendor, so the sweeper can tell
a dead worker's runs from slow ones. This one is per worker and queue, for readiness; the key
prefixes do not overlap.

`python -m dashboard.observability.heartbeat worker` exits 0 when this machine's worker beat recently: the
worker containers' HEALTHCHECK (it needs only REDIS_URL, not Django).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from functools import cache
from typing import Any

WORKER_HEARTBEAT_INTERVAL = float(os.environ.get("WORKER_HEARTBEAT_INTERVAL", "10"))
# Three missed beats and a worker counts as gone.
WORKER_HEARTBEAT_TTL = 3 * WORKER_HEARTBEAT_INTERVAL
WORKER_PREFIX = "triggerdesk:heartbeat:worker:"
SWEEP_KEY = "triggerdesk:heartbeat:sweep"


@cache
def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_client() -> Any | None:
    """The broker's Redis, or None when there is none (the demo)."""
    url = os.environ.get("REDIS_URL", "")
    try:
        from django.conf import settings

        url = getattr(settings, "REDIS_URL", "") or url
    except ImportError:  # pragma: no cover - Django is always installed
        pass
    except Exception:  # noqa: S110 - settings not configured: the CLI health check
        pass
    return _client(url) if url else None


def worker_key(queue: str, hostname: str) -> str:
    return f"{WORKER_PREFIX}{queue}:{hostname}"


def beat_worker(*, client: Any, queues: list[str], hostname: str) -> None:
    """Record that `hostname` consumes `queues` now."""
    now = time.time()
    pipe = client.pipeline()
    for queue in queues:
        pipe.set(worker_key(queue, hostname), now, px=int(WORKER_HEARTBEAT_TTL * 1000))
    pipe.execute()


def forget_worker(*, client: Any, queues: list[str], hostname: str) -> None:
    """A worker that stops cleanly takes its beats with it (a killed one's expire)."""
    client.delete(*[worker_key(queue, hostname) for queue in queues])


def record_sweep(client: Any | None = None) -> None:
    """Called by the sweep task: beat scheduled it and a poll worker ran it, just now."""
    client = client or redis_client()
    if client is not None:
        client.set(SWEEP_KEY, time.time())


def worker_heartbeats(client: Any) -> dict[str, dict[str, float]]:
    """{queue: {hostname: seconds since its last beat}} for every worker still beating."""
    now = time.time()
    keys = list(client.scan_iter(match=f"{WORKER_PREFIX}*", count=500))
    values = client.mget(keys) if keys else []
    beats: dict[str, dict[str, float]] = {}
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue
        queue, _, hostname = key.decode()[len(WORKER_PREFIX) :].partition(":")
        beats.setdefault(queue, {})[hostname] = max(0.0, now - float(value))
    return beats


def last_sweep_age(client: Any) -> float | None:
    """Seconds since the sweeper last ran, or None if it never did (since Redis was emptied)."""
    value = client.get(SWEEP_KEY)
    return None if value is None else max(0.0, time.time() - float(value))


class WorkerHeartbeat:
    """The beating thread of one worker process."""

    def __init__(self, *, client: Any, queues: list[str], hostname: str) -> None:
        self.client = client
        self.queues = queues
        self.hostname = hostname
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="triggerdesk-heartbeat", daemon=True)

    def start(self) -> WorkerHeartbeat:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        # Redis gone at shutdown: the keys expire anyway.
        with contextlib.suppress(Exception):
            forget_worker(client=self.client, queues=self.queues, hostname=self.hostname)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                beat_worker(client=self.client, queues=self.queues, hostname=self.hostname)
            except Exception:
                import logging

                logging.getLogger(__name__).warning("worker heartbeat could not reach Redis")
            self.stopped.wait(WORKER_HEARTBEAT_INTERVAL)


_running: list[WorkerHeartbeat] = []


def connect_worker_signals() -> None:
    """Start beating when a worker is ready, stop when it shuts down (called by dashboard.project.celery)."""
    from celery import signals

    @signals.worker_ready.connect(weak=False)
    def start_heartbeat(sender: Any = None, **kwargs: Any) -> None:
        client = redis_client()
        if client is None:
            return
        queues = sorted(sender.app.amqp.queues.consume_from or sender.app.amqp.queues)
        _running.append(
            WorkerHeartbeat(client=client, queues=queues, hostname=sender.hostname).start()
        )

    @signals.worker_shutdown.connect(weak=False)
    def stop_heartbeat(**kwargs: Any) -> None:
        while _running:
            _running.pop().stop()


def main(argv: list[str]) -> int:
    """`python -m dashboard.observability.heartbeat worker [hostname-suffix]`: 0 if this host's worker beats."""
    if argv[:1] != ["worker"]:
        print("usage: python -m dashboard.observability.heartbeat worker", file=sys.stderr)
        return 2
    client = redis_client()
    if client is None:
        print("REDIS_URL is not set", file=sys.stderr)
        return 1
    host = socket.gethostname()
    try:
        beats = worker_heartbeats(client)
    except Exception as error:
        print(f"Redis unreachable: {type(error).__name__}", file=sys.stderr)
        return 1
    mine = {q: h for q, hosts in beats.items() for h in hosts if h.endswith(f"@{host}")}
    if not mine:
        print(f"no recent heartbeat from a worker on {host}", file=sys.stderr)
        return 1
    print(f"worker on {host} beating for queues {sorted(mine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
