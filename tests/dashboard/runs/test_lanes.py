"""The two lanes' CPU priority: a worker serving only bulk queues yields the CPU to clicks."""

from __future__ import annotations

import json
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


STARTING_WORKER = """
import gc, json, os, sys
import django
django.setup()
from celery import signals
from dashboard.project.celery import app

class Queues:
    def __init__(self, names):
        self.consume_from = dict.fromkeys(names)

class Amqp:
    def __init__(self, names):
        self.queues = Queues(names)

class Worker:  # what celeryd_after_setup hands its receivers: the WorkController
    def __init__(self, names):
        self.app = type("App", (), {"amqp": Amqp(names)})()

before = gc.get_freeze_count()
signals.celeryd_after_setup.send(sender="lane@test", instance=Worker(QUEUES), conf=app.conf)
print(json.dumps({
    "frozen_before": before,
    "frozen_after": gc.get_freeze_count(),
    "talkifai_loaded": "batchjobs.vendors.talkifai.operation" in sys.modules,
    "niceness": os.getpriority(os.PRIO_PROCESS, 0),
}))
"""


@pytest.mark.parametrize(
    ("queues", "lowered"), [(["send", "poll"], True), (["interactive"], False)]
)
def test_a_starting_worker_loads_what_a_send_needs_freezes_its_heap_and_takes_its_lanes_priority(
    queues, lowered
):
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    seen = json.loads(last_line_of(STARTING_WORKER.replace("QUEUES", repr(queues))))

    assert seen["frozen_before"] == 0
    # The start-up heap (~90,000 objects), out of every later collection.
    assert seen["frozen_after"] > 20_000
    assert seen["talkifai_loaded"]  # the first click's send does not load the vendor client
    assert seen["niceness"] == (min(19, ours + 10) if lowered else ours)
