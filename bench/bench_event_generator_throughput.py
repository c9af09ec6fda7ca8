"""Throughput: a burst of Optimove event-generator runs for one brand (or several) through two
workers, and what each send costs in CPU.

Optimove allows 500 requests/s per brand, runs and status reads together. The engine's shared
Redis window aims a little under that (465/s). This measures, at the sandbox:

- the send rate: run requests over the time from the first to the last one, ÷ 500 per brand
  (goal >= 0.9 for one brand);
- every request to the brand (runs and status polls) per second over the whole burst, ÷ 500;
- the 429s the sandbox answered (goal 0);
- CPU per send: the workers' and PostgreSQL's, in ms per run (a run is its send and its status
  read, with their attempts and audit rows); goal <= 1.0 ms together (issue 24). PostgreSQL is
  counted twice: every backend on the server (others' too, on a shared machine), and only the
  backends serving the bench database (`postgresql_bench_cpu_ms_per_run`, the robust one).

`--brands 8` sends N runs for each of 8 brands at once (each its own 500/s at the sandbox), as
twenty brands firing live-event campaigns would: the engine is then CPU-bound, not limit-bound.

Usage: .venv/bin/python bench/bench_event_generator_throughput.py [--runs 5000] [--brands 1]
       [--pool prefork|threads] [--concurrency N] [--workers 2] [--profile SECONDS]
It prints its figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from stack import (
    DatabaseBackendsCpu,
    bench_stack,
    cpu_report,
    cpu_snapshot,
    print_figure,
    sandbox_seconds,
)

LIMIT_PER_SECOND = 500
MATCH_START = "00000000-abcd-abcd-abcd-000000000000"
# Issue 24's goal: worker and PostgreSQL CPU together, per send.
CPU_GOAL_MS_PER_SEND = 1.0


def brand_connections(stack, count: int) -> list:
    """The bench tenant's Optimove connections to `count` brands of the sandbox, each with the
    sandbox's limit (500/s) and the bench's Event Generator: the demo brand first, then
    brands added for the bench."""
    campaigns = stack.sandboxes["optimove_campaigns"]
    connections = [stack.connection("optimove_campaigns")]
    for number in range(1, count):
        secrets = {
            "api_key": f"bench-optimove-api-{number}",
            "brand_key": f"bench-optimove-brand-key-{number}",
        }
        brand = f"bench-brand-{number}"
        campaigns.control(
            "add_brand", {"brand": brand, **secrets, "rate_limit_per_second": LIMIT_PER_SECOND}
        )
        campaigns.control(
            "add_event_generator",
            {"brand": brand, "event_generator_id": MATCH_START, "name": "Bench"},
        )
        connections.append(stack.connection("optimove_campaigns", secrets=secrets))
    return connections


def create_runs(stack, connection, count: int) -> list:
    """`count` queued runs, committed, nothing enqueued yet."""
    from dashboard.runs.models import Operation

    return stack.create_queued_runs(
        connection,
        Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
        [
            {
                "event_generator_id": MATCH_START,
                "topic_key": "event_reminders+NFL",
                "context": {"bench": number},
            }
            for number in range(count)
        ],
    )


def wait_until_settled(stack, count: int, timeout: float, backends=None) -> dict[str, int]:
    from django.db.models import Count

    from dashboard.runs.models import Run

    deadline = time.monotonic() + timeout
    last_print = 0.0
    while True:
        states = dict(
            Run.objects.filter(tenant=stack.tenant)
            .values_list("state")
            .annotate(n=Count("id"))
            .values_list("state", "n")
        )
        done = (
            states.get("succeeded", 0) + states.get("failed", 0) + states.get("outcome_unknown", 0)
        )
        if backends is not None:
            backends.sample()
        if done >= count or time.monotonic() > deadline:
            return states
        if stack.dead_workers():
            print(f"  workers exited before the end: {stack.dead_workers()}; stopping")
            return states
        if time.monotonic() - last_print > 5:
            print(f"  ... {states}", flush=True)
            last_print = time.monotonic()
        time.sleep(0.5)


def start_profiler(stack, seconds: float):
    """py-spy sampling every worker process (pool children included) for `seconds`."""
    if seconds <= 0:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("  (py-spy is not installed: pip install py-spy)")
        return None
    outputs = []
    for worker in stack.workers:
        output = stack.tmp_dir / f"{worker.name}.profile"
        process = subprocess.Popen(
            [
                spy,
                "record",
                "--subprocesses",
                "--nonblocking",
                "--format=raw",
                "--rate=100",
                # Only threads holding the GIL: where the workers' Python CPU goes, not where
                # their threads sit waiting for a socket.
                "--gil",
                f"--duration={int(seconds)}",
                f"--output={output}",
                f"--pid={worker.process.pid}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        outputs.append((process, output))
    return outputs


def report_profile(outputs, top: int = 40) -> None:
    """Inclusive share of GIL-holding samples per function of ours; self share per library."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    by_library: Counter[str] = Counter()
    total = 0
    for process, output in outputs:
        process.wait()
        if not output.exists():
            continue
        for line in output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            total += int(count)
            frames = stack.split(";")
            for frame in set(frames):
                inclusive[frame] += int(count)
            by_library[_library_of(frames[-1])] += int(count)
            own[frames[-1]] += int(count)
    if not total:
        print("  (no profile samples)")
        return
    print(f"  worker CPU profile ({total} GIL samples), self share by library:")
    for library, count in by_library.most_common(12):
        print(f"    {count / total:6.1%}  {library}")
    print("  self share, top 15 functions:")
    for frame, count in own.most_common(15):
        print(f"    {count / total:6.1%}  {frame}")
    print("  self share, top 15 functions of ours:")
    ours = Counter({f: c for f, c in own.items() if "dashboard/" in f or "campaigns/" in f})
    for frame, count in ours.most_common(15):
        print(f"    {count / total:6.1%}  {frame}")
    print(f"  inclusive share, top {top} of ours and psycopg:")
    shown = 0
    for frame, count in inclusive.most_common():
        if any(part in frame for part in ("dashboard/", "campaigns/", "psycopg/connection.py")):
            print(f"    {count / total:6.1%}  {frame}")
            shown += 1
            if shown >= top:
                break


def _library_of(frame: str) -> str:
    """`psycopg`, `django`, `dashboard`... for a py-spy frame `function (path:line)`."""
    # py-spy names a library's file from its package (`django/db/models/query.py`) and a
    # standard-library module by its file alone (`threading.py`).
    path = frame.rpartition(" (")[2].rpartition(":")[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    return path.split("/", 1)[0] if "/" in path else f"stdlib {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="runs per brand")
    parser.add_argument(
        "--brands",
        type=int,
        default=1,
        help="brands sending at once, each with its own 500/s at the sandbox",
    )
    # Threads -c 8 gave the best figures on a 2-core machine (see bench/README.md).
    parser.add_argument("--pool", default="threads", choices=["prefork", "threads"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--db-reuse-max",
        type=int,
        default=None,
        metavar="N",
        help="set CELERY_DB_REUSE_MAX=N in the workers (default: production settings, 1000; "
        "0: close the connection around every task)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="sample the workers with py-spy for this long and print where their time goes",
    )
    args = parser.parse_args()

    if args.db_reuse_max is not None:
        os.environ["BENCH_DB_REUSE_MAX"] = str(args.db_reuse_max)
    total = args.runs * args.brands
    print(
        f"event-generator throughput: {args.runs} runs x {args.brands} brand(s), {args.workers} "
        f"workers --pool {args.pool} -c {args.concurrency}, CELERY_DB_REUSE_MAX="
        f"{os.environ.get('BENCH_DB_REUSE_MAX') or 'production (1000)'}",
        flush=True,
    )
    with bench_stack(pool=args.pool, concurrency=args.concurrency, workers=args.workers) as stack:
        connections = brand_connections(stack, args.brands)
        campaigns = stack.sandboxes["optimove_campaigns"]
        # The runs exist before the first send: creating them is not what is measured, and
        # must not compete with the workers (or the sandbox) while the sends go out.
        started = time.perf_counter()
        by_brand = [create_runs(stack, connection, args.runs) for connection in connections]
        print(f"  created {total} queued runs in {time.perf_counter() - started:.1f} s")
        backends = DatabaseBackendsCpu()
        backends.sample()
        cpu_before = cpu_snapshot(stack)
        began = time.monotonic()
        for runs in by_brand:
            stack.wake_sends(runs)
        profiler = start_profiler(stack, args.profile)
        states = wait_until_settled(stack, total, args.timeout, backends)
        elapsed = time.monotonic() - began
        cpu_after = cpu_snapshot(stack)
        backends.sample()
        if profiler:
            report_profile(profiler)

        received = list(campaigns.received)
        runs = [r for r in received if r.route == "run" and r.status == 202]
        stamps = sorted(sandbox_seconds(r.at) for r in runs)
        all_stamps = sorted(sandbox_seconds(r.at) for r in received)
        state = campaigns.state()
        throttled = sum(state["throttled"].values())
        send_span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
        send_rate = (len(stamps) - 1) / send_span if len(stamps) > 1 else 0.0
        span = all_stamps[-1] - all_stamps[0] if len(all_stamps) > 1 else float("nan")
        total_rate = (len(all_stamps) - 1) / span if len(all_stamps) > 1 else 0.0
        polls = sum(1 for r in received if r.route == "status")
        # Requests per second while the sends were going out (polls interleave with them).
        during = [t for t in all_stamps if stamps and stamps[0] <= t <= stamps[-1]]
        during_rate = len(during) / send_span if len(stamps) > 1 else 0.0
        limit = LIMIT_PER_SECOND * args.brands

        print(f"  runs by state: {states} (settled in {elapsed:.1f} s)")
        print(f"  run requests accepted: {len(runs)}; status polls: {polls}")
        print(f"  send rate: {send_rate:.1f} runs/s over {send_span:.1f} s ({args.brands} brands)")
        print(f"  SEND RATE / LIMIT: {send_rate / limit:.3f} (goal >= 0.9 for one brand)")
        print(
            f"  all vendor requests: {total_rate:.1f}/s over {span:.1f} s; "
            f"{during_rate:.1f}/s while sends went out "
            f"({during_rate / limit:.3f} of the limit)"
        )
        print(f"  429s answered by the sandbox: {throttled} (goal 0)")
        cpu = cpu_report(cpu_before, cpu_after, total, elapsed)
        print(cpu.text)
        worker_ms = cpu.ms_per_run.get("celery workers", 0.0)
        database_ms = backends.seconds() * 1000 / max(total, 1)
        print(
            f"    postgresql, the bench database's backends only   {database_ms:6.2f} ms/run\n"
            f"  CPU PER SEND, workers + bench PostgreSQL: {worker_ms + database_ms:.2f} ms "
            f"({(worker_ms + database_ms) / CPU_GOAL_MS_PER_SEND:.2f} x the "
            f"{CPU_GOAL_MS_PER_SEND} ms goal)"
        )
        # Read by bench/run_all.py, which summarises repeated runs.
        print_figure("send_rate_ratio", send_rate / limit)
        print_figure("sends_per_second", send_rate)
        print_figure("throttled_429", throttled)
        print_figure("worker_cpu_ms_per_run", worker_ms)
        print_figure("postgresql_cpu_ms_per_run", cpu.ms_per_run.get("postgresql", 0.0))
        print_figure("postgresql_bench_cpu_ms_per_run", database_ms)
        print_figure("cpu_ms_per_send", worker_ms + database_ms)
        print_figure("cpu_per_send_goal_ratio", (worker_ms + database_ms) / CPU_GOAL_MS_PER_SEND)
        errors = stack.worker_errors()
        if errors:
            print(f"  worker log errors: {len(errors)}; first: {errors[0]}")


if __name__ == "__main__":
    main()
