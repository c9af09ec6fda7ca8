"""The run engine's writes: request, approve, send, poll, reconcile, sweep.

Rules that make a run safe to send exactly once (docs/engine.md):
- every state change is one the table allows (runs/states.py) and a compare-and-set
  (`UPDATE ... WHERE state IN (...)`) with its audit row in the same transaction
  (runs/transitions.py);
- a worker moves a run from queued to sending under a row lock before it talks to the vendor,
  and a worker that finds a run past queued does not send it (sending);
- an unknown outcome is never retried blindly: it is reconciled (TriggerDaily asks again within
  the same UTC day) or put before a person (sending, runs/outcomes.py);
- tasks are enqueued on commit, so no task sees a row that is not there yet (runs/enqueue.py).

The use cases live here: submit (request, approve, reject, cancel, change), submit_many,
sending (send, reconcile, mark as sent, send again), polling, sweep. They call the mechanics in
dashboard/runs/ (states, transitions, attempts, bulk, credentials, enqueue, gate, outcomes,
dispatch), never the other way; this package re-exports the mechanics' public names too.
"""

from dashboard.runs.attempts import (
    NOTE_SUCCESS_EVERY_SECONDS,
    attempt_number,
    close_lost_attempt,
    earlier_call_may_have_reached_vendor,
    failure_text,
    finished_fields,
    mark_requests_started,
    mark_requests_started_unless_paused,
    new_attempt,
    note_connection,
    open_attempt,
    record_attempt,
)
from dashboard.runs.bulk import insert_rows, update_rows
from dashboard.runs.enqueue import MAX_COUNTDOWN_SECONDS, batch_of, enqueue, enqueue_send
from dashboard.runs.outcomes import (
    POLL_DEADLINE_MESSAGE,
    after_send_exception,
    approval_problem,
    expire_polling,
    max_send_attempts,
    poll_backoff,
    poll_failure_outcome,
    poll_outcome,
    send_backoff,
    send_outcome,
)
from dashboard.runs.services.polling import run_poll
from dashboard.runs.services.sending import (
    reconciling_refusal,
    run_mark_as_sent,
    run_reconcile,
    run_send,
    run_send_again,
)
from dashboard.runs.services.submit import (
    ProbableDuplicate,
    approval_progress,
    approvers_of,
    owner_or_operator_refusal,
    parameters_hash,
    run_approve,
    run_cancel,
    run_cancel_refusal,
    run_change_parameters,
    run_reject,
    run_submit,
)
from dashboard.runs.services.submit_many import run_submit_many
from dashboard.runs.services.sweep import runs_sweep
from dashboard.runs.states import STALE_POLL_SECONDS, STALE_QUEUED_SECONDS
from dashboard.runs.transitions import SWEEPER, WORKER, RunActionError, fail_run, transition
from dashboard.tenancy.credentials import connection_secrets

__all__ = [
    "MAX_COUNTDOWN_SECONDS",
    "NOTE_SUCCESS_EVERY_SECONDS",
    "POLL_DEADLINE_MESSAGE",
    "STALE_POLL_SECONDS",
    "STALE_QUEUED_SECONDS",
    "SWEEPER",
    "WORKER",
    "ProbableDuplicate",
    "RunActionError",
    "after_send_exception",
    "approval_problem",
    "approval_progress",
    "approvers_of",
    "attempt_number",
    "batch_of",
    "close_lost_attempt",
    "connection_secrets",
    "earlier_call_may_have_reached_vendor",
    "enqueue",
    "enqueue_send",
    "expire_polling",
    "fail_run",
    "failure_text",
    "finished_fields",
    "insert_rows",
    "mark_requests_started",
    "mark_requests_started_unless_paused",
    "max_send_attempts",
    "new_attempt",
    "note_connection",
    "open_attempt",
    "owner_or_operator_refusal",
    "parameters_hash",
    "poll_backoff",
    "poll_failure_outcome",
    "poll_outcome",
    "reconciling_refusal",
    "record_attempt",
    "run_approve",
    "run_cancel",
    "run_cancel_refusal",
    "run_change_parameters",
    "run_mark_as_sent",
    "run_poll",
    "run_reconcile",
    "run_reject",
    "run_send",
    "run_send_again",
    "run_submit",
    "run_submit_many",
    "runs_sweep",
    "send_backoff",
    "send_outcome",
    "transition",
    "update_rows",
]
