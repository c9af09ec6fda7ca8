"""Run every benchmark `--repeat` times (3 by default; `make bench`) and summarise each figure.

Each run prints its own figures as it goes; at the end, every figure a script printed on a
`FIGURE <name> <value>` line is summarised as min / median / max over the runs, with the
machine's load average around each run (a shared machine makes single runs noisy).

Usage: .venv/bin/python bench/run_all.py [--repeat 3]
       [--only throughput|throughput-brands|vendor-http|floor|floor-threads|latency|campaigns|altcraft|audit|history|calendar]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "throughput": ["bench_event_generator_throughput.py"],
    # Issue 24's cost per send: 8 brands at once, each at the sandbox's 500/s.
    "throughput-brands": ["bench_event_generator_throughput.py", "--brands", "8", "--runs", "1000"],
    # What one vendor call costs the client, twice per run (bench/README.md "Cost per send").
    "vendor-http": ["bench_vendor_http.py"],
    # The same 8 brands through a minimal sender that keeps only the guarantees: the floor
    # under the engine's cost per send (bench/README.md "The floor").
    "floor": ["bench_send_floor.py", "--brands", "8", "--runs", "1000"],
    # The same, each batch's requests sent from 32 threads as the engine sends them.
    "floor-threads": ["bench_send_floor.py", "--brands", "8", "--runs", "1000", "--threads", "32"],
    "latency": ["bench_click_to_vendor_latency.py"],
    "campaigns": ["bench_campaign_trigger.py"],
    # A fifth of the million recipients keeps `make bench` short; run the script alone
    # with --recipients 1000000 for the full figure (bench/README.md).
    "altcraft": ["bench_altcraft_launch.py", "--recipients", "200000"],
    # One ON/OFF pair per run: run_all's own --repeat gives the min / median / max.
    "audit": ["bench_audit_throughput.py", "--repeat", "1"],
    # Issue 24's ten million runs and ten million audit events, generated once into
    # <database>_bench_history (and a tenant of ten million runs for the CSV export into
    # <database>_bench_export) and reused: only the first run is long (bench/README.md).
    "history": [
        "bench_history.py",
        *("--runs", "10000000", "--audit", "10000000"),
        *("--export-runs", "10000000"),
    ],
    # The recurring schedules' calendar (week and month) with 1,000 schedules of one tenant.
    "calendar": ["bench_calendar.py", "--schedules", "1000"],
}
FIGURE_PREFIX = "FIGURE"


def run_once(script: str, arguments: list[str]) -> tuple[int, dict[str, float]]:
    """Run one benchmark, echoing its output; its exit status and the figures it printed."""
    figures: dict[str, float] = {}
    process = subprocess.Popen(
        [sys.executable, str(HERE / script), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        words = line.split()
        if len(words) == 3 and words[0] == FIGURE_PREFIX:
            with contextlib.suppress(ValueError):
                figures[words[1]] = float(words[2])
    return process.wait(), figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), default=None)
    args = parser.parse_args()

    chosen = {args.only: BENCHMARKS[args.only]} if args.only else BENCHMARKS
    failed: list[str] = []
    summary: dict[str, dict[str, list[float]]] = {}
    for benchmark, (script, *arguments) in chosen.items():
        collected: dict[str, list[float]] = defaultdict(list)
        for attempt in range(1, args.repeat + 1):
            load_before = os.getloadavg()[0]
            print(f"\n### {script} {' '.join(arguments)} (run {attempt} of {args.repeat})")
            print(f"### load average (1 min) before: {load_before:.2f}", flush=True)
            started = time.monotonic()
            status, figures = run_once(script, arguments)
            load_after = os.getloadavg()[0]
            print(
                f"### {script}: exit {status} in {time.monotonic() - started:.0f} s; "
                f"load average after: {load_after:.2f}",
                flush=True,
            )
            if status or not figures:
                failed.append(f"{script} (run {attempt})")
                continue
            for name, value in figures.items():
                collected[name].append(value)
            collected["load_average_1min"].append((load_before + load_after) / 2)
        summary[benchmark] = collected

    print(f"\n### Summary over {args.repeat} run(s) each: min / median / max")
    for benchmark, collected in summary.items():
        print(f"{benchmark} ({' '.join(chosen[benchmark])}):")
        for name, values in collected.items():
            print(
                f"  {name:<28} {min(values):9.3f} {statistics.median(values):9.3f} "
                f"{max(values):9.3f}   (n={len(values)})"
            )
    if failed:
        print(f"\nbenchmark runs that did not finish: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
