"""The record of each call to a vendor (RunAttempt) and of the connection's health."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q

from dashboard.clock import utc_now
from dashboard.models import VendorConnection
from dashboard.runs.models import (
    Run,
    RunAttempt,
)
from dashboard.vendors.http import Exchange, VendorError

logger = logging.getLogger(__name__)

# A success is written to the connection row at most this often: every worker writing the same
# row on every send made them queue on its lock.
NOTE_SUCCESS_EVERY_SECONDS = 30


def record_attempt(
    run: Run,
    *,
    purpose: str,
    started_at: datetime,
    exchange: Exchange | None,
    error: VendorError | None = None,
    outcome: str = "",
) -> RunAttempt:
    """Record one call to the vendor (send, poll or reconcile) as the run's next attempt."""
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


def failure_text(error: VendorError) -> str:
    """The message a person reads for a vendor error: ours, the vendor's words, the advice."""
    text = error.message
    if error.vendor_message and error.vendor_message not in text:
        text = f"{text} (vendor said: {error.vendor_message})"
    advice = getattr(error, "advice", "")
    if advice:
        text = f"{text} {advice}"
    return text
