"""The daily trigger's policy and reads: what blocks a request or an approval, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchjobs import guardrails
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import RunState
from tests.factories import (
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
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
    assert status.can_request and status.reasons == []
    assert status.utc_date == D.date()
    assert status.next_utc_midnight == D + timedelta(days=1)
    assert status.time_to_midnight == "2 h 30 min"
    assert status.window_ends_at is None and status.window_remaining_seconds == 0
    assert status.connection == daily.connection and status.key_role == "ApiRole"
    assert status.poll_seconds == 30


def test_role_reasons(daily):
    tenant = daily.team.tenant
    auditor = guardrails.daily_trigger_status(tenant=tenant, membership=daily.team.auditor)
    assert auditor.reasons == [
        "Your role (Auditor) can watch the daily trigger but not request it."
    ]
    tenant.approval_required = False
    marketer = guardrails.daily_trigger_status(tenant=tenant, membership=daily.team.marketer)
    assert "only operators trigger" in marketer.reasons[0]
    assert guardrails.daily_trigger_status(
        tenant=tenant, membership=daily.team.operator
    ).can_request


def test_connection_problems(team, sandbox_connection, clean_redis):
    status = guardrails.daily_trigger_status(tenant=team.tenant)
    assert status.reasons == [
        "This tenant has no active Optimove batch connection. An admin adds one under Connections."
    ]
    sandbox_connection(team.tenant, "optimove_batch", name="EU")
    sandbox_connection(team.tenant, "optimove_batch", name="Staging")
    status = guardrails.daily_trigger_status(tenant=team.tenant)
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
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
    assert status.window_ends_at == D.replace(hour=8, minute=10)
    assert status.window_remaining == "5 min 00 s"
    assert [b.code for b in status.blockers] == ["rate_window"]
    assert status.poll_seconds == 15


def test_window_ignores_other_connections_and_operations(daily, clock, team):
    clock.set(D.replace(hour=8, minute=5))
    talkifai = VendorConnectionFactory(tenant=team.tenant, kind="talkifai")
    start = RunFactory(tenant=team.tenant, connection=talkifai, state=RunState.SUCCEEDED)
    RunAttemptFactory(run=start, started_at=D.replace(hour=8))
    assert guardrails.daily_trigger_status(tenant=team.tenant).window_ends_at is None


def test_open_runs_block_and_speed_up_the_page(daily, clock):
    clock.set(D.replace(hour=9))
    run = daily_run(daily, approval_expires_at=D.replace(hour=11))
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
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
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
    assert status.poll_seconds == 2
    assert status.reasons == [f"Trigger #{run.pk} is sending; wait for its outcome."]


def test_requester_sees_the_four_eyes_rule(daily, clock):
    run = daily_run(daily, requested_by=daily.team.operator.user)
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
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
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
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
    for day in range(1, guardrails.RECENT_DAILY_RUNS + 5):
        failed = daily_run(daily, utc_date=D.date() - timedelta(days=day), state=RunState.FAILED)
        created(failed, D.replace(hour=2) + timedelta(minutes=day))
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
    assert status.open_run == open_run
    assert status.triggered_today == done_today
    assert len(status.recent_runs) == guardrails.RECENT_DAILY_RUNS
    assert done_today not in status.recent_runs  # older than the ten newest


def test_page_polls_faster_just_before_midnight(daily, clock):
    clock.set(D.replace(hour=23, minute=59))
    assert guardrails.daily_trigger_status(tenant=daily.team.tenant).poll_seconds == 5
