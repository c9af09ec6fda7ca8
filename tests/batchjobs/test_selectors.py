"""The daily trigger's status answer, the failure explanations, and the TalkifAI status reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchjobs import selectors
from batchjobs.vendors.optimove_daily import client as optimove
from batchjobs.vendors.talkifai import client as talkifai_client
from dashboard.models import Role
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import RunState
from dashboard.vendors.sandbox import Fault
from tests.factories import (
    MembershipFactory,
    RunAttemptFactory,
    RunFactory,
    VendorConnectionFactory,
)

pytestmark = pytest.mark.django_db

D = datetime(2026, 3, 10, tzinfo=UTC)
DAILY = Operation.OPTIMOVE_TRIGGER_DAILY


def daily_run(daily, **fields):
    fields.setdefault("state", RunState.AWAITING_APPROVAL)
    fields.setdefault("requested_by", daily.team.marketer.user)
    return RunFactory(
        tenant=daily.team.tenant,
        connection=daily.connection,
        operation=DAILY,
        parameters={"wait_time_for_validation_seconds": None},
        utc_date=fields.pop("utc_date", D.date()),
        **fields,
    )


def test_status_of_a_fresh_day(daily, clock):
    clock.set(D.replace(hour=21, minute=30))
    status = selectors.daily_trigger_status(tenant=daily.team.tenant)
    assert status.can_request and status.reasons == []
    assert status.utc_date == D.date()
    assert status.next_utc_midnight == D + timedelta(days=1)
    assert status.time_to_midnight == "2 h 30 min"
    assert status.window_ends_at is None and status.window_remaining_seconds == 0
    assert status.connection == daily.connection and status.key_role == "ApiRole"
    assert status.poll_seconds == 30


def test_role_reasons(daily):
    tenant = daily.team.tenant
    auditor = selectors.daily_trigger_status(tenant=tenant, membership=daily.team.auditor)
    assert auditor.reasons == [
        "Your role (Auditor) can watch the daily trigger but not request it."
    ]
    tenant.approval_required = False
    marketer = selectors.daily_trigger_status(tenant=tenant, membership=daily.team.marketer)
    assert "only operators trigger" in marketer.reasons[0]
    assert selectors.daily_trigger_status(tenant=tenant, membership=daily.team.operator).can_request


def test_connection_problems(team, sandbox_connection, clean_redis):
    status = selectors.daily_trigger_status(tenant=team.tenant)
    assert status.reasons == [
        "This tenant has no active Optimove batch connection. An admin adds one under Connections."
    ]
    sandbox_connection(team.tenant, "optimove_batch", name="EU")
    sandbox_connection(team.tenant, "optimove_batch", name="Staging")
    status = selectors.daily_trigger_status(tenant=team.tenant)
    assert status.connection is None and status.connection_count == 2
    assert "2 active Optimove batch connections" in status.reasons[0]


def test_window_comes_from_the_newest_attempt_that_reached_optimove(daily, clock):
    clock.set(D.replace(hour=8, minute=5))
    old = daily_run(daily, state=RunState.FAILED)
    RunAttemptFactory(run=old, started_at=D.replace(hour=7), status_code=400)
    recent = daily_run(daily, state=RunState.FAILED)
    RunAttemptFactory(run=recent, started_at=D.replace(hour=8), status_code=504)
    never_left = daily_run(daily, state=RunState.FAILED)
    RunAttemptFactory(
        run=never_left,
        started_at=D.replace(hour=8, minute=4),
        status_code=None,
        failure_class="not_sent",
    )
    status = selectors.daily_trigger_status(tenant=daily.team.tenant)
    assert status.window_ends_at == D.replace(hour=8, minute=10)
    assert status.window_remaining == "5 min 00 s"
    assert [b.code for b in status.blockers] == ["rate_window"]
    assert status.poll_seconds == 15


def test_window_ignores_other_connections_and_operations(daily, clock, team):
    clock.set(D.replace(hour=8, minute=5))
    talkifai = VendorConnectionFactory(tenant=team.tenant, kind="talkifai")
    start = RunFactory(tenant=team.tenant, connection=talkifai, state=RunState.SUCCEEDED)
    RunAttemptFactory(run=start, started_at=D.replace(hour=8))
    assert selectors.daily_trigger_status(tenant=team.tenant).window_ends_at is None


def test_open_runs_block_and_speed_up_the_page(daily, clock):
    clock.set(D.replace(hour=9))
    run = daily_run(daily, approval_expires_at=D.replace(hour=11))
    status = selectors.daily_trigger_status(tenant=daily.team.tenant)
    assert status.open_run == run and status.poll_seconds == 5
    assert status.reasons == [
        f"Request #{run.pk} is waiting for an operator's approval: approve, reject or withdraw it first."
    ]
    # For approving that same run, the open request is not a reason; another one would be.
    assert status.approve_blockers(run) == []
    assert [b.code for b in status.approve_blockers(run, membership=daily.team.marketer)] == [
        "role"
    ]
    assert [b.code for b in status.approve_blockers(run, membership=daily.team.operator)] == []
    Run.objects.filter(pk=run.pk).update(state=RunState.SENDING)
    status = selectors.daily_trigger_status(tenant=daily.team.tenant)
    assert status.poll_seconds == 2
    assert status.reasons == [f"Trigger #{run.pk} is sending; wait for its outcome."]


def test_requester_sees_the_four_eyes_rule(daily, clock):
    run = daily_run(daily, requested_by=daily.team.operator.user)
    status = selectors.daily_trigger_status(tenant=daily.team.tenant)
    blockers = status.approve_blockers(run, membership=daily.team.operator)
    assert blockers[0].text == "You requested this trigger, so another operator must approve it."


def test_an_unknown_outcome_from_yesterday_still_blocks_today(daily, clock):
    clock.set(D.replace(hour=1))
    run = daily_run(
        daily,
        utc_date=D.date() - timedelta(days=1),
        state=RunState.OUTCOME_UNKNOWN,
        needs_person=True,
    )
    status = selectors.daily_trigger_status(tenant=daily.team.tenant)
    assert status.open_run == run
    assert "a person must settle it first" in status.reasons[0]


def test_status_finds_todays_and_the_open_run_behind_a_page_of_newer_ones(daily, clock):
    # The status query is bounded (a LIMIT, so PostgreSQL plans it as small): the runs it names
    # must still be found when more recent daily runs than the status lists come after them.
    clock.set(D.replace(hour=20))

    def created(run, at):  # created_at is auto_now_add: set it as the history had it
        Run.objects.filter(pk=run.pk).update(created_at=at)
        return run

    open_run = created(
        daily_run(daily, utc_date=D.date() - timedelta(days=40), state=RunState.ACCEPTED),
        D - timedelta(days=40),
    )
    done_today = created(daily_run(daily, state=RunState.SUCCEEDED), D.replace(hour=1))
    for day in range(1, selectors.RECENT_DAILY_RUNS + 5):
        failed = daily_run(daily, utc_date=D.date() - timedelta(days=day), state=RunState.FAILED)
        created(failed, D.replace(hour=2) + timedelta(minutes=day))
    status = selectors.daily_trigger_status(tenant=daily.team.tenant)
    assert status.open_run == open_run
    assert status.triggered_today == done_today
    assert len(status.recent_runs) == selectors.RECENT_DAILY_RUNS
    assert done_today not in status.recent_runs  # older than the ten newest


def test_page_polls_faster_just_before_midnight(daily, clock):
    clock.set(D.replace(hour=23, minute=59))
    assert selectors.daily_trigger_status(tenant=daily.team.tenant).poll_seconds == 5


@pytest.mark.parametrize("code", sorted(selectors.DAILY_FAILURES))
def test_every_optimove_failure_has_a_plain_explanation(code):
    explanation = selectors.explain_failure(DAILY, code, "Optimove answered HTTP 400")
    assert explanation.headline and not explanation.headline.startswith("The call did not")
    assert explanation.advice
    assert explanation.detail == "Optimove answered HTTP 400"


def test_every_documented_optimove_answer_is_covered():
    documented = {error.code for error in optimove.REJECTION_BY_MESSAGE.values()} | {
        "unauthorized",
        "token_expired",
        "rate_limited",
        "server_error",
        "gateway_timeout",
    }
    assert documented <= set(selectors.DAILY_FAILURES)
    assert selectors.DAILY_FAILURES["validation_failed"][1] == optimove.ValidationFailed.advice


def test_unknown_codes_still_read_as_a_sentence():
    explanation = selectors.explain_failure(DAILY, "weird_thing")
    assert explanation.headline == "The call did not succeed (weird_thing)."


def test_explanations_by_state(daily, clock):
    clock.set(D.replace(hour=8))
    retrying = daily_run(
        daily,
        state=RunState.QUEUED,
        failure_code="rate_limited",
        next_attempt_at=D.replace(hour=8, minute=10),
    )
    explanation = selectors.run_explanation(retrying)
    assert explanation.tone == "warn"
    assert "TriggerDesk tries again at 08:10:00 UTC" in explanation.headline
    Run.objects.filter(pk=retrying.pk).update(state=RunState.FAILED)  # one in flight per tenant
    unknown = daily_run(
        daily,
        state=RunState.OUTCOME_UNKNOWN,
        failure_code="gateway_timeout",
        reconcile_after=D.replace(hour=8, minute=10, second=5),
    )
    explanation = selectors.run_explanation(unknown)
    assert explanation.headline.startswith("Outcome unknown. Optimove's gateway gave up")
    # One message: what happened, what TriggerDesk will do and when; no advice to re-send.
    assert explanation.advice.startswith("At 08:10:05 UTC")
    assert "TriggerDesk asks Optimove again" in explanation.advice
    assert "Try again" not in explanation.advice and not explanation.detail
    assert selectors.run_explanation(daily_run(daily, state=RunState.SUCCEEDED)) is None


def test_batch_job_vendor_status(team, talkifai, register_job):
    job = register_job("job-scheduled-001")
    status = selectors.batch_job_vendor_status(batch_job=job)
    assert status.detail.status == "scheduled" and status.can_start_now and not status.problem
    talkifai.inject_fault("batch_job_detail", Fault.SERVER_ERROR)
    status = selectors.batch_job_vendor_status(batch_job=job)
    assert status.detail is None and not status.can_start_now
    assert status.problem == talkifai_client.TalkifaiServerError.advice
    talkifai.control("add_job", {"id": "job-extra", "status": "pending"})
    extra = register_job("job-extra")
    talkifai.reset()  # TalkifAI forgets the job after it was registered here
    assert "no batch job with this id" in selectors.batch_job_vendor_status(batch_job=extra).problem
    job.connection.is_active = False
    assert "inactive" in selectors.batch_job_vendor_status(batch_job=job).problem


def test_batch_job_get_is_tenant_scoped(team, other_team, talkifai, register_job):
    from django.http import Http404

    job = register_job("job-pending-001")
    with pytest.raises(Http404):
        selectors.batch_job_get(tenant=other_team.tenant, batch_job_pk=job.pk)
    MembershipFactory(tenant=other_team.tenant, role=Role.OPERATOR)
    assert selectors.batch_job_get(tenant=team.tenant, batch_job_pk=job.pk) == job
