"""The daily trigger's guardrails and four-eyes approval, the files-landed gate, and TalkifAI jobs
(register, start), on the real run engine, PostgreSQL, Redis and the sandboxes over HTTP."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connections, transaction

from batchjobs import explanations, guardrails, selectors, services
from batchjobs.models import BatchJob, FilesLanded
from batchjobs.vendors.optimove_daily.access import daily_rate_rule
from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent, ConnectionSecret
from dashboard.runs.models import Approval, Run
from dashboard.runs.rate_limits import rate_limiter
from dashboard.runs.services import RunActionError, run_approve, run_send, run_submit
from dashboard.runs.states import RunState
from dashboard.tenancy.credentials import connection_secrets
from dashboard.tenancy.services import connection_secret_set, tenant_settings_update
from dashboard.vendors.sandbox import Fault
from tests.factories import ConnectionSecretFactory

pytestmark = pytest.mark.django_db

D = datetime(2026, 3, 10, tzinfo=UTC)  # a Tuesday


# -- requesting -------------------------------------------------------------------------------


def test_request_waits_for_approval_bound_to_today_and_its_parameters(daily):
    run = daily.request("marketer", wait=12)
    assert run.state == RunState.AWAITING_APPROVAL
    assert run.operation == "optimove_trigger_daily"
    assert run.parameters == {"wait_time_for_validation_seconds": 12}
    assert run.utc_date == run.requested_at.date()
    assert run.approval_required
    assert "files have finished uploading" in run.attestation
    assert run.requested_by == daily.team.marketer.user
    assert AuditEvent.objects.filter(action="run.requested", object_id=str(run.pk)).count() == 1
    assert daily.calls() == 0  # nothing goes to Optimove before an operator approves


def test_same_idempotency_key_makes_one_request(daily):
    first = daily.request("marketer", key="form-1")
    again = daily.request("marketer", key="form-1")
    assert again.pk == first.pk
    assert Run.objects.count() == 1


def test_request_needs_the_attestation_and_a_valid_wait(daily):
    actor = daily.actor("marketer")
    with pytest.raises(ValidationError) as error:
        services.daily_trigger_request(
            actor=actor,
            tenant=daily.team.tenant,
            wait_time_for_validation_seconds=None,
            idempotency_key="k",
            files_uploaded_attested=False,
        )
    assert "attest_files_uploaded" in error.value.message_dict
    for bad in (31, -1, "abc", True):
        with pytest.raises(ValidationError) as error:
            services.daily_trigger_request(
                actor=actor,
                tenant=daily.team.tenant,
                wait_time_for_validation_seconds=bad,
                idempotency_key=f"k-{bad}",
                files_uploaded_attested=True,
            )
        assert "wait_time_for_validation_seconds" in error.value.message_dict
    assert Run.objects.count() == 0


def test_auditor_and_outsider_cannot_request(daily, other_team):
    with pytest.raises(RunActionError, match="cannot request"):
        daily.request("auditor")
    with pytest.raises(RunActionError, match="not a member"):
        services.daily_trigger_request(
            actor=Actor(user=other_team.operator.user),
            tenant=daily.team.tenant,
            wait_time_for_validation_seconds=None,
            idempotency_key="x",
            files_uploaded_attested=True,
        )
    assert Run.objects.count() == 0


def test_only_one_open_request_per_tenant(daily):
    first = daily.request("marketer")
    with pytest.raises(RunActionError, match=f"Request #{first.pk} is waiting"):
        daily.request("operator")
    assert Run.objects.count() == 1


# -- four eyes --------------------------------------------------------------------------------


def test_requester_cannot_approve_their_own_request(daily):
    run = daily.request("operator")
    with pytest.raises(RunActionError, match="requester cannot approve"):
        daily.approve(run, "operator")
    # Straight through the engine, the four-eyes rule holds the same way.
    with pytest.raises(RunActionError, match="requester cannot approve"):
        run_approve(
            actor=daily.actor("operator"), run=run, parameters_hash_seen=run.parameters_hash
        )
    daily.approve(run, "second_operator")
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    assert Approval.objects.get(run=run).decided_by == daily.team.second_operator.user


def test_marketer_cannot_approve(daily):
    run = daily.request("marketer")
    with pytest.raises(RunActionError, match="cannot approve"):
        daily.approve(run, "marketer")
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL


def test_approval_sends_and_the_page_knows_who_did_what(daily):
    run = daily.request("marketer", wait=7)
    daily.approve(run, "operator")
    assert daily.send(run) == "succeeded"
    assert run.state == RunState.SUCCEEDED
    assert daily.calls() == 1
    body = daily.optimove.received_on("trigger_daily")[0].json()
    assert body == {"WaitTimeForValidationSeconds": 7}

    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
    assert status.triggered_today == run
    assert guardrails.approved_by(status.triggered_today).decided_by == daily.team.operator.user
    assert not status.can_request
    assert {blocker.code for blocker in status.blockers} >= {"triggered_today", "rate_window"}


def test_changed_parameters_need_a_new_approval(daily):
    run = daily.request("marketer", wait=5)
    seen_by_approver = run.parameters_hash
    services.daily_trigger_change_wait(
        actor=daily.actor("marketer"),
        tenant=daily.team.tenant,
        run=run,
        wait_time_for_validation_seconds=20,
    )
    run.refresh_from_db()
    assert run.parameters_hash != seen_by_approver
    with pytest.raises(RunActionError, match="parameters changed"):
        daily.approve(run, "operator", parameters_hash=seen_by_approver)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL
    daily.approve(run, "operator", parameters_hash=run.parameters_hash)
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    assert Approval.objects.get(run=run).parameters_hash == run.parameters_hash


def test_only_the_requester_changes_a_request(daily):
    run = daily.request("marketer")
    with pytest.raises(RunActionError, match="Only the requester"):
        services.daily_trigger_change_wait(
            actor=daily.actor("operator"),
            tenant=daily.team.tenant,
            run=run,
            wait_time_for_validation_seconds=9,
        )


def test_an_expired_request_cannot_be_approved(daily, clock):
    clock.set(D.replace(hour=9))
    run = daily.request("marketer")
    assert run.approval_expires_at == D.replace(hour=11)  # 120 minutes, the tenant's default
    clock.set(D.replace(hour=11))
    with pytest.raises(RunActionError, match="expired"):
        daily.approve(run, "operator")
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert run.failure_code == "approval_expired"
    assert daily.calls() == 0
    # The expired request no longer blocks a new one.
    assert daily.request("marketer").state == RunState.AWAITING_APPROVAL


def test_an_approval_that_expired_before_sending_is_not_used(daily, clock):
    clock.set(D.replace(hour=9))
    run = daily.request("marketer")
    clock.set(D.replace(hour=10, minute=59))
    daily.approve(run, "operator")
    clock.set(D.replace(hour=11, minute=0, second=1))  # the worker comes late
    assert daily.send(run) == "guardrail"
    assert run.state == RunState.FAILED
    assert "approval expired" in run.failure_message
    assert daily.calls() == 0


def test_rejected_and_withdrawn_requests_send_nothing(daily):
    run = daily.request("marketer")
    services.daily_trigger_reject(
        actor=daily.actor("operator"), tenant=daily.team.tenant, run=run, comment="files late"
    )
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and run.failure_code == "rejected_by_approver"
    second = daily.request("marketer")
    with pytest.raises(RunActionError, match="requester or an operator"):
        services.daily_trigger_withdraw(
            actor=Actor(user=_another_marketer(daily).user), tenant=daily.team.tenant, run=second
        )
    services.daily_trigger_withdraw(
        actor=daily.actor("marketer"), tenant=daily.team.tenant, run=second
    )
    second.refresh_from_db()
    assert second.state == RunState.CANCELLED
    assert daily.calls() == 0


def _another_marketer(daily):
    from dashboard.models import Role
    from tests.factories import MembershipFactory

    return MembershipFactory(tenant=daily.team.tenant, role=Role.MARKETER)


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_approve_clicks_make_one_vendor_call(daily, monkeypatch):
    """Fifty clicks (two operators, real HTTP requests through the view, one DB connection per
    thread) approve once, queue once, and reach Optimove once."""
    from django.test import Client
    from django.urls import reverse

    from dashboard.runs import tasks

    enqueued: list[tuple] = []
    monkeypatch.setattr(
        tasks.send_run, "apply_async", lambda *args, **kwargs: enqueued.append((args, kwargs))
    )
    run = daily.request("marketer")
    url = reverse("daily_trigger_approve", args=[daily.team.tenant.slug, run.pk])
    clients = []
    for number in range(50):
        client = Client()
        client.force_login((daily.team.operator if number % 2 else daily.team.second_operator).user)
        clients.append(client)
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def click(client: Client) -> None:
        try:
            barrier.wait()
            response = client.post(url, {"parameters_hash": run.parameters_hash})
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=click, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [302] * 50
    assert Approval.objects.filter(run=run).count() == 1
    assert AuditEvent.objects.filter(action="run.approved", object_id=str(run.pk)).count() == 1
    assert len(enqueued) == 1
    # Every delivery of the send task (a redelivery, the sweeper) sends at most once.
    assert run_send(run_id=run.pk) == "succeeded"
    assert run_send(run_id=run.pk).startswith("skipped")
    assert daily.calls() == 1
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED


# -- guardrails ------------------------------------------------------------------------------


def test_one_successful_trigger_per_utc_day(daily):
    run = daily.request("marketer")
    daily.approve(run)
    daily.send(run)
    rate_limiter().release_window(
        daily_rate_rule(daily.connection, connection_secrets(daily.connection))
    )
    with pytest.raises(RunActionError, match="already triggered"):
        daily.request("marketer")
    # And in the database, whatever the code above it does.
    twin = Run.objects.get(pk=run.pk)
    twin.pk = None
    twin.idempotency_key = "twin"
    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()


def test_no_request_inside_the_rate_window_after_any_attempt(daily, clock):
    clock.set(D.replace(hour=8))
    run = daily.request("marketer")
    daily.approve(run)
    daily.optimove.control("set_task_condition", {"tenant": "demo", "condition": "misconfigured"})
    daily.send(run)
    assert run.state == RunState.FAILED
    rate_limiter().release_window(
        daily_rate_rule(daily.connection, connection_secrets(daily.connection))
    )
    clock.set(D.replace(hour=8, minute=7, second=30))
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
    assert status.window_remaining_seconds == 150
    assert status.window_remaining == "2 min 30 s"
    with pytest.raises(RunActionError, match=r"one request per 10 minutes.*08:10:00 UTC"):
        daily.request("marketer")
    clock.set(D.replace(hour=8, minute=10))
    assert daily.request("marketer").state == RunState.AWAITING_APPROVAL


def test_the_redis_window_counts_too(daily):
    rule = daily_rate_rule(daily.connection, connection_secrets(daily.connection))
    assert rate_limiter().acquire(rule) == 0  # a worker somewhere just took the window
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
    assert 595 <= status.window_remaining_seconds <= 600
    with pytest.raises(RunActionError, match="one request per 10 minutes"):
        daily.request("marketer")


def test_a_send_whose_start_could_not_be_recorded_gives_its_window_back(daily, monkeypatch):
    """PostgreSQL went away after the worker took the 10-minute window, before the send's start
    was on record: Optimove saw nothing, so the next attempt goes out at once, not ten minutes
    later (the fault proof's approved daily trigger that stayed queued past its settling)."""
    from dashboard.runs.services import sending

    run = daily.request("marketer")
    daily.approve(run)

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(sending, "open_attempt", database_gone)
    with pytest.raises(OperationalError):
        run_send(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.attempt_count, daily.calls()) == (RunState.QUEUED, 0, 0)
    rule = daily_rate_rule(daily.connection, connection_secrets(daily.connection))
    assert rate_limiter().window_remaining(rule) == 0
    monkeypatch.undo()

    daily.send(run)
    assert run.state == RunState.SUCCEEDED
    assert daily.calls() == 1
    assert rate_limiter().window_remaining(rule) > 590  # the request that went out holds it


def test_no_approval_inside_the_rate_window(daily):
    run = daily.request("marketer")
    rate_limiter().acquire(daily_rate_rule(daily.connection, connection_secrets(daily.connection)))
    with pytest.raises(RunActionError, match="one request per 10 minutes"):
        daily.approve(run)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL


def test_no_request_while_another_trigger_is_in_flight(daily):
    run = daily.request("marketer")
    daily.approve(run)
    for state in (RunState.QUEUED, RunState.SENDING, RunState.OUTCOME_UNKNOWN):
        Run.objects.filter(pk=run.pk).update(state=state)
        with pytest.raises(RunActionError, match=f"#{run.pk}"):
            daily.request("operator")


def test_third_party_key_is_blocked_before_anything_is_sent(daily):
    run = daily.request("marketer")
    daily.connection.options = {"key_role": "3rdParty"}
    daily.connection.save()
    with pytest.raises(RunActionError, match="3rdParty"):
        daily.approve(run)
    with pytest.raises(RunActionError, match="3rdParty"):
        run_approve(
            actor=daily.actor("operator"), run=run, parameters_hash_seen=run.parameters_hash
        )
    services.daily_trigger_withdraw(
        actor=daily.actor("marketer"), tenant=daily.team.tenant, run=run
    )
    with pytest.raises(RunActionError, match="3rdParty"):
        daily.request("marketer")
    assert daily.calls() == 0


def test_an_expired_key_blocks_until_it_is_replaced(daily):
    run = daily.request("marketer")
    daily.approve(run)
    secret = ConnectionSecret.objects.get(connection=daily.connection)
    secret.delete()
    ConnectionSecretFactory(
        connection=daily.connection, name="api_key", plaintext="sandbox-optimove-daily-expired-key"
    )
    daily.send(run)
    assert run.failure_code == "token_expired"
    rate_limiter().release_window(
        daily_rate_rule(daily.connection, connection_secrets(daily.connection))
    )
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant, now=_after_window(run))
    assert status.key_expired
    assert [b.code for b in status.blockers] == ["key_expired"]
    connection_secret_set(
        actor=daily.actor("admin"),
        connection=daily.connection,
        name="api_key",
        value="sandbox-optimove-daily-key",
    )
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant, now=_after_window(run))
    assert not status.key_expired and status.can_request


def _after_window(run):
    return run.attempts.get().started_at + timedelta(minutes=10, seconds=1)


def test_files_landed_gate(daily):
    tenant_settings_update(
        actor=daily.actor("admin"), tenant=daily.team.tenant, require_files_landed=True
    )
    with pytest.raises(RunActionError, match=r"files for .* have landed"):
        daily.request("marketer")
    today = guardrails.daily_trigger_status(tenant=daily.team.tenant).utc_date
    services.files_landed_give(
        actor=daily.actor("marketer"), tenant=daily.team.tenant, utc_date=today
    )
    run = daily.request("marketer")
    assert run.state == RunState.AWAITING_APPROVAL


def test_files_landed_gate_holds_for_approvals_from_any_page(daily):
    run = daily.request("marketer")
    tenant_settings_update(
        actor=daily.actor("admin"), tenant=daily.team.tenant, require_files_landed=True
    )
    with pytest.raises(RunActionError, match="have landed"):
        daily.approve(run)
    # The run engine's own approval (the run pages) is held by the operation's pre-send check.
    with pytest.raises(RunActionError, match="have landed"):
        run_approve(
            actor=daily.actor("operator"), run=run, parameters_hash_seen=run.parameters_hash
        )
    services.files_landed_give(
        actor=Actor.system("pipeline:nightly-export"),
        tenant=daily.team.tenant,
        utc_date=run.utc_date,
        source=FilesLanded.Source.PIPELINE,
    )
    daily.approve(run)
    assert daily.send(run) == "succeeded"


def test_files_landed_signal_rules(daily, clock):
    clock.set(D.replace(hour=6))
    tenant = daily.team.tenant
    first = services.files_landed_give(
        actor=daily.actor("marketer"), tenant=tenant, utc_date=D.date()
    )
    again = services.files_landed_give(
        actor=daily.actor("operator"), tenant=tenant, utc_date=D.date()
    )
    assert again.pk == first.pk and first.given_by == daily.team.marketer.user
    assert AuditEvent.objects.filter(action="files_landed.given").count() == 1
    with pytest.raises(ValidationError, match="future"):
        services.files_landed_give(
            actor=daily.actor("marketer"), tenant=tenant, utc_date=D.date() + timedelta(days=1)
        )
    with pytest.raises(RunActionError, match="cannot signal"):
        services.files_landed_give(
            actor=daily.actor("auditor"), tenant=tenant, utc_date=D.date() - timedelta(days=1)
        )
    with pytest.raises(ValidationError, match="pipeline"):
        services.files_landed_give(actor=Actor.system("x"), tenant=tenant, utc_date=D.date())
    pipeline = services.files_landed_give(
        actor=Actor.system("pipeline:dwh"),
        tenant=tenant,
        utc_date=D.date() - timedelta(days=1),
        source=FilesLanded.Source.PIPELINE,
    )
    assert pipeline.given_by is None and pipeline.given_by_label == "pipeline:dwh"


def test_with_approval_off_an_operator_triggers_directly_and_a_marketer_cannot(daily):
    tenant_settings_update(
        actor=daily.actor("admin"), tenant=daily.team.tenant, approval_required=False
    )
    daily.team.tenant.refresh_from_db()
    with pytest.raises(RunActionError, match="only operators trigger"):
        daily.request("marketer")
    run = daily.request("operator")
    assert run.state == RunState.QUEUED and not run.approval_required
    assert daily.send(run) == "succeeded"
    assert daily.calls() == 1
    assert AuditEvent.objects.filter(
        action="run.requested", actor=daily.team.operator.user
    ).exists()


# -- the UTC day boundary -------------------------------------------------------------------


def test_request_just_before_midnight_is_for_that_utc_day_and_expires_at_midnight(
    daily, shared_clock
):
    shared_clock.set(D.replace(hour=23, minute=59, second=59))
    run = daily.request("marketer")
    assert run.utc_date == D.date()
    assert run.approval_expires_at == D + timedelta(days=1)
    shared_clock.set(D + timedelta(days=1))  # 00:00:00 UTC
    with pytest.raises(RunActionError, match="expired"):
        daily.approve(run)
    status = guardrails.daily_trigger_status(tenant=daily.team.tenant)
    assert status.utc_date == (D + timedelta(days=1)).date()
    assert status.seconds_to_midnight == 24 * 3600
    tomorrow = daily.request("marketer")
    assert tomorrow.utc_date == (D + timedelta(days=1)).date()


def test_a_late_evening_request_from_utc_plus_3_is_for_the_utc_date(daily, shared_clock):
    # 23:30 UTC on D is 02:30 on D+1 in Moscow: the trigger is still D's, and its approval ends
    # at 00:00 UTC (30 minutes), not after the usual two hours.
    shared_clock.set(D.replace(hour=23, minute=30))
    run = daily.request("marketer")
    assert run.utc_date == D.date()
    assert run.approval_expires_at == datetime(2026, 3, 11, tzinfo=UTC)
    shared_clock.set(D.replace(hour=23, minute=45))
    daily.approve(run)
    assert daily.send(run) == "succeeded"
    assert daily.optimove.state()["tenants"]["demo"]["triggered_dates"] == ["2026-03-10"]


def test_an_approval_sent_after_midnight_is_refused_by_the_worker(daily, shared_clock):
    shared_clock.set(D.replace(hour=23, minute=59, second=58))
    run = daily.request("marketer")
    shared_clock.set(D.replace(hour=23, minute=59, second=59))
    daily.approve(run)
    shared_clock.set(D + timedelta(days=1))
    assert daily.send(run) == "guardrail"
    assert run.state == RunState.FAILED
    assert daily.calls() == 0


def test_yesterdays_success_does_not_block_today(daily, shared_clock):
    shared_clock.set(D.replace(hour=22))
    run = daily.request("marketer")
    daily.approve(run)
    daily.send(run)
    daily.optimove.control("finish_task", {"tenant": "demo"})
    shared_clock.set(D + timedelta(days=1, hours=1))
    rate_limiter().release_window(
        daily_rate_rule(daily.connection, connection_secrets(daily.connection))
    )
    second = daily.request("marketer")
    daily.approve(second)
    assert daily.send(second) == "succeeded"
    assert daily.optimove.state()["tenants"]["demo"]["triggered_dates"] == [
        "2026-03-10",
        "2026-03-11",
    ]


# -- TalkifAI batch jobs ----------------------------------------------------------------------


def test_register_checks_the_job_with_talkifai(team, talkifai, register_job):
    job = register_job("job-pending-001")
    assert job.name == "Win-back calls (pending)"  # TalkifAI's own name
    assert AuditEvent.objects.filter(action="batch_job.registered", object_id=str(job.pk)).exists()
    with pytest.raises(ValidationError, match="already registered"):
        register_job("job-pending-001")
    with pytest.raises(ValidationError, match="no batch job 'job-nope'"):
        register_job("job-nope")
    with pytest.raises(ValidationError, match="cannot contain"):
        register_job("a/b")
    talkifai.inject_fault("batch_job_detail", Fault.SERVER_ERROR)
    with pytest.raises(ValidationError, match="Could not check the job"):
        register_job("job-running-001")
    assert BatchJob.objects.count() == 1


def test_register_refuses_another_tenants_connection(
    team, other_team, talkifai, sandbox_connection
):
    foreign = sandbox_connection(other_team.tenant, "talkifai", name="Theirs")
    with pytest.raises(ValidationError, match="another tenant"):
        services.batch_job_register(
            actor=Actor(user=team.operator.user),
            tenant=team.tenant,
            connection=foreign,
            batch_job_id="job-pending-001",
        )


def test_operator_starts_a_scheduled_job_and_sees_the_result(team, talkifai, register_job):
    job = register_job("job-scheduled-001")
    run = services.batch_job_start(
        actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="s1"
    )
    assert run.state == RunState.QUEUED and not run.approval_required
    assert (
        services.batch_job_start(
            actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="s1"
        )
        == run
    )
    assert run_send(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    assert run.result["contacts_enqueued"] == 120
    assert run.result["scheduled_start_cancelled"] is True
    assert run.result["started_at"]
    assert talkifai.state()["jobs"]["job-scheduled-001"]["api_starts"] == 1


def test_who_may_start_jobs(team, talkifai, register_job):
    job = register_job("job-pending-001")
    for role in ("marketer", "auditor"):
        with pytest.raises(RunActionError, match="cannot start"):
            services.batch_job_start(
                actor=Actor(user=getattr(team, role).user), batch_job=job, idempotency_key=role
            )
    assert not Run.objects.exists()


def test_a_start_under_way_refuses_another(team, talkifai, register_job):
    job = register_job("job-pending-001")
    first = services.batch_job_start(
        actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="a"
    )
    with pytest.raises(RunActionError, match=f"run #{first.pk}"):
        services.batch_job_start(
            actor=Actor(user=team.second_operator.user), batch_job=job, idempotency_key="b"
        )


@pytest.mark.parametrize(
    ("job_id", "status", "code", "words"),
    [
        ("job-gone", None, "job_not_found", "no batch job with this id"),
        ("job-pending-001", "completed", "invalid_status", "cannot be started"),
        ("job-pending-001", "running", "already_running", "already calling"),
    ],
)
def test_start_refusals_are_explained(team, talkifai, register_job, job_id, status, code, words):
    if job_id == "job-gone":
        talkifai.control("add_job", {"id": "job-gone", "status": "pending"})
    job = register_job(job_id)
    if not status:
        talkifai.reset()  # the job disappears at TalkifAI after it was registered
    run = services.batch_job_start(
        actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="x"
    )
    if status:
        # Changed at TalkifAI between the status read and the send.
        talkifai.control("set_job_status", {"id": job_id, "status": status})
    run_send(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert run.failure_code == code
    assert words in explanations.run_explanation(run).headline


# -- a stale second tab -------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["running", "completed"])
def test_a_start_of_a_job_no_longer_startable_is_refused_before_anything_is_sent(
    team, talkifai, register_job, status
):
    job = register_job("job-pending-001")
    talkifai.control("set_job_status", {"id": "job-pending-001", "status": status})

    with pytest.raises(RunActionError, match=f"TalkifAI shows this job {status}"):
        services.batch_job_start(
            actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="stale-tab"
        )

    assert not Run.objects.exists()
    assert not talkifai.received_on("start_batch_job")


def test_a_refused_duplicate_start_does_not_blame_the_connection_or_hide_the_last_start(
    team, talkifai, register_job
):
    job = register_job("job-pending-001")
    first = services.batch_job_start(
        actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="first"
    )
    assert run_send(run_id=first.pk) == "succeeded"
    # A second start that passed its status read before the first one went out (the race the
    # read cannot close) reaches TalkifAI after it.
    second = run_submit(
        actor=Actor(user=team.second_operator.user),
        tenant=team.tenant,
        connection=job.connection,
        operation=selectors.START_JOB,
        parameters={"batch_job_id": job.batch_job_id, "batch_job_name": job.name},
        idempotency_key="second",
        approval_required=False,
        check_duplicates=False,
    )
    run_send(run_id=second.pk)

    second.refresh_from_db()
    assert (second.state, second.failure_code) == (RunState.FAILED, "already_running")
    job.connection.refresh_from_db()
    assert job.connection.last_error == ""
    assert selectors.last_start_run(batch_job=job) == first


# -- an unknown-outcome TalkifAI start is reconciled by reading the job ---------------------------


@pytest.mark.parametrize(
    ("fault", "state", "needs_person", "words"),
    [
        (Fault.DROP_AFTER_PROCESSING, RunState.SUCCEEDED, False, "the start went through"),
        (Fault.DROP_BEFORE_PROCESSING, RunState.OUTCOME_UNKNOWN, True, "did not take effect"),
    ],
)
def test_an_unknown_start_is_reconciled_by_reading_the_jobs_status(
    team, talkifai, register_job, fault, state, needs_person, words
):
    from dashboard.runs.services import run_reconcile

    job = register_job("job-pending-001")
    talkifai.inject_fault("start_batch_job", fault)
    run = services.batch_job_start(
        actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="x"
    )
    assert run_send(run_id=run.pk).startswith("outcome unknown")
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person  # no person yet
    assert "TriggerDesk reads the job's status" in explanations.run_explanation(run).advice
    Run.objects.filter(pk=run.pk).update(reconcile_after=run.sent_at)

    run_reconcile(run_id=run.pk)

    run.refresh_from_db()
    assert (run.state, run.needs_person) == (state, needs_person)
    assert words in (run.result.get("reconciliation") or run.failure_message)
    assert len(talkifai.received_on("start_batch_job")) == 1  # read, never started again


@pytest.mark.django_db(transaction=True)
def test_a_daily_request_does_not_block_the_tenants_other_writes(daily, monkeypatch):
    """Found by the proofs under faults: the request's tenant lock was FOR UPDATE, which also
    blocks the key-share lock every insert referencing the tenant takes (a run, an audit row).
    An API request holding the audit chain's head then deadlocked with it. The lock only has to
    keep two decisions apart, so it is FOR NO KEY UPDATE: other writes go on meanwhile."""
    tenant_id = daily.team.tenant.pk
    seen: list[str] = []
    original = guardrails.daily_trigger_status

    def insert_meanwhile() -> None:
        # What a foreign key check of any insert for the tenant does, from another connection.
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SET lock_timeout = '10s'")
                cursor.execute(
                    "SELECT 1 FROM dashboard_tenant WHERE id = %s FOR KEY SHARE", [tenant_id]
                )
            seen.append("not blocked")
        except Exception as error:  # the lock timeout: the failure this test shows
            seen.append(f"blocked: {error}")
        finally:
            connections["default"].close()

    def status_while_locked(**kwargs):
        other = threading.Thread(target=insert_meanwhile)
        other.start()
        other.join()
        return original(**kwargs)

    monkeypatch.setattr(guardrails, "daily_trigger_status", status_while_locked)
    run = daily.request("marketer")
    assert seen == ["not blocked"]
    assert run.state == RunState.AWAITING_APPROVAL
