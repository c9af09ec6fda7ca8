"""The gate before a run's vendor call: is it due, and does the brand's rate window let it out?

Either answer "not now" reschedules the run (its due field and a task for then), so the send,
the poll and the reconcile (services.sending, services.polling) and the dispatcher wait alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from dashboard.models import VendorConnection
from dashboard.runs.enqueue import enqueue
from dashboard.runs.models import Run
from dashboard.runs.operations import RunOperation
from dashboard.runs.rate_limits import Permit, acquire_all
from dashboard.runs.states import RunState
from dashboard.send_windows.selectors import SendHold, send_hold_for

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


@contextmanager
def permits_given_back_on_failure() -> Iterator[list[Permit]]:
    """Wraps the transaction that records a request's start (its attempt row, the run's move
    to sending): the permits appended to the yielded list are given back (`Permit.unused`)
    when that transaction fails, its commit included, for then the request was never made.

    Enter it before the transaction (`with permits_given_back_on_failure() as permits,
    transaction.atomic():`) so that a failed commit reaches it too.
    """
    permits: list[Permit] = []
    try:
        yield permits
    except BaseException:
        for permit in permits:
            permit.unused()
        raise


def hold_outside_send_window(
    *, connection_id: int, now: datetime, operation: str = "", run_id: int | None = None
) -> SendHold | None:
    """None while the connection's send window is open. Outside it, its queued runs (run
    `run_id`, or every run of `operation`) become due at the next opening, and the hold is
    returned.

    Decided under the connection's row lock, the one send_window_set holds while it releases
    the runs its old rules held: a dispatcher that read a blackout just lifted would otherwise
    hold the released runs again, until the old opening (days, for a blackout). The caller holds
    no run lock yet: the release locks the connection first and the runs after.
    """
    if send_hold_for(connection_id=connection_id, at=now) is None:
        return None
    with transaction.atomic():
        connection = (
            VendorConnection.objects.select_for_update(no_key=True)
            .only("name")
            .get(pk=connection_id)
        )
        # Read again under the lock: a change that committed meanwhile is seen now.
        hold = send_hold_for(connection_id=connection_id, at=now, connection_name=connection.name)
        if hold is None:
            return None
        runs = Run.objects.filter(connection_id=connection_id, state=RunState.QUEUED)
        runs = runs.filter(pk=run_id) if run_id is not None else runs.filter(operation=operation)
        runs.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=hold.until or now)
        ).update(next_attempt_at=hold.until)
    return hold
