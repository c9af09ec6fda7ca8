"""State changes of a run, shared by every part of the run engine (enqueueing: runs/enqueue.py).

Every state change is a compare-and-set (`UPDATE ... WHERE state IN (...)`) with its audit row in
the same transaction; tasks are enqueued on commit, so no task sees a row that is not there yet.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.runs.models import Run
from dashboard.runs.states import RunState, sources

logger = logging.getLogger(__name__)

WORKER = Actor.system("worker")
SWEEPER = Actor.system("sweeper")


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
