"""Audit throughput: does appending to one tenant's audit chain cap the run engine?

Every state change of a run appends a row to its tenant's hash chain under a lock on the chain
head, so all of one tenant's appends take turns. This measures, in one run, side by side:

- engine sends/s for one tenant with the audit ON and OFF, on both engine paths:
  - batched: Optimove event-generator runs, sent and recorded by the dispatchers, one audit
    append (many rows) per batch of answers;
  - single-run: TalkifAI "start batch job now" runs, one `send_run` task each, one audit append
    per transition (queued -> sending -> succeeded);
  with the vendor out of the way (the sandbox's brand limit and the connection's
  `rate_limit_per_second` raised to 100,000/s; TalkifAI's sandbox limits nothing);
- raw appends/s for one tenant (`record_audit_event`, one transaction each) with 1, 4 and 8
  concurrent writer processes, and p95 per append: events of the tenant itself (one chain, its
  main one) and state changes of its runs (shared out over its run lanes);
- while the engine runs: how many of the workers' connections wait on a lock (sampled every
  0.2 s; the chain head's row lock is the one they can queue on) and CPU per run.

"Audit OFF" exists only here: BENCH_AUDIT_OFF=1 in the workers' environment makes
bench/bench_settings.py turn `record_audit_event(s)` into no-ops in those worker processes. No
product setting disables the audit. The runs are created before the clock starts (one INSERT),
as in bench_event_generator_throughput.py. ON and OFF alternate (ON first on odd repeats, OFF
first on even ones) so a change in the machine's load hits both alike.

Usage: .venv/bin/python bench/bench_audit_throughput.py [--repeat 3] [--batched-runs 3000]
       [--single-runs 1500] [--workers 2] [--pool threads] [--concurrency 8]
       [--append-seconds 4] [--writers 1,4,8]
It prints its figures (with the 1-minute load average beside each); it asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
from dataclasses import dataclass

from stack import (
    bench_stack,
    cpu_report,
    cpu_snapshot,
    percentile,
    print_figure,
    sandbox_seconds,
)

VENDOR_LIMIT_PER_SECOND = 100_000
MATCH_START = "00000000-abcd-abcd-abcd-000000000000"
SETTLED_STATES = ("succeeded", "failed", "outcome_unknown")


@dataclass
class EngineFigure:
    path: str
    audit: str
    runs: int
    sends_per_second: float  # accepted run requests, first to last, as the sandbox stamped them
    settled_per_second: float  # runs settled ÷ (last settled - wake-up)
    audit_rows_per_run: float
    load: float
    not_settled: int
    lock_waiting: float  # mean of the workers' connections waiting on a lock, sampled
    worker_cpu_ms: float  # CPU of the worker processes per run
    postgresql_cpu_ms: float


class LockSampler(threading.Thread):
    """Samples, every 0.2 s, how many of the bench database's connections wait on a lock (in
    practice the chain head's row lock) and how many are busy."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.samples: list[tuple[int, int]] = []

    def run(self) -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
            while not self.stopping.wait(0.2):
                self.samples.append(
                    connection.execute(
                        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), "
                        "count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    ).fetchone()
                )

    def stop(self) -> float:
        """Mean connections waiting on a lock while it ran."""
        self.stopping.set()
        self.join(timeout=10)
        if not self.samples:
            return 0.0
        return statistics.mean(waiting for waiting, _ in self.samples)


def measured(stack, runs: int, wake, settle):
    """Wake the runs and wait for them, sampling lock waits and CPU meanwhile."""
    sampler = LockSampler()
    cpu_before = cpu_snapshot(stack)
    began = time.monotonic()
    sampler.start()
    wake()
    not_settled = settle()
    lock_waiting = sampler.stop()
    cpu = cpu_report(cpu_before, cpu_snapshot(stack), runs, time.monotonic() - began)
    return (
        not_settled,
        lock_waiting,
        cpu.ms_per_run.get("celery workers", 0.0),
        cpu.ms_per_run.get("postgresql", 0.0),
    )


def load_average() -> float:
    return os.getloadavg()[0]


def audit_rows(stack) -> int:
    """The bench tenant's audit rows, over all of its chains (its main chain and run lanes)."""
    from dashboard.models import AuditEvent

    return AuditEvent.objects.filter(tenant=stack.tenant).count()


def restart_workers(stack, args, errors: list[str], *, audit_on: bool) -> None:
    """Workers whose environment has the audit on, or off (bench/bench_settings.py)."""
    errors.extend(stack.worker_errors())
    stack.stop_workers()
    if audit_on:
        os.environ.pop("BENCH_AUDIT_OFF", None)
    else:
        os.environ["BENCH_AUDIT_OFF"] = "1"
    # Every queue: the single-run sends measured here go to the interactive one (a person's
    # click in production), which a send/poll-only worker never consumes.
    stack.start_workers(
        count=args.workers,
        pool=args.pool,
        concurrency=args.concurrency,
        queues="send,interactive,poll",
    )
    os.environ.pop("BENCH_AUDIT_OFF", None)


def wait_until_settled(stack, connection, count: int, timeout: float) -> int:
    """Wait until every run of `connection` settled; how many did not by the deadline."""
    from dashboard.runs.models import Run

    deadline = time.monotonic() + timeout
    while True:
        done = Run.objects.filter(connection=connection, state__in=SETTLED_STATES).count()
        if done >= count or time.monotonic() > deadline or stack.dead_workers():
            return count - done
        time.sleep(0.2)


def settled_rate(connection, began_at) -> tuple[float, int]:
    """Runs settled per second, from the wake-up to the last run's final state change."""
    from django.db.models import Max

    from dashboard.runs.models import Run

    settled = Run.objects.filter(connection=connection, state__in=SETTLED_STATES)
    last = settled.aggregate(last=Max("updated_at"))["last"]
    count = settled.count()
    if last is None or count == 0:
        return 0.0, count
    return count / max((last - began_at).total_seconds(), 1e-6), count


def stamp_rate(requests) -> float:
    stamps = sorted(sandbox_seconds(request.at) for request in requests)
    if len(stamps) < 2:
        return 0.0
    return (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-6)


def measure_batched(stack, runs: int, audit: str, timeout: float) -> EngineFigure:
    """Optimove event-generator runs through the dispatchers (bulk recording, bulk audit)."""
    from dashboard.clock import utc_now
    from dashboard.runs.models import Operation

    campaigns = stack.sandboxes["optimove_campaigns"]
    connection = stack.connection(
        "optimove_campaigns", rate_limit_per_second=VENDOR_LIMIT_PER_SECOND
    )
    created = stack.create_queued_runs(
        connection,
        Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
        [
            {
                "event_generator_id": MATCH_START,
                "topic_key": "event_reminders+NFL",
                "context": {"bench": number},
            }
            for number in range(runs)
        ],
    )
    rows_before = audit_rows(stack)
    seen = len(campaigns.received)
    load = load_average()
    began_at = utc_now()
    not_settled, lock_waiting, worker_cpu, postgresql_cpu = measured(
        stack,
        runs,
        lambda: stack.wake_sends(created),
        lambda: wait_until_settled(stack, connection, runs, timeout),
    )
    accepted = [r for r in campaigns.received[seen:] if r.route == "run" and r.status == 202]
    settled_per_second, _ = settled_rate(connection, began_at)
    return EngineFigure(
        "batched",
        audit,
        runs,
        stamp_rate(accepted),
        settled_per_second,
        (audit_rows(stack) - rows_before) / runs,
        (load + load_average()) / 2,
        not_settled,
        lock_waiting,
        worker_cpu,
        postgresql_cpu,
    )


def measure_single(stack, runs: int, audit: str, timeout: float, round_number: int):
    """TalkifAI runs, one send_run task each (one audit append per transition)."""
    from dashboard.clock import utc_now
    from dashboard.runs.models import Operation

    talkifai = stack.sandboxes["talkifai"]
    connection = stack.connection("talkifai")
    job_ids = [f"job-audit-{round_number}-{audit}-{number:05d}" for number in range(runs)]
    for job_id in job_ids:
        talkifai.control("add_job", {"id": job_id, "status": "pending", "contacts": 10})
    created = stack.create_queued_runs(
        connection,
        Operation.TALKIFAI_START_BATCH_JOB,
        [{"batch_job_id": job_id, "batch_job_name": "Bench"} for job_id in job_ids],
    )
    rows_before = audit_rows(stack)
    seen = len(talkifai.received_on("start_batch_job"))
    load = load_average()
    began_at = utc_now()
    not_settled, lock_waiting, worker_cpu, postgresql_cpu = measured(
        stack,
        runs,
        lambda: stack.wake_sends(created),  # one message per run: a per-run operation
        lambda: wait_until_settled(stack, connection, runs, timeout),
    )
    started = [r for r in talkifai.received_on("start_batch_job")[seen:] if r.status < 300]
    settled_per_second, _ = settled_rate(connection, began_at)
    return EngineFigure(
        "single-run",
        audit,
        runs,
        stamp_rate(started),
        settled_per_second,
        (audit_rows(stack) - rows_before) / runs,
        (load + load_average()) / 2,
        not_settled,
        lock_waiting,
        worker_cpu,
        postgresql_cpu,
    )


# -- raw appends -------------------------------------------------------------------------------

# "one chain": events of the tenant itself, all on its main chain; "run events": state changes
# of the tenant's runs (run ids 0, 1, 2...), which its run lanes share out.
APPEND_TARGETS = ("one chain", "run events")


def _append_writer(tenant_id: int, target: str, start_at: float, stop_at: float, results) -> None:
    """One writer process: append one event per transaction until `stop_at`."""
    from django.db import connections

    from dashboard.audit.trail import Actor, record_audit_event
    from dashboard.models import Tenant

    connections.close_all()  # never the parent's socket
    tenant = Tenant.objects.get(pk=tenant_id)
    actor = Actor.system("bench-writer")
    latencies = []
    while time.time() < start_at:
        time.sleep(0.001)
    number = 0
    while time.time() < stop_at:
        began = time.perf_counter()
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="run.state_changed" if target == "run events" else "tenant.changed",
            object_type="run" if target == "run events" else "tenant",
            object_id=number if target == "run events" else tenant_id,
            summary={"from": "sending", "to": "succeeded", "writer": os.getpid()},
        )
        latencies.append(time.perf_counter() - began)
        number += 1
    connections.close_all()
    results.put(latencies)


def measure_appends(
    stack, target: str, writers: int, seconds: float
) -> tuple[float, float, float, float]:
    """(appends/s, p50 ms, p95 ms, load) for `writers` processes appending for one tenant."""
    from django.db import connections

    connections.close_all()  # the children open their own
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 1.0
    stop_at = start_at + seconds
    load = load_average()
    processes = [
        context.Process(
            target=_append_writer, args=(stack.tenant.pk, target, start_at, stop_at, results)
        )
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    latencies: list[float] = []
    for _ in processes:
        latencies.extend(results.get(timeout=seconds + 120))
    for process in processes:
        process.join(timeout=30)
    if not latencies:
        return 0.0, 0.0, 0.0, load
    return (
        len(latencies) / seconds,
        statistics.median(latencies) * 1000,
        percentile(latencies, 0.95) * 1000,
        (load + load_average()) / 2,
    )


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batched-runs", type=int, default=3000)
    parser.add_argument("--single-runs", type=int, default=1500)
    parser.add_argument("--pool", default="threads", choices=["prefork", "threads"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--append-seconds", type=float, default=4.0)
    parser.add_argument("--writers", default="1,4,8")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    writer_counts = [int(word) for word in args.writers.split(",") if word.strip()]

    print(
        f"audit throughput: {args.repeat} repeat(s) of audit ON and OFF; "
        f"{args.batched_runs} batched + {args.single_runs} single-run runs each; "
        f"{args.workers} workers --pool {args.pool} -c {args.concurrency}; "
        f"raw appends with {writer_counts} writers for {args.append_seconds:.0f} s",
        flush=True,
    )
    figures: list[EngineFigure] = []
    appends: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {
        (target, n): [] for target in APPEND_TARGETS for n in writer_counts
    }
    errors: list[str] = []
    with bench_stack(pool=args.pool, concurrency=args.concurrency, workers=0) as stack:
        campaigns = stack.sandboxes["optimove_campaigns"]
        campaigns.control("set_rate_limit", {"per_second": VENDOR_LIMIT_PER_SECOND})
        # The first status read settles a run: the polls are not what is measured.
        campaigns.control(
            "set_durations", {"processing_after_seconds": 0, "complete_after_seconds": 0}
        )
        stack.sandboxes["talkifai"].control("set_rate_limit", {"per_minute": None})
        for round_number in range(1, args.repeat + 1):
            order = ("on", "off") if round_number % 2 else ("off", "on")
            for audit in order:
                restart_workers(stack, args, errors, audit_on=audit == "on")
                for figure in (
                    measure_batched(stack, args.batched_runs, audit, args.timeout),
                    measure_single(stack, args.single_runs, audit, args.timeout, round_number),
                ):
                    figures.append(figure)
                    print(
                        f"  round {round_number} {figure.path:<10} audit {audit.upper():<3}: "
                        f"{figure.sends_per_second:7.1f} sends/s, "
                        f"{figure.settled_per_second:7.1f} settled/s, "
                        f"{figure.audit_rows_per_run:.2f} audit rows/run, "
                        f"{figure.lock_waiting:.1f} connections waiting on a lock, "
                        f"CPU/run workers {figure.worker_cpu_ms:.1f} ms "
                        f"PostgreSQL {figure.postgresql_cpu_ms:.1f} ms, "
                        f"load {figure.load:.1f}"
                        + (f", NOT SETTLED {figure.not_settled}" if figure.not_settled else ""),
                        flush=True,
                    )
            errors.extend(stack.worker_errors())
            stack.stop_workers()  # the raw appends run alone
            for target, writers in appends:
                result = measure_appends(stack, target, writers, args.append_seconds)
                appends[(target, writers)].append(result)
                print(
                    f"  round {round_number} raw appends, {target}, {writers} writer(s): "
                    f"{result[0]:7.1f} appends/s, p50 {result[1]:.1f} ms, "
                    f"p95 {result[2]:.1f} ms, load {result[3]:.1f}",
                    flush=True,
                )
        # Thousands of concurrent appends later, the tenant's chain must still verify whole.
        from dashboard.audit.trail import verify_audit_chains

        chain_problems = verify_audit_chains()
        print(
            f"  audit chains after the bench: {audit_rows(stack)} rows on the tenant's chains, "
            f"{len(chain_problems)} problem(s){': ' + str(chain_problems[0]) if chain_problems else ''}"
        )

    print(f"\n  summary over {args.repeat} repeat(s): min / median / max")
    for path in ("batched", "single-run"):
        key = path.replace("-", "_")
        by_mode = {
            audit: [f for f in figures if f.path == path and f.audit == audit]
            for audit in ("on", "off")
        }
        for audit, chosen in by_mode.items():
            sends = [f.sends_per_second for f in chosen]
            settled = [f.settled_per_second for f in chosen]
            print(
                f"  {path:<10} audit {audit.upper():<3}: sends/s {summary(sends)}; "
                f"settled/s {summary(settled)}; waiting on a lock "
                f"{summary([f.lock_waiting for f in chosen])}; worker CPU ms/run "
                f"{summary([f.worker_cpu_ms for f in chosen])}; PostgreSQL CPU ms/run "
                f"{summary([f.postgresql_cpu_ms for f in chosen])}; "
                f"load {summary([f.load for f in chosen])}"
            )
            if sends:
                print_figure(f"{key}_audit_{audit}_sends_per_second", statistics.median(sends))
                print_figure(f"{key}_audit_{audit}_settled_per_second", statistics.median(settled))
                print_figure(
                    f"{key}_audit_{audit}_lock_waiting",
                    statistics.median(f.lock_waiting for f in chosen),
                )
                print_figure(
                    f"{key}_audit_{audit}_worker_cpu_ms_per_run",
                    statistics.median(f.worker_cpu_ms for f in chosen),
                )
        # Paired by round: each ON run against the OFF run taken next to it.
        ratios = [
            on.sends_per_second / off.sends_per_second
            for on, off in zip(by_mode["on"], by_mode["off"], strict=False)
            if off.sends_per_second
        ]
        settled_ratios = [
            on.settled_per_second / off.settled_per_second
            for on, off in zip(by_mode["on"], by_mode["off"], strict=False)
            if off.settled_per_second
        ]
        if ratios:
            print(
                f"  {path:<10} ON / OFF: sends {min(ratios):.3f} / "
                f"{statistics.median(ratios):.3f} / {max(ratios):.3f}; settled "
                f"{min(settled_ratios):.3f} / {statistics.median(settled_ratios):.3f} / "
                f"{max(settled_ratios):.3f}"
            )
            print_figure(f"{key}_on_off_sends_ratio", statistics.median(ratios))
            print_figure(f"{key}_on_off_settled_ratio", statistics.median(settled_ratios))
    for (target, writers), results in appends.items():
        key = target.replace(" ", "_")
        print(
            f"  raw appends, {target}, {writers} writer(s): {summary([r[0] for r in results])} appends/s; "
            f"p95 {summary([r[2] for r in results])} ms; load {summary([r[3] for r in results])}"
        )
        if results:
            print_figure(
                f"appends_per_second_{key}_{writers}_writers",
                statistics.median(r[0] for r in results),
            )
            print_figure(
                f"append_p95_ms_{key}_{writers}_writers", statistics.median(r[2] for r in results)
            )
    print_figure("audit_chain_problems", len(chain_problems))
    if errors:
        print(f"  worker log errors: {len(errors)}; first: {errors[0]}")


if __name__ == "__main__":
    main()
