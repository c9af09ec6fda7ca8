"""Click-to-vendor latency: from an approval's commit to the vendor receiving the call.

With idle workers, a marketer requests a TalkifAI "start batch job now" run, an operator approves
it, and the clock starts right after run_approve's transaction commits (in this process). It
stops when the sandbox receives the start request (its receive timestamp, on a sandbox clock set
to real time). Runs are approved one after another, each after the previous one finished, so
the workers are idle at every click. Goal: p95 <= 300 ms.

Usage: .venv/bin/python bench/bench_click_to_vendor_latency.py [--approvals 50]
       [--pool prefork|threads] [--concurrency N]
It prints its figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from stack import bench_stack, median, percentile, print_figure, sandbox_seconds

GOAL_P95_MS = 300.0


def measure(stack, approvals: int, pause: float) -> list[float]:
    from dashboard.audit.trail import Actor
    from dashboard.models import Role
    from dashboard.runs.models import Operation, Run
    from dashboard.runs.services import run_approve, run_submit
    from dashboard.runs.states import RunState
    from dashboard.tenancy.services import membership_add, user_create

    system = Actor.system("bench")
    membership_add(actor=system, tenant=stack.tenant, user=stack.user, role=Role.MARKETER)
    operator = user_create(username="bench-operator", password=None)
    membership_add(actor=system, tenant=stack.tenant, user=operator, role=Role.OPERATOR)
    connection = stack.connection("talkifai")
    talkifai = stack.sandboxes["talkifai"]
    stack.clock.set_scale(1.0)
    stack.clock.set(datetime.now(UTC))

    latencies = []
    for number in range(approvals):
        job_id = f"job-bench-{number:03d}"
        talkifai.control("add_job", {"id": job_id, "status": "pending", "contacts": 10})
        run = run_submit(
            actor=stack.actor,
            tenant=stack.tenant,
            connection=connection,
            operation=Operation.TALKIFAI_START_BATCH_JOB,
            parameters={"batch_job_id": job_id, "batch_job_name": f"Bench {number}"},
            idempotency_key=f"latency-{number}",
            approval_required=True,
            check_duplicates=False,
        )
        time.sleep(pause)  # the operator reads the request; the workers sit idle
        run_approve(actor=Actor(user=operator), run=run, parameters_hash_seen=run.parameters_hash)
        clicked = time.time()  # run_approve's transaction has committed: the task is enqueued
        received = None
        deadline = time.monotonic() + 30
        while received is None and time.monotonic() < deadline:
            for request in talkifai.received_on("start_batch_job"):
                if job_id in request.path:
                    received = request
                    break
            else:
                time.sleep(0.001)
        if received is None:
            print(f"  run {run.pk}: the vendor never received it within 30 s")
            continue
        latencies.append((sandbox_seconds(received.at) - clicked) * 1000)
        while Run.objects.get(pk=run.pk).state not in (RunState.SUCCEEDED, RunState.FAILED):
            time.sleep(0.01)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approvals", type=int, default=50)
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.3, help="idle seconds before each click")
    args = parser.parse_args()

    print(
        f"click-to-vendor latency: {args.approvals} sequential TalkifAI approvals, "
        f"{args.workers} idle workers --pool {args.pool} -c {args.concurrency}",
        flush=True,
    )
    with bench_stack(pool=args.pool, concurrency=args.concurrency, workers=args.workers) as stack:
        latencies = measure(stack, args.approvals, args.pause)
        if not latencies:
            print("  no measurement")
            return
        p50, p95 = median(latencies), percentile(latencies, 0.95)
        print(f"  approvals measured: {len(latencies)}")
        print(
            f"  p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms, "
            f"min {min(latencies):.1f} ms"
        )
        print(
            f"  P95 / GOAL: {p95 / GOAL_P95_MS:.3f} (goal p95 <= {GOAL_P95_MS:.0f} ms, ratio <= 1)"
        )
        print_figure("p50_ms", p50)
        print_figure("p95_ms", p95)
        print_figure("max_ms", max(latencies))
        print_figure("p95_ratio", p95 / GOAL_P95_MS)
        errors = stack.worker_errors()
        if errors:
            print(f"  worker log errors: {len(errors)}; first: {errors[0]}")


if __name__ == "__main__":
    main()
