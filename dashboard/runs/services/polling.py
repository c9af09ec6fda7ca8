"""Polling the vendor for the status of an accepted run."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F

from dashboard.clock import utc_now
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.operations import PollResult, operation_for
from dashboard.runs.rate_limits import acquire_all
from dashboard.runs.services.attempts import failure_text, open_attempt, record_attempt
from dashboard.runs.services.credentials import connection_secrets
from dashboard.runs.services.transitions import WORKER, enqueue, transition
from dashboard.runs.states import RunState
from dashboard.vendors.http import FailureClass, VendorError

logger = logging.getLogger(__name__)


def poll_backoff(poll_count: int) -> float:
    """About 1 s at first, doubling to 30 s."""
    return min(30.0, 2.0 ** max(0, poll_count - 1))


POLL_DEADLINE_MESSAGE = (
    "The vendor accepted the run but never reported a final status. Check in the vendor's UI."
)


def poll_outcome(run: Run, status: PollResult, now: datetime) -> tuple[str | None, dict[str, Any]]:
    """What a status answer makes of an accepted run: its final state (None while the vendor
    is still working, with the next poll's time among the fields) and the fields to store."""
    fields: dict[str, Any] = {
        "vendor_status": status.vendor_status,
        "progress": status.progress if status.progress is not None else run.progress,
        "audience_size": status.audience_size
        if status.audience_size is not None
        else run.audience_size,
        "result": {**run.result, **status.result},
    }
    if not status.terminal:
        fields["next_poll_at"] = now + timedelta(seconds=poll_backoff(run.poll_count + 1))
        return None, fields
    if status.succeeded:
        return RunState.SUCCEEDED, fields
    fields.update(
        failure_class=FailureClass.REJECTED,
        failure_code=status.failure_code or "vendor_failed",
        failure_message=status.failure_message or f"The vendor reports {status.vendor_status}.",
    )
    return RunState.FAILED, fields


def poll_failure_outcome(
    run: Run, error: VendorError, now: datetime
) -> tuple[str | None, dict[str, Any]]:
    """What a failed status read makes of an accepted run, by the error's class as for a send.

    A refusal (REJECTED: 401, 403, 404 "execution not found"...) will not change by asking again:
    the poll ends and the run goes before a person with the vendor's words (the vendor accepted
    the run, so whether it went through is for a person to check; the client's advice is about
    sends, so it is left out). Anything else (throttled,
    5xx, no answer, no connection) is asked again after a backoff, until the poll deadline.
    """
    if error.failure_class is FailureClass.REJECTED:
        return RunState.OUTCOME_UNKNOWN, {
            "needs_person": True,
            "next_poll_at": None,
            "failure_class": error.failure_class.value,
            "failure_code": error.code,
            "failure_message": (
                "The vendor accepted the run but refused to report its status, so TriggerDesk "
                f"stopped asking: {failure_text(error, with_advice=False)} Check in the vendor's "
                "UI, then mark the "
                "run as sent or send it again."
            ),
        }
    wait = error.retry_after or poll_backoff(run.poll_count)
    return None, {"next_poll_at": now + timedelta(seconds=wait)}


def expire_polling(run: Run) -> bool:
    """The poll deadline passed: a person must check in the vendor's UI."""
    return transition(
        run,
        RunState.OUTCOME_UNKNOWN,
        from_states={RunState.ACCEPTED},
        actor=WORKER,
        reason="the vendor did not report a final status before the deadline",
        needs_person=True,
        failure_code="poll_deadline",
        failure_message=POLL_DEADLINE_MESSAGE,
    )


# -- polling ----------------------------------------------------------------------------------


def run_poll(*, run_id: int) -> str:
    """Ask the vendor for the status of an accepted run; reschedule until terminal or deadline.

    A run of a batched operation is polled with the other due runs of its connection.
    """
    head = Run.objects.filter(pk=run_id).values_list("state", "operation", "connection_id").first()
    if head is None or head[0] != RunState.ACCEPTED:
        return "not accepted"
    if operation_for(head[1]).batch_size > 1:
        from dashboard.runs import dispatch

        return dispatch.dispatch_polls(connection_id=head[2], operation=head[1], run_id=run_id)
    now = utc_now()
    with transaction.atomic():
        run = (
            Run.objects.select_for_update(of=("self",))
            .select_related("connection", "tenant")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.state != RunState.ACCEPTED:
            return "not accepted"
        operation = operation_for(run.operation)
        if run.next_poll_at and run.next_poll_at > now + timedelta(milliseconds=50):
            enqueue("poll", run.pk, (run.next_poll_at - now).total_seconds())
            return "not yet due"
        if run.poll_deadline and now >= run.poll_deadline:
            expire_polling(run)
            return "deadline"
        secrets = connection_secrets(run.connection)
        permit = acquire_all(operation.rate_rules(run.connection, secrets))
        if permit.wait > 0:
            wait = permit.wait
            Run.objects.filter(pk=run.pk).update(next_poll_at=now + timedelta(seconds=wait))
            enqueue("poll", run.pk, wait)
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
