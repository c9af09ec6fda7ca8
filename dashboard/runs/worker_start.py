"""What a worker does as it starts, before its pool processes or threads exist: it loads what a
send needs (the vendor operations with their clients, the HTTP and decryption libraries) and
freezes its start-up heap out of the garbage collector, as gunicorn_conf.py does for the web.

Why: otherwise a worker's first sends load those modules (a person's first click after a
restart waited 85-127 ms for them), and later a full collection of the heap they grew stops a
send at an arbitrary moment for 50-100 ms (bench/bench_click_to_vendor_latency.py, idle clicks;
bench/README.md). Forked pool children inherit the frozen heap.
"""

from __future__ import annotations

import gc
import importlib
from typing import Any

# Loaded on their first use elsewhere (a web process or a short command need not pay for them);
# a worker needs them for its first send.
SEND_MODULES = ("dashboard.vendors.http", "cryptography.fernet")


def load_and_freeze() -> None:
    """Load every registered operation (with its vendor client) and SEND_MODULES, then move
    everything alive into the garbage collector's permanent generation: the heap a worker starts
    with is never scanned again, so collections stay short."""
    from dashboard.runs.operations import registered_operations  # needs the app registry

    registered_operations()
    for name in SEND_MODULES:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()


def connect_worker_start() -> None:
    """Run load_and_freeze as a worker starts (called by dashboard.project.celery)."""
    from celery import signals

    @signals.celeryd_after_setup.connect(weak=False)
    def ready_for_sends(sender: str = "", instance: Any = None, **_: Any) -> None:
        load_and_freeze()
