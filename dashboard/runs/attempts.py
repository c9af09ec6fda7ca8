"""The record of each call to a vendor (RunAttempt) and of the connection's health."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q

from dashboard.clock import utc_now
from dashboard.models import VendorConnection
from dashboard.pauses.models import SendingPause
from dashboard.pauses.selectors import sending_pause_for
from dashboard.runs.heartbeat import ensure_heartbeat
from dashboard.runs.models import (
    Run,
    RunAttempt,
)
from dashboard.runs.operations import operation_for
from dashboard.vendors.http import Exchange, FailureClass, VendorError

logger = logging.getLogger(__name__)

# How long a worker holding a vendor's answer keeps trying to write it down while the database is
# unreachable: the vendor acted, and a brief outage must not turn its answer into "outcome
# unknown, ask a person" (the proofs under faults, docs/reliability.md). Past this, the sweeper's
# rules take over as before.
RECORD_RETRY_SECONDS = 60.0


def record_answer[Answer](
    record: Callable[[], Answer], *, before_retry: Callable[[], None] | None = None
) -> Answer:
    """Run `record` (the transaction that writes a vendor's answer), again after a lost database
    connection, until it commits or RECORD_RETRY_SECONDS pass.

    Safe to repeat: the transaction rolled back as a whole, and its state change is a
    compare-and-set that also accepts a run the sweeper meanwhile moved to outcome unknown.
    Inside an outer transaction (a test's) it cannot reconnect, so it raises at once.
    `before_retry` restores what the failed try changed in memory (the runs' states, which the
    state change's audit row reads as "from").
    """
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    wait = 0.5
    while True:
        try:
            return record()
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block or time.monotonic() + wait > deadline:
                raise
            logger.warning("database unreachable while recording an answer; again in %.1f s", wait)
            connection.close()
            time.sleep(wait)
            wait = min(wait * 2, 8.0)
            if before_retry is not None:
                try:
                    before_retry()
                except (OperationalError, InterfaceError):
                    connection.close()  # still unreachable: the next try says so


# A success is written to the connection row at most this often: every worker writing the same
# row on every send made them queue on its lock.
NOTE_SUCCESS_EVERY_SECONDS = 30


def new_attempt(run: Run, *, purpose: str, started_at: datetime | None = None) -> RunAttempt:
    """The unsaved record of a call about to leave for the vendor (see open_attempt)."""
    return RunAttempt(
        run=run,
        number=attempt_number(run),
        purpose=purpose,
        started_at=started_at or utc_now(),
        # Its heartbeat is alive before the row commits (dashboard.runs.heartbeat).
        worker=ensure_heartbeat(),
        request={
            "operation": run.operation,
            "description": operation_for(run.operation).describe(run.parameters),
            "parameters_hash": run.parameters_hash,
        },
    )


def open_attempt(run: Run, *, purpose: str, started_at: datetime | None = None) -> RunAttempt:
    """Record a call before it leaves: what, when, from which worker; record_attempt completes it.

    Call it in the transaction that counts the call (attempt_count or poll_count, under the
    run's row lock), so the row commits with the count, before any byte goes out: a worker
    killed mid-call still leaves the call an auditor must see, and numbers have no gaps.
    """
    attempt = new_attempt(run, purpose=purpose, started_at=started_at)
    attempt.save(force_insert=True)
    return attempt


def finished_fields(
    *,
    exchange: Exchange | None,
    error: VendorError | None = None,
    outcome: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The fields that complete an attempt once the call's answer (or failure) is known."""
    return {
        "latency_ms": exchange.latency_ms if exchange else None,
        "exchange": exchange.as_dict() if exchange else {},
        "status_code": exchange.status_code if exchange else None,
        "failure_class": error.failure_class.value if error else "",
        "failure_code": error.code if error else "",
        "outcome": (outcome or (error.message if error else ""))[:300],
        "finished_at": now or utc_now(),
    }


def record_attempt(
    run: Run,
    *,
    purpose: str,
    started_at: datetime,
    exchange: Exchange | None,
    error: VendorError | None = None,
    outcome: str = "",
) -> None:
    """Complete the run's current attempt (opened before the call) with what came back.

    An attempt nobody opened (a caller that records after the fact) is created here whole.
    `run` must hold the counters as of the call (see attempt_number).
    """
    fields = finished_fields(exchange=exchange, error=error, outcome=outcome)
    number = attempt_number(run)
    # Whatever the sweeper concluded about this attempt meanwhile, the real answer wins.
    if not RunAttempt.objects.filter(run=run, number=number).update(**fields):
        RunAttempt.objects.create(
            run=run, number=number, purpose=purpose, started_at=started_at, **fields
        )


def lock_open_attempts(run: Run) -> list[RunAttempt]:
    """Lock the run's unanswered attempts (inside the caller's transaction), in the order the
    workers lock them: attempts first, then the run. Returns them as locked (current values)."""
    return list(
        RunAttempt.objects.select_for_update()
        .filter(run=run, finished_at__isnull=True)
        .order_by("number")
        .only("pk", "number", "purpose", "worker", "request_started_at")
    )


def mark_requests_started(attempt_ids: list[int]) -> set[int]:
    """Record that these open send attempts' requests are about to leave; the ids it recorded.

    One UPDATE for a whole grant of rate places, committed before any of their bytes go out. A
    compare-and-set with the sweeper: an attempt it already closed (its run put back in the
    queue) is not marked and must not be sent; once marked, the sweeper never requeues it.
    """
    if not attempt_ids:
        return set()
    if connection.vendor != "postgresql":
        return _mark_requests_started_one_statement_at_a_time(attempt_ids)
    table = RunAttempt._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET request_started_at = statement_timestamp() "  # noqa: S608
            "WHERE id = ANY(%s) AND finished_at IS NULL AND request_started_at IS NULL "
            "RETURNING id",
            [list(attempt_ids)],
        )
        return {row[0] for row in cursor.fetchall()}


def mark_requests_started_unless_paused(
    attempt_ids: list[int], *, tenant_id: int, connection_id: int
) -> set[int] | None:
    """mark_requests_started, unless an open pause stops this connection (its tenant's or its
    own): then nothing is marked and the answer is None.

    The caller holds the tenant's pause lock (pauses.selectors.lock_tenant_sending) taken in an
    earlier statement of its transaction, so this statement's snapshot sees every pause that
    committed before the lock was granted. In PostgreSQL the check and the mark are one
    statement: one round trip per grant of places rather than an ORM read and an UPDATE.
    """
    if connection.vendor != "postgresql":
        if sending_pause_for(tenant_id=tenant_id, connection_id=connection_id) is not None:
            return None
        return mark_requests_started(attempt_ids)
    if not attempt_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH pause AS (
                    SELECT id FROM {SendingPause._meta.db_table}
                    WHERE tenant_id = %s AND resumed_at IS NULL
                      AND (connection_id IS NULL OR connection_id = %s)
                    LIMIT 1
                ),
                marked AS (
                    UPDATE {RunAttempt._meta.db_table}
                    SET request_started_at = statement_timestamp()
                    WHERE id = ANY(%s) AND finished_at IS NULL AND request_started_at IS NULL
                      AND NOT EXISTS (SELECT 1 FROM pause)
                    RETURNING id
                )
                SELECT id, FALSE FROM marked UNION ALL SELECT id, TRUE FROM pause""",  # noqa: S608
            [tenant_id, connection_id, list(attempt_ids)],
        )
        rows = cursor.fetchall()
    if any(paused for _id, paused in rows):
        return None
    return {row[0] for row in rows}


def _mark_requests_started_one_statement_at_a_time(attempt_ids: list[int]) -> set[int]:
    # make demo's SQLite has neither statement_timestamp() nor arrays. The UPDATE takes SQLite's
    # one write lock before the read-back, so within this transaction nobody (the sweeper
    # included) changes these rows in between: the ids carrying this call's moment are the ones
    # it marked.
    moment = utc_now()
    with transaction.atomic():
        RunAttempt.objects.filter(
            pk__in=attempt_ids, finished_at__isnull=True, request_started_at__isnull=True
        ).update(request_started_at=moment)
        return set(
            RunAttempt.objects.filter(pk__in=attempt_ids, request_started_at=moment).values_list(
                "pk", flat=True
            )
        )


def close_unsent_attempt(run: Run, *, outcome: str) -> int:
    """Close the run's open attempts whose request provably never left (the sweeper's verdict
    when their worker died first): not sent, nothing reached the vendor. How many were closed."""
    return RunAttempt.objects.filter(
        run=run, finished_at__isnull=True, request_started_at__isnull=True
    ).update(
        failure_class=FailureClass.NOT_SENT.value,
        failure_code="worker_lost_before_sending",
        outcome=outcome[:300],
        finished_at=utc_now(),
    )


def close_lost_attempt(run: Run, *, outcome: str) -> int:
    """Mark the run's unanswered attempts as lost with their worker (the sweeper's verdict):
    the vendor may have received them. How many were closed."""
    return RunAttempt.objects.filter(run=run, finished_at__isnull=True).update(
        failure_class=FailureClass.OUTCOME_UNKNOWN.value,
        failure_code="worker_lost",
        outcome=outcome[:300],
        finished_at=utc_now(),
    )


def earlier_call_may_have_reached_vendor(run: Run) -> bool:
    """Whether a send or reconciliation before the current attempt may have reached the vendor
    (its answer was lost, it hit a server error, or its worker died mid-call)."""
    return (
        RunAttempt.objects.filter(
            run=run,
            number__lt=attempt_number(run),
            purpose__in=[RunAttempt.Purpose.SEND, RunAttempt.Purpose.RECONCILE],
        )
        .filter(
            Q(finished_at__isnull=True)
            | Q(
                failure_class__in=[
                    FailureClass.OUTCOME_UNKNOWN.value,
                    FailureClass.SERVER_ERROR.value,
                ]
            )
        )
        .exists()
    )


def attempt_number(run: Run) -> int:
    """The number of the attempt being recorded now (1, 2, ...), without asking the database.

    Every attempt is opened in the transaction of exactly one increment of attempt_count (send,
    reconcile) or poll_count (poll), so their sum is one more than the previous attempt's number.
    `run` must hold the counters as of the increment this attempt follows.
    """
    return run.attempt_count + run.poll_count


def note_connection(
    connection: VendorConnection, *, error: str = "", now: datetime | None = None
) -> None:
    """Note on the connection row that a call failed (`error`) or succeeded (at most every
    NOTE_SUCCESS_EVERY_SECONDS), for the overview's "last call failed"."""
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


def failure_text(error: VendorError, *, with_advice: bool = True) -> str:
    """The message a person reads for a vendor error: ours, the vendor's words, the advice
    (left out where TriggerDesk acts on its own and the advice would tell a person to act)."""
    text = error.message
    if error.vendor_message and error.vendor_message not in text:
        text = f"{text} (vendor said: {error.vendor_message})"
    advice = getattr(error, "advice", "") if with_advice else ""
    if advice:
        text = f"{text} {advice}"
    return text
