"""Scale-out: workers on two hosts share one PostgreSQL, one broker and one rate limiter.

Two worker processes with different host names (`-n …@host-a`, `-n …@host-b`, as on two
machines) work off one burst: every run goes out once, the brand's limit holds across both,
and killing one host's worker mid-burst loses nothing (each run ends sent once, or before a
person as outcome unknown; none stays open, none is sent twice). Readiness and metrics follow
the real workers' heartbeats. The workers log JSON with the run and the request that caused it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from dashboard.clock import utc_now
from dashboard.observability.logs import bind, unbind
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import RunState
from dashboard.runs.tasks import sweep_runs
from tests.conftest import SANDBOX_SECRETS
from tests.e2e import netns
from tests.e2e.conftest import age_run, sweep, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EVENT_GENERATOR = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
SETTLED = {RunState.SUCCEEDED, RunState.FAILED, RunState.OUTCOME_UNKNOWN, RunState.CANCELLED}
OPEN = [RunState.QUEUED, RunState.SENDING, RunState.ACCEPTED]
LIMIT_PER_SECOND = 20
BURST = 200
# Fast heartbeats (3 s to expire), a short visibility timeout so the dead worker's messages come
# back, JSON logs.
WORKER_ENV = {
    "WORKER_HEARTBEAT_INTERVAL": "1",
    "CELERY_VISIBILITY_TIMEOUT": "5",
    "LOG_FORMAT": "json",
}
METRICS_TOKEN = "scale-out-metrics-token"


def queue_burst(connection: Any, count: int) -> list[Run]:
    from dashboard.runs.services import enqueue_send

    runs = Run.objects.bulk_create(
        [
            Run(
                tenant=connection.tenant,
                connection=connection,
                operation=EVENT_GENERATOR,
                parameters={
                    "event_generator_id": "00000000-abcd-abcd-abcd-000000000000",
                    "topic_key": "event_reminders+NFL",
                    "context": {"burst": number},
                },
                parameters_hash=f"scale-{number}",
                idempotency_key=f"scale-{number}",
                state=RunState.QUEUED,
                requested_at=utc_now(),
            )
            for number in range(count)
        ]
    )
    for run in runs:
        enqueue_send(run)
    return runs


def metric_values(client: Client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def recover_orphans(runs: Any, killed_at: Any) -> bool:
    """What the sweeper does once the dead worker's runs are old enough: age the runs nobody
    touched since the kill and sweep. True when every run is settled.

    A run whose call is still open on a live worker (host A, waiting for the brand's budget) is
    not an orphan however long it waits: ageing it would make the sweeper presume a live send
    lost, a race the test would then be measuring instead of the dead host's runs.
    """
    from dashboard.runs.heartbeat import workers_alive
    from dashboard.runs.models import RunAttempt

    if not runs.exclude(state__in=SETTLED).exists():
        return True
    orphans = list(runs.filter(state__in=OPEN, updated_at__lt=killed_at))
    callers = dict(
        RunAttempt.objects.filter(run__in=orphans, finished_at__isnull=True)
        .exclude(worker="")
        .values_list("run_id", "worker")
    )
    alive = workers_alive(set(callers.values())) or {}
    aged = [run for run in orphans if not alive.get(callers.get(run.pk, ""), False)]
    for run in aged:
        age_run(run, seconds=600)
    if aged:
        sweep()
    return False


@pytest.fixture(params=["hostnames", "network-namespaces"])
def placement(request, sandboxes, settings) -> Iterator[dict[str, Any]]:
    """Where the two workers run: two host names on this machine, or two network namespaces
    (own network stacks, reaching PostgreSQL, Redis and the vendor over a bridge)."""
    if request.param == "hostnames":
        yield {"starts": [{}, {}], "base_url": None}
        return
    reason = netns.available()
    if reason:
        pytest.skip(f"network namespaces unavailable here: {reason}")
    from django.db import connection as db

    from tests.e2e.conftest import database_url

    sandbox_port = urlsplit(sandboxes.url("optimove_campaigns")).port
    redis_parts = urlsplit(settings.REDIS_URL)
    db_port = int(db.settings_dict["PORT"] or 5432)
    ports = [db_port, redis_parts.port or 6379, sandbox_port]
    with netns.two_machines(ports) as machines:
        address = netns.BRIDGE_ADDRESS
        env = {
            "DATABASE_URL": database_url().replace(
                f"@{db.settings_dict['HOST'] or '127.0.0.1'}:{db_port}/",
                f"@{address}:{machines.port(db_port)}/",
            ),
            "REDIS_URL": f"redis://{address}:{machines.port(ports[1])}{redis_parts.path}",
            "VENDOR_HOST_ALLOWLIST": address,
        }
        settings.VENDOR_HOST_ALLOWLIST = [*settings.VENDOR_HOST_ALLOWLIST, address]
        yield {
            "starts": [
                {"prefix": machines.prefix(0), "env": env},
                {"prefix": machines.prefix(1), "env": env},
            ],
            "base_url": sandboxes.url("optimove_campaigns").replace(
                f"127.0.0.1:{sandbox_port}", f"{address}:{machines.port(sandbox_port)}"
            ),
        }


def test_two_hosts_share_the_brand_limit_and_a_killed_host_loses_nothing(
    team, workers, kill_worker, sandboxes, sandbox_connection, settings, placement
):
    settings.METRICS_TOKEN = METRICS_TOKEN
    campaigns = sandboxes["optimove_campaigns"]
    campaigns.control("set_rate_limit", {"per_second": LIMIT_PER_SECOND})
    extra = {"base_url": placement["base_url"]} if placement["base_url"] else {}
    connection = sandbox_connection(
        team.tenant,
        "optimove_campaigns",
        options={"rate_limit_per_second": LIMIT_PER_SECOND},
        **extra,
    )
    host_a, host_b = (
        workers.start(
            pool="threads",
            concurrency=4,
            hostname=hostname,
            env={**WORKER_ENV, **start.get("env", {})},
            prefix=start.get("prefix"),
        )
        for hostname, start in zip(["host-a", "host-b"], placement["starts"], strict=True)
    )
    if placement["base_url"]:
        # Each worker really is on its own network stack, reaching Redis over the bridge.
        for host in (host_a, host_b):
            assert f"@{netns.BRIDGE_ADDRESS}:" in host.log(), host.tail()
    client = Client()
    wait_for(
        lambda: client.get("/readyz").json()["checks"]["worker:send"]["detail"].startswith("2 "),
        timeout=30,
        message="both hosts' heartbeats",
    )

    runs = Run.objects.filter(tenant=team.tenant)
    queue_burst(connection, BURST)
    # Kill host B once the burst is well under way.
    wait_for(
        lambda: len(campaigns.received_on("run")) >= BURST // 4,
        timeout=120,
        message="a quarter of the burst to reach the vendor",
    )
    kill_worker(host_b)
    killed_at = utc_now()
    time.sleep(0.5)  # the killed host's last writes are committed or gone
    killed_at = utc_now()

    wait_for(
        lambda: recover_orphans(runs, killed_at),
        timeout=240,
        interval=1.0,
        message="every run to settle after host B died",
    )

    # Sent once each: no run was accepted by the vendor twice (a 429 took nothing; it is resent).
    bodies = [
        json.loads(request.body)["context"]["burst"]
        for request in campaigns.received_on("run")
        if request.status == 202
    ]
    assert len(bodies) == len(set(bodies)), "a run was sent twice"
    sent = set(bodies)
    by_state = {state: set() for state in SETTLED}
    for run in runs:
        by_state[run.state].add(run.parameters["context"]["burst"])
    # Nothing lost: every run is settled; each succeeded one was sent; anything else is before a
    # person as outcome unknown (the dead host may have sent it), never failed or cancelled.
    assert sum(len(numbers) for numbers in by_state.values()) == BURST
    assert by_state[RunState.SUCCEEDED] <= sent
    assert by_state[RunState.FAILED] == set()
    assert by_state[RunState.CANCELLED] == set()
    assert runs.filter(state=RunState.OUTCOME_UNKNOWN, needs_person=False).count() == 0
    # (How many host A sent depends on which dispatcher claimed which batch first: not asserted.)
    # Of the dead host's claimed batches, the runs whose request had started are presumed lost;
    # the others went back to the queue and were sent by host A (succeeded, above).
    assert set(
        runs.filter(state=RunState.OUTCOME_UNKNOWN).values_list("failure_code", flat=True)
    ) <= {"worker_lost"}
    # The brand's limit held across both hosts (the sandbox counts per second, as the vendor).
    # A limiter that each host kept for itself would run both near the limit, about twice what
    # the vendor admits, and draw 429s for roughly half the requests. The shared window holds
    # each request's place until a second after its answer, so none is drawn, whatever the
    # timing; the dead host's places stay held until they expire.
    state = campaigns.state()
    assert state["throttled"] == {}
    per_second: dict[int, int] = {}
    for request in campaigns.received:
        if request.status == 429:
            continue
        second = int(datetime.fromisoformat(request.at).timestamp())
        per_second[second] = per_second.get(second, 0) + 1
    assert max(per_second.values()) <= LIMIT_PER_SECOND, per_second

    # Host B's heartbeat expires; host A's stays. /metrics counts what happened.
    wait_for(
        lambda: metric_values(client)[("triggerdesk_workers", (("queue", "send"),))] == 1,
        timeout=30,
        message="host B's heartbeat to expire",
    )
    values = metric_values(client)
    # A state no run is in has no series at all (runs still being polled are not succeeded yet).
    assert values.get(
        (
            "triggerdesk_runs",
            (
                ("operation", EVENT_GENERATOR),
                ("state", "succeeded"),
                ("vendor", "optimove_campaigns"),
            ),
        ),
        0,
    ) == len(by_state[RunState.SUCCEEDED])
    sends = (("purpose", "send"), ("vendor", "optimove_campaigns"))
    assert values[("triggerdesk_vendor_request_duration_seconds_count", sends)] >= len(
        by_state[RunState.SUCCEEDED]
    )
    # The shared bucket made senders wait (the limit binds in this test).
    waits = [v for (name, _), v in values.items() if name == "triggerdesk_rate_limiter_waits_total"]
    assert sum(waits) >= 1
    # Beat's task (what the test's sweeps stood in for) records its sweep; with host A beating
    # the deployment is ready.
    sweep_runs()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()

    # The last worker dies: readiness fails once its heartbeat expires.
    kill_worker(host_a)
    wait_for(
        lambda: client.get("/readyz").status_code == 503,
        timeout=30,
        message="/readyz to fail without workers",
    )
    checks = client.get("/readyz").json()["checks"]
    assert checks["worker:send"]["ok"] is False
    assert checks["worker:poll"]["ok"] is False
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["beat:sweep"]["ok"]


def test_worker_logs_are_json_with_run_and_request_and_no_secret(
    team, workers, sandboxes, sandbox_connection, submit
):
    worker = workers.start(pool="threads", concurrency=2, hostname="host-json", env=WORKER_ENV)
    connection = sandbox_connection(team.tenant, "talkifai")
    tokens = bind(request_id="req-e2e-0123456789", tenant=team.tenant.slug, user="mia")
    try:
        run = submit(
            connection,
            Operation.TALKIFAI_START_BATCH_JOB,
            {"batch_job_id": "job-1", "batch_job_name": "Winback"},
        )
    finally:
        unbind(tokens)

    def sent_line() -> dict | None:
        for line in worker.log().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("task") == "runs.send" and "succeeded" in entry["message"]:
                    return entry
        return None

    entry = wait_for(sent_line, timeout=60, message="the send task's success line")
    assert entry["run_id"] == run.pk
    assert entry["request_id"] == "req-e2e-0123456789"
    assert entry["tenant"] == team.tenant.slug
    assert entry["user"] == "mia"
    log = worker.log()
    json_lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(json_lines) >= 3  # ready, received, succeeded at least
    for secrets in SANDBOX_SECRETS.values():
        for value in secrets.values():
            assert value not in log
