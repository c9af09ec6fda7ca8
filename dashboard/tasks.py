"""Celery tasks of the run engine: thin callers of dashboard.runs.services.

Sending and polling use separate queues ("send", "poll") so that polling never delays a send.
"""

from celery import shared_task

from dashboard.runs import services


@shared_task(name="runs.send", queue="send", acks_late=True, ignore_result=True)
def send_run(run_id: int) -> str:
    return services.run_send(run_id=run_id)


@shared_task(name="runs.reconcile", queue="send", acks_late=True, ignore_result=True)
def reconcile_run(run_id: int) -> str:
    return services.run_reconcile(run_id=run_id)


@shared_task(name="runs.poll", queue="poll", acks_late=True, ignore_result=True)
def poll_run(run_id: int) -> str:
    return services.run_poll(run_id=run_id)


@shared_task(name="runs.sweep", queue="poll", ignore_result=True)
def sweep_runs() -> dict[str, int]:
    return services.runs_sweep()
