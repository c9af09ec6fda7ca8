"""The two lanes' CPU priority: a worker serving only bulk queues yields the CPU to clicks."""

from __future__ import annotations

import os

import pytest

from dashboard.runs.lanes import bulk_niceness_for
from tests.ops.test_process_footprint import last_line_of


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        ({"send", "poll"}, 10),
        ({"send"}, 10),
        ({"poll"}, 10),
        ({"interactive"}, 0),
        ({"send", "interactive", "poll"}, 0),
        (set(), 0),  # no -Q: the worker serves every queue, the interactive one too
    ],
)
def test_only_a_worker_without_the_interactive_queue_lowers_its_priority(queues, expected):
    assert bulk_niceness_for(queues, 10) == expected


def test_a_configured_zero_or_less_keeps_the_usual_priority():
    assert bulk_niceness_for({"send", "poll"}, 0) == 0
    assert bulk_niceness_for({"send", "poll"}, -5) == 0


def test_lowering_reaches_every_thread_and_the_threads_started_after():
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    printed = last_line_of(
        "import os, threading\n"
        "from dashboard.runs.lanes import lower_priority\n"
        "before = threading.Event(); stop = threading.Event()\n"
        "def wait(): before.set(); stop.wait()\n"
        "early = threading.Thread(target=wait); early.start(); before.wait()\n"
        "after = lower_priority(10)\n"
        "seen = []\n"
        "late = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))\n"
        "late.start(); late.join()\n"
        "early_niceness = os.getpriority(os.PRIO_PROCESS, early.native_id)\n"
        "stop.set(); early.join()\n"
        "print(after, early_niceness, seen[0])\n"
    )
    lowered = min(19, ours + 10)
    assert printed.split() == [str(lowered)] * 3
