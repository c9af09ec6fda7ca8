"""The gate before a run's vendor call: is it due, and does the brand's rate window let it out?

Either answer "not now" reschedules the run (its due field and a task for then), so the send,
the poll and the reconcile (services.sending, services.polling) and the dispatcher wait alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dashboard.runs.enqueue import enqueue
from dashboard.runs.models import Run
from dashboard.runs.operations import RunOperation
from dashboard.runs.rate_limits import Permit, acquire_all

# A message that arrives this early counts as on time (clocks and countdowns are not exact).
DUE_MARGIN = timedelta(milliseconds=50)


def not_yet_due(run: Run, due_at: datetime | None, task_name: str, now: datetime) -> bool:
    """True when `due_at` is still ahead: task `task_name` is enqueued again for then."""
    if due_at and due_at > now + DUE_MARGIN:
        enqueue(task_name, run.pk, (due_at - now).total_seconds())
        return True
    return False


def rate_permit(
    run: Run,
    operation: RunOperation,
    secrets: dict[str, Any],
    *,
    due_field: str,
    task_name: str,
    now: datetime,
) -> Permit:
    """Places in every rate window of the run's operation. When one says wait (`permit.wait`
    > 0), the run's `due_field` is set to then and task `task_name` enqueued for it."""
    permit = acquire_all(operation.rate_rules(run.connection, secrets))
    if permit.wait > 0:
        Run.objects.filter(pk=run.pk).update(**{due_field: now + timedelta(seconds=permit.wait)})
        enqueue(task_name, run.pk, permit.wait)
    return permit
