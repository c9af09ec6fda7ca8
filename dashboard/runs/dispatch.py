"""Batched sending and polling for high-volume operations (RunOperation.batch_size > 1).

One task per run costs more than the call it makes when thousands of runs of one connection go
out at once (Optimove event generators: 500 requests/s per brand). A dispatcher for a
(connection, operation) instead:

1. claims up to `batch_size` due queued runs in one transaction (`FOR UPDATE SKIP LOCKED`, so two
   dispatchers never claim the same run), moves them to sending with their audit rows, commits;
2. takes places in the brand's shared Redis window as they free and sends the claimed runs from
   a thread pool; each grant of places is first recorded on its runs' attempts in one UPDATE
   (request_started_at), so a run whose request never started is told apart from one that may
   have reached the vendor when the worker dies (the sweeper puts the former back in the queue);
3. records every answer in one transaction (attempts completed in one UPDATE, one set-based
   compare-and-set UPDATE for the runs, audit rows in one append); a failed send goes through the per-run failure handling.

It loops until no due queued run is left, or its slice (DISPATCH_SLICE_SECONDS) is over: it
then hands over to a fresh message at the back of the queue, so dispatchers of several brands
take turns on the workers. The rules of dashboard.runs.services hold unchanged:
a run is sending (committed) before its request leaves, each state change is a compare-and-set
with its audit row in the same transaction, nothing that may have reached the vendor is resent.

Wake-ups: run_submit (and approve, send again, the sweeper) enqueue a dispatcher through a short
Redis flag per slot, so 5,000 submissions enqueue at most DISPATCH_SLOTS dispatchers. No wake-up
is lost: a dispatcher clears its flag and then looks once more before it stops, so a submission
that found the flag set committed before that last look. The sweeper still re-enqueues stale
queued runs. Polls work the same way, and reschedule themselves for the earliest next_poll_at;
they leave POLL_RESERVE places of the window free, so sends go first when the brand's budget binds.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Min, Q

from dashboard.audit.trail import append_audit_events
from dashboard.clock import utc_now
from dashboard.models import VendorConnection
from dashboard.observability import logs
from dashboard.pauses.selectors import lock_tenant_sending, sending_pause_for
from dashboard.runs import attempts, bulk, gate, transitions
from dashboard.runs import enqueue as enqueueing
from dashboard.runs import outcomes as run_outcomes
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.operations import PollResult, RunOperation, SendResult, operation_for
from dashboard.runs.rate_limits import rate_limiter
from dashboard.runs.states import RunState, sources
from dashboard.send_windows.selectors import hold_by_feature_windows
from dashboard.tenancy import credentials
from dashboard.tenancy.crypto import CredentialDecryptionError
from dashboard.vendors.http import FailureClass, NotSent, VendorError

logger = logging.getLogger(__name__)

# A claimed poll is not claimed again for this long (a dead dispatcher's polls come back then).
POLL_LEASE_SECONDS = 30.0
# Polls leave this many places of the window free: while sends fill it, polls wait.
POLL_RESERVE = 5
# While send dispatchers work, only polls overdue by this long go out (a status read can wait a
# few seconds; an endless stream of sends must still not starve them).
POLL_DEFER_SECONDS = 30.0
# Give up waiting for places for polls after this long and hand the polls back (a send burst
# holds the window): a worker thread is not held for a burst's length.
POLL_TOKEN_PATIENCE_SECONDS = 1.0
SEND_THREADS = 32
# A dispatcher works this long, then hands over to a fresh message at the back of its queue:
# another brand's dispatchers, queued meanwhile, get the worker in between, so one brand's
# 100,000 runs never starve another's 100 (and no task outlives the limits the Celery settings
# assume: docs/engine.md "Workers"). A hand-over costs a message and a claim, a few ms.
DISPATCH_SLICE_SECONDS = 2.0
# A grant of places (one Redis round trip, and for sends one transaction marking the requests
# started) waits this long for more threads or places to free when it would carry fewer than
# GRANT_GATHER requests: a few ms of delay, instead of paying a grant per request when the
# window or the threads free one place at a time.
GRANT_GATHER = 8
GRANT_GATHER_SECONDS = 0.005


class SendingHeld(Exception):
    """Sending was paused after a batch was claimed, before its requests started."""


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
# A free thread is taken before a place: a granted request leaves at once, so a place is not
# held (and the brand's budget idle) while its request waits in the pool's queue.
_free_threads = threading.BoundedSemaphore(SEND_THREADS)


def _take_free_threads(wanted: int) -> int:
    """Block until one pool thread is free, then take up to `wanted` free ones; how many."""
    _free_threads.acquire()
    taken = 1
    while taken < wanted and _free_threads.acquire(blocking=False):
        taken += 1
    return taken


def _take_free_threads_now(wanted: int) -> int:
    """Take up to `wanted` free pool threads without waiting; how many."""
    taken = 0
    while taken < wanted and _free_threads.acquire(blocking=False):
        taken += 1
    return taken


def _give_back_threads(count: int) -> None:
    for _ in range(count):
        _free_threads.release()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="run-send")
        return _pool


_feeders = threading.local()


def _feeder() -> ThreadPoolExecutor:
    """The calling thread's feeder: one thread that spends places and marks requests started.

    Kept for the caller's life, so its database connection is reused like the caller's own.
    """
    feeder = getattr(_feeders, "executor", None)
    if feeder is None:
        feeder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-feed")
        _feeders.executor = feeder
    return feeder


def _drop_stale_feeder_connection() -> None:
    """In the feeder thread: drop its database connection when it failed or outlived
    CONN_MAX_AGE, as dashboard.runs.tasks does for the worker's own after each task."""
    if db_connection.connection is not None and (
        db_connection.errors_occurred
        or (db_connection.close_at is not None and time.monotonic() >= db_connection.close_at)
    ):
        db_connection.close_if_unusable_or_obsolete()

    # Every slot's dispatcher is working: each clears its flag before its last look.


# -- sending ----------------------------------------------------------------------------------


def dispatch_sends(
    *, connection_id: int, operation: str, slot: int | None = None, run_id: int | None = None
) -> str:
    """Send every due queued run of one connection and operation, a batch at a time.

    `slot`: the wake-up flag this dispatcher holds (None for a retry's or an older message).
    Returns what happened to run `run_id` (the run the message named) in run_send's words, or
    a count when that run was not among the ones sent.
    """
    run_operation = operation_for(operation)
    limiter = rate_limiter()
    flag = enqueueing.send_flag(connection_id, operation, slot) if slot is not None else None
    sent = batches = 0
    outcomes: dict[int, str] = {}
    # Pipelined: while the feeder thread spends batch k's places (its only database work is one
    # UPDATE per grant marking those requests started), this thread records batch k-1 and claims
    # batch k+1, so the window never waits for the recording. A caller inside a transaction
    # (tests) feeds inline: another connection could not see its uncommitted claims.
    feeder = None if db_connection.in_atomic_block else _feeder()
    in_flight: tuple[VendorConnection, dict[str, str], Future] | None = None
    hand_over_to: int | None = None
    began = time.monotonic()
    try:
        while True:
            if flag:
                limiter.touch_flag(flag, enqueueing.FLAG_SECONDS)
            claimed = claim_sends(connection_id=connection_id, operation=run_operation)
            if not claimed and flag:
                # Clear the flag, then look once more: a submission that still found it set has
                # committed before this look, and one that did not enqueues a dispatcher itself.
                limiter.clear_flag(flag)
                flag = None
                claimed = claim_sends(connection_id=connection_id, operation=run_operation)
            if not claimed:
                break
            connection, secrets, runs, guarded = claimed
            outcomes.update(guarded)
            if runs:
                fed = _submit(feeder, _feed_sends, connection, run_operation, secrets, runs)
                if in_flight is not None:
                    outcomes.update(_finish_sends(*in_flight, operation=run_operation))
                in_flight = (connection, secrets, fed)
            sent += len(runs)
            batches += 1
            if runs and time.monotonic() - began > DISPATCH_SLICE_SECONDS:
                hand_over_to = runs[-1].pk
                break
    finally:
        # Also after an error: what went out is recorded (or left in sending for the sweeper).
        try:
            if in_flight is not None:
                outcomes.update(_finish_sends(*in_flight, operation=run_operation))
        finally:
            if feeder is not None:
                feeder.submit(_drop_stale_feeder_connection).result()
    if hand_over_to is not None:
        # More may be queued: free this slot, then wake a dispatcher (this slot, or any free one).
        if flag:
            limiter.clear_flag(flag)
        enqueueing.wake_sends(hand_over_to, connection_id, operation)
    if sent:
        logger.info(
            "dispatched %s sends of connection %s in %s batches", sent, connection_id, batches
        )
    if run_id in outcomes:
        return outcomes[run_id]
    if run_id is not None:
        # A message that came early for its retry must not be lost: wait for it as run_send does.
        run = Run.objects.filter(pk=run_id, state=RunState.QUEUED).only("next_attempt_at").first()
        now = utc_now()
        if run is not None and gate.not_yet_due(run, run.next_attempt_at, "send", now):
            return "not yet due"
        if run is None and not sent:
            state = Run.objects.filter(pk=run_id).values_list("state", flat=True).first()
            return f"skipped: already {state}"
    return f"dispatched {sent} sends in {batches} batches"


def _submit(feeder: ThreadPoolExecutor | None, call: Any, *args: Any) -> Future:
    """call(*args) on the feeder thread, or at once on this one (no feeder): its future."""
    if feeder is not None:
        # In this task's log context (a new thread starts without it).
        return feeder.submit(contextvars.copy_context().run, call, *args)
    done: Future = Future()
    try:
        done.set_result(call(*args))
    except Exception as error:
        done.set_exception(error)
    return done


def claim_sends(
    *, connection_id: int, operation: RunOperation
) -> tuple[VendorConnection, dict[str, str], list[Run], dict[int, str]] | None:
    """Claim up to batch_size due queued runs and move them to sending, in one transaction.

    Runs another dispatcher (or a per-run task) holds are skipped, not waited for. Runs that fail
    a guardrail fail here, as in run_send (their outcomes in the last item). None when nothing
    was claimed.
    """
    now = utc_now()
    connection = VendorConnection.objects.select_related("tenant").get(pk=connection_id)
    # One indexed read per batch: held runs stay queued (resuming wakes a dispatcher). The
    # requests' mark re-checks under the pause lock (_feed_sends), for a pause committed since.
    if sending_pause_for(tenant_id=connection.tenant_id, connection_id=connection_id):
        return None
    # Outside the connection's send window: its queued runs become due when it opens (the
    # sweeper wakes them then); a batch claimed inside it goes out even if it closes meanwhile.
    if gate.hold_outside_send_window(
        connection_id=connection_id, now=now, operation=operation.name
    ):
        return None
    hold_by_feature_windows(connection_id=connection_id, operation=operation.name, now=now)
    # Runs released while the hold's lock was awaited are due by now.
    now = utc_now()
    with transaction.atomic():
        try:
            secrets = credentials.connection_secrets(connection)
            (rule,) = operation.rate_rules(connection, secrets)
            # No more than the window lets out in a few seconds: a claimed run waits in sending.
            limit = min(operation.batch_size, max(1, int(rule.limit / rule.period_seconds * 2)))
        except CredentialDecryptionError as error:
            secrets, unreadable, limit = {}, error, operation.batch_size
        else:
            unreadable = None
        runs = list(
            Run.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(connection_id=connection_id, operation=operation.name, state=RunState.QUEUED)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + gate.DUE_MARGIN))
            .order_by("pk")[:limit]
        )
        if not runs:
            return None
        for run in runs:
            run.connection = connection
            run.tenant = connection.tenant
        if unreadable is not None:
            error = unreadable
            for run in runs:
                transitions.fail_run(
                    run,
                    from_states={RunState.QUEUED},
                    actor=transitions.WORKER,
                    code="credentials_unreadable",
                    message=str(error),
                    failure_class=FailureClass.NOT_SENT,
                )
            return None
        ready = []
        guarded: dict[int, str] = {}
        for run in runs:
            problem = run_outcomes.approval_problem(run, now) or operation.pre_send_problem(run)
            if problem:
                guarded[run.pk] = "guardrail"
                transitions.fail_run(
                    run,
                    from_states={RunState.QUEUED},
                    actor=transitions.WORKER,
                    code="guardrail",
                    message=problem,
                )
            else:
                ready.append(run)
        if not ready:
            return connection, secrets, [], guarded
        # We hold every row's lock: the compare-and-set cannot lose.
        moved = Run.objects.filter(
            pk__in=bulk.any_of([run.pk for run in ready]),
            state__in=sources(RunState.SENDING, {RunState.QUEUED}),
        ).update(
            state=RunState.SENDING,
            attempt_count=F("attempt_count") + 1,
            next_attempt_at=None,
            sent_at=now,
            updated_at=now,
        )
        if moved != len(ready):  # cannot happen while we hold the locks; never send on doubt
            raise RuntimeError(f"claimed {len(ready)} runs but moved {moved} to sending")
        events = []
        for run in ready:
            run.state = RunState.SENDING
            run.attempt_count += 1
            run.next_attempt_at = None
            run.sent_at = run.updated_at = now
            events.append(_state_event(run, RunState.QUEUED, RunState.SENDING))
        # Each call is on record (what, when, which worker) before it leaves, as in run_send.
        _open_attempts(ready, RunAttempt.Purpose.SEND, now)
        # Last: the tenant's chain head stays locked from here to the commit.
        append_audit_events(events)
    return connection, secrets, ready, guarded


def _open_attempts(runs: list[Run], purpose: str, now: Any) -> None:
    """attempts.open_attempt for many runs in one INSERT; each run keeps its open attempt.

    A send's request is not started yet (request_started_at null): _feed_sends marks it when
    its place is granted, just before it leaves.
    """
    opened = [attempts.new_attempt(run, purpose=purpose, started_at=now) for run in runs]
    names = OPENED_FIELDS
    if purpose == RunAttempt.Purpose.SEND:
        for attempt in opened:
            attempt.request_started_at = None
        names = [*OPENED_FIELDS, "request_started_at"]
    # A poll's request_started_at is the database's insert time (its db_default), as ever.
    bulk.insert_rows(RunAttempt, opened, names)
    for run, attempt in zip(runs, opened, strict=True):
        run.open_attempt = attempt


def _complete(attempt: RunAttempt, **fields: Any) -> RunAttempt:
    for name, value in fields.items():
        setattr(attempt, name, value)
    return attempt


# What an opened attempt writes: every field but the id and request_started_at.
OPENED_FIELDS = [
    field.name
    for field in RunAttempt._meta.concrete_fields
    if not field.primary_key and field.name != "request_started_at"
]

FINISHED_FIELDS = [
    "latency_ms",
    "exchange",
    "status_code",
    "failure_class",
    "failure_code",
    "outcome",
    "finished_at",
]


def _state_event(run: Run, previous: str, to_state: str, reason: str = "") -> dict[str, Any]:
    """The audit event transitions.transition writes for the same change."""
    summary = {"from": previous, "to": to_state}
    if reason:
        summary["reason"] = reason
    return {
        "actor": transitions.WORKER,
        "tenant": run.tenant,
        "action": "run.state_changed",
        "object_type": "run",
        "object_id": run.pk,
        "summary": summary,
    }


def _start_with_places(
    items: list[Any],
    call: Any,
    rule: Any,
    *,
    reserve: int = 0,
    patience: float | None = None,
    mark: Any = None,
) -> tuple[list[tuple[Any, Future]], list[Any]]:
    """Start `call(item)` in the thread pool for each item as the brand's sliding window gives
    places (a batched operation's rule is sliding: its place covers any delay before arrival).

    `mark(items)`: called with each grant's items before any of them starts; returns those that
    may start (the others were taken back meanwhile and are dropped, their places given back).
    Returns ([(item, future of (started_at, result or exception))], items never started for
    lack of budget within `patience` seconds, or because the limiter or `mark` failed).

    What a grant costs (a Redis round trip, and for sends a transaction marking the requests
    started) is paid per grant, not per request: a grant gathers what frees within
    GRANT_GATHER_SECONDS (threads and places) rather than going out one request at a time, and
    the places of requests answered meanwhile are freed in the same round trip as the next
    grant (`take_slots(freeing=...)`). Both only ever hold a place longer, never shorter.
    """
    if not rule.sliding:
        raise ValueError(f"a batched operation needs a sliding rate rule, not {rule.key}")
    pool = _executor()
    futures = []
    pending = list(items)
    limiter = rate_limiter()
    give_up = time.monotonic() + patience if patience is not None else None
    task_context = logs.current()
    # Places whose answers came back while this loop runs: freed with its next grant. Once it
    # has ended (`feeding` cleared under the lock), each thread frees its own place.
    answered: list[str] = []
    answered_lock = threading.Lock()
    feeding = [True]

    def timed(item: Any, place: str) -> tuple[Any, Any]:
        # The pool's threads do not inherit the task's log context: each call is logged with it
        # and its own run. The task's request id is that of the run the task was queued for;
        # the other runs of the batch came from other requests.
        context = {**task_context, "run_id": getattr(item, "pk", None)}
        if context["run_id"] != task_context.get("run_id"):
            context["request_id"] = None
        tokens = logs.bind(**context)
        try:
            started = utc_now()
            try:
                return started, call(item)
            except Exception as error:  # handed to the failure handling, by class
                return started, error
        finally:
            logs.unbind(tokens)
            with answered_lock:
                if feeding[0]:
                    answered.append(place)
                    place = ""
            if place:
                _free_place(limiter, rule, place)
            _give_back_threads(1)

    def take_answered() -> list[str]:
        with answered_lock:
            taken = answered[:]
            answered.clear()
        return taken

    try:
        while pending:
            wanted = min(len(pending), GRANT_GATHER)
            free = _take_free_threads(len(pending))
            if free < wanted:
                # Threads free one by one as answers come back: gather a few for one grant.
                time.sleep(GRANT_GATHER_SECONDS)
                free += _take_free_threads_now(len(pending) - free)
            freeing = take_answered()
            try:
                places, wait = limiter.take_slots(
                    rule, free, reserve=reserve, freeing=freeing, yield_to_interactive=True
                )
            except Exception:
                _give_back_threads(free)
                _free_unused_places(limiter, rule, freeing)
                raise
            granted = len(places)
            _give_back_threads(free - granted)
            grant = list(zip(pending[:granted], places, strict=True))
            if mark is not None and grant:
                try:
                    allowed = mark([item for item, _place in grant])
                except Exception:
                    # Not marked, so not started: the caller hands these back with the rest.
                    _free_unused_places(limiter, rule, [place for _item, place in grant])
                    _give_back_threads(granted)
                    raise
                dropped = [place for item, place in grant if item not in allowed]
                if dropped:
                    _free_unused_places(limiter, rule, dropped)
                    _give_back_threads(len(dropped))
                    grant = [(item, place) for item, place in grant if item in allowed]
            pending = pending[granted:]
            for item, place in grant:
                futures.append((item, pool.submit(timed, item, place)))
            if pending and granted < free:
                if give_up is not None and time.monotonic() + wait > give_up:
                    break
                # The window is full: places free as answers come back, a second after each.
                time.sleep(max(wait, GRANT_GATHER_SECONDS))
    except SendingHeld as held:
        logger.info("sending paused; %s calls not started: %s", len(pending), held)
    except Exception:
        # Redis (or, for `mark`, PostgreSQL) unreachable: what has not started provably did not
        # leave; the caller hands it back.
        logger.exception("rate limiter or database failed; %s calls not started", len(pending))
    finally:
        with answered_lock:
            feeding[0] = False
        _free_unused_places(limiter, rule, take_answered())
    return futures, pending


def _free_unused_places(limiter: Any, rule: Any, places: list[str]) -> None:
    """Places granted to requests that will not start: freed (held one more period, as ever)."""
    try:
        limiter.free_slots(rule, places)
    except Exception:
        logger.warning("rate limiter failed to free %s places of %s", len(places), rule.key)


def _free_place(limiter: Any, rule: Any, place: str) -> None:
    """The request's answer came back: its place is held one more period, then frees."""
    try:
        limiter.free_slots(rule, [place])
    except Exception:
        # The place stays held until it expires: the limit is under-used, never exceeded.
        logger.warning("rate limiter failed to free a place of %s", rule.key)


def _collect(futures: list[tuple[Any, Future]]) -> list[tuple[Any, Any, Any]]:
    """[(item, started_at, result or exception)] once every call has returned."""
    outcomes = []
    for item, future in futures:
        started, result = future.result()
        outcomes.append((item, started, result))
    return outcomes


def _feed_sends(
    connection: VendorConnection,
    operation: RunOperation,
    secrets: dict[str, str],
    runs: list[Run],
) -> tuple[list[tuple[Run, Future]], list[Run]]:
    """Start each claimed run's send as the window gives it a place; each grant's requests are
    marked started (one UPDATE) before any of them leaves.

    Returns the started sends and the runs that could not start (the limiter or the database
    failed). A run the sweeper took back before its mark (its worker presumed dead) is in
    neither: it is not sent, and nothing more is recorded for it here.
    """
    (rule,) = operation.rate_rules(connection, secrets)

    def mark(granted: list[Run]) -> set[Run]:
        with transaction.atomic():
            # Under the pause lock until the mark commits: a pause that committed since the
            # claim keeps these (and the rest of the batch) from leaving: _finish_sends puts
            # them back in the queue, held.
            lock_tenant_sending(connection.tenant_id, exclusive=False)
            started = attempts.mark_requests_started_unless_paused(
                [run.open_attempt.pk for run in granted],
                tenant_id=connection.tenant_id,
                connection_id=connection.pk,
            )
            if started is None:
                pause = sending_pause_for(
                    tenant_id=connection.tenant_id, connection_id=connection.pk
                )
                raise SendingHeld(pause.held_reason() if pause else "sending paused")
        return {run for run in granted if run.open_attempt.pk in started}

    return _start_with_places(
        runs, lambda run: operation.send(connection, secrets, run), rule, mark=mark
    )


def _finish_sends(
    connection: VendorConnection,
    secrets: dict[str, str],
    fed: Future,
    *,
    operation: RunOperation,
) -> dict[int, str]:
    """Wait for a fed batch's answers and record them; each run's outcome."""
    started, unsent = fed.result()
    outcomes = _collect(started)
    said: dict[int, str] = {}
    pause = (
        sending_pause_for(tenant_id=connection.tenant_id, connection_id=connection.pk)
        if unsent
        else None
    )
    for run in unsent:
        # Never sent: back to queued, for a later try (its attempt_count counts this claim);
        # held while sending is paused (resuming enqueues it).
        wait = 5.0
        if pause is not None:
            error = NotSent(f"Not sent: {pause.held_reason()}", code="paused")
            why = "not sent: sending was paused before its request started"
        else:
            error = NotSent(
                "Not sent: the rate limiter was unavailable.", code="rate_limiter_unavailable"
            )
            why = "not sent: the rate limiter was unavailable"
        with transaction.atomic():
            attempts.record_attempt(
                run,
                purpose=RunAttempt.Purpose.SEND,
                started_at=utc_now(),
                exchange=None,
                error=error,
            )
            if (
                transitions.transition(
                    run,
                    RunState.QUEUED,
                    from_states={RunState.SENDING},
                    actor=transitions.WORKER,
                    reason=why,
                    next_attempt_at=utc_now() + timedelta(seconds=wait) if pause is None else None,
                )
                and pause is None
            ):
                enqueueing.enqueue("send", run.pk, wait)
        said[run.pk] = "held: sending paused" if pause is not None else "rate limiter unavailable"
    successes = [o for o in outcomes if isinstance(o[2], SendResult)]

    def reread_states() -> None:
        states = dict(
            Run.objects.filter(pk__in=bulk.any_of([o[0].pk for o in outcomes])).values_list(
                "pk", "state"
            )
        )
        for run, _started, _result in outcomes:
            run.state = states.get(run.pk, run.state)

    # The vendor has acted: a database that is briefly unreachable delays the record, it does
    # not turn the answers into unknown outcomes (attempts.record_answer).
    if successes:
        said.update(
            attempts.record_answer(
                lambda: _record_sends(connection, operation, successes),
                before_retry=reread_states,
            )
        )
    for run, started, error in outcomes:
        if not isinstance(error, SendResult):
            said[run.pk] = attempts.record_answer(
                lambda run=run, started=started, error=error: run_outcomes.after_send_exception(
                    run, operation, error, started, secrets
                ),
                before_retry=lambda run=run: run.refresh_from_db(fields=["state"]),
            )
    return said


def _record_sends(
    connection: VendorConnection,
    operation: RunOperation,
    successes: list[tuple[Run, Any, SendResult]],
) -> dict[int, str]:
    now = utc_now()
    said: dict[int, str] = {}
    accepted_any = False
    with transaction.atomic():
        _finish_attempts(
            [
                _attempt(run, RunAttempt.Purpose.SEND, started, result.exchange, result.outcome)
                for run, started, result in successes
            ]
        )
        outcomes = []
        for run, _started, result in successes:
            to_state, fields = run_outcomes.send_outcome(operation, result, now)
            fields["state"] = to_state
            fields["updated_at"] = now
            if to_state == RunState.SUCCEEDED:
                fields["finished_at"] = now
            outcomes.append((run, result, to_state, fields))
        # One compare-and-set for the batch. A sweeper may have presumed this dispatcher dead
        # meanwhile; the answer still counts.
        changed = bulk.update_rows(
            Run,
            [(run.pk, fields) for run, _result, _to_state, fields in outcomes],
            expected={"state": [RunState.SENDING, RunState.OUTCOME_UNKNOWN]},
        )
        events = []
        for run, result, to_state, fields in outcomes:
            if run.pk in changed:
                previous = run.state
                for name, value in fields.items():
                    setattr(run, name, value)
                events.append(_state_event(run, previous, to_state, result.outcome))
            said[run.pk] = "accepted" if to_state == RunState.ACCEPTED else "succeeded"
            accepted_any = accepted_any or to_state == RunState.ACCEPTED
        # The connection row before the chain head, in the order the per-run path locks them.
        attempts.note_connection(connection, now=now)
        append_audit_events(events)
        if accepted_any:
            transaction.on_commit(
                lambda: enqueueing.wake_polls(connection.pk, operation.name, 1.0), robust=True
            )
    return said


def _attempt(
    run: Run,
    purpose: str,
    started: Any,
    exchange: Any,
    outcome: str = "",
    error: VendorError | None = None,
) -> RunAttempt:
    """The run's open attempt completed with this answer (a new one if none was opened)."""
    fields = attempts.finished_fields(exchange=exchange, error=error, outcome=outcome)
    attempt = getattr(run, "open_attempt", None)
    if attempt is None:
        attempt = RunAttempt(
            run=run, number=attempts.attempt_number(run), purpose=purpose, started_at=started
        )
    return _complete(attempt, **fields)


def _finish_attempts(attempts: list[RunAttempt]) -> None:
    """Write completed attempts: one UPDATE for those opened before the call, an INSERT for
    any that were not. Whatever the sweeper concluded meanwhile, the real answer wins."""
    opened = [attempt for attempt in attempts if attempt.pk is not None]
    if opened:
        bulk.update_rows(
            RunAttempt,
            [
                (attempt.pk, {name: getattr(attempt, name) for name in FINISHED_FIELDS})
                for attempt in opened
            ],
        )
    unopened = [attempt for attempt in attempts if attempt.pk is None]
    if unopened:
        RunAttempt.objects.bulk_create(unopened)


# -- polling ----------------------------------------------------------------------------------


def dispatch_polls(*, connection_id: int, operation: str, run_id: int | None = None) -> str:
    """Poll every due accepted run of one connection and operation, a batch at a time; then
    schedule the next look for the earliest next_poll_at.

    Returns what run_poll would say of run `run_id` when it was polled, else a count.
    """
    run_operation = operation_for(operation)
    limiter = rate_limiter()
    send_flags = [
        enqueueing.send_flag(connection_id, operation, slot)
        for slot in range(enqueueing.DISPATCH_SLOTS)
    ]
    polled = 0
    outcomes: dict[int, str] = {}
    began = time.monotonic()
    while True:
        sends_first = limiter.any_flag(send_flags)
        claimed = claim_polls(
            connection_id=connection_id,
            operation=run_operation,
            defer=timedelta(seconds=POLL_DEFER_SECONDS) if sends_first else timedelta(0),
        )
        if not claimed:
            break
        connection, secrets, runs, deadlined = claimed
        outcomes.update(deadlined)
        said = poll_batch(connection, run_operation, secrets, runs)
        outcomes.update(said)
        polled += len(said)
        if time.monotonic() - began > DISPATCH_SLICE_SECONDS:
            # The look below wakes a fresh dispatcher for the runs still due, at the back of
            # the queue, as a send dispatcher hands over after its slice.
            break
    following = (
        Run.objects.filter(
            connection_id=connection_id, operation=operation, state=RunState.ACCEPTED
        )
        .aggregate(first=Min("next_poll_at"))
        .get("first")
    )
    if following is not None:
        countdown = (following - utc_now()).total_seconds()
        enqueueing.wake_polls(
            connection_id, operation, max(countdown, 1.0) if sends_first else countdown
        )
    if run_id in outcomes:
        return outcomes[run_id]
    return f"polled {polled}"


def claim_polls(
    *, connection_id: int, operation: RunOperation, defer: timedelta = timedelta(0)
) -> tuple[VendorConnection, dict[str, str], list[Run], dict[int, str]] | None:
    """Claim up to batch_size due accepted runs: count the poll and lease them for a while.

    `defer`: only runs overdue by that long (sends go first).
    """
    now = utc_now()
    with transaction.atomic():
        runs = list(
            Run.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(connection_id=connection_id, operation=operation.name, state=RunState.ACCEPTED)
            .filter(
                Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now + gate.DUE_MARGIN - defer)
            )
            .order_by("next_poll_at", "pk")[: operation.batch_size]
        )
        if not runs:
            return None
        connection = VendorConnection.objects.select_related("tenant").get(pk=connection_id)
        ready = []
        deadlined: dict[int, str] = {}
        for run in runs:
            run.connection = connection
            run.tenant = connection.tenant
            if run.poll_deadline and now >= run.poll_deadline:
                deadlined[run.pk] = "deadline"
                run_outcomes.expire_polling(run)
            else:
                ready.append(run)
        lease = now + timedelta(seconds=POLL_LEASE_SECONDS)
        Run.objects.filter(pk__in=bulk.any_of([run.pk for run in ready])).update(
            poll_count=F("poll_count") + 1, next_poll_at=lease
        )
        for run in ready:
            run.poll_count += 1
            run.next_poll_at = lease
        _open_attempts(ready, RunAttempt.Purpose.POLL, now)
        secrets = credentials.connection_secrets(connection)
    return connection, secrets, ready, deadlined


def poll_batch(
    connection: VendorConnection,
    operation: RunOperation,
    secrets: dict[str, str],
    runs: list[Run],
) -> dict[int, str]:
    """Poll claimed runs as the bucket allows (after sends), then record every answer; what
    each poll found (run_poll's words)."""
    if not runs:
        return {}
    (rule,) = operation.rate_rules(connection, secrets)
    started, unpolled = _start_with_places(
        runs,
        lambda run: operation.poll(connection, secrets, run),
        rule,
        reserve=POLL_RESERVE,
        patience=POLL_TOKEN_PATIENCE_SECONDS,
    )
    outcomes = _collect(started)
    now = utc_now()
    with transaction.atomic():
        if unpolled:
            # No budget for them yet: due again at once, for the next dispatcher. Their polls
            # never left: uncount them and drop their open attempts, so numbers stay gapless.
            Run.objects.filter(
                pk__in=bulk.any_of([run.pk for run in unpolled]), state=RunState.ACCEPTED
            ).update(next_poll_at=now, poll_count=F("poll_count") - 1)
            RunAttempt.objects.filter(
                pk__in=[
                    run.open_attempt.pk for run in unpolled if getattr(run, "open_attempt", None)
                ]
            ).delete()
        _finish_attempts(
            [
                _attempt(
                    run, RunAttempt.Purpose.POLL, started, result.exchange, result.vendor_status
                )
                if isinstance(result, PollResult)
                else _attempt(
                    run,
                    RunAttempt.Purpose.POLL,
                    started,
                    getattr(result, "exchange", None),
                    error=result if isinstance(result, VendorError) else None,
                    outcome="" if isinstance(result, VendorError) else "unexpected error",
                )
                for run, started, result in outcomes
            ]
        )
        said: dict[int, str] = {}
        writes: list[tuple[int, dict[str, Any]]] = []
        finished: list[tuple[Run, str, str]] = []
        for run, _started, status in outcomes:
            said[run.pk] = (
                status.vendor_status
                if isinstance(status, PollResult)
                else f"poll failed: {getattr(status, 'code', 'internal_error')}"
            )
            if isinstance(status, VendorError):
                to_state, fields = run_outcomes.poll_failure_outcome(run, status, now)
                fields["updated_at"] = now
                if to_state is not None:
                    said[run.pk] = f"poll refused: {status.code}"
                    fields["state"] = to_state
                    finished.append(
                        (run, to_state, f"status read refused ({status.code}); polling stopped")
                    )
                writes.append((run.pk, fields))
                continue
            if not isinstance(status, PollResult):
                logger.error("run %s: unexpected error while polling", run.pk, exc_info=status)
                wait = run_outcomes.poll_backoff(run.poll_count)
                writes.append(
                    (run.pk, {"next_poll_at": now + timedelta(seconds=wait), "updated_at": now})
                )
                continue
            to_state, fields = run_outcomes.poll_outcome(run, status, now)
            fields["updated_at"] = now
            if to_state is not None:
                fields["state"] = to_state
                fields["finished_at"] = now
                finished.append((run, to_state, f"vendor status {status.vendor_status}"))
            writes.append((run.pk, fields))
        # One compare-and-set per shape of answer: a run someone else moved on is left alone.
        changed = bulk.update_rows(Run, writes, expected={"state": [RunState.ACCEPTED]})
        events = []
        for run, to_state, reason in finished:
            if run.pk in changed:
                events.append(_state_event(run, RunState.ACCEPTED, to_state, reason))
                run.state = to_state
        append_audit_events(events)
    return said
