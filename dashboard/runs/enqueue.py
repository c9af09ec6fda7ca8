"""Enqueueing a run's work: a task after the commit, or a wake-up of its connection's dispatcher.

Tasks are looked up by their Celery name (`task`), so no engine module or service imports the
task modules: those import the engine, never the other way.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from celery import current_app
from django.db import transaction

from dashboard.runs.models import Run
from dashboard.runs.operations import operation_for
from dashboard.runs.rate_limits import rate_limiter

logger = logging.getLogger(__name__)

# Countdowns stay far below the broker's visibility timeout (see docs/engine.md "Workers"); longer waits
# are picked up again by the sweeper from next_attempt_at.
MAX_COUNTDOWN_SECONDS = 15 * 60
# Dispatchers per (connection, operation) that submissions may wake at once: some record while
# others send, so the brand's window never idles.
DISPATCH_SLOTS = 4
# A dispatcher renews its flag while it works; a dead one's flag lapses after this.
FLAG_SECONDS = 15.0
# The lane of a single run's send (a person's click: a TalkifAI start, a daily trigger, an
# approval): its own queue and worker, so it never waits behind a burst's dispatchers on "send".
INTERACTIVE_QUEUE = "interactive"
# The modules that define the tasks named here, imported on the first lookup of a name the Celery
# app does not know yet (a web process or a test never ran the worker's autodiscovery).
TASK_MODULES = ("dashboard.runs.tasks", "dashboard.accounts.tasks", "dashboard.audit.tasks")


def task(name: str) -> Any:
    """The Celery task registered under `name` (e.g. "runs.send"), for `.apply_async`/`.delay`.

    Not `send_task`: that ignores CELERY_TASK_ALWAYS_EAGER (make demo, tests).
    """
    tasks = current_app.tasks
    if name not in tasks:
        for module in TASK_MODULES:
            importlib.import_module(module)
    return tasks[name]


def on_commit_task(name: str, *args: Any, countdown: float | None = None) -> None:
    """Enqueue task `name` with `args` once the current transaction commits (at once outside
    one). robust: a broker outage must not turn a committed decision into an error page."""
    if countdown is None:
        transaction.on_commit(lambda: task(name).delay(*args), robust=True)
    else:
        transaction.on_commit(
            lambda: task(name).apply_async(args=list(args), countdown=countdown), robust=True
        )


def send_queue(run_id: int) -> str | None:
    """The queue of a plain runs.send message for this run: INTERACTIVE_QUEUE for a single-run
    operation, None (the route in settings: "send") for a batched one, whose message runs a
    dispatcher for the whole connection and must never occupy the interactive lane."""
    operation = Run.objects.filter(pk=run_id).values_list("operation", flat=True).first()
    if operation is not None and operation_for(operation).batch_size > 1:
        return None
    return INTERACTIVE_QUEUE


def batch_of(run: Run) -> tuple[int, str] | None:
    """(connection id, operation) when the run's operation is sent and polled in batches."""
    if operation_for(run.operation).batch_size > 1:
        return (run.connection_id, run.operation)
    return None


TASK_NAMES = {"send": "runs.send", "poll": "runs.poll", "reconcile": "runs.reconcile"}


def enqueue(
    task_name: str, run_id: int, countdown: float = 0, *, batch: tuple[int, str] | None = None
) -> None:
    """Enqueue a run's task after the commit, or wake its connection's dispatcher (batch)."""
    countdown = max(0.0, min(countdown, MAX_COUNTDOWN_SECONDS))
    if batch is not None and (task_name == "poll" or (task_name == "send" and not countdown)):
        # One dispatcher for many runs instead of one task each (see dashboard.runs.dispatch).
        connection_id, operation = batch
        if task_name == "send":
            wake = lambda: wake_sends(run_id, connection_id, operation)  # noqa: E731
        else:
            wake = lambda: wake_polls(connection_id, operation, countdown)  # noqa: E731
        transaction.on_commit(wake, robust=True)
        return
    run_task = task(TASK_NAMES[task_name])
    # Looked up now, in the caller's transaction (the run may not be committed yet); a caller
    # that names the batch has said it is not a single run's send.
    queue = send_queue(run_id) if task_name == "send" and batch is None else None
    options = {"queue": queue} if queue else {}
    interactive = queue == INTERACTIVE_QUEUE and not countdown

    def publish() -> None:
        if interactive:
            begin_interactive(run_id)
        run_task.apply_async(args=[run_id], countdown=countdown or None, **options)

    # robust: a broker outage must not turn a committed decision into an error page; the sweeper
    # re-enqueues queued runs whose message never left.
    transaction.on_commit(publish, robust=True)


def interactive_entry(run_id: int) -> str:
    """The run's entry among the clicks in flight (rate_limits.INTERACTIVE_KEY)."""
    return f"run:{run_id}"


def begin_interactive(run_id: int) -> None:
    """A person waits for this run's send, enqueued now: the bulk lane yields until its
    worker ends it (dashboard.runs.services.sending). Never stops the send from being queued."""
    try:
        rate_limiter().interactive_begun(interactive_entry(run_id))
    except Exception:
        logger.warning("could not mark run %s's send as interactive", run_id, exc_info=True)


def end_interactive(run_id: int) -> None:
    """The run's send is done (sent and recorded, held or skipped): the bulk lane goes on."""
    try:
        rate_limiter().interactive_ended(interactive_entry(run_id))
    except Exception:
        # Its entry lapses by itself after INTERACTIVE_HOLD_SECONDS.
        logger.warning("could not end run %s's interactive mark", run_id, exc_info=True)


def enqueue_send(run: Run) -> None:
    """Queue the send of a queued run as run_submit does (after the commit, if in one); for
    callers that create runs in bulk (the benchmarks, the end-to-end burst)."""
    enqueue("send", run.pk, batch=batch_of(run))


def send_flag(connection_id: int, operation: str, slot: int) -> str:
    """The Redis flag a send dispatcher of this slot holds while it works."""
    return f"dispatch:send:{connection_id}:{operation}:{slot}"


def poll_flag(connection_id: int, operation: str, due: float) -> str:
    """The Redis flag of the poll dispatcher due at `due` (epoch seconds, half-second steps)."""
    return f"dispatch:poll:{connection_id}:{operation}:{due:.1f}"


def wake_sends(run_id: int, connection_id: int, operation: str) -> None:
    """Make sure a dispatcher will look for this connection's queued runs after this commit."""
    limiter = rate_limiter()
    for slot in range(DISPATCH_SLOTS):
        if limiter.set_flag(send_flag(connection_id, operation, slot), FLAG_SECONDS):
            # The message names a run, so a redelivered one says what became of that run.
            task("runs.send").apply_async(args=[run_id], kwargs={"slot": slot})
            return
    # Every slot's dispatcher is working: each clears its flag before its last look.


def wake_polls(connection_id: int, operation: str, countdown: float) -> None:
    """Make sure a poll dispatcher runs for this connection about `countdown` seconds from now.

    At most one wake-up per half second of due time: a dispatcher polls every run due by then.
    """
    countdown = max(0.0, min(countdown, MAX_COUNTDOWN_SECONDS))
    due = (int((time.time() + countdown) * 2) + 1) / 2  # the end of its half second
    flag = poll_flag(connection_id, operation, due)
    if rate_limiter().set_flag(flag, max(0.0, due - time.time()) + FLAG_SECONDS):
        task("runs.dispatch_polls").apply_async(
            args=[connection_id, operation], countdown=max(0.0, due - time.time()) or None
        )
