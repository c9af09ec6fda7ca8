"""Run every benchmark, one after another (`make bench`). Each prints its own figures."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ["bench_event_generator_throughput.py"],
    ["bench_click_to_vendor_latency.py"],
    # A fifth of the million recipients keeps `make bench` short; run the script alone
    # with --recipients 1000000 for the full figure (bench/README.md).
    ["bench_altcraft_launch.py", "--recipients", "200000"],
]


def main() -> int:
    failed = []
    for script, *arguments in BENCHMARKS:
        print(f"\n### {script} {' '.join(arguments)}".rstrip(), flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(HERE / script), *arguments], check=False)
        print(f"### {script}: exit {result.returncode} in {time.monotonic() - started:.0f} s")
        if result.returncode:
            failed.append(script)
    if failed:
        print(f"\nbenchmarks that could not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
