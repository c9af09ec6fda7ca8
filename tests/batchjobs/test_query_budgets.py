"""What the daily trigger page, the TalkifAI jobs page and their live parts cost in queries,
whatever the history's size (issue 12): a live fragment 3 queries at most, a page a fixed number
that is the same with 3 daily runs as with 30."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from dashboard.clock import utc_now
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import RunState
from tests.factories import ApprovalFactory, RunAttemptFactory, RunFactory

pytestmark = pytest.mark.django_db

LIVE_FRAGMENT_BUDGET = 3


def past_daily_runs(daily, count: int, *, first_day_back: int = 0) -> None:
    """`count` finished daily triggers of earlier UTC days, each approved and attempted."""
    today = utc_now().date()
    for n in range(first_day_back, first_day_back + count):
        day = today - timedelta(days=n + 1)
        run = RunFactory(
            tenant=daily.team.tenant,
            connection=daily.connection,
            operation=Operation.OPTIMOVE_TRIGGER_DAILY,
            parameters={},
            utc_date=day,
            state=RunState.SUCCEEDED if n % 3 else RunState.CANCELLED,
            requested_by=daily.team.marketer.user,
        )
        ApprovalFactory(run=run, decided_by=daily.team.operator.user)
        RunAttemptFactory(run=run, started_at=utc_now() - timedelta(days=n + 1))
        Run.objects.filter(pk=run.pk).update(created_at=utc_now() - timedelta(days=n + 1))


def test_daily_page_and_its_live_status_cost_the_same_at_any_size(
    daily, count_queries, django_assert_max_num_queries
):
    daily.request("marketer")  # today's request, awaiting approval
    client = daily.team.client_for("operator")
    url = reverse("daily_trigger", args=["acme"])
    past_daily_runs(daily, 3)
    few_page = count_queries(client, url)[1]
    few_fragment = count_queries(client, url, htmx=True)[1]
    past_daily_runs(daily, 27, first_day_back=3)
    # membership+user, the status's queries, the tenant switcher, the badge count
    with django_assert_max_num_queries(few_page):
        response, many_page = count_queries(client, url)
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        fragment, many_fragment = count_queries(client, url, htmx=True)
    assert (few_page, few_fragment) == (many_page, many_fragment)
    assert many_page <= LIVE_FRAGMENT_BUDGET + 3
    assert len(response.context["status"].recent_runs) == 10
    body = fragment.content.decode()
    assert 'id="daily-status"' in body and "awaits approval" in body


def test_the_daily_status_picks_the_same_runs_as_before(daily):
    """The one-query selection keeps the open request and today's latest run even when ten
    newer runs of other days exist (a clock moved back, runs created for another day)."""
    from batchjobs.guardrails import daily_trigger_status

    open_run = daily.request("marketer")
    Run.objects.filter(pk=open_run.pk).update(created_at=utc_now() - timedelta(days=40))
    past_daily_runs(daily, 12)
    for run in Run.objects.exclude(pk=open_run.pk):
        Run.objects.filter(pk=run.pk).update(created_at=utc_now() + timedelta(minutes=run.pk))
    status = daily_trigger_status(tenant=daily.team.tenant)
    assert status.open_run.pk == open_run.pk
    assert status.latest_today.pk == open_run.pk
    assert status.triggered_today is None
    assert open_run.pk not in [run.pk for run in status.recent_runs]
    assert len(status.recent_runs) == 10


def test_batch_jobs_page_and_its_live_parts(
    team, register_job, count_queries, django_assert_max_num_queries
):
    job = register_job("job-running-001")
    client = team.client_for("operator")
    url = reverse("batch_job_list", args=["acme"])

    def starts(count: int) -> None:
        for _ in range(count):
            RunFactory(
                tenant=team.tenant,
                connection=job.connection,
                state=RunState.SUCCEEDED,
                parameters={"batch_job_id": job.batch_job_id, "batch_job_name": job.name},
            )

    starts(3)
    few = count_queries(client, url)[1]
    starts(27)
    # membership+user, starts, jobs, registration form's connections, badge, tenant switcher
    with django_assert_max_num_queries(few):
        count_queries(client, url)
    assert few <= 8
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response, _ = count_queries(client, url, htmx=True)
    assert response.status_code == 286  # every start settled: the recent starts stop polling
    row_url = reverse("batch_job_row", args=["acme", job.pk])
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response, _ = count_queries(client, row_url)
    assert response.status_code == 200 and f'id="job-{job.pk}"' in response.content.decode()
