"""What an answer or an error makes of a run: shared by the per-run path (services.sending,
services.polling) and the batched dispatcher (runs/dispatch.py), so both decide alike.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from dashboard.audit.trail import record_audit_event
from dashboard.clock import utc_now
from dashboard.runs.attempts import (
    earlier_call_may_have_reached_vendor,
    failure_text,
    note_connection,
    record_attempt,
)
from dashboard.runs.enqueue import enqueue
from dashboard.runs.models import Approval, Run, RunAttempt
from dashboard.runs.operations import PollResult, RunOperation, SendResult
from dashboard.runs.rate_limits import rate_limiter
from dashboard.runs.states import RunState
from dashboard.runs.transitions import WORKER, fail_run, transition
from dashboard.vendors.http import ConfigurationError, FailureClass, VendorError

logger = logging.getLogger(__name__)


def max_send_attempts() -> int:
    """How many times a send that provably did not go through is tried before the run fails."""
    return getattr(settings, "RUN_MAX_SEND_ATTEMPTS", 5)


def send_backoff(attempt: int, *, base: float = 2.0, cap: float = 120.0) -> float:
    """Seconds before retry number `attempt` of a send that did not go through: 2, 4, 8... to 120."""
    return min(cap, base ** max(0, attempt - 1) * base)


def approval_problem(run: Run, now: datetime) -> str:
    """Why the run's approvals do not allow sending it now ("" when they do): it needs
    `approvals_needed` distinct people who approved its current parameters, unexpired."""
    if not run.approval_required:
        return ""
    given = [
        approval
        for approval in run.approvals.filter(decision=Approval.Decision.APPROVED)
        if approval.parameters_hash == run.parameters_hash
    ]
    people = {approval.decided_by_id for approval in given}
    if not people:
        if run.approvals.filter(decision=Approval.Decision.APPROVED).exists():
            return "The parameters changed after approval; a new approval is needed."
        return "The run has no approval."
    if len(people) < run.approvals_needed:
        return f"The run has {len(people)} of the {run.approvals_needed} approvals it needs."
    if any(approval.expires_at and now >= approval.expires_at for approval in given):
        return "The approval expired before the run could be sent; request it again."
    return ""


def send_outcome(
    operation: RunOperation, result: SendResult, now: datetime
) -> tuple[str, dict[str, Any]]:
    """What a successful send makes of a run: its next state and the fields to store."""
    fields: dict[str, Any] = {
        "vendor_reference": result.vendor_reference,
        "vendor_status": result.vendor_status,
        "progress": result.progress,
        "audience_size": result.audience_size,
        "result": result.result,
        "failure_class": "",
        "failure_code": "",
        "failure_message": "",
        "needs_person": False,
    }
    if result.accepted and operation.polls:
        fields["next_poll_at"] = now + timedelta(seconds=1)
        fields["poll_deadline"] = now + timedelta(seconds=operation.poll_deadline_seconds)
        return RunState.ACCEPTED, fields
    return RunState.SUCCEEDED, fields


def after_send_exception(
    run: Run,
    operation: RunOperation,
    error: Exception,
    started: datetime,
    secrets: dict[str, str],
) -> str:
    """Record a send that raised, and move the run on by the failure's class.

    `run` is in sending (its attempt_count counts this send); the batch dispatcher calls this for
    each of its rare failures, so both paths decide the same way.
    """
    if isinstance(error, VendorError):
        return after_send_failure(run, operation, error, started, secrets)
    if isinstance(error, ConfigurationError):
        with transaction.atomic():
            record_attempt(
                run,
                purpose=RunAttempt.Purpose.SEND,
                started_at=started,
                exchange=None,
                outcome=str(error),
            )
            fail_run(
                run,
                from_states={RunState.SENDING},
                actor=WORKER,
                code="invalid_parameters",
                message=f"Not sent: {error}",
                reason=str(error),
                failure_class=FailureClass.NOT_SENT,
            )
        return "invalid parameters"
    # A bug after the request may have left: treat it like a lost answer, never resend blindly.
    logger.error("run %s: unexpected error while sending", run.pk, exc_info=error)
    unknown = VendorError(
        "Unexpected error while sending; the vendor may have acted.", code="internal_error"
    )
    unknown.failure_class = FailureClass.OUTCOME_UNKNOWN  # type: ignore[misc]
    return after_send_failure(run, operation, unknown, started, secrets)


def after_send_failure(
    run: Run,
    operation: RunOperation,
    error: VendorError,
    started: datetime,
    secrets: dict[str, str],
) -> str:
    failure = error.failure_class
    now = utc_now()
    with transaction.atomic():
        record_attempt(
            run,
            purpose=RunAttempt.Purpose.SEND,
            started_at=started,
            exchange=error.exchange,
            error=error,
        )
        run.refresh_from_db()
        attempts = run.attempt_count
        duplicate = operation.duplicate_refusal(error) if failure is FailureClass.REJECTED else ""
        if duplicate:
            # The vendor refused because the thing is already done or under way: the connection
            # works (it is not "last call failed"), and after an earlier call that may have
            # reached the vendor, the refusal proves that call went through.
            note_connection(run.connection, now=now)
            if earlier_call_may_have_reached_vendor(run):
                transition(
                    run,
                    RunState.SUCCEEDED,
                    # A sweeper may have presumed this worker dead meanwhile; the answer counts.
                    from_states={RunState.SENDING, RunState.OUTCOME_UNKNOWN},
                    actor=WORKER,
                    reason=duplicate,
                    failure_class="",
                    failure_code="",
                    failure_message="",
                    needs_person=False,
                    result={**run.result, "reconciliation": duplicate},
                )
                return "succeeded: an earlier call went through"
        else:
            note_connection(run.connection, error=f"{error.code}: {error.message}", now=now)
        details = {
            "failure_class": failure.value,
            "failure_code": error.code,
            "failure_message": failure_text(error),
        }
        retryable = failure in (FailureClass.NOT_SENT, FailureClass.THROTTLED) or (
            failure is FailureClass.SERVER_ERROR and operation.retry_server_errors
        )
        if failure is FailureClass.NOT_SENT:
            # Nothing reached the vendor: give back a window we took for it.
            limiter = rate_limiter()
            for rule in operation.rate_rules(run.connection, secrets):
                if rule.window:
                    limiter.release_window(rule)
        if retryable and attempts < max_send_attempts():
            wait = (
                error.retry_after
                if failure is FailureClass.THROTTLED and error.retry_after
                else send_backoff(attempts)
            )
            moved = transition(
                run,
                RunState.QUEUED,
                from_states={RunState.SENDING},
                actor=WORKER,
                reason=f"{failure.value}: retry in {wait:.0f}s",
                next_attempt_at=now + timedelta(seconds=wait),
                **details,
            )
            if moved:
                enqueue("send", run.pk, wait)
            return f"retry after {failure.value}"
        if failure is FailureClass.REJECTED or (retryable and attempts >= max_send_attempts()):
            if retryable:
                details["failure_message"] = (
                    f"Gave up after {attempts} attempts. {details['failure_message']}"
                )
            transition(
                run,
                RunState.FAILED,
                from_states={RunState.SENDING},
                actor=WORKER,
                reason=error.code,
                **details,
            )
            return f"failed: {error.code}"
        # Outcome unknown, or a server error where a retry could send twice.
        automatic = operation.reconciles_automatically
        reconcile_after = None
        if automatic:
            windows = [
                r.period_seconds for r in operation.rate_rules(run.connection, secrets) if r.window
            ]
            reconcile_after = (run.sent_at or now) + timedelta(seconds=max(windows, default=0) + 5)
        if automatic:
            # The engine itself asks again: advice meant for a person would contradict it.
            details["failure_message"] = failure_text(error, with_advice=False)
        moved = transition(
            run,
            RunState.OUTCOME_UNKNOWN,
            from_states={RunState.SENDING},
            actor=WORKER,
            reason=error.code,
            needs_person=not automatic,
            reconcile_after=reconcile_after,
            **details,
        )
        if moved and automatic and reconcile_after is not None:
            enqueue("reconcile", run.pk, (reconcile_after - now).total_seconds())
    return f"outcome unknown: {error.code}"


def give_to_person(run: Run, message: str) -> None:
    Run.objects.filter(pk=run.pk).update(
        needs_person=True, failure_message=message, updated_at=utc_now()
    )
    record_audit_event(
        actor=WORKER,
        tenant=run.tenant,
        action="run.needs_person",
        object_type="run",
        object_id=run.pk,
        summary={"reason": message},
    )


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
