"""Sending and polling go to separate queues, so polling never delays a send; a single run's
send (a person's click) has a queue of its own, so a burst never delays it."""

import pytest

from dashboard.models import VendorKind
from dashboard.project.celery import app
from dashboard.runs import enqueue
from dashboard.runs.models import Operation
from dashboard.runs.states import RunState
from tests.factories import RunFactory, VendorConnectionFactory


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


@pytest.fixture
def messages(monkeypatch):
    """The runs.send messages enqueued (after the commit): (args, kwargs, queue)."""
    from dashboard.runs import tasks

    sent = []
    monkeypatch.setattr(
        tasks.send_run,
        "apply_async",
        lambda args, kwargs=None, queue=None, **_: sent.append((args, kwargs, queue)),
    )
    return sent


@pytest.mark.django_db
def test_a_single_runs_send_goes_to_the_interactive_queue(
    messages, django_capture_on_commit_callbacks
):
    run = RunFactory(state=RunState.QUEUED)  # a TalkifAI start, as an approval queues it

    with django_capture_on_commit_callbacks(execute=True):
        enqueue.enqueue("send", run.pk)
        enqueue.enqueue("send", run.pk, 5.0)  # its retry too

    assert messages == [([run.pk], None, "interactive")] * 2


@pytest.mark.django_db
def test_a_batched_runs_plain_send_message_stays_on_the_send_queue(
    messages, django_capture_on_commit_callbacks, clean_redis
):
    """Such a message runs a dispatcher for the whole connection: it must never take the
    interactive lane, whether or not its caller named the batch (a retry, the sweeper)."""
    connection = VendorConnectionFactory(kind=VendorKind.OPTIMOVE_CAMPAIGNS)
    run = RunFactory(
        tenant=connection.tenant,
        connection=connection,
        operation=Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
        parameters={"event_generator_id": "g", "topic_key": "t", "context": {}},
        state=RunState.QUEUED,
    )

    with django_capture_on_commit_callbacks(execute=True):
        enqueue.enqueue("send", run.pk, 5.0)  # a retry, batch not named
        enqueue.enqueue("send", run.pk)  # the sweeper's plain message
        enqueue.enqueue("send", run.pk, batch=enqueue.batch_of(run))  # a submission's wake-up

    assert messages == [
        ([run.pk], None, None),
        ([run.pk], None, None),
        ([run.pk], {"slot": 0}, None),
    ]


def interactive_entries(client) -> set[bytes]:
    from dashboard.runs.rate_limits import INTERACTIVE_KEY

    return set(client.zrange(INTERACTIVE_KEY, 0, -1))


@pytest.mark.django_db
def test_a_click_is_marked_in_flight_before_its_message_leaves(
    monkeypatch, django_capture_on_commit_callbacks, clean_redis
):
    """The bulk lane yields to a person's click from the moment its send is enqueued; a retry
    with a countdown is no click anyone waits on, and marks nothing."""
    from dashboard.runs import tasks

    run = RunFactory(state=RunState.QUEUED)
    later = RunFactory(state=RunState.QUEUED)
    published = []
    monkeypatch.setattr(
        tasks.send_run,
        "apply_async",
        lambda args, queue=None, **_: published.append(
            (args, queue, interactive_entries(clean_redis))
        ),
    )

    with django_capture_on_commit_callbacks(execute=True):
        enqueue.enqueue("send", run.pk)
        enqueue.enqueue("send", later.pk, 5.0)

    marked = {f"run:{run.pk}".encode()}
    assert published == [([run.pk], "interactive", marked), ([later.pk], "interactive", marked)]
