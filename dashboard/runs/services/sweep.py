"""The sweeper: moves on runs a crashed worker or a lost message left behind."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from dashboard.clock import utc_now
from dashboard.pauses.selectors import paused_scopes
from dashboard.runs import notifications
from dashboard.runs.attempts import (
    close_lost_attempt,
    close_unsent_attempt,
    lock_open_attempts,
)
from dashboard.runs.enqueue import batch_of, enqueue
from dashboard.runs.heartbeat import HEARTBEAT_TTL_SECONDS, workers_alive
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.operations import RunOperation, operation_for
from dashboard.runs.states import STALE_POLL_SECONDS, STALE_QUEUED_SECONDS, RunState
from dashboard.runs.transitions import SWEEPER, transition
from dashboard.tenancy.credentials import connection_secrets
from dashboard.vendors.http import FailureClass

logger = logging.getLogger(__name__)

# A re-check this overdue is presumed lost with a dead worker (its countdown message lived in
# that worker's memory) and is enqueued again. A duplicate is harmless: run_reconcile acts only
# on a run still in outcome unknown, under its row lock.
OVERDUE_RECONCILE_SECONDS = 3
# Calls that can make the vendor act (a poll only reads).
CALL_PURPOSES = [RunAttempt.Purpose.SEND, RunAttempt.Purpose.RECONCILE]


# -- the sweeper ------------------------------------------------------------------------------


def runs_sweep() -> dict[str, int]:
    """Find runs a crashed worker or a lost message left behind and move them on.

    Safe to run as often as wanted, on any number of machines: every action is a CAS or an
    idempotent enqueue.
    """
    now = utc_now()
    report = {
        "requeued": 0,
        "never_sent": 0,
        "presumed_lost": 0,
        "polls": 0,
        "reconciles": 0,
        "expired": 0,
    }

    # Held runs of a paused tenant or connection stay queued, and their re-checks wait: resuming
    # enqueues them. (Sending runs, polls and approval expiry go on as ever.)
    paused_tenants, paused_connections = paused_scopes()
    held = Q(tenant_id__in=paused_tenants) | Q(connection_id__in=paused_connections)

    stale = now - timedelta(seconds=STALE_QUEUED_SECONDS)
    for run in (
        Run.objects.filter(state=RunState.QUEUED, updated_at__lt=stale)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=now))
        .exclude(held)
        .only("pk", "operation", "connection_id")[:500]
    ):
        with transaction.atomic():
            if Run.objects.filter(pk=run.pk, state=RunState.QUEUED).update(updated_at=now):
                enqueue("send", run.pk, batch=batch_of(run))
                report["requeued"] += 1

    sending = list(
        Run.objects.filter(state=RunState.SENDING).select_related("tenant", "connection")[:500]
    )
    # Which process made each run's unanswered call, and which of those processes still live.
    callers = dict(
        RunAttempt.objects.filter(
            run__in=sending, finished_at__isnull=True, purpose__in=CALL_PURPOSES
        )
        .exclude(worker="")
        .values_list("run_id", "worker")
    )
    alive = workers_alive(set(callers.values()))
    # One send message per (connection, operation) whose runs went back to the queue.
    to_send: dict[tuple[int, str], int] = {}
    for run in sending:
        operation = operation_for(run.operation)
        caller = callers.get(run.pk)
        worker_gone = (
            alive is not None
            and caller is not None
            and alive.get(caller) is False
            # Its key outlived the process by HEARTBEAT_TTL_SECONDS: the run is older than that.
            and run.updated_at <= now - timedelta(seconds=HEARTBEAT_TTL_SECONDS)
        )
        if not worker_gone and run.updated_at > now - timedelta(seconds=operation.max_send_seconds):
            continue
        stopped = (
            f"The worker ({caller}) stopped while sending"
            if caller
            else "The worker stopped while sending"
        )
        with transaction.atomic():
            # Lock the run's open attempts before the run: every worker path records its
            # attempt, then moves the run. A worker answering just now (its call took longer
            # than max_send_seconds) is waited for instead of deadlocked with; its answer wins.
            # The lock also settles the race with a dispatcher marking the request started:
            # whichever commits first, the other sees it (dispatch._feed_sends).
            calls = [a for a in lock_open_attempts(run) if a.purpose in CALL_PURPOSES]
            if calls and all(call.request_started_at is None for call in calls):
                who = f"the worker ({caller})" if caller else "the worker"
                why = (
                    f"{who} stopped after claiming it"
                    if worker_gone
                    else f"{who} had not started it after {operation.max_send_seconds:.0f} s"
                )
                if _put_back_unsent(run, why):
                    to_send[(run.connection_id, run.operation)] = run.pk
                    report["never_sent"] += 1
                continue
            started = max(
                (call.request_started_at for call in calls if call.request_started_at),
                default=None,
            )
            if _presume_lost(run, operation, stopped, started, now):
                report["presumed_lost"] += 1
    for run_id in to_send.values():
        # A plain message, not a wake-up: a dead dispatcher's wake-up flag may still be set.
        # Its dispatcher sends every due queued run of the connection.
        enqueue("send", run_id)

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
                enqueue("poll", run.pk, batch=batch_of(run))
                report["polls"] += 1

    for run_id in (
        Run.objects.filter(
            state=RunState.OUTCOME_UNKNOWN,
            needs_person=False,
            reconcile_after__lt=now - timedelta(seconds=OVERDUE_RECONCILE_SECONDS),
        )
        .exclude(held)
        .values_list("pk", flat=True)[:500]
    ):
        with transaction.atomic():
            if Run.objects.filter(pk=run_id, state=RunState.OUTCOME_UNKNOWN).update(
                reconcile_after=now, updated_at=now
            ):
                enqueue("reconcile", run_id)
                report["reconciles"] += 1

    for run in Run.objects.filter(
        state=RunState.AWAITING_APPROVAL, approval_expires_at__lte=now
    ).select_related("tenant")[:500]:
        if transition(
            run,
            RunState.CANCELLED,
            from_states={RunState.AWAITING_APPROVAL},
            actor=SWEEPER,
            reason="expired before approval",
            failure_code="approval_expired",
            failure_message="The request expired before anyone approved it. Request it again.",
        ):
            report["expired"] += 1
            notifications.request_expired(run=run)
    return report


def _put_back_unsent(run: Run, why: str) -> bool:
    """A sending run whose request provably never started (no request_started_at on its open
    call): back to the queue, its attempt closed as not sent, saying `why` (the worker stopped
    after claiming it, ...). Inside the caller's transaction, with the run's open attempts
    locked: a dispatcher can no longer mark that request started, so it will not send it."""
    moved = transition(
        run,
        RunState.QUEUED,
        from_states={RunState.SENDING},
        actor=SWEEPER,
        reason=f"never sent: {why}; back in the queue",
        next_attempt_at=utc_now(),
    )
    if moved:
        close_unsent_attempt(
            run,
            outcome=f"Never sent: {why}, before its request started; nothing reached the "
            "vendor and the run went back to the queue.",
        )
    return moved


def _presume_lost(
    run: Run, operation: RunOperation, stopped: str, started: datetime | None, now: datetime
) -> bool:
    """A sending run whose request may have reached the vendor, with no answer recorded: to
    outcome unknown (reconciled, or before a person), with the evidence. Inside the caller's
    transaction, with the run's open attempts locked."""
    reconcile_after = None
    if operation.reconciles_automatically:
        windows = [
            r.period_seconds
            for r in operation.rate_rules(run.connection, connection_secrets(run.connection))
            if r.window
        ]
        reconcile_after = (run.sent_at or now) + timedelta(seconds=max(windows, default=0) + 5)
    evidence = ""
    if started is not None:
        milliseconds = f"{started.microsecond // 1000:03d}"
        evidence = f" (its request started at {started:%Y-%m-%d %H:%M:%S}.{milliseconds} UTC)"
    moved = transition(
        run,
        RunState.OUTCOME_UNKNOWN,
        from_states={RunState.SENDING},
        actor=SWEEPER,
        reason="the worker stopped while sending; the vendor may have received it",
        failure_class=FailureClass.OUTCOME_UNKNOWN,
        failure_code="worker_lost",
        failure_message=f"{stopped}{evidence} and no answer was recorded; the vendor may have "
        "received the request.",
        needs_person=not operation.reconciles_automatically,
        reconcile_after=reconcile_after,
    )
    if moved:
        close_lost_attempt(
            run,
            outcome=f"No answer recorded: {stopped[0].lower()}{stopped[1:]}{evidence} during "
            "this call; the vendor may have received it.",
        )
        if reconcile_after is not None:
            enqueue("reconcile", run.pk, max(0.0, (reconcile_after - now).total_seconds()))
    return moved
