"""The floor of CPU per send: what the guarantees alone cost, with no engine around them.

Issue 24 asks for <= 1.0 ms of CPU per send, workers and PostgreSQL together, with every
guarantee kept: a place in the brand's sliding window per request, an attempt row and an audit
row per run, set-based recording. `bench_event_generator_throughput.py` measures the engine
(2.7 ms on 2026-12-07). This measures a deliberately minimal sender over the same stack and
schema, to tell how much of that is the guarantees themselves and how much is the engine:

- the same Optimove client (VendorHttp, the request's checks, the redacted record of each call)
  against the same sandbox, two calls per run (the trigger and one status read);
- the same Redis window: one `take_slots` per batch of requests and one `free_slots`;
- the same database: per batch of 100 runs, three transactions of set-based statements
  (claim and open the send attempts already marked started; record the answers; record the
  status reads, their attempts and ONE audit row per run), written by the engine's own
  set-based writers (`dashboard.runs.bulk`) and audit append with its hash chain;
- nothing else: no Celery, no thread pool (requests go one after another on one keep-alive
  connection per brand), no pause or send-window checks, no guardrails, no per-transition
  audit rows, no poll lease, no sweeper's marks per grant, no retries or failure handling.

So it is a floor, not a design: an engine keeping today's promises (a pause stops a batch
between grants, each state change audited, a crash leaves at most one grant before a person)
costs more. It runs `--processes` sender processes (2, like the throughput bench's two workers),
each with its share of the brands, and counts their CPU and the bench database's backends'.

Usage: .venv/bin/python bench/bench_send_floor.py [--brands 8] [--runs 1000] [--processes 2]
It prints its figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

BATCH = 100
OPERATION = "optimove_run_event_generator"
CPU_GOAL_MS_PER_SEND = 1.0

# Claim a batch: the compare-and-set to sending under SKIP LOCKED, in one statement.
CLAIM_SQL = """
UPDATE dashboard_run AS t
SET state = 'sending', attempt_count = t.attempt_count + 1, next_attempt_at = NULL,
    sent_at = %(now)s, updated_at = %(now)s
FROM (
    SELECT id FROM dashboard_run
    WHERE connection_id = %(connection)s AND operation = %(operation)s AND state = 'queued'
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) AS claimed
WHERE t.id = claimed.id
RETURNING t.id, t.parameters, t.parameters_hash, t.attempt_count, t.poll_count
"""

# What a send attempt writes when it is opened (the rest take their defaults until the answer).
OPENED_FIELDS = [
    "run",
    "number",
    "purpose",
    "started_at",
    "request_started_at",
    "worker",
    "request",
    "exchange",
    "failure_class",
    "failure_code",
    "outcome",
]
# A status read's attempt is written whole, after its answer.
POLL_FIELDS = [*OPENED_FIELDS, "latency_ms", "status_code", "finished_at"]


def send_floor(connection_ids: list[int], threads: int) -> None:
    """The sender process: every queued run of these connections, a batch at a time, round
    robin over the connections; then its CPU on stdout, and wait for stdin to close (so the
    parent reads this process's database backend before it goes).

    `threads`: 0 sends a batch's requests one after another; N sends them from a pool of N
    threads, as the engine does (each thread its own keep-alive connection).
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=threads) if threads else None

    def calls(call, items: list) -> list:
        """call(item) for each item, in order: in turn, or concurrently from the pool."""
        if pool is None:
            return [call(item) for item in items]
        return list(pool.map(call, items))

    import django

    django.setup()
    from django.db import connection as database
    from django.db import transaction

    from campaigns.vendors.optimove_campaigns.access import optimove_campaigns_client
    from dashboard.audit.trail import append_audit_events
    from dashboard.clock import utc_now
    from dashboard.models import VendorConnection
    from dashboard.runs import bulk
    from dashboard.runs.heartbeat import ensure_heartbeat
    from dashboard.runs.models import Run, RunAttempt
    from dashboard.runs.operations import operation_for
    from dashboard.runs.rate_limits import rate_limiter
    from dashboard.runs.states import RunState
    from dashboard.runs.transitions import WORKER
    from dashboard.tenancy.credentials import connection_secrets

    operation = operation_for(OPERATION)
    limiter = rate_limiter()
    worker = ensure_heartbeat()
    brands = []
    for connection in VendorConnection.objects.select_related("tenant").filter(
        pk__in=connection_ids
    ):
        secrets = connection_secrets(connection)
        (rule,) = operation.rate_rules(connection, secrets)
        brands.append((connection, optimove_campaigns_client(connection, secrets), rule))

    def places_for(rule, count: int) -> list[str]:
        taken: list[str] = []
        while len(taken) < count:
            places, wait = limiter.take_slots(rule, count - len(taken))
            taken += places
            if len(taken) < count:
                time.sleep(max(wait, 0.001))
        return taken

    def batch(connection, client, rule) -> int:
        now = utc_now()
        with transaction.atomic(), database.cursor() as cursor:
            cursor.execute(
                CLAIM_SQL,
                {"now": now, "connection": connection.pk, "operation": OPERATION, "limit": BATCH},
            )
            runs = [
                (pk, json.loads(p) if isinstance(p, str) else p, digest, sends, polls)
                for pk, p, digest, sends, polls in sorted(cursor.fetchall())
            ]
            if not runs:
                return 0
            opened = [
                RunAttempt(
                    run_id=pk,
                    # The claim's RETURNING gave the counters after its increment.
                    number=sends + polls,
                    purpose=RunAttempt.Purpose.SEND,
                    started_at=now,
                    # Marked started at the claim: the floor has no grants to mark.
                    request_started_at=now,
                    worker=worker,
                    request={
                        "operation": OPERATION,
                        "description": operation.describe(parameters),
                        "parameters_hash": digest,
                    },
                )
                for pk, parameters, digest, sends, polls in runs
            ]
            bulk.insert_rows(RunAttempt, opened, OPENED_FIELDS)
        places = places_for(rule, len(runs))

        def trigger(run):
            parameters = run[1]
            return client.run_event_generator(
                parameters["event_generator_id"],
                topic_key=parameters["topic_key"],
                context=parameters["context"],
            )

        answers = list(zip(runs, opened, calls(trigger, runs), strict=True))
        limiter.free_slots(rule, places)
        now = utc_now()
        with transaction.atomic():
            bulk.update_rows(
                RunAttempt,
                [
                    (
                        attempt.pk,
                        {
                            "latency_ms": accepted.exchange.latency_ms,
                            "exchange": accepted.exchange.as_dict(),
                            "status_code": accepted.exchange.status_code,
                            "outcome": f"Optimove queued execution {accepted.execution_id}.",
                            "finished_at": now,
                        },
                    )
                    for _run, attempt, accepted in answers
                ],
            )
            bulk.update_rows(
                Run,
                [
                    (
                        run[0],
                        {
                            "state": RunState.ACCEPTED,
                            "vendor_reference": accepted.execution_id,
                            "next_poll_at": now,
                            "updated_at": now,
                        },
                    )
                    for run, _attempt, accepted in answers
                ],
                expected={"state": [RunState.SENDING]},
            )
        places = places_for(rule, len(answers))
        statuses = calls(lambda answer: client.execution_status(answer[2].execution_id), answers)
        limiter.free_slots(rule, places)
        now = utc_now()
        with transaction.atomic():
            polls = [
                RunAttempt(
                    run_id=run[0],
                    number=run[3] + run[4] + 1,
                    purpose=RunAttempt.Purpose.POLL,
                    started_at=now,
                    request_started_at=now,
                    worker=worker,
                    request={"operation": OPERATION},
                    latency_ms=status.exchange.latency_ms,
                    exchange=status.exchange.as_dict(),
                    status_code=status.exchange.status_code,
                    outcome=status.status,
                    finished_at=now,
                )
                for run, status in zip(runs, statuses, strict=True)
            ]
            bulk.insert_rows(RunAttempt, polls, POLL_FIELDS)
            bulk.update_rows(
                Run,
                [
                    (
                        run[0],
                        {
                            "state": RunState.SUCCEEDED,
                            "poll_count": run[4] + 1,
                            "next_poll_at": None,
                            "progress": 100,
                            "audience_size": status.audience_size,
                            "result": {
                                "updated_at": status.updated_at.isoformat()
                                if status.updated_at
                                else None
                            },
                            "finished_at": now,
                            "updated_at": now,
                        },
                    )
                    for run, status in zip(runs, statuses, strict=True)
                ],
                expected={"state": [RunState.ACCEPTED]},
            )
            # One audit row per run: its whole way from queued, in the engine's own append.
            append_audit_events(
                [
                    {
                        "actor": WORKER,
                        "tenant": connection.tenant,
                        "action": "run.state_changed",
                        "object_type": "run",
                        "object_id": run[0],
                        "summary": {"from": "queued", "to": "succeeded"},
                    }
                    for run in runs
                ]
            )
        return len(runs)

    started = time.process_time()
    sent = 0
    working = list(brands)
    while working:
        for brand in list(working):
            done = batch(*brand)
            if not done:
                working.remove(brand)
            sent += done
    print(f"FLOOR {sent} {time.process_time() - started:.6f}", flush=True)
    sys.stdin.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per brand")
    parser.add_argument("--brands", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="send each batch's requests from N threads, as the engine does (0: one by one)",
    )
    parser.add_argument("--connections", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.connections:
        send_floor([int(pk) for pk in args.connections.split(",")], args.threads)
        return

    from bench_event_generator_throughput import brand_connections, create_runs
    from stack import DatabaseBackendsCpu, bench_stack, print_figure

    total = args.runs * args.brands
    print(
        f"send floor: {args.runs} runs x {args.brands} brand(s), {args.processes} sender "
        f"processes, batches of {BATCH}, "
        f"{f'{args.threads} threads' if args.threads else 'requests one by one'}",
        flush=True,
    )
    with bench_stack(workers=0, interactive_workers=0) as stack:
        connections = brand_connections(stack, args.brands)
        campaigns = stack.sandboxes["optimove_campaigns"]
        # One status read per run, as in the throughput bench (its first read finds it done).
        campaigns.control(
            "set_durations", {"processing_after_seconds": 0, "complete_after_seconds": 0}
        )
        for connection in connections:
            create_runs(stack, connection, args.runs)
        shares = [connections[number :: args.processes] for number in range(args.processes)]
        backends = DatabaseBackendsCpu()
        backends.sample()
        began = time.monotonic()
        senders = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--connections",
                    ",".join(str(connection.pk) for connection in share),
                    "--threads",
                    str(args.threads),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for share in shares
            if share
        ]
        sent = 0
        sender_seconds = 0.0
        for sender in senders:
            while True:
                line = sender.stdout.readline()
                if not line:
                    raise SystemExit(f"a sender stopped early (exit {sender.wait()})")
                if line.startswith("FLOOR "):
                    _, count, seconds = line.split()
                    sent += int(count)
                    sender_seconds += float(seconds)
                    break
            backends.sample()
        elapsed = time.monotonic() - began
        for sender in senders:
            sender.stdin.close()
            sender.wait()

        from django.db.models import Count

        from dashboard.models import AuditEvent
        from dashboard.runs.models import Run, RunAttempt

        states = dict(
            Run.objects.filter(tenant=stack.tenant).values_list("state").annotate(Count("id"))
        )
        attempts = RunAttempt.objects.filter(run__tenant=stack.tenant).count()
        audited = AuditEvent.objects.filter(object_type="run", action="run.state_changed").count()
        received = list(campaigns.received)
        throttled = sum(campaigns.state()["throttled"].values())
        sender_ms = sender_seconds * 1000 / max(total, 1)
        database_ms = backends.seconds() * 1000 / max(total, 1)
        print(
            f"  runs by state: {states}; attempts: {attempts}; audit rows: {audited}; "
            f"sent {sent} in {elapsed:.1f} s"
        )
        print(f"  vendor requests: {len(received)}; 429s answered by the sandbox: {throttled}")
        print(f"  sender processes' CPU: {sender_ms:.3f} ms/run")
        print(f"  postgresql, the bench database's backends: {database_ms:.3f} ms/run")
        print(
            f"  FLOOR CPU PER SEND, senders + bench PostgreSQL: {sender_ms + database_ms:.3f} ms "
            f"({(sender_ms + database_ms) / CPU_GOAL_MS_PER_SEND:.2f} x the "
            f"{CPU_GOAL_MS_PER_SEND} ms goal)"
        )
        print_figure("floor_sender_cpu_ms_per_run", sender_ms)
        print_figure("floor_postgresql_cpu_ms_per_run", database_ms)
        print_figure("floor_cpu_ms_per_send", sender_ms + database_ms)
        print_figure("floor_sends_per_second", sent / elapsed if elapsed else 0.0)
        print_figure("throttled_429", throttled)


if __name__ == "__main__":
    main()
