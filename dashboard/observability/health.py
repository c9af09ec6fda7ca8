"""Liveness and readiness.

Liveness (/healthz) says the process answers: no dependency is checked, so a database outage
does not make an orchestrator restart every web container. Readiness (/readyz) says this
deployment can do its work: the database answers, Redis answers, every queue has a worker that
beat recently, and the sweeper ran recently (beat is alive and a poll worker runs its task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from dashboard.observability import heartbeat

QUEUES = ("send", "interactive", "poll")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def sweep_max_age_seconds() -> float:
    """Three missed sweeps and beat counts as gone."""
    interval = settings.CELERY_BEAT_SCHEDULE["sweep-runs"]["schedule"]
    return 3 * float(interval) + 30


def readiness_checks() -> list[Check]:
    """Every readiness check, each with a short reason (never a secret, never a URL)."""
    checks: list[Check] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks.append(Check("database", True, "answers"))
    except Exception as error:
        checks.append(Check("database", False, type(error).__name__))

    client = heartbeat.redis_client()
    if client is None:
        checks.append(Check("redis", True, "not configured (demo broker)"))
        return checks
    try:
        client.ping()
    except Exception as error:
        checks.append(Check("redis", False, type(error).__name__))
        return checks
    checks.append(Check("redis", True, "answers"))

    beats = heartbeat.worker_heartbeats(client)
    for queue in QUEUES:
        fresh = {host: age for host, age in beats.get(queue, {}).items()}
        if fresh:
            checks.append(
                Check(
                    f"worker:{queue}",
                    True,
                    f"{len(fresh)} worker(s), newest beat {min(fresh.values()):.0f}s ago",
                )
            )
        else:
            checks.append(Check(f"worker:{queue}", False, "no worker beat recently"))

    age = heartbeat.last_sweep_age(client)
    limit = sweep_max_age_seconds()
    if age is None:
        checks.append(Check("beat:sweep", False, "the sweeper never ran"))
    else:
        checks.append(
            Check("beat:sweep", age <= limit, f"last sweep {age:.0f}s ago (limit {limit:.0f}s)")
        )
    return checks


def as_dict(checks: list[Check]) -> dict[str, Any]:
    return {
        "ready": all(check.ok for check in checks),
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
    }
