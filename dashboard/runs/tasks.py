"""Celery tasks of the run engine: thin callers of dashboard.runs.services and the dispatcher.

Sending and polling use separate queues ("send", "poll") so that polling never delays a send;
CELERY_TASK_ROUTES in settings says which task goes where. The engine enqueues these by name
(runs/enqueue.py), so no engine module imports this one.
"""

import time

from celery import shared_task, signals
from django.db import connections

from dashboard.observability.heartbeat import record_sweep
from dashboard.runs import dispatch, services


@signals.task_postrun.connect
def close_broken_database_connections(**kwargs) -> None:
    """With CELERY_DB_REUSE_MAX the worker keeps its database connection between tasks, and no
    request cycle runs Django's own check: drop a connection that failed or is past
    CONN_MAX_AGE here, so the next task opens a fresh one instead of failing on it."""
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred or (
            connection.close_at is not None and time.monotonic() >= connection.close_at
        ):
            connection.close_if_unusable_or_obsolete()


@shared_task(name="runs.send", acks_late=True, ignore_result=True)
def send_run(run_id: int, slot: int | None = None) -> str:
    return services.run_send(run_id=run_id, slot=slot)


@shared_task(name="runs.reconcile", acks_late=True, ignore_result=True)
def reconcile_run(run_id: int) -> str:
    return services.run_reconcile(run_id=run_id)


@shared_task(name="runs.poll", acks_late=True, ignore_result=True)
def poll_run(run_id: int) -> str:
    return services.run_poll(run_id=run_id)


@shared_task(name="runs.dispatch_polls", acks_late=True, ignore_result=True)
def dispatch_polls(connection_id: int, operation: str) -> str:
    return dispatch.dispatch_polls(connection_id=connection_id, operation=operation)


@shared_task(name="runs.sweep", ignore_result=True)
def sweep_runs() -> dict[str, int]:
    report = services.runs_sweep()
    record_sweep()  # for /readyz: beat scheduled it and a poll worker ran it
    return report
