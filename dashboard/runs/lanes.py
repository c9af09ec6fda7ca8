"""How a worker readies its process for its lane, as it starts.

The CPU priority of the two lanes. A worker that serves only bulk queues (`send`: the
dispatchers of campaign bursts and reconciliations; `poll`) lowers its own CPU priority by
`WORKER_BULK_NICENESS` (10 unless set) when it starts; a worker that serves the interactive queue
keeps the usual one.

Why: on a host whose cores a burst saturates, a person's click (an approval, a TalkifAI start,
the daily trigger) has its own queue and workers but still waits for a core behind the burst's
processes (bench/README.md, "A click during another team's burst"). At a lower priority the
burst yields the CPU whenever a click, a page or PostgreSQL wants it, and loses nothing when it
has the machine to itself. Raising niceness needs no privilege, so this also works in the
capability-less containers of docker-compose.yml.

Every worker also loads what a send needs (the vendor operations and their clients, the HTTP and
decryption libraries) and then freezes its start-up heap out of the garbage collector, before
its pool processes or threads exist: otherwise the first sends load them, and a full collection
of the grown heap later stops a click's send for 50-100 ms at an arbitrary moment (measured with
bench/bench_click_to_vendor_latency.py, idle clicks), as gunicorn_conf.py does for the web.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)

# The lane of a single run's send (a person's click: a TalkifAI start, a daily trigger, an
# approval): its own queue and worker, so it never waits behind a burst's dispatchers on "send"
# (dashboard.runs.enqueue.send_queue names it).
INTERACTIVE_QUEUE = "interactive"

DEFAULT_BULK_NICENESS = 10


def bulk_niceness_for(queues: Iterable[str], configured: int) -> int:
    """How much a worker serving `queues` lowers its CPU priority: `configured` when none of
    them is the interactive queue, else 0 (a click must not inherit a burst's priority)."""
    names = set(queues)
    if not names or INTERACTIVE_QUEUE in names:
        return 0
    return max(0, configured)


def lower_priority(increment: int) -> int:
    """Add `increment` to the niceness of every thread of this process (on Linux niceness is a
    thread's, and threads started later inherit their creator's; forked pool children inherit
    it too). Returns the process's niceness after."""
    if increment <= 0:
        return os.getpriority(os.PRIO_PROCESS, 0)
    try:
        thread_ids = [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process's own call covers it
        os.nice(increment)
        return os.getpriority(os.PRIO_PROCESS, 0)
    for thread_id in thread_ids:
        try:
            current = os.getpriority(os.PRIO_PROCESS, thread_id)
            os.setpriority(os.PRIO_PROCESS, thread_id, min(19, current + increment))
        except ProcessLookupError:
            continue  # a thread that ended meanwhile
    return os.getpriority(os.PRIO_PROCESS, 0)


# Loaded on their first use elsewhere (a web process or a short command need not pay for them);
# a worker needs them for its first send.
SEND_MODULES = ("dashboard.vendors.http", "cryptography.fernet")


def load_and_freeze() -> None:
    """Load every registered operation (with its vendor client) and SEND_MODULES, then move
    everything alive into the garbage collector's permanent generation: the heap a worker starts
    with is never scanned again, so collections stay short (forked pool children inherit it)."""
    from dashboard.runs.operations import registered_operations  # needs the app registry

    registered_operations()
    for name in SEND_MODULES:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()


def connect_worker_priority() -> None:
    """As a worker starts, before its pool processes or threads exist: lower a bulk-only
    worker's priority; load what a send needs and freeze the heap (called by
    dashboard.project.celery)."""
    from celery import signals

    @signals.celeryd_after_setup.connect(weak=False)
    def set_lane_priority(sender: str = "", instance: Any = None, **_: Any) -> None:
        from django.conf import settings

        if instance is None:
            return
        load_and_freeze()
        consumed = instance.app.amqp.queues.consume_from or instance.app.amqp.queues
        increment = bulk_niceness_for(
            consumed, getattr(settings, "WORKER_BULK_NICENESS", DEFAULT_BULK_NICENESS)
        )
        if increment:
            niceness = lower_priority(increment)
            logger.info(
                "worker %s serves only %s: CPU priority lowered to niceness %s, so the "
                "interactive lane's clicks go first",
                sender,
                ", ".join(sorted(consumed)),
                niceness,
            )
