"""Event-generator triggers on the real stack: Celery worker processes, the Optimove campaigns
sandbox over HTTP, PostgreSQL and Redis. Polling to each terminal state, the vendor's 404, 422
and 429, a 1,000-topic trigger through two workers, a schedule across beat and worker restarts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse

from campaigns.event_generators import services
from campaigns.event_generators.models import (
    ScheduledTrigger,
    ScheduleState,
    TriggerGroup,
)
from dashboard.audit.trail import Actor, verify_audit_chains
from dashboard.clock import utc_now
from dashboard.runs.models import Run, RunAttempt
from dashboard.runs.states import RunState
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT, NEWSLETTER
from tests.e2e.conftest import CELERY, REPO, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAILING_GENERATOR = "44444444-abcd-abcd-abcd-444444444444"
UNKNOWN_GENERATOR = "99999999-abcd-abcd-abcd-999999999999"
SETTLED = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}


def settled(runs) -> bool:
    return not runs.exclude(state__in=SETTLED).exists()


def fire(team, generator, topics, key=None, context=None):
    return services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=topics,
        context=context or GOOD_CONTEXT,
        idempotency_key=key or uuid.uuid4().hex,
    )


def test_runs_are_polled_to_published_and_failed_and_only_failed_are_retried(
    team, workers, sandboxes, make_generator
):
    sandboxes["optimove_campaigns"].control(
        "add_event_generator",
        {
            "brand": "demo-brand",
            "event_generator_id": FAILING_GENERATOR,
            "name": "Goal scored",
            "fail_topics": [CHELSEA],
        },
    )
    generator = make_generator(external_id=FAILING_GENERATOR, name="Goal scored")
    workers.start(pool="threads", concurrency=4)
    group = fire(team, generator, [ARSENAL, CHELSEA])
    runs = Run.objects.filter(campaign_run__group=group)
    wait_for(lambda: settled(runs), timeout=90, interval=0.3, message="both runs to settle")

    published = runs.get(parameters__topic_key=ARSENAL)
    failed = runs.get(parameters__topic_key=CHELSEA)
    assert published.state == RunState.SUCCEEDED and published.vendor_status == "published"
    assert published.audience_size and published.vendor_reference.startswith("exec-")
    assert failed.state == RunState.FAILED and failed.vendor_status == "failed"
    assert failed.failure_code == "audience_resolution_failed"
    assert CHELSEA in failed.failure_message
    # The exact body the preview shows is what went out.
    send = RunAttempt.objects.get(run=published, purpose="send")
    from campaigns.event_generators.schema import request_body

    assert send.exchange["request_body"] == request_body(topic_key=ARSENAL, context=GOOD_CONTEXT)

    client = team.client_for("marketer")
    page = client.get(
        reverse("trigger_group_detail", args=[team.tenant.slug, group.pk])
    ).content.decode()
    assert 'id="published-count">1<' in page and 'id="failed-count">1<' in page
    assert f'id="audience-total">{published.audience_size:,}<' in page

    retried = services.trigger_group_retry_failed(actor=Actor(user=team.marketer.user), group=group)
    assert [run.parameters["topic_key"] for run in retried] == [CHELSEA]
    wait_for(lambda: settled(Run.objects.filter(pk=retried[0].pk)), timeout=60, message="the retry")
    state = sandboxes["optimove_campaigns"].state()
    assert state["runs_accepted"] == {"demo-brand": 3}  # the published topic was not resent


@pytest.mark.parametrize(
    "external_id, code, words",
    [
        (UNKNOWN_GENERATOR, "event_generator_not_found", "does not know this Event Generator"),
        (NEWSLETTER, "not_api_triggered", "not an API-triggered campaign (422)"),
    ],
)
def test_404_and_422_fail_with_plain_words(
    team, workers, sandboxes, make_generator, external_id, code, words
):
    generator = make_generator(external_id=external_id, name=f"Generator {code}")
    workers.start(pool="threads", concurrency=2)
    run = fire(team, generator, [ARSENAL]).campaign_runs.get().run
    wait_for(lambda: settled(Run.objects.filter(pk=run.pk)), timeout=60, message="the run")
    run.refresh_from_db()
    assert run.state == RunState.FAILED and run.failure_code == code
    assert run.attempt_count == 1  # a refusal is not retried
    page = team.client_for("marketer").get(
        reverse("campaign_run_detail", args=[team.tenant.slug, run.pk])
    )
    html = page.content.decode()
    assert words in html and "What to do" in html and 'id="relaunch"' in html


def test_429_is_waited_out_and_explained(
    team, workers, sandboxes, make_generator, campaigns_connection
):
    """Our bucket allows more than the sandbox (a misconfigured limit, or another system using the
    brand): Optimove's 429s are waited out through Retry-After."""
    sandboxes["optimove_campaigns"].control("set_rate_limit", {"per_second": 4})
    campaigns_connection.options = {"rate_limit_per_second": 400}
    campaigns_connection.save()
    topics = [str(uuid.UUID(int=number)) for number in range(1, 13)]
    generator = make_generator(topics=[(key, f"Topic {n}") for n, key in enumerate(topics)])
    workers.start(pool="threads", concurrency=4)
    group = fire(team, generator, topics)
    runs = Run.objects.filter(campaign_run__group=group)
    wait_for(lambda: settled(runs), timeout=120, interval=0.5, message="12 runs to settle")
    throttled = RunAttempt.objects.filter(run__in=runs, status_code=429)
    assert throttled.exists()
    assert set(runs.values_list("state", flat=True)) <= {RunState.SUCCEEDED, RunState.FAILED}
    assert not runs.filter(state=RunState.FAILED).exclude(failure_code="rate_limited").exists()
    assert sandboxes["optimove_campaigns"].state()["throttled"]
    from campaigns.event_generators.explain import FAILURES

    assert "429" in FAILURES["rate_limited"][0] and "Retry-After" in FAILURES["rate_limited"][1]


def test_a_1000_topic_trigger_through_two_workers_gets_no_429(
    team, workers, sandboxes, make_generator
):
    count = 1000
    topics = [(str(uuid.UUID(int=number + 1)), f"Match {number}") for number in range(count)]
    generator = make_generator(topics=topics)
    for _ in range(2):
        workers.start(pool="threads", concurrency=8, wait=False)
    for started in workers.started:
        started.wait_ready()
    group = fire(team, generator, [key for key, _ in topics])
    runs = Run.objects.filter(campaign_run__group=group)
    assert runs.count() == count
    wait_for(lambda: settled(runs), timeout=400, interval=1.0, message=f"{count} runs")

    state = sandboxes["optimove_campaigns"].state()
    assert state["throttled"] == {}
    assert state["runs_accepted"] == {"demo-brand": count}
    assert len({execution["topic_key"] for execution in state["executions"]}) == count
    assert runs.filter(state=RunState.SUCCEEDED).count() == count
    assert not RunAttempt.objects.filter(run__in=runs, status_code=429).exists()
    assert verify_audit_chains() == []


# -- schedules across restarts -----------------------------------------------------------------


class Beat:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env, self.processes = tmp, env, []

    def start(self) -> subprocess.Popen:
        log = (self.tmp / f"beat-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "dashboard",
                "beat",
                "--loglevel",
                "INFO",
                "-s",
                str(self.tmp / "beat-schedule"),
                "--pidfile",
                "",
            ],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def kill_all(self) -> None:
        for process in self.processes:
            self.kill(process)


@pytest.fixture
def beat(workers, tmp_path):
    env = {**workers.base_env, "CAMPAIGN_SCHEDULE_INTERVAL_SECONDS": "1"}
    manager = Beat(tmp_path, env)
    yield manager
    manager.kill_all()


def test_a_schedule_fires_once_across_beat_and_worker_restarts(
    team, workers, beat, sandboxes, generator
):
    first_worker = workers.start(pool="threads", concurrency=4)
    first_beat = beat.start()
    planned = services.schedule_create(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL, CHELSEA],
        context=GOOD_CONTEXT,
        fire_at=utc_now() + timedelta(seconds=6),
    )
    # Both die before the schedule is due (the countdown message dies with the broker's copy in
    # the dead worker's hands, beat's last-run file may be stale).
    first_worker.kill()
    Beat.kill(first_beat)
    assert ScheduledTrigger.objects.get(pk=planned.pk).state == ScheduleState.SCHEDULED

    for _ in range(2):
        workers.start(pool="threads", concurrency=4, wait=False)
    for started in workers.started[1:]:
        started.wait_ready()
    beat.start()

    def fired():
        planned.refresh_from_db()
        return planned.state == ScheduleState.FIRED

    wait_for(fired, timeout=90, interval=0.3, message="the schedule to fire")
    runs = Run.objects.filter(campaign_run__group=planned.group)
    wait_for(lambda: settled(runs), timeout=90, interval=0.5, message="its runs")
    # Beat keeps firing the task every second and the countdown was delivered again: still once.
    wait_for(
        lambda: (
            sum(w.log().count("campaigns.fire_due_schedules") for w in workers.started[1:]) >= 10
        ),
        timeout=60,
        interval=0.5,
        message="more passes of the scheduler",
    )
    assert TriggerGroup.objects.count() == 1
    assert runs.count() == 2 and runs.filter(state=RunState.SUCCEEDED).count() == 2
    assert sandboxes["optimove_campaigns"].state()["runs_accepted"] == {"demo-brand": 2}
    assert planned.fired_at >= planned.fire_at
