"""State changes of a run and the tasks they enqueue, shared by every part of the run engine.

Every state change is a compare-and-set (`UPDATE ... WHERE state IN (...)`) with its audit row in
the same transaction; tasks are enqueued on commit, so no task sees a row that is not there yet.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from dashboard.audit import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.runs.models import Run
from dashboard.runs.operations import operation_for
from dashboard.runs.states import RunState, sources

logger = logging.getLogger(__name__)

WORKER = Actor.system("worker")
SWEEPER = Actor.system("sweeper")
# Countdowns stay far below the broker's visibility timeout (see README "Workers"); longer waits
# are picked up again by the sweeper from next_attempt_at.
MAX_COUNTDOWN_SECONDS = 15 * 60


class RunActionError(Exception):
    """A person asked for something the run's state or the guardrails do not allow."""


# -- state changes ----------------------------------------------------------------------------


def transition(
    run: Run,
    to_state: str,
    *,
    from_states: set[str] | frozenset[str],
    actor: Actor,
    reason: str = "",
    action: str = "run.state_changed",
    extra_summary: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Compare-and-set the run's state; audit it in the same transaction. False if it lost."""
    allowed_from = sources(
        to_state, from_states
    )  # before the transaction: refused, not rolled back
    now = utc_now()
    if to_state in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED):
        fields.setdefault("finished_at", now)
    # No savepoint of its own inside a caller's transaction: its release would be one more
    # round trip while the audit append below holds the tenant's chain head (an exception still
    # rolls back the caller's transaction, or its savepoint, as a whole).
    with transaction.atomic(savepoint=False):
        changed = Run.objects.filter(pk=run.pk, state__in=allowed_from).update(
            state=to_state, updated_at=now, **fields
        )
        if changed != 1:
            return False
        previous = run.state
        if any(hasattr(value, "resolve_expression") for value in fields.values()):
            run.refresh_from_db()
        else:
            # The UPDATE wrote exactly these values: no need to read the row back.
            run.state = to_state
            run.updated_at = now
            for name, value in fields.items():
                setattr(run, name, value)
        summary = {"from": previous, "to": to_state}
        if reason:
            summary["reason"] = reason
        summary.update(extra_summary or {})
        record_audit_event(
            actor=actor,
            tenant=run.tenant,
            action=action,
            object_type="run",
            object_id=run.pk,
            summary=summary,
        )
    return True


def batch_of(run: Run) -> tuple[int, str] | None:
    """(connection id, operation) when the run's operation is sent and polled in batches."""
    if operation_for(run.operation).batch_size > 1:
        return (run.connection_id, run.operation)
    return None


def fail_run(
    run: Run,
    *,
    from_states: set[str] | frozenset[str],
    actor: Actor,
    code: str,
    message: str,
    reason: str = "",
    failure_class: str = "",
) -> bool:
    """Move a run to failed (compare-and-set, audited), with the message a person reads."""
    return transition(
        run,
        RunState.FAILED,
        from_states=from_states,
        actor=actor,
        reason=reason or message,
        failure_class=failure_class,
        failure_code=code,
        failure_message=message,
    )


def enqueue(
    task_name: str, run_id: int, countdown: float = 0, *, batch: tuple[int, str] | None = None
) -> None:
    """Enqueue a run's task after the commit, or wake its connection's dispatcher (batch)."""
    from dashboard import tasks

    countdown = max(0.0, min(countdown, MAX_COUNTDOWN_SECONDS))
    if batch is not None and (task_name == "poll" or (task_name == "send" and not countdown)):
        # One dispatcher for many runs instead of one task each (see dashboard.runs.dispatch).
        from dashboard.runs import dispatch

        connection_id, operation = batch
        if task_name == "send":
            wake = lambda: dispatch.wake_sends(run_id, connection_id, operation)  # noqa: E731
        else:
            wake = lambda: dispatch.wake_polls(connection_id, operation, countdown)  # noqa: E731
        transaction.on_commit(wake, robust=True)
        return
    task = {"send": tasks.send_run, "poll": tasks.poll_run, "reconcile": tasks.reconcile_run}[
        task_name
    ]
    # robust: a broker outage must not turn a committed decision into an error page; the sweeper
    # re-enqueues queued runs whose message never left.
    transaction.on_commit(
        lambda: task.apply_async(args=[run_id], countdown=countdown or None), robust=True
    )


def enqueue_send(run: Run) -> None:
    """Queue the send of a queued run as run_submit does (after the commit, if in one); for
    callers that create runs in bulk (the benchmarks, the end-to-end burst)."""
    enqueue("send", run.pk, batch=batch_of(run))
