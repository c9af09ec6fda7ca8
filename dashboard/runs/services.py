"""The run engine's writes: request, approve, send, poll, reconcile, sweep.

Rules that make a run safe to send exactly once:
- every state change is a compare-and-set (`UPDATE ... WHERE state IN (...)`) with its audit row
  in the same transaction;
- a worker moves a run from queued to sending under a row lock before it talks to the vendor,
  and a worker that finds a run past queued does not send it;
- an unknown outcome is never retried blindly: it is reconciled (TriggerDaily asks again within
  the same UTC day) or put before a person;
- tasks are enqueued on commit, so no task sees a row that is not there yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.views.decorators.debug import sensitive_variables

from dashboard.audit import Actor, record_audit_event
from dashboard.clock import next_utc_midnight, utc_now
from dashboard.crypto import CredentialDecryptionError, decrypt_secret
from dashboard.models import Permission, Tenant, VendorConnection
from dashboard.runs.models import (
    Approval,
    Run,
    RunAttempt,
    RunState,
)
from dashboard.runs.operations import PollResult, RunOperation, SendResult, operation_for
from dashboard.runs.rate_limits import acquire_all, rate_limiter
from dashboard.vendors.http import ConfigurationError, Exchange, FailureClass, VendorError

logger = logging.getLogger(__name__)

WORKER = Actor.system("worker")
SWEEPER = Actor.system("sweeper")
# Countdowns stay far below the broker's visibility timeout (see README "Workers"); longer waits
# are picked up again by the sweeper from next_attempt_at.
MAX_COUNTDOWN_SECONDS = 15 * 60
STALE_QUEUED_SECONDS = 60
STALE_POLL_SECONDS = 60
# A success is written to the connection row at most this often: every worker writing the same
# row on every send made them queue on its lock.
NOTE_SUCCESS_EVERY_SECONDS = 30


def max_send_attempts() -> int:
    return getattr(settings, "RUN_MAX_SEND_ATTEMPTS", 5)


class RunActionError(Exception):
    """A person asked for something the run's state or the guardrails do not allow."""


@dataclass
class ProbableDuplicate(Exception):
    """An identical run was sent recently; the vendor does not deduplicate."""

    existing: Run

    def __str__(self) -> str:
        return (
            f"An identical run (#{self.existing.pk}, {self.existing.get_state_display().lower()}) was "
            f"requested at {self.existing.created_at:%Y-%m-%d %H:%M UTC}. Send anyway?"
        )


def parameters_hash(*, operation: str, connection_id: int, parameters: dict[str, Any]) -> str:
    """A stable fingerprint of what would be sent, for approvals and duplicate detection."""
    canonical = json.dumps(
        {"operation": operation, "connection": connection_id, "parameters": parameters},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# -- secrets ----------------------------------------------------------------------------------

_MAX_DECRYPTED = 256
_decrypted: dict[tuple[tuple[str, ...], str], str] = {}
_decrypted_lock = threading.Lock()


@sensitive_variables()
def connection_secrets(connection: VendorConnection) -> dict[str, str]:
    """dashboard.services.connection_secrets, each stored value decrypted once per process.

    Keyed by the stored ciphertext and the configured keys, so a changed secret or key is a new
    entry and an unreadable one still raises CredentialDecryptionError. Process memory only;
    never logged.
    """
    keys = tuple(settings.CREDENTIALS_KEYS)
    secrets: dict[str, str] = {}
    for name, stored in connection.secrets.values_list("name", "encrypted_value"):
        value = _decrypted.get((keys, stored))
        if value is None:
            value = decrypt_secret(stored)
            with _decrypted_lock:
                if len(_decrypted) >= _MAX_DECRYPTED:
                    _decrypted.pop(next(iter(_decrypted)))
                _decrypted[(keys, stored)] = value
        secrets[name] = value
    return secrets


# -- state changes ----------------------------------------------------------------------------


def _transition(
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
    now = utc_now()
    if to_state in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED):
        fields.setdefault("finished_at", now)
    with transaction.atomic():
        changed = Run.objects.filter(pk=run.pk, state__in=list(from_states)).update(
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


def _batch_of(run: Run) -> tuple[int, str] | None:
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
    return _transition(
        run,
        RunState.FAILED,
        from_states=from_states,
        actor=actor,
        reason=reason or message,
        failure_class=failure_class,
        failure_code=code,
        failure_message=message,
    )


def _enqueue(
    task_name: str, run_id: int, countdown: float = 0, *, batch: tuple[int, str] | None = None
) -> None:
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
    _enqueue("send", run.pk, batch=_batch_of(run))


def _backoff(attempt: int, *, base: float = 2.0, cap: float = 120.0) -> float:
    return min(cap, base ** max(0, attempt - 1) * base)


def poll_backoff(poll_count: int) -> float:
    """About 1 s at first, doubling to 30 s."""
    return min(30.0, 2.0 ** max(0, poll_count - 1))


# -- requesting -------------------------------------------------------------------------------


def run_submit(
    *,
    actor: Actor,
    tenant: Tenant,
    connection: VendorConnection,
    operation: str,
    parameters: dict[str, Any],
    idempotency_key: str,
    approval_required: bool,
    send_anyway: bool = False,
    attestation: str = "",
    utc_date: Any = None,
    check_duplicates: bool = True,
) -> Run:
    """Record a requested vendor call; queue it now, or hold it for approval.

    The same idempotency key always yields the same run (a double click, a resubmitted form).
    A run identical to a recent one raises ProbableDuplicate unless `send_anyway`.
    """
    if connection.tenant_id != tenant.pk:
        raise ValidationError("That connection belongs to another tenant.")
    if not connection.is_active:
        raise ValidationError({"connection": f"Connection {connection.name} is inactive."})
    idempotency_key = (idempotency_key or "").strip()
    if not idempotency_key or len(idempotency_key) > 80:
        raise ValidationError("A request needs an idempotency key of 1 to 80 characters.")
    run_operation = operation_for(operation)
    if connection.kind != run_operation.vendor_kind:
        raise ValidationError(
            {"connection": f"{connection.name} is not a {run_operation.vendor_kind} connection."}
        )

    existing = Run.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing

    cleaned = run_operation.clean_parameters(parameters, connection)
    fingerprint = parameters_hash(
        operation=operation, connection_id=connection.pk, parameters=cleaned
    )
    now = utc_now()
    duplicate = None
    if check_duplicates and tenant.duplicate_window_minutes:
        duplicate = (
            Run.objects.filter(
                tenant=tenant,
                parameters_hash=fingerprint,
                created_at__gte=now - timedelta(minutes=tenant.duplicate_window_minutes),
            )
            .exclude(state__in=[RunState.FAILED, RunState.CANCELLED, RunState.DRAFT])
            # A concurrent submission of this same form is this request, not a duplicate of it;
            # the unique key settles which one is saved.
            .exclude(idempotency_key=idempotency_key)
            .order_by("-created_at")
            .first()
        )
        if duplicate is not None and not send_anyway:
            raise ProbableDuplicate(duplicate)

    expires = now + timedelta(minutes=tenant.approval_valid_minutes)
    if utc_date is not None:
        expires = min(expires, next_utc_midnight(now))
    state = RunState.AWAITING_APPROVAL if approval_required else RunState.QUEUED
    run = Run(
        tenant=tenant,
        connection=connection,
        operation=operation,
        parameters=cleaned,
        parameters_hash=fingerprint,
        idempotency_key=idempotency_key,
        state=state,
        utc_date=utc_date,
        requested_by=actor.user if actor.user is not None and actor.user.is_authenticated else None,
        requested_by_label=actor.display,
        requested_at=now,
        approval_required=approval_required,
        approval_expires_at=expires if approval_required else None,
        attestation=attestation,
        send_anyway=bool(send_anyway and duplicate is not None),
        duplicate_of=duplicate if send_anyway else None,
    )
    try:
        with transaction.atomic():
            run.save()
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="run.requested",
                object_type="run",
                object_id=run.pk,
                summary={
                    "operation": operation,
                    "connection": connection.name,
                    "parameters": cleaned,
                    "state": state,
                    "attestation": attestation,
                    "send_anyway": run.send_anyway,
                    "duplicate_of": duplicate.pk if duplicate and send_anyway else None,
                },
            )
            if state == RunState.QUEUED:
                _enqueue("send", run.pk, batch=_batch_of(run))
    except IntegrityError:
        existing = Run.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        raise RunActionError(
            "Another daily trigger for this tenant is already in flight or succeeded today."
        ) from None
    return run


def run_approve(*, actor: Actor, run: Run, parameters_hash_seen: str, comment: str = "") -> Run:
    """A second person approves the exact parameters they saw; the run is queued at once."""
    now = utc_now()
    with transaction.atomic():
        locked = Run.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=run.pk)
        if locked.state != RunState.AWAITING_APPROVAL:
            raise RunActionError(
                f"This run is {locked.get_state_display().lower()}; there is nothing to approve."
            )
        if actor.user is None or (
            locked.requested_by_id is not None and locked.requested_by_id == actor.user.pk
        ):
            raise RunActionError(
                "The requester cannot approve their own request: a second person must."
            )
        membership = actor.user.memberships.filter(tenant=locked.tenant).first()
        if membership is None or not membership.can(Permission.APPROVE):
            raise RunActionError("Only an operator of this tenant can approve.")
        if parameters_hash_seen != locked.parameters_hash:
            raise RunActionError(
                "The parameters changed since you opened this page. Review them again."
            )
        expired = bool(locked.approval_expires_at and now >= locked.approval_expires_at)
        if not expired:
            problem = operation_for(locked.operation).approval_problem(locked, membership)
            if problem:
                raise RunActionError(problem)
            _approve_locked(actor=actor, run=locked, now=now, comment=comment)
    if expired:
        # Outside the approval's transaction: the expiry is recorded even though we refuse.
        _transition(
            locked,
            RunState.CANCELLED,
            from_states={RunState.AWAITING_APPROVAL},
            actor=actor,
            reason="the request expired before approval",
            failure_code="approval_expired",
            failure_message="The request expired before anyone approved it. Request it again.",
        )
        raise RunActionError("This request has expired. Ask for a new one.")
    return locked


def _approve_locked(*, actor: Actor, run: Run, now: datetime, comment: str) -> None:
    """Record the approval and queue the run; the caller holds the run's row lock."""
    Approval.objects.create(
        run=run,
        decided_by=actor.user,
        decision=Approval.Decision.APPROVED,
        parameters_hash=run.parameters_hash,
        comment=comment,
        decided_at=now,
        expires_at=run.approval_expires_at,
    )
    try:
        with transaction.atomic():
            moved = _transition(
                run,
                RunState.QUEUED,
                from_states={RunState.AWAITING_APPROVAL},
                actor=actor,
                action="run.approved",
                extra_summary={"comment": comment, "parameters_hash": run.parameters_hash},
            )
    except IntegrityError:
        raise RunActionError(
            "Another daily trigger for this tenant is already in flight or succeeded today."
        ) from None
    if not moved:
        raise RunActionError("Someone else decided on this run first.")
    _enqueue("send", run.pk, batch=_batch_of(run))


def run_reject(*, actor: Actor, run: Run, comment: str = "") -> Run:
    """A second person declines the request; nothing is sent."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.state != RunState.AWAITING_APPROVAL:
            raise RunActionError("Only a request awaiting approval can be rejected.")
        if actor.user is None:
            raise RunActionError("A person must reject.")
        Approval.objects.create(
            run=locked,
            decided_by=actor.user,
            decision=Approval.Decision.REJECTED,
            parameters_hash=locked.parameters_hash,
            comment=comment,
            decided_at=utc_now(),
        )
        _transition(
            locked,
            RunState.CANCELLED,
            from_states={RunState.AWAITING_APPROVAL},
            actor=actor,
            action="run.rejected",
            reason=comment or "rejected",
            failure_code="rejected_by_approver",
            failure_message=f"Rejected by {actor.display}" + (f": {comment}" if comment else "."),
        )
    return locked


def run_cancel(*, actor: Actor, run: Run) -> Run:
    """Withdraw a run that has not been sent."""
    moved = _transition(
        run,
        RunState.CANCELLED,
        from_states={RunState.DRAFT, RunState.AWAITING_APPROVAL, RunState.QUEUED},
        actor=actor,
        action="run.cancelled",
        failure_code="cancelled",
        failure_message=f"Cancelled by {actor.display}.",
    )
    if not moved:
        run.refresh_from_db()
        raise RunActionError(
            f"This run is {run.get_state_display().lower()} and can no longer be cancelled."
        )
    return run


def run_change_parameters(*, actor: Actor, run: Run, parameters: dict[str, Any]) -> Run:
    """Change what an unapproved request will send; any approval must then be given anew."""
    with transaction.atomic():
        locked = (
            Run.objects.select_for_update(of=("self",)).select_related("connection").get(pk=run.pk)
        )
        if locked.state != RunState.AWAITING_APPROVAL:
            raise RunActionError("Only a request awaiting approval can be changed.")
        cleaned = operation_for(locked.operation).clean_parameters(parameters, locked.connection)
        old = locked.parameters
        locked.parameters = cleaned
        locked.parameters_hash = parameters_hash(
            operation=locked.operation, connection_id=locked.connection_id, parameters=cleaned
        )
        locked.save(update_fields=["parameters", "parameters_hash", "updated_at"])
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="run.parameters_changed",
            object_type="run",
            object_id=locked.pk,
            summary={"from": old, "to": cleaned},
        )
    return locked


# -- sending ----------------------------------------------------------------------------------


def _approval_problem(run: Run, now: datetime) -> str:
    if not run.approval_required:
        return ""
    approval = run.approvals.filter(decision=Approval.Decision.APPROVED).first()
    if approval is None:
        return "The run has no approval."
    if approval.parameters_hash != run.parameters_hash:
        return "The parameters changed after approval; a new approval is needed."
    if approval.expires_at and now >= approval.expires_at:
        return "The approval expired before the run could be sent; request it again."
    return ""


def _record_attempt(
    run: Run,
    *,
    purpose: str,
    started_at: datetime,
    exchange: Exchange | None,
    error: VendorError | None = None,
    outcome: str = "",
) -> RunAttempt:
    return RunAttempt.objects.create(
        run=run,
        number=attempt_number(run),
        purpose=purpose,
        started_at=started_at,
        latency_ms=exchange.latency_ms if exchange else None,
        exchange=exchange.as_dict() if exchange else {},
        status_code=exchange.status_code if exchange else None,
        failure_class=error.failure_class.value if error else "",
        failure_code=error.code if error else "",
        outcome=(outcome or (error.message if error else ""))[:300],
    )


def attempt_number(run: Run) -> int:
    """The number of the attempt being recorded now (1, 2, ...), without asking the database.

    Every recorded attempt follows exactly one increment of attempt_count (send, reconcile) or
    poll_count (poll), so their sum is one more than the previous attempt's number (or more, when
    a crashed worker's increment left no attempt behind). `run` must hold the counters as of the
    increment this attempt follows.
    """
    return run.attempt_count + run.poll_count


def _note_connection(
    connection: VendorConnection, *, error: str = "", now: datetime | None = None
) -> None:
    now = now or utc_now()
    if error:
        VendorConnection.objects.filter(pk=connection.pk).update(
            last_error=error[:500], last_error_at=now
        )
        return
    fresh = now - timedelta(seconds=NOTE_SUCCESS_EVERY_SECONDS)
    if (
        not connection.last_error
        and connection.last_success_at
        and connection.last_success_at >= fresh
    ):
        return  # as read at the start of this task: the UPDATE would change nothing that matters
    (
        VendorConnection.objects.filter(pk=connection.pk)
        .filter(Q(last_success_at__isnull=True) | Q(last_success_at__lt=fresh) | ~Q(last_error=""))
        .exclude(last_success_at__gt=now)
        .update(last_success_at=now, last_error="")
    )
    connection.last_success_at = now
    connection.last_error = ""


def _failure_text(error: VendorError) -> str:
    text = error.message
    if error.vendor_message and error.vendor_message not in text:
        text = f"{text} (vendor said: {error.vendor_message})"
    advice = getattr(error, "advice", "")
    if advice:
        text = f"{text} {advice}"
    return text


def run_send(*, run_id: int, slot: int | None = None) -> str:
    """Send a queued run once. Returns what happened, for logs; never raises for vendor errors.

    A run of a batched operation is sent by a dispatcher for its connection, run here: `slot`
    names the wake-up flag the message was enqueued under (None: a retry or an older message).
    """
    head = Run.objects.filter(pk=run_id).values_list("state", "operation", "connection_id").first()
    if head is None:
        return "missing"
    state, operation_name, connection_id = head
    batched = operation_for(operation_name).batch_size > 1
    # A woken dispatcher runs even when its run went out meanwhile: it holds a wake-up flag that
    # only its own last look may clear, or later submissions would wait for the sweeper.
    if state != RunState.QUEUED and not (batched and slot is not None):
        return f"skipped: already {state}"
    if batched:
        from dashboard.runs import dispatch

        return dispatch.dispatch_sends(
            connection_id=connection_id, operation=operation_name, slot=slot, run_id=run_id
        )
    now = utc_now()
    with transaction.atomic():
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
        if run.next_attempt_at and run.next_attempt_at > now + timedelta(milliseconds=50):
            _enqueue("send", run.pk, (run.next_attempt_at - now).total_seconds())
            return "not yet due"
        operation = operation_for(run.operation)
        problem = _approval_problem(run, now) or operation.pre_send_problem(run)
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
        wait = acquire_all(operation.rate_rules(run.connection, secrets))
        if wait > 0:
            Run.objects.filter(pk=run.pk).update(next_attempt_at=now + timedelta(seconds=wait))
            _enqueue("send", run.pk, wait)
            return f"rate limited for {wait:.3f}s"
        _transition(
            run,
            RunState.SENDING,
            from_states={RunState.QUEUED},
            actor=WORKER,
            # The row is locked since the SELECT above: a plain value needs no read-back.
            attempt_count=run.attempt_count + 1,
            next_attempt_at=None,
            sent_at=now,
        )
    return _perform_send(run, operation, secrets)


POLL_DEADLINE_MESSAGE = (
    "The vendor accepted the run but never reported a final status. Check in the vendor's UI."
)


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


def expire_polling(run: Run) -> bool:
    """The poll deadline passed: a person must check in the vendor's UI."""
    return _transition(
        run,
        RunState.OUTCOME_UNKNOWN,
        from_states={RunState.ACCEPTED},
        actor=WORKER,
        reason="the vendor did not report a final status before the deadline",
        needs_person=True,
        failure_code="poll_deadline",
        failure_message=POLL_DEADLINE_MESSAGE,
    )


def _perform_send(run: Run, operation: RunOperation, secrets: dict[str, str]) -> str:
    started = utc_now()
    attempt_number = run.attempt_count
    try:
        result = operation.send(run.connection, secrets, run)
    except Exception as error:
        return after_send_exception(run, operation, error, started, secrets)
    with transaction.atomic():
        _record_attempt(
            run,
            purpose=RunAttempt.Purpose.SEND,
            started_at=started,
            exchange=result.exchange,
            outcome=result.outcome,
        )
        _note_connection(run.connection)
        to_state, fields = send_outcome(operation, result, utc_now())
        # A sweeper may have presumed this worker dead meanwhile; the answer still counts.
        moved = _transition(
            run,
            to_state,
            from_states={RunState.SENDING, RunState.OUTCOME_UNKNOWN},
            actor=WORKER,
            reason=result.outcome,
            **fields,
        )
        if to_state == RunState.ACCEPTED:
            if moved:
                _enqueue("poll", run.pk, 1.0)
            return "accepted"
    logger.info("run %s attempt %s succeeded", run.pk, attempt_number)
    return "succeeded"


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
        return _after_send_failure(run, operation, error, started, secrets)
    if isinstance(error, ConfigurationError):
        with transaction.atomic():
            _record_attempt(
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
    return _after_send_failure(run, operation, unknown, started, secrets)


def _after_send_failure(
    run: Run,
    operation: RunOperation,
    error: VendorError,
    started: datetime,
    secrets: dict[str, str],
) -> str:
    failure = error.failure_class
    now = utc_now()
    with transaction.atomic():
        _record_attempt(
            run,
            purpose=RunAttempt.Purpose.SEND,
            started_at=started,
            exchange=error.exchange,
            error=error,
        )
        _note_connection(run.connection, error=f"{error.code}: {error.message}", now=now)
        run.refresh_from_db()
        attempts = run.attempt_count
        details = {
            "failure_class": failure.value,
            "failure_code": error.code,
            "failure_message": _failure_text(error),
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
                else _backoff(attempts)
            )
            moved = _transition(
                run,
                RunState.QUEUED,
                from_states={RunState.SENDING},
                actor=WORKER,
                reason=f"{failure.value}: retry in {wait:.0f}s",
                next_attempt_at=now + timedelta(seconds=wait),
                **details,
            )
            if moved:
                _enqueue("send", run.pk, wait)
            return f"retry after {failure.value}"
        if failure is FailureClass.REJECTED or (retryable and attempts >= max_send_attempts()):
            if retryable:
                details["failure_message"] = (
                    f"Gave up after {attempts} attempts. {details['failure_message']}"
                )
            _transition(
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
        moved = _transition(
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
            _enqueue("reconcile", run.pk, (reconcile_after - now).total_seconds())
    return f"outcome unknown: {error.code}"


# -- reconciliation ---------------------------------------------------------------------------


def run_reconcile(*, run_id: int) -> str:
    """Ask the vendor again whether an unknown outcome went through (automatic operations only)."""
    now = utc_now()
    with transaction.atomic():
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
        if run.reconcile_after and run.reconcile_after > now + timedelta(milliseconds=50):
            _enqueue("reconcile", run.pk, (run.reconcile_after - now).total_seconds())
            return "not yet due"
        if run.utc_date is not None and now.date() != run.utc_date:
            _give_to_person(
                run,
                "The UTC day ended before the outcome could be checked. Check in the vendor's UI, then mark the run as sent or send it again.",
            )
            return "day ended"
        secrets = connection_secrets(run.connection)
        wait = acquire_all(operation.rate_rules(run.connection, secrets))
        if wait > 0:
            Run.objects.filter(pk=run.pk).update(reconcile_after=now + timedelta(seconds=wait))
            _enqueue("reconcile", run.pk, wait)
            return "rate window still open"
        _transition(
            run,
            RunState.SENDING,
            from_states={RunState.OUTCOME_UNKNOWN},
            actor=WORKER,
            reason="reconciling: asking the vendor again",
            attempt_count=run.attempt_count + 1,  # the row is locked since the SELECT above
        )
    started = utc_now()
    try:
        verdict = operation.reconcile(run.connection, secrets, run)
    except VendorError as error:
        with transaction.atomic():
            _record_attempt(
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
                if _transition(
                    run,
                    RunState.OUTCOME_UNKNOWN,
                    from_states={RunState.SENDING},
                    actor=WORKER,
                    reason=f"reconciliation inconclusive ({error.code}); asking again later",
                    reconcile_after=later,
                ):
                    _enqueue("reconcile", run.pk, wait)
                return "inconclusive"
            _transition(
                run,
                RunState.OUTCOME_UNKNOWN,
                from_states={RunState.SENDING},
                actor=WORKER,
                reason=error.code,
            )
            _give_to_person(
                run, f"Reconciliation got an answer that proves nothing: {_failure_text(error)}"
            )
        return "needs a person"
    with transaction.atomic():
        _record_attempt(
            run,
            purpose=RunAttempt.Purpose.RECONCILE,
            started_at=started,
            exchange=verdict.exchange,
            outcome=verdict.outcome,
        )
        if verdict.went_through or verdict.sent_now:
            _transition(
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
        _transition(
            run,
            RunState.OUTCOME_UNKNOWN,
            from_states={RunState.SENDING},
            actor=WORKER,
            reason=verdict.outcome,
        )
        _give_to_person(run, verdict.outcome)
    return "needs a person"


def _give_to_person(run: Run, message: str) -> None:
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


def run_mark_as_sent(*, actor: Actor, run: Run, comment: str) -> Run:
    """A person who checked with the vendor records that an unknown outcome did go through."""
    if not comment.strip():
        raise RunActionError("Say how you know it went through (e.g. what the vendor's UI shows).")
    moved = _transition(
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
    """A person who checked with the vendor decides the call did not go through: send it again."""
    if not comment.strip():
        raise RunActionError("Say how you know it did not go through.")
    now = utc_now()
    with transaction.atomic():
        moved = _transition(
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
        _enqueue("send", run.pk, batch=_batch_of(run))
    return run


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
            _enqueue("poll", run.pk, (run.next_poll_at - now).total_seconds())
            return "not yet due"
        if run.poll_deadline and now >= run.poll_deadline:
            expire_polling(run)
            return "deadline"
        secrets = connection_secrets(run.connection)
        wait = acquire_all(operation.rate_rules(run.connection, secrets))
        if wait > 0:
            Run.objects.filter(pk=run.pk).update(next_poll_at=now + timedelta(seconds=wait))
            _enqueue("poll", run.pk, wait)
            return "rate limited"
        Run.objects.filter(pk=run.pk).update(poll_count=F("poll_count") + 1)
        run.poll_count += 1
    started = utc_now()
    try:
        status = operation.poll(run.connection, secrets, run)
    except VendorError as error:
        wait = error.retry_after or poll_backoff(run.poll_count)
        with transaction.atomic():
            _record_attempt(
                run,
                purpose=RunAttempt.Purpose.POLL,
                started_at=started,
                exchange=error.exchange,
                error=error,
            )
            Run.objects.filter(pk=run.pk, state=RunState.ACCEPTED).update(
                next_poll_at=utc_now() + timedelta(seconds=wait), updated_at=utc_now()
            )
            _enqueue("poll", run.pk, wait)
        return f"poll failed: {error.code}"
    with transaction.atomic():
        _record_attempt(
            run,
            purpose=RunAttempt.Purpose.POLL,
            started_at=started,
            exchange=status.exchange,
            outcome=status.vendor_status,
        )
        to_state, fields = poll_outcome(run, status, utc_now())
        if to_state is not None:
            _transition(
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
        _enqueue("poll", run.pk, (fields["next_poll_at"] - utc_now()).total_seconds())
    return status.vendor_status


# -- the sweeper ------------------------------------------------------------------------------


def runs_sweep() -> dict[str, int]:
    """Find runs a crashed worker or a lost message left behind and move them on.

    Safe to run as often as wanted, on any number of machines: every action is a CAS or an
    idempotent enqueue.
    """
    now = utc_now()
    report = {"requeued": 0, "presumed_lost": 0, "polls": 0, "reconciles": 0, "expired": 0}

    stale = now - timedelta(seconds=STALE_QUEUED_SECONDS)
    for run in (
        Run.objects.filter(state=RunState.QUEUED, updated_at__lt=stale)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=now))
        .only("pk", "operation", "connection_id")[:500]
    ):
        with transaction.atomic():
            if Run.objects.filter(pk=run.pk, state=RunState.QUEUED).update(updated_at=now):
                _enqueue("send", run.pk, batch=_batch_of(run))
                report["requeued"] += 1

    for run in Run.objects.filter(state=RunState.SENDING).select_related("tenant", "connection")[
        :500
    ]:
        operation = operation_for(run.operation)
        if run.updated_at > now - timedelta(seconds=operation.max_send_seconds):
            continue
        reconcile_after = None
        if operation.reconciles_automatically:
            windows = [
                r.period_seconds
                for r in operation.rate_rules(run.connection, connection_secrets(run.connection))
                if r.window
            ]
            reconcile_after = (run.sent_at or now) + timedelta(seconds=max(windows, default=0) + 5)
        with transaction.atomic():
            moved = _transition(
                run,
                RunState.OUTCOME_UNKNOWN,
                from_states={RunState.SENDING},
                actor=SWEEPER,
                reason="the worker stopped while sending; the vendor may have received it",
                failure_class=FailureClass.OUTCOME_UNKNOWN,
                failure_code="worker_lost",
                failure_message="The worker stopped while sending; the vendor may have received the request.",
                needs_person=not operation.reconciles_automatically,
                reconcile_after=reconcile_after,
            )
            if moved:
                report["presumed_lost"] += 1
                if reconcile_after is not None:
                    _enqueue("reconcile", run.pk, max(0.0, (reconcile_after - now).total_seconds()))

    stale_poll = now - timedelta(seconds=STALE_POLL_SECONDS)
    for run in (
        Run.objects.filter(state=RunState.ACCEPTED)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lt=stale_poll))
        .only("pk", "operation", "connection_id")[:500]
    ):
        with transaction.atomic():
            if Run.objects.filter(pk=run.pk, state=RunState.ACCEPTED).update(
                next_poll_at=now, updated_at=now
            ):
                _enqueue("poll", run.pk, batch=_batch_of(run))
                report["polls"] += 1

    for run_id in Run.objects.filter(
        state=RunState.OUTCOME_UNKNOWN,
        needs_person=False,
        reconcile_after__lt=now - timedelta(seconds=30),
    ).values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            if Run.objects.filter(pk=run_id, state=RunState.OUTCOME_UNKNOWN).update(
                reconcile_after=now, updated_at=now
            ):
                _enqueue("reconcile", run_id)
                report["reconciles"] += 1

    for run in Run.objects.filter(
        state=RunState.AWAITING_APPROVAL, approval_expires_at__lte=now
    ).select_related("tenant")[:500]:
        if _transition(
            run,
            RunState.CANCELLED,
            from_states={RunState.AWAITING_APPROVAL},
            actor=SWEEPER,
            reason="expired before approval",
            failure_code="approval_expired",
            failure_message="The request expired before anyone approved it. Request it again.",
        ):
            report["expired"] += 1
    return report
