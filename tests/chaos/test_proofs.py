"""Proofs under faults (issue 23): the whole stack under a seeded fault schedule, and a checker
over everything that happened. See tests/chaos/proof.py.

The short variant (fixed seeds, a few minutes) runs in `make test`; `make proofs` runs the full
schedule (PROOFS_MINUTES, 20 by default) and prints the figures the README quotes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.chaos.proof import run_proof
from tests.e2e.conftest import database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHORT_SEEDS = [11]
SHORT_SECONDS = 75.0


def prove(seed: int, duration: float, sandboxes, **options) -> None:
    with tempfile.TemporaryDirectory(prefix=f"triggerdesk-proof-{seed}-") as directory:
        report = run_proof(
            seed=seed,
            duration=duration,
            sandboxes=sandboxes,
            directory=Path(directory),
            database_url=database_url(),
            **options,
        )
        print(report.text())
        assert report.ok(), report.text()
        assert report.figures["stuck"] == 0 and report.figures["duplicates"] == 0


@pytest.mark.parametrize("seed", SHORT_SEEDS)
def test_no_run_is_lost_or_sent_twice_under_a_short_fault_schedule(seed, sandboxes):
    prove(seed, SHORT_SECONDS, sandboxes, mean_gap=2.5, scale=3.0, schedules=8)


@pytest.mark.skipif(not os.environ.get("PROOFS_MINUTES"), reason="make proofs runs the full one")
def test_no_run_is_lost_or_sent_twice_under_the_full_fault_schedule(sandboxes):
    minutes = float(os.environ["PROOFS_MINUTES"])
    seed = int(os.environ.get("PROOFS_SEED", "2026"))
    prove(seed, minutes * 60, sandboxes, mean_gap=15.0, scale=1.0, schedules=60, brands_count=3)
