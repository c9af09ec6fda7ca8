"""Sending and polling go to separate queues, so polling never delays a send."""

import pytest

from dashboard.project.celery import app


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("runs.send", "send"),
        ("runs.reconcile", "send"),
        ("runs.poll", "poll"),
        ("runs.dispatch_polls", "poll"),
        ("runs.sweep", "poll"),
    ],
)
def test_task_routes(task, queue):
    assert app.amqp.router.route({}, task)["queue"].name == queue


def test_acknowledgement_settings_are_deliberate():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is True


def test_a_worker_finds_every_task_by_the_name_the_engine_enqueues():
    # What a worker does at start: the autodiscovery dashboard/project/celery.py asked for.
    app.loader.import_default_modules()
    assert {
        "runs.send",
        "runs.reconcile",
        "runs.poll",
        "runs.dispatch_polls",
        "runs.sweep",
        "audit.verify",
        "auth.password_reset_email",
        "campaigns.fire_due_schedules",
    } <= set(app.tasks)
