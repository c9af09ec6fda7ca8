"""Polling the vendor for the status of an accepted run."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F

from dashboard.clock import utc_now
from dashboard.runs import dispatch, gate
from dashboard.runs.attempts import open_attempt, record_attempt
from dashboard.runs.enqueue import enqueue
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.operations import operation_for
from dashboard.runs.outcomes import expire_polling, poll_failure_outcome, poll_outcome
from dashboard.runs.states import RunState
from dashboard.runs.transitions import WORKER, transition
from dashboard.tenancy.credentials import connection_secrets
from dashboard.vendors.http import VendorError

logger = logging.getLogger(__name__)


# -- polling ----------------------------------------------------------------------------------


def run_poll(*, run_id: int) -> str:
    """Ask the vendor for the status of an accepted run; reschedule until terminal or deadline.

    A run of a batched operation is polled with the other due runs of its connection.
    """
    head = Run.objects.filter(pk=run_id).values_list("state", "operation", "connection_id").first()
    if head is None or head[0] != RunState.ACCEPTED:
        return "not accepted"
    if operation_for(head[1]).batch_size > 1:
        return dispatch.dispatch_polls(connection_id=head[2], operation=head[1], run_id=run_id)
    now = utc_now()
    with gate.permits_given_back_on_failure() as permits, transaction.atomic():
        run = (
            Run.objects.select_for_update(of=("self",))
            .select_related("connection", "tenant")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.state != RunState.ACCEPTED:
            return "not accepted"
        operation = operation_for(run.operation)
        if gate.not_yet_due(run, run.next_poll_at, "poll", now):
            return "not yet due"
        if run.poll_deadline and now >= run.poll_deadline:
            expire_polling(run)
            return "deadline"
        secrets = connection_secrets(run.connection)
        permit = gate.rate_permit(
            run, operation, secrets, due_field="next_poll_at", task_name="poll", now=now
        )
        permits.append(permit)
        if permit.wait > 0:
            return "rate limited"
        Run.objects.filter(pk=run.pk).update(poll_count=F("poll_count") + 1)
        run.poll_count += 1
        open_attempt(run, purpose=RunAttempt.Purpose.POLL)
    started = utc_now()
    try:
        try:
            status = operation.poll(run.connection, secrets, run)
        finally:
            permit.answered()
    except VendorError as error:
        with transaction.atomic():
            record_attempt(
                run,
                purpose=RunAttempt.Purpose.POLL,
                started_at=started,
                exchange=error.exchange,
                error=error,
            )
            to_state, fields = poll_failure_outcome(run, error, utc_now())
            if to_state is not None:
                transition(
                    run,
                    to_state,
                    from_states={RunState.ACCEPTED},
                    actor=WORKER,
                    reason=f"status read refused ({error.code}); polling stopped",
                    **fields,
                )
                return f"poll refused: {error.code}"
            Run.objects.filter(pk=run.pk, state=RunState.ACCEPTED).update(
                updated_at=utc_now(), **fields
            )
            enqueue("poll", run.pk, (fields["next_poll_at"] - utc_now()).total_seconds())
        return f"poll failed: {error.code}"
    with transaction.atomic():
        record_attempt(
            run,
            purpose=RunAttempt.Purpose.POLL,
            started_at=started,
            exchange=status.exchange,
            outcome=status.vendor_status,
        )
        to_state, fields = poll_outcome(run, status, utc_now())
        if to_state is not None:
            transition(
                run,
                to_state,
                from_states={RunState.ACCEPTED},
                actor=WORKER,
                reason=f"vendor status {status.vendor_status}",
                **fields,
            )
            return status.vendor_status
        Run.objects.filter(pk=run.pk, state=RunState.ACCEPTED).update(
            updated_at=utc_now(), **fields
        )
        enqueue("poll", run.pk, (fields["next_poll_at"] - utc_now()).total_seconds())
    return status.vendor_status
