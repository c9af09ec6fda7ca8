"""Sending a queued run once, reading its outcome, and settling an unknown outcome: by asking
the vendor again (reconciliation) or by a person (mark as sent, send again).

A worker moves a run from queued to sending under a row lock before it talks to the vendor, and
a worker that finds a run past queued does not send it. An unknown outcome is never retried
blindly: it is reconciled (TriggerDaily asks again within the same UTC day) or put before a
person.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.pauses.selectors import sending_pause_for
from dashboard.runs import dispatch, gate
from dashboard.runs.attempts import (
    failure_text,
    note_connection,
    open_attempt,
    record_answer,
    record_attempt,
)
from dashboard.runs.enqueue import batch_of, end_interactive, enqueue
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.operations import RunOperation, SendResult, operation_for
from dashboard.runs.outcomes import (
    after_send_exception,
    approval_problem,
    give_to_person,
    send_outcome,
)
from dashboard.runs.rate_limits import rate_limiter
from dashboard.runs.states import RunState
from dashboard.runs.transitions import WORKER, RunActionError, fail_run, transition
from dashboard.send_windows.selectors import (
    hold_by_feature_windows,
    send_hold_for,
    send_rules_exist,
)
from dashboard.tenancy.credentials import connection_secrets
from dashboard.tenancy.crypto import CredentialDecryptionError
from dashboard.vendors.http import FailureClass, VendorError

logger = logging.getLogger(__name__)


def run_send(*, run_id: int, slot: int | None = None) -> str:
    """Send a queued run once. Returns what happened, for logs; never raises for vendor errors.

    A run of a batched operation is sent by a dispatcher for its connection, run here: `slot`
    names the wake-up flag the message was enqueued under (None: a retry or an older message).
    """
    # A person waits for this send (the interactive queue): every round trip before the request
    # leaves counts while bursts hold the CPU, so the first read also says whether the
    # connection has send rules to read at all.
    head = (
        Run.objects.filter(pk=run_id)
        .annotate(**send_rules_exist())
        .values_list("state", "operation", "connection_id", "has_send_window", "has_blackout_dates")
        .first()
    )
    if head is None:
        end_interactive(run_id)
        return "missing"
    state, operation_name, connection_id, has_send_window, has_blackout_dates = head
    if operation_for(operation_name).batch_size > 1:
        # A woken dispatcher runs even when its run went out meanwhile: it holds a wake-up flag
        # that only its own last look may clear, or later submissions would wait for the sweeper.
        if state != RunState.QUEUED and slot is None:
            return f"skipped: already {state}"
        return dispatch.dispatch_sends(
            connection_id=connection_id, operation=operation_name, slot=slot, run_id=run_id
        )
    try:
        if state != RunState.QUEUED:
            return f"skipped: already {state}"
        return _send_single(
            run_id, connection_id, operation_name, has_send_window or has_blackout_dates
        )
    finally:
        # Sent, held, skipped or failed: the bulk lane no longer yields to this click.
        end_interactive(run_id)


def _send_single(run_id: int, connection_id: int, operation_name: str, has_send_rules: bool) -> str:
    """run_send for a run of a single-run operation (the interactive lane)."""
    now = utc_now()
    # Approved late, or queued long: a run never leaves outside its connection's send window.
    # It waits queued, due when the window opens (the sweeper or this countdown). Decided
    # before the run's row lock is taken, as gate.hold_outside_send_window asks.
    hold = (
        gate.hold_outside_send_window(connection_id=connection_id, now=now, run_id=run_id)
        if has_send_rules
        else None
    )
    if hold is not None:
        if hold.until is not None:
            enqueue("send", run_id, (hold.until - now).total_seconds())
        logger.info("run %s %s", run_id, hold.held_reason())
        return "held: outside the send window"
    hold_by_feature_windows(connection_id=connection_id, operation=operation_name, now=now)
    with gate.permits_given_back_on_failure() as permits, transaction.atomic():
        run = (
            Run.objects.select_for_update(of=("self",))
            .select_related("connection", "tenant")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            return "missing"
        if run.state != RunState.QUEUED:
            return f"skipped: already {run.state}"
        if gate.not_yet_due(run, run.next_attempt_at, "send", now):
            return "not yet due"
        # Shared pause lock until this transaction commits the move to sending: a pause that
        # commits first stops the send; resuming enqueues the run again.
        if sending_pause_for(tenant_id=run.tenant_id, connection_id=run.connection_id, lock=True):
            return "held: sending paused"
        operation = operation_for(run.operation)
        problem = approval_problem(run, now) or operation.pre_send_problem(run)
        if problem:
            fail_run(
                run,
                from_states={RunState.QUEUED},
                actor=WORKER,
                code="guardrail",
                message=problem,
            )
            return "guardrail"
        try:
            secrets = connection_secrets(run.connection)
        except CredentialDecryptionError as error:
            fail_run(
                run,
                from_states={RunState.QUEUED},
                actor=WORKER,
                code="credentials_unreadable",
                message=str(error),
                failure_class=FailureClass.NOT_SENT,
            )
            return "credentials"
        permit = gate.rate_permit(
            run, operation, secrets, due_field="next_attempt_at", task_name="send", now=now
        )
        permits.append(permit)
        if permit.wait > 0:
            return f"rate limited for {permit.wait:.3f}s"
        # The call is on record before the state change's audit row, which comes last: it
        # keeps the tenant's chain head locked until the commit. The row is locked since the
        # SELECT above, so the count cannot move meanwhile and the change cannot lose.
        run.attempt_count += 1
        open_attempt(run, purpose=RunAttempt.Purpose.SEND, started_at=now)
        transition(
            run,
            RunState.SENDING,
            from_states={RunState.QUEUED},
            actor=WORKER,
            attempt_count=run.attempt_count,
            next_attempt_at=None,
            sent_at=now,
        )
    try:
        return _perform_send(run, operation, secrets)
    finally:
        permit.answered()


def _held_by_window(run: Run, due_field: str, task_name: str, now: datetime) -> bool:
    """True when the run's connection is outside its send window: the run's `due_field` moves
    to the window's next opening and task `task_name` is enqueued for then (countdowns are
    capped; an early message finds the run not yet due and waits again)."""
    hold = send_hold_for(
        connection_id=run.connection_id, at=now, connection_name=run.connection.name
    )
    if hold is None:
        return False
    Run.objects.filter(pk=run.pk).update(**{due_field: hold.until})
    if hold.until is not None:
        enqueue(task_name, run.pk, (hold.until - now).total_seconds())
    logger.info("run %s %s", run.pk, hold.held_reason())
    return True


def _perform_send(run: Run, operation: RunOperation, secrets: dict[str, str]) -> str:
    started = utc_now()
    attempt_number = run.attempt_count
    try:
        result = operation.send(run.connection, secrets, run)
    except Exception as error:
        failure = error  # the name `error` is unbound when the except block ends
        return record_answer(
            lambda: after_send_exception(run, operation, failure, started, secrets),
            before_retry=lambda: run.refresh_from_db(fields=["state"]),
        )
    return record_answer(
        lambda: _record_send(run, operation, result, started, attempt_number),
        before_retry=lambda: run.refresh_from_db(fields=["state"]),
    )


def _record_send(
    run: Run,
    operation: RunOperation,
    result: SendResult,
    started: datetime,
    attempt_number: int,
) -> str:
    with transaction.atomic():
        record_attempt(
            run,
            purpose=RunAttempt.Purpose.SEND,
            started_at=started,
            exchange=result.exchange,
            outcome=result.outcome,
        )
        note_connection(run.connection)
        to_state, fields = send_outcome(operation, result, utc_now())
        # A sweeper may have presumed this worker dead meanwhile; the answer still counts.
        moved = transition(
            run,
            to_state,
            from_states={RunState.SENDING, RunState.OUTCOME_UNKNOWN},
            actor=WORKER,
            reason=result.outcome,
            **fields,
        )
        if to_state == RunState.ACCEPTED:
            if moved:
                enqueue("poll", run.pk, 1.0)
            return "accepted"
    logger.info("run %s attempt %s succeeded", run.pk, attempt_number)
    return "succeeded"


# -- reconciliation ---------------------------------------------------------------------------


def run_reconcile(*, run_id: int) -> str:
    """Ask the vendor again whether an unknown outcome went through (automatic operations only)."""
    now = utc_now()
    with gate.permits_given_back_on_failure() as permits, transaction.atomic():
        run = (
            Run.objects.select_for_update(of=("self",))
            .select_related("connection", "tenant")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.state != RunState.OUTCOME_UNKNOWN or run.needs_person:
            return "nothing to reconcile"
        operation = operation_for(run.operation)
        if not operation.reconciles_automatically:
            return "needs a person"
        if gate.not_yet_due(run, run.reconcile_after, "reconcile", now):
            return "not yet due"
        # A re-check may itself trigger (TriggerDaily's sent_now): it waits for the resume too.
        if sending_pause_for(tenant_id=run.tenant_id, connection_id=run.connection_id, lock=True):
            return "held: sending paused"
        if _held_by_window(run, "reconcile_after", "reconcile", now):
            return "held: outside the send window"
        if run.utc_date is not None and now.date() != run.utc_date:
            give_to_person(
                run,
                "The UTC day ended before the outcome could be checked. Check in the vendor's UI, then mark the run as sent or send it again.",
            )
            return "day ended"
        secrets = connection_secrets(run.connection)
        permit = gate.rate_permit(
            run, operation, secrets, due_field="reconcile_after", task_name="reconcile", now=now
        )
        permits.append(permit)
        if permit.wait > 0:
            return "rate window still open"
        transition(
            run,
            RunState.SENDING,
            from_states={RunState.OUTCOME_UNKNOWN},
            actor=WORKER,
            reason="reconciling: asking the vendor again",
            attempt_count=run.attempt_count + 1,  # the row is locked since the SELECT above
        )
        open_attempt(run, purpose=RunAttempt.Purpose.RECONCILE)
    started = utc_now()
    try:
        try:
            verdict = operation.reconcile(run.connection, secrets, run)
        finally:
            permit.answered()
    except VendorError as error:
        with transaction.atomic():
            record_attempt(
                run,
                purpose=RunAttempt.Purpose.RECONCILE,
                started_at=started,
                exchange=error.exchange,
                error=error,
            )
            if error.failure_class in (
                FailureClass.THROTTLED,
                FailureClass.NOT_SENT,
                FailureClass.OUTCOME_UNKNOWN,
            ):
                if error.failure_class is FailureClass.NOT_SENT:
                    for rule in operation.rate_rules(run.connection, secrets):
                        if rule.window:
                            rate_limiter().release_window(rule)
                windows = [
                    r.period_seconds
                    for r in operation.rate_rules(run.connection, secrets)
                    if r.window
                ]
                wait = error.retry_after or (max(windows, default=60) + 5)
                later = utc_now() + timedelta(seconds=wait)
                if transition(
                    run,
                    RunState.OUTCOME_UNKNOWN,
                    from_states={RunState.SENDING},
                    actor=WORKER,
                    reason=f"reconciliation inconclusive ({error.code}); asking again later",
                    reconcile_after=later,
                ):
                    enqueue("reconcile", run.pk, wait)
                return "inconclusive"
            transition(
                run,
                RunState.OUTCOME_UNKNOWN,
                from_states={RunState.SENDING},
                actor=WORKER,
                reason=error.code,
            )
            give_to_person(
                run, f"Reconciliation got an answer that proves nothing: {failure_text(error)}"
            )
        return "needs a person"
    with transaction.atomic():
        record_attempt(
            run,
            purpose=RunAttempt.Purpose.RECONCILE,
            started_at=started,
            exchange=verdict.exchange,
            outcome=verdict.outcome,
        )
        if verdict.went_through or verdict.sent_now:
            transition(
                run,
                RunState.SUCCEEDED,
                from_states={RunState.SENDING},
                actor=WORKER,
                reason=verdict.outcome,
                failure_class="",
                failure_code="",
                failure_message="",
                needs_person=False,
                result={**run.result, "reconciliation": verdict.outcome},
            )
            return "reconciled: succeeded"
        transition(
            run,
            RunState.OUTCOME_UNKNOWN,
            from_states={RunState.SENDING},
            actor=WORKER,
            reason=verdict.outcome,
        )
        give_to_person(run, verdict.outcome)
    return "needs a person"


def run_mark_as_sent(*, actor: Actor, run: Run, comment: str) -> Run:
    """A person who checked with the vendor records that an unknown outcome did go through."""
    if not comment.strip():
        raise RunActionError("Say how you know it went through (e.g. what the vendor's UI shows).")
    moved = transition(
        run,
        RunState.SUCCEEDED,
        from_states={RunState.OUTCOME_UNKNOWN},
        actor=actor,
        action="run.marked_as_sent",
        reason=comment,
        needs_person=False,
        result={**run.result, "marked_as_sent_by": actor.display, "evidence": comment},
    )
    if not moved:
        raise RunActionError("Only a run whose outcome is unknown can be marked as sent.")
    return run


def run_send_again(*, actor: Actor, run: Run, comment: str) -> Run:
    """A person who checked with the vendor decides the call did not go through: send it again.

    Refused while TriggerDesk reconciles the run itself (an automatic re-check is scheduled):
    a second call then could act twice. Marking it as sent, with evidence, stays possible.
    """
    if not comment.strip():
        raise RunActionError("Say how you know it did not go through.")
    now = utc_now()
    with transaction.atomic():
        locked = Run.objects.select_for_update(of=("self",)).filter(pk=run.pk).first()
        if locked is None or locked.state != RunState.OUTCOME_UNKNOWN:
            raise RunActionError("Only a run whose outcome is unknown can be sent again.")
        if not locked.needs_person:
            raise RunActionError(reconciling_refusal(locked))
        moved = transition(
            run,
            RunState.QUEUED,
            from_states={RunState.OUTCOME_UNKNOWN},
            actor=actor,
            action="run.send_again",
            reason=comment,
            needs_person=False,
            next_attempt_at=now,
        )
        if not moved:
            raise RunActionError("Only a run whose outcome is unknown can be sent again.")
        enqueue("send", run.pk, batch=batch_of(run))
    return run


def reconciling_refusal(run: Run) -> str:
    """Why a person may not send again a run TriggerDesk is reconciling itself."""
    when = f" at {run.reconcile_after:%Y-%m-%d %H:%M:%S} UTC" if run.reconcile_after else " shortly"
    return (
        f"TriggerDesk checks with the vendor itself{when}; sending again now could act twice. "
        "If the vendor's system already shows that it went through, mark it as sent instead."
    )
