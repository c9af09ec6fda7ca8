"""The fault schedule: random but seeded (a failing seed replays the same faults at the same
offsets), and the executor that applies it to the stack and the sandboxes, keeping a timeline.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dashboard.vendors.sandbox import Fault

from .stack import Stack

# Each kind, with how long its effect lasts (0: a moment) at full length. The short variant
# divides the outages by `scale` so a CI run stays within minutes.
KINDS: dict[str, float] = {
    "worker_kill": 0.0,  # SIGKILL a worker mid-work; a new one starts a moment later
    "beat_kill": 0.0,  # SIGKILL beat; a new one starts
    "two_beats": 40.0,  # a second beat runs beside the first, by mistake
    "redis_restart": 0.0,  # Redis killed and started empty: every queued message lost
    "redis_unreachable": 30.0,  # connections cut and refused; the data stays
    "pg_terminate": 0.0,  # pg_terminate_backend of every app connection, mid-transaction
    "pg_unreachable": 10.0,  # the database cannot be reached
    "vendor_5xx": 0.0,  # the next answers are 500, nothing done
    "vendor_drop_after": 0.0,  # the vendor acts, then the connection is reset
    "vendor_drop_before": 0.0,  # the connection is reset before the vendor reads it
    "vendor_stall": 0.0,  # the vendor acts, then answers 10 s late
    "vendor_429": 10.0,  # the brand's rate limit drops to 5/s: 429 with Retry-After
    "web_kill": 0.0,  # the web process killed with API requests between key and answer
}
VENDOR_ROUTES = [
    ("optimove_campaigns", "run"),
    ("optimove_campaigns", "status"),
    ("talkifai", "start_batch_job"),
    ("optimove_batch", "trigger_daily"),
    ("altcraft", "start_batch"),
    ("altcraft", "import_and_start_batch_task"),
    ("altcraft", "task_status"),
]


@dataclass(frozen=True)
class PlannedFault:
    at: float  # seconds after the start
    kind: str
    seconds: float  # how long its effect lasts
    detail: dict = field(default_factory=dict)


def plan(seed: int, *, duration: float, mean_gap: float, scale: float = 1.0) -> list[PlannedFault]:
    """The seed's faults over `duration` seconds: every kind at least once, then random kinds
    at random gaps (exponential, `mean_gap` on average), outages shortened by `scale`."""
    drawn = random.Random(seed)
    kinds = list(KINDS)
    drawn.shuffle(kinds)
    faults: list[PlannedFault] = []
    at = drawn.uniform(2.0, 2.0 + mean_gap)
    queue = list(kinds)
    while at < duration:
        kind = queue.pop(0) if queue else drawn.choice(list(KINDS))
        seconds = KINDS[kind] / scale if KINDS[kind] else 0.0
        detail: dict = {}
        if kind.startswith("vendor_") and kind != "vendor_429":
            vendor, route = drawn.choice(VENDOR_ROUTES)
            detail = {"vendor": vendor, "route": route, "times": drawn.randint(1, 8)}
        if kind == "worker_kill":
            detail = {"which": drawn.random()}
        faults.append(PlannedFault(round(at, 2), kind, round(seconds, 2), detail))
        at += seconds + drawn.expovariate(1.0 / mean_gap)
    return faults


@dataclass
class Happened:
    """One fault as it was applied: when it began and when its effect was lifted."""

    fault: PlannedFault
    began: float
    ended: float
    recovery_seconds: float | None = None


class FaultRunner:
    """Applies a plan to the stack in a thread; `timeline` is what happened, in order."""

    def __init__(
        self,
        stack: Stack,
        sandboxes,
        faults: list[PlannedFault],
        *,
        terminate_backends: Callable[[], int],
        on_fault_over: Callable[[Happened], None],
    ) -> None:
        self.stack = stack
        self.sandboxes = sandboxes
        self.faults = faults
        self.terminate_backends = terminate_backends
        self.on_fault_over = on_fault_over
        self.timeline: list[Happened] = []
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=120)

    def _run(self) -> None:
        for fault in self.faults:
            if self.stop_event.wait(max(0.0, self.started_at + fault.at - time.monotonic())):
                return
            began = time.monotonic()
            try:
                self.apply(fault)
            except Exception as error:  # the proof goes on; the report names it
                self.errors.append(f"{fault.kind} at {fault.at}s: {error!r}")
            happened = Happened(fault, began - self.started_at, time.monotonic() - self.started_at)
            self.timeline.append(happened)
            self.on_fault_over(happened)

    def apply(self, fault: PlannedFault) -> None:
        stack = self.stack
        if fault.kind == "worker_kill":
            workers = stack.live_workers()
            if workers:
                victim = workers[int(fault.detail["which"] * len(workers))]
                victim.kill()
            stack.start_worker()
        elif fault.kind == "beat_kill":
            for beat in stack.live_beats()[:1]:
                beat.kill()
            stack.start_beat()
        elif fault.kind == "two_beats":
            extra = stack.start_beat()
            self.stop_event.wait(fault.seconds)
            extra.kill()
        elif fault.kind == "redis_restart":
            stack.restart_redis()
        elif fault.kind == "redis_unreachable":
            assert stack.redis_proxy is not None
            stack.redis_proxy.block(fault.seconds)
            self.stop_event.wait(fault.seconds)
        elif fault.kind == "pg_terminate":
            self.terminate_backends()
        elif fault.kind == "pg_unreachable":
            assert stack.database_proxy is not None
            stack.database_proxy.block(fault.seconds)
            self.stop_event.wait(fault.seconds)
        elif fault.kind == "vendor_429":
            campaigns = self.sandboxes["optimove_campaigns"]
            campaigns.control("set_rate_limit", {"per_second": 5})
            self.stop_event.wait(fault.seconds)
            campaigns.control("set_rate_limit", {"per_second": 500})
        elif fault.kind.startswith("vendor_"):
            how = {
                "vendor_5xx": (Fault.SERVER_ERROR, {}),
                "vendor_drop_after": (Fault.DROP_AFTER_PROCESSING, {}),
                "vendor_drop_before": (Fault.DROP_BEFORE_PROCESSING, {}),
                "vendor_stall": (Fault.DELAY_AFTER_PROCESSING, {"seconds": 10.0}),
            }[fault.kind]
            self.sandboxes[fault.detail["vendor"]].inject_fault(
                fault.detail["route"], how[0], times=fault.detail["times"], **how[1]
            )
        elif fault.kind == "web_kill":
            assert stack.web is not None
            stack.web.kill()
            with contextlib.suppress(TimeoutError):
                stack.start_web()
        else:  # pragma: no cover - a kind added to KINDS without its action
            raise ValueError(f"unknown fault kind {fault.kind}")
