"""Prometheus metrics, computed at scrape time from the database and Redis.

Nothing is counted in a process's memory: web, workers and beat are many processes on many
machines, and the database and Redis already hold the truth every one of them wrote. One scrape
of any web process therefore gives the whole deployment's figures. The queries use indexed
columns or small aggregates; scrape every 30-60 s.

Rate-limiter waits are counted in Redis by dashboard.runs.rate_limits when a caller is told to
wait (the hash below); the audit verification result is the newest AuditVerification row of
each chain, written by `manage.py verify_audit` and beat's nightly `audit.verify`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Q, Sum
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from dashboard.models import AuditVerification
from dashboard.observability import heartbeat
from dashboard.observability.health import QUEUES
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.states import RunState

RATE_LIMIT_WAITS_KEY = "triggerdesk:metrics:rate_limiter_waits"
LATENCY_BUCKETS_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# kombu's Redis transport keeps a queue's messages of priority p>0 in "<queue>\x06\x16<p>".
KOMBU_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def record_rate_limit_wait(client: Any, *, rule_key: str, seconds: float) -> None:
    """Count one 'wait before sending' answer of the limiter (called only when it says wait)."""
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(RATE_LIMIT_WAITS_KEY, f"{rule_key}|count", 1)
    pipe.hincrbyfloat(RATE_LIMIT_WAITS_KEY, f"{rule_key}|seconds", seconds)
    pipe.execute()


def _rule_family(rule_key: str) -> str:
    # "optimove_campaigns:<brand>" -> keep the whole key: one series per vendor account.
    return rule_key


class TriggerDeskCollector:
    """Yields every TriggerDesk metric family; registered on a fresh registry per scrape."""

    def collect(self) -> Iterator[Any]:
        yield from self._runs()
        yield from self._attempts()
        yield from self._audit()
        yield from self._redis()

    def _runs(self) -> Iterator[Any]:
        runs = GaugeMetricFamily(
            "triggerdesk_runs",
            "Runs by state, vendor and operation.",
            labels=["state", "vendor", "operation"],
        )
        for row in (
            Run.objects.values("state", "connection__kind", "operation")
            .annotate(total=Count("id"))
            .order_by()
        ):
            runs.add_metric([row["state"], row["connection__kind"], row["operation"]], row["total"])
        yield runs

        unknown = GaugeMetricFamily(
            "triggerdesk_runs_outcome_unknown",
            "Runs whose outcome is unknown, by vendor and whether a person must decide.",
            labels=["vendor", "needs_person"],
        )
        for row in (
            Run.objects.filter(state=RunState.OUTCOME_UNKNOWN)
            .values("connection__kind", "needs_person")
            .annotate(total=Count("id"))
            .order_by()
        ):
            unknown.add_metric(
                [row["connection__kind"], str(row["needs_person"]).lower()], row["total"]
            )
        yield unknown

        approvals = GaugeMetricFamily(
            "triggerdesk_approvals_waiting",
            "Requests waiting for a second person, by tenant.",
            labels=["tenant"],
        )
        for row in (
            Run.objects.filter(state=RunState.AWAITING_APPROVAL)
            .values("tenant__slug")
            .annotate(total=Count("id"))
            .order_by()
        ):
            approvals.add_metric([row["tenant__slug"]], row["total"])
        yield approvals

    def _attempts(self) -> Iterator[Any]:
        latency = HistogramMetricFamily(
            "triggerdesk_vendor_request_duration_seconds",
            "Vendor request latency (every recorded attempt), by vendor and purpose.",
            labels=["vendor", "purpose"],
        )
        aggregates: dict[str, Any] = {
            f"le_{index}": Count("id", filter=Q(latency_ms__lte=bound * 1000))
            for index, bound in enumerate(LATENCY_BUCKETS_SECONDS)
        }
        aggregates["count"] = Count("id")
        aggregates["total_ms"] = Sum("latency_ms")
        for row in (
            RunAttempt.objects.filter(latency_ms__isnull=False)
            .values("run__connection__kind", "purpose")
            .annotate(**aggregates)
            .order_by()
        ):
            buckets = [
                (str(bound), row[f"le_{index}"])
                for index, bound in enumerate(LATENCY_BUCKETS_SECONDS)
            ] + [("+Inf", row["count"])]
            latency.add_metric(
                [row["run__connection__kind"], row["purpose"]],
                buckets,
                (row["total_ms"] or 0) / 1000,
            )
        yield latency

        responses = CounterMetricFamily(
            "triggerdesk_vendor_responses",
            "Vendor answers by vendor, HTTP status ('none': no answer) and failure class.",
            labels=["vendor", "status_code", "failure_class"],
        )
        for row in (
            RunAttempt.objects.values("run__connection__kind", "status_code", "failure_class")
            .annotate(total=Count("id"))
            .order_by()
        ):
            responses.add_metric(
                [
                    row["run__connection__kind"],
                    str(row["status_code"]) if row["status_code"] is not None else "none",
                    row["failure_class"] or "none",
                ],
                row["total"],
            )
        yield responses

    def _redis(self) -> Iterator[Any]:
        client = heartbeat.redis_client()
        up = GaugeMetricFamily("triggerdesk_redis_up", "1 when Redis answered this scrape.")
        if client is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            client.ping()
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        depth = GaugeMetricFamily(
            "triggerdesk_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        pipe = client.pipeline(transaction=False)
        for queue in QUEUES:
            for suffix in KOMBU_PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        lengths = pipe.execute()
        for index, queue in enumerate(QUEUES):
            step = len(KOMBU_PRIORITY_SUFFIXES)
            depth.add_metric([queue], sum(lengths[index * step : (index + 1) * step]))
        yield depth

        workers = GaugeMetricFamily(
            "triggerdesk_workers", "Workers that beat recently, per queue.", labels=["queue"]
        )
        beats = heartbeat.worker_heartbeats(client)
        for queue in QUEUES:
            workers.add_metric([queue], len(beats.get(queue, {})))
        yield workers

        sweep = GaugeMetricFamily(
            "triggerdesk_sweep_age_seconds", "Seconds since the sweeper last ran (-1: never)."
        )
        age = heartbeat.last_sweep_age(client)
        sweep.add_metric([], -1 if age is None else age)
        yield sweep

        waits = CounterMetricFamily(
            "triggerdesk_rate_limiter_waits",
            "Times the shared rate limiter told a sender to wait, per vendor account rule.",
            labels=["rule"],
        )
        wait_seconds = CounterMetricFamily(
            "triggerdesk_rate_limiter_wait_seconds",
            "Seconds of waiting the shared rate limiter announced, per vendor account rule.",
            labels=["rule"],
        )
        for field, value in sorted(client.hgetall(RATE_LIMIT_WAITS_KEY).items()):
            rule, _, kind = field.decode().rpartition("|")
            target = waits if kind == "count" else wait_seconds
            target.add_metric([_rule_family(rule)], float(value))
        yield waits
        yield wait_seconds

    def _audit(self) -> Iterator[Any]:
        audit_ok = GaugeMetricFamily(
            "triggerdesk_audit_verification_ok",
            "1 when the newest verification of the chain found it intact, 0 when not.",
            labels=["chain"],
        )
        audit_age = GaugeMetricFamily(
            "triggerdesk_audit_verification_age_seconds",
            "Seconds since the chain was last verified.",
            labels=["chain"],
        )
        audit_events = GaugeMetricFamily(
            "triggerdesk_audit_verification_events",
            "Audit events the newest verification of the chain checked.",
            labels=["chain"],
        )
        newest: dict[str, dict[str, Any]] = {}
        # Newest first, bounded: chains are tenants (plus the global one), verified nightly.
        for row in AuditVerification.objects.order_by("-verified_at").values(
            "chain", "ok", "verified_at", "events_checked"
        )[:2000]:
            newest.setdefault(row["chain"], row)
        now = time.time()
        for chain, row in sorted(newest.items()):
            audit_ok.add_metric([chain], 1 if row["ok"] else 0)
            audit_age.add_metric([chain], max(0.0, now - row["verified_at"].timestamp()))
            audit_events.add_metric([chain], row["events_checked"])
        yield audit_ok
        yield audit_age
        yield audit_events


def render_metrics() -> bytes:
    """The Prometheus text exposition of every metric, computed now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TriggerDeskCollector())
    return generate_latest(registry)
