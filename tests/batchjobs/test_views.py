"""The daily trigger page and the batch calls page: who may do what, every form with bad input,
and every documented vendor answer shown in plain words (the sandboxes over HTTP)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, time, timedelta

import pytest
import requests
from django.urls import reverse

from batchjobs import guardrails
from batchjobs.models import BatchJob, FilesLanded
from batchjobs.vendors.optimove_daily import explanations as daily_explanations
from batchjobs.vendors.optimove_daily.sandbox import DEFAULT_API_KEY, DEFAULT_EXPIRED_API_KEY
from dashboard.models import ConnectionSecret, Role
from dashboard.runs.models import Run
from dashboard.runs.services import run_send
from dashboard.runs.states import RunState
from dashboard.vendors.sandbox import Fault
from tests.factories import ConnectionSecretFactory, RunFactory

pytestmark = pytest.mark.django_db


def page(client, name, *args, **extra):
    response = client.get(reverse(name, args=args), **extra)
    assert response.status_code == 200, response.status_code
    return html.unescape(response.content.decode())


def request_via_page(daily, role="marketer", **data):
    client = daily.team.client_for(role)
    form = {"attest_files_uploaded": "on", "idempotency_key": "form-1", **data}
    return client.post(reverse("daily_trigger_request", args=["acme"]), form)


def approve_via_page(daily, run, role="operator"):
    run.refresh_from_db()
    client = daily.team.client_for(role)
    return client.post(
        reverse("daily_trigger_approve", args=["acme", run.pk]),
        {"parameters_hash": run.parameters_hash},
        follow=True,
    )


# -- access ---------------------------------------------------------------------------------


def test_another_tenants_pages_and_objects_are_404(
    team, other_team, sandbox_connection, clean_redis
):
    foreign_connection = sandbox_connection(other_team.tenant, "optimove_batch")
    foreign_run = RunFactory(
        tenant=other_team.tenant,
        connection=foreign_connection,
        operation="optimove_trigger_daily",
        parameters={"wait_time_for_validation_seconds": None},
    )
    foreign_talkifai = sandbox_connection(other_team.tenant, "talkifai")
    foreign_job = BatchJob.objects.create(
        tenant=other_team.tenant,
        connection=foreign_talkifai,
        batch_job_id="job-pending-001",
        name="Theirs",
        registered_at=foreign_run.created_at,
    )
    client = team.client_for("admin")
    for method, url in [
        ("get", reverse("daily_trigger", args=["other"])),
        ("post", reverse("daily_trigger_request", args=["other"])),
        ("get", reverse("batch_job_list", args=["other"])),
        ("get", reverse("batch_job_row", args=["other", foreign_job.pk])),
        ("get", reverse("batch_job_start", args=["other", foreign_job.pk])),
        # Another tenant's objects under our own slug are not found either.
        ("post", reverse("daily_trigger_approve", args=["acme", foreign_run.pk])),
        ("post", reverse("daily_trigger_reject", args=["acme", foreign_run.pk])),
        ("post", reverse("daily_trigger_withdraw", args=["acme", foreign_run.pk])),
        ("post", reverse("daily_trigger_change", args=["acme", foreign_run.pk])),
        ("get", reverse("batch_job_row", args=["acme", foreign_job.pk])),
        ("get", reverse("batch_job_start", args=["acme", foreign_job.pk])),
        ("post", reverse("batch_job_start", args=["acme", foreign_job.pk])),
        ("post", reverse("batch_job_remove", args=["acme", foreign_job.pk])),
    ]:
        response = getattr(client, method)(
            url, {"parameters_hash": foreign_run.parameters_hash} if method == "post" else None
        )
        assert response.status_code == 404, url
    foreign_run.refresh_from_db()
    assert foreign_run.state == RunState.AWAITING_APPROVAL
    assert BatchJob.objects.filter(pk=foreign_job.pk).exists()


def test_a_run_that_is_not_a_daily_trigger_is_404_on_daily_urls(daily):
    start = RunFactory(tenant=daily.team.tenant)
    client = daily.team.client_for("operator")
    response = client.post(
        reverse("daily_trigger_approve", args=["acme", start.pk]),
        {"parameters_hash": start.parameters_hash},
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.AUDITOR, set()),
        (Role.MARKETER, {"request", "files_landed", "register"}),
        (Role.OPERATOR, {"request", "files_landed", "register", "approve", "start"}),
        (Role.ADMIN, {"request", "files_landed", "register", "approve", "start"}),
    ],
)
def test_role_matrix(daily, talkifai, register_job, role, allowed):
    job = register_job("job-pending-001")
    run = RunFactory(
        tenant=daily.team.tenant,
        connection=daily.connection,
        operation="optimove_trigger_daily",
        parameters={"wait_time_for_validation_seconds": None},
        requested_by=daily.team.second_operator.user,
    )
    client = daily.team.client_for(role)
    assert client.get(reverse("daily_trigger", args=["acme"])).status_code == 200
    assert client.get(reverse("batch_job_list", args=["acme"])).status_code == 200
    checks = {
        "request": ("post", reverse("daily_trigger_request", args=["acme"])),
        "files_landed": ("post", reverse("daily_files_landed", args=["acme"])),
        "register": ("post", reverse("batch_job_register", args=["acme"])),
        "approve": ("post", reverse("daily_trigger_approve", args=["acme", run.pk])),
        "start": ("get", reverse("batch_job_start", args=["acme", job.pk])),
    }
    for name, (method, url) in checks.items():
        status = getattr(client, method)(url).status_code
        assert (status != 403) == (name in allowed), (name, status)


# -- the daily page -------------------------------------------------------------------------


def test_daily_page_answers_the_question(daily):
    text = page(daily.team.client_for("marketer"), "daily_trigger", "acme")
    assert "Can we trigger now?" in text
    assert "Yes. Request it below; another operator approves" in text
    assert "Free: no request to Optimove in the last 10 minutes." in text
    assert "key role ApiRole" in text
    assert 'data-local-of="' in text  # local time beside the UTC times, filled in the browser
    assert 'hx-trigger="every 30s"' in text
    assert "Request trigger (an operator approves)" in text
    assert DEFAULT_API_KEY not in text


def test_htmx_refresh_renders_only_the_status_block(daily):
    client = daily.team.client_for("auditor")
    response = client.get(reverse("daily_trigger", args=["acme"]), HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<div id="daily-status"')
    assert "<html" not in content and 'id="request"' not in content
    assert "HX-Request" in response["Vary"]


def test_marketer_with_approval_off_is_told_why_there_is_no_button(daily):
    daily.team.tenant.approval_required = False
    daily.team.tenant.save()
    text = page(daily.team.client_for("marketer"), "daily_trigger", "acme")
    assert "Approval is off for this tenant, so only operators trigger" in text
    assert 'id="request-submit"' not in text
    text = page(daily.team.client_for("operator"), "daily_trigger", "acme")
    assert "Trigger now" in text


@pytest.mark.parametrize(
    ("data", "field_error"),
    [
        ({"wait_time_for_validation_seconds": "31"}, "Optimove allows at most 30 seconds"),
        ({"wait_time_for_validation_seconds": "-1"}, "The wait cannot be negative"),
        ({"wait_time_for_validation_seconds": "abc"}, "Enter a whole number of seconds"),
        ({"wait_time_for_validation_seconds": "2.5"}, "Enter a whole number of seconds"),
        (
            {"attest_files_uploaded": ""},
            "Confirm that all of today's files have finished uploading",
        ),
        ({"idempotency_key": ""}, "its one-time key is missing"),
    ],
)
def test_request_form_with_bad_input_shows_errors_and_creates_nothing(daily, data, field_error):
    response = request_via_page(daily, **data)
    assert response.status_code == 400
    assert field_error in html.unescape(response.content.decode())
    assert not Run.objects.exists()
    if "wait_time_for_validation_seconds" in data:  # what was typed is kept
        assert f'value="{data["wait_time_for_validation_seconds"]}"' in response.content.decode()


def test_request_refused_by_a_guardrail_keeps_the_form(daily):
    daily.connection.options = {"key_role": "3rdParty"}
    daily.connection.save()
    response = request_via_page(daily, wait_time_for_validation_seconds="12")
    assert response.status_code == 409
    text = html.unescape(response.content.decode())
    assert "3rdParty role, which Optimove blocks" in text
    assert 'value="12"' in text
    assert not Run.objects.exists()


def test_double_submit_makes_one_request(daily):
    assert request_via_page(daily).status_code == 302
    assert request_via_page(daily).status_code == 302
    assert Run.objects.count() == 1


def test_request_approve_and_outcome_through_the_pages(daily):
    response = request_via_page(daily, wait_time_for_validation_seconds="10")
    assert response.status_code == 302
    run = Run.objects.get()
    text = page(daily.team.client_for("operator"), "daily_trigger", "acme")
    assert f"Request #{run.pk} awaits approval" in text
    assert f'name="parameters_hash" value="{run.parameters_hash}"' in text
    assert "Trigger daily batch (validation wait 10 s)" in text
    requester_view = page(daily.team.client_for("marketer"), "daily_trigger", "acme")
    assert "Approve and trigger now" not in requester_view
    assert "Change the extra validation wait" in requester_view

    followed = approve_via_page(daily, run)
    assert f"Approved: trigger #{run.pk} is queued" in followed.content.decode()
    assert run_send(run_id=run.pk) == "succeeded"
    text = page(daily.team.client_for("auditor"), "daily_trigger", "acme")
    assert "Done for today: Optimove's batch was triggered at" in text
    assert "requested by mia" in text and "approved by oscar" in text
    assert "Today's batch was already triggered" in text


def test_a_policy_of_two_approvals_on_the_daily_page(daily):
    from dashboard.approval_policies.services import policy_create
    from dashboard.audit.trail import Actor

    policy_create(
        actor=Actor(user=daily.team.admin.user),
        tenant=daily.team.tenant,
        data={"name": "Daily twice", "operation": "optimove_trigger_daily", "approvals_needed": 2},
    )
    request_via_page(daily)
    run = Run.objects.get()
    assert run.approvals_needed == 2
    text = page(daily.team.client_for("operator"), "daily_trigger", "acme")
    assert "Needs 2 distinct operators, never the requester; approved so far 0 of 2." in text
    assert "(policy 'Daily twice')" in text
    assert "Approve (1 of 2)" in text
    followed = approve_via_page(daily, run).content.decode()
    assert "Approved (1 of 2). It waits for 1 more operator before anything is sent." in followed
    assert "You approved it; another operator must approve it too" in followed
    assert Run.objects.get().state == RunState.AWAITING_APPROVAL
    assert "Approve and trigger now" in page(
        daily.team.client_for("second_operator"), "daily_trigger", "acme"
    )
    followed = approve_via_page(daily, run, role="second_operator").content.decode()
    assert f"Approved: trigger #{run.pk} is queued" in followed
    assert run_send(run_id=run.pk) == "succeeded"
    assert daily.calls() == 1


def test_approve_reject_and_withdraw_ask_first_on_the_page(daily):
    request_via_page(daily)
    run = Run.objects.get()
    operator_view = page(daily.team.client_for("operator"), "daily_trigger", "acme")
    approve = re.search(r'<button type="submit" id="approve-button"[^>]*>', operator_view)
    assert approve and (
        f'data-confirm="Approve request #{run.pk} and trigger TriggerDaily now?' in approve.group(0)
    )
    reject = re.search(r'<button [^>]*id="reject-button"[^>]*>', operator_view)
    assert reject and f"/t/acme/batch/daily/{run.pk}/reject/" in reject.group(0)
    assert f'data-confirm="Reject request #{run.pk}? It will not be sent."' in reject.group(0)
    requester_view = page(daily.team.client_for("marketer"), "daily_trigger", "acme")
    withdraw = re.search(r'<form [^>]*action="[^"]*/withdraw/"[^>]*>', requester_view)
    assert withdraw and f'data-confirm="Withdraw request #{run.pk}? It will not be sent."' in (
        withdraw.group(0)
    )


def test_done_for_today_says_when_the_next_trigger_is_possible(daily, clock):
    today = clock.moment.date()
    clock.set(datetime.combine(today, time(20, 48), tzinfo=UTC))
    text = page(daily.team.client_for("operator"), "daily_trigger", "acme")
    assert "This block refreshes itself every 30 seconds." in text
    request_via_page(daily)
    run = Run.objects.get()
    approve_via_page(daily, run)
    assert run_send(run_id=run.pk) == "succeeded"
    text = page(daily.team.client_for("operator"), "daily_trigger", "acme")
    assert re.search(
        r"Next trigger possible at 00:00 UTC, in <span class=\"countdown\" "
        r"data-countdown-to=\"\d{4}-\d\d-\d\dT00:00:00\+00:00\" data-countdown-now=\"[^\"]+\">"
        r"3 h 12 min</span>; this block refreshes itself then.",
        text,
    )
    assert "refreshes itself every" not in text


def test_an_operator_cannot_approve_their_own_request_on_the_page(daily):
    request_via_page(daily, role="operator")
    run = Run.objects.get()
    text = page(daily.team.client_for("operator"), "daily_trigger", "acme")
    assert "You requested it; another operator must approve it." in text
    followed = approve_via_page(daily, run, role="operator")
    assert "another operator must approve it" in html.unescape(followed.content.decode())
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL


def test_approving_stale_parameters_is_refused_on_the_page(daily):
    request_via_page(daily)
    run = Run.objects.get()
    client = daily.team.client_for("marketer")
    client.post(
        reverse("daily_trigger_change", args=["acme", run.pk]),
        {"wait_time_for_validation_seconds": "20"},
    )
    response = daily.team.client_for("operator").post(
        reverse("daily_trigger_approve", args=["acme", run.pk]),
        {"parameters_hash": run.parameters_hash},  # what the approver's page showed before
        follow=True,
    )
    assert "The parameters changed since you opened this page" in response.content.decode()
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL
    assert run.parameters == {"wait_time_for_validation_seconds": 20}


def test_change_reject_and_withdraw_from_the_page(daily):
    request_via_page(daily)
    run = Run.objects.get()
    marketer = daily.team.client_for("marketer")
    response = marketer.post(
        reverse("daily_trigger_change", args=["acme", run.pk]),
        {"wait_time_for_validation_seconds": "99"},
        follow=True,
    )
    assert "Not changed: Optimove allows at most 30 seconds" in response.content.decode()
    response = daily.team.client_for("operator").post(
        reverse("daily_trigger_reject", args=["acme", run.pk]),
        {"comment": "files are late"},
        follow=True,
    )
    assert f"Request #{run.pk} rejected" in response.content.decode()
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    text = page(marketer, "daily_trigger", "acme")
    assert "An operator rejected the request." in text and "files are late" in text

    request_via_page(daily, idempotency_key="form-2")
    second = Run.objects.get(idempotency_key="form-2")
    response = marketer.post(
        reverse("daily_trigger_withdraw", args=["acme", second.pk]), follow=True
    )
    assert f"Request #{second.pk} withdrawn" in response.content.decode()


def test_files_landed_button(daily):
    daily.team.tenant.require_files_landed = True
    daily.team.tenant.save()
    marketer = daily.team.client_for("marketer")
    text = page(marketer, "daily_trigger", "acme")
    assert "not yet" in text and "No one has signalled yet that all files for" in text
    today = guardrails.daily_trigger_status(tenant=daily.team.tenant).utc_date
    response = marketer.post(
        reverse("daily_files_landed", args=["acme"]), {"utc_date": today.isoformat()}, follow=True
    )
    assert f"Recorded: all files for {today:%Y-%m-%d} (UTC) landed." in response.content.decode()
    assert FilesLanded.objects.get().given_by == daily.team.marketer.user
    text = page(marketer, "daily_trigger", "acme")
    assert "signalled" in text and "by mia" in text
    bad = marketer.post(
        reverse("daily_files_landed", args=["acme"]), {"utc_date": "not a date"}, follow=True
    )
    assert "nothing was recorded" in bad.content.decode()


# -- every documented Optimove answer, in plain words on the page ----------------------------


def _direct_trigger(sandboxes):
    """Trigger the sandbox's tenant "demo" outside TriggerDesk (Optimove's own schedule, say)."""
    response = requests.post(
        sandboxes.url("optimove_batch") + "/BatchProcessAPI/TriggerDaily",
        data=b'{"WaitTimeForValidationSeconds":null}',
        headers={"X-API-KEY": DEFAULT_API_KEY, "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200


def _use_key(daily, key):
    ConnectionSecret.objects.filter(connection=daily.connection).delete()
    ConnectionSecretFactory(connection=daily.connection, name="api_key", plaintext=key)


def _condition(condition):
    def arrange(daily, sandboxes):
        daily.optimove.control("set_task_condition", {"tenant": "demo", "condition": condition})

    return arrange


def _already_running(daily, sandboxes):
    _direct_trigger(sandboxes)
    daily.optimove.control("clear_rate_window", {"tenant": "demo"})


def _already_triggered_today(daily, sandboxes):
    _already_running(daily, sandboxes)
    daily.optimove.control("finish_task", {"tenant": "demo"})


def _rate_limited(daily, sandboxes):
    _direct_trigger(sandboxes)
    daily.optimove.control("finish_task", {"tenant": "demo"})


def _fault(status):
    def arrange(daily, sandboxes):
        daily.optimove.inject_fault("trigger_daily", Fault.SERVER_ERROR, status=status)

    return arrange


VENDOR_ANSWERS = {
    "task_not_found": (_condition("not_found"), RunState.FAILED, "task not found"),
    "already_running": (_already_running, RunState.FAILED, "already running"),
    "not_in_correct_state": (
        _condition("not_triggerable"),
        RunState.FAILED,
        "not in correct state",
    ),
    "already_triggered_today": (
        _already_triggered_today,
        RunState.FAILED,
        "already triggered today",
    ),
    "configured_incorrectly": (
        _condition("misconfigured"),
        RunState.FAILED,
        "configured not correctly",
    ),
    "validation_failed": (_condition("fails_validation"), RunState.FAILED, "validation failed"),
    "unauthorized": (
        lambda d, s: _use_key(d, "not-a-key-optimove-knows"),
        RunState.FAILED,
        "401 Unauthorized",
    ),
    "token_expired": (
        lambda d, s: _use_key(d, DEFAULT_EXPIRED_API_KEY),
        RunState.FAILED,
        "403 Forbidden",
    ),
    "rate_limited": (_rate_limited, RunState.QUEUED, "429 Too Many Requests"),
    "server_error": (_fault(500), RunState.OUTCOME_UNKNOWN, "internal error (500)"),
    "gateway_timeout": (_fault(504), RunState.OUTCOME_UNKNOWN, "504 Gateway Timeout"),
}


@pytest.mark.parametrize("code", sorted(VENDOR_ANSWERS))
def test_every_documented_answer_is_explained_on_the_page(daily, sandboxes, code):
    arrange, state, words = VENDOR_ANSWERS[code]
    arrange(daily, sandboxes)
    assert request_via_page(daily).status_code == 302
    run = Run.objects.get()
    approve_via_page(daily, run)
    run_send(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.failure_code) == (state, code)

    text = page(daily.team.client_for("marketer"), "daily_trigger", "acme")
    headline, advice = (str(text) for text in daily_explanations.FAILURES[code])
    assert words in headline
    assert headline in text
    if state == RunState.OUTCOME_UNKNOWN:
        # TriggerDesk re-checks by itself: the advice to re-send would contradict it.
        assert advice not in text and "Details:" not in text
    else:
        assert advice in text
        assert (
            "Details: Optimove" in text or "Details: The request" in text or code == "unauthorized"
        )
    assert DEFAULT_API_KEY not in text and DEFAULT_EXPIRED_API_KEY not in text
    if state == RunState.QUEUED:
        assert "TriggerDesk tries again at" in text
    if state == RunState.OUTCOME_UNKNOWN:
        assert "Outcome unknown." in text and "TriggerDesk asks Optimove again" in text
        assert text.count("10-minute window has passed") == 1
    # Whatever Optimove said, no second request goes out inside its 10-minute window.
    assert "one request per 10 minutes" in text
    if code == "token_expired":
        assert "The API key has expired: Optimove answered 403" in text


# -- batch calls ----------------------------------------------------------------------------


def test_batch_job_list_loads_each_status_from_talkifai(team, talkifai, register_job):
    scheduled = register_job("job-scheduled-001")
    running = register_job("job-running-001")
    operator = team.client_for("operator")
    text = page(operator, "batch_job_list", "acme")
    assert f'hx-get="{reverse("batch_job_row", args=["acme", scheduled.pk])}"' in text
    assert "Asking TalkifAI" in text

    row = page(operator, "batch_job_row", "acme", scheduled.pk, HTTP_HX_REQUEST="true")
    assert row.lstrip().startswith(f'<tr id="job-{scheduled.pk}"')
    assert ">scheduled<" in row and "0 of 120 contacts called" in row
    assert "Start now…" in row
    row = page(operator, "batch_job_row", "acme", running.pk, HTTP_HX_REQUEST="true")
    assert ">running<" in row and "Start now" not in row
    assert "Only scheduled or pending jobs can be started." in row
    marketer_row = page(team.client_for("marketer"), "batch_job_row", "acme", scheduled.pk)
    assert "An operator can start it." in marketer_row


def test_status_unavailable_is_shown_not_a_500(team, talkifai, register_job):
    job = register_job("job-pending-001")
    talkifai.inject_fault("batch_job_detail", Fault.SERVER_ERROR, times=2)
    row = page(team.client_for("operator"), "batch_job_row", "acme", job.pk)
    assert "status unavailable" in row and "TalkifAI had an internal error" in row
    confirm = page(team.client_for("operator"), "batch_job_start", "acme", job.pk)
    assert "could not read the job's status" in confirm and "Yes, start calling now" not in confirm


def test_start_now_behind_a_confirmation_and_its_result(team, talkifai, register_job):
    job = register_job("job-scheduled-001")
    operator = team.client_for("operator")
    confirm = page(operator, "batch_job_start", "acme", job.pk)
    assert "Start “Spring renewals (scheduled)” now?" in confirm
    assert "and cancels its scheduled start" in confirm
    key = confirm.split('name="idempotency_key" value="')[1].split('"')[0]
    response = operator.post(
        reverse("batch_job_start", args=["acme", job.pk]), {"idempotency_key": key}
    )
    assert response.status_code == 302
    again = operator.post(
        reverse("batch_job_start", args=["acme", job.pk]), {"idempotency_key": key}
    )
    assert again.status_code == 302
    run = Run.objects.get()
    assert run.parameters == {
        "batch_job_id": "job-scheduled-001",
        "batch_job_name": "Spring renewals (scheduled)",
    }

    live = operator.get(reverse("batch_job_list", args=["acme"]), HTTP_HX_REQUEST="true")
    assert live.status_code == 200 and 'hx-trigger="every 2s"' in live.content.decode()
    assert run_send(run_id=run.pk) == "succeeded"
    settled = operator.get(reverse("batch_job_list", args=["acme"]), HTTP_HX_REQUEST="true")
    assert settled.status_code == 286  # every start settled: the list stops polling
    text = html.unescape(settled.content.decode())
    assert "120 contacts enqueued" in text and "its scheduled start was cancelled" in text
    assert "started at 20" in text and "Cancelled scheduled job, starting immediately" in text


def test_pending_job_start_says_nothing_was_cancelled(team, talkifai, register_job):
    job = register_job("job-pending-001")
    operator = team.client_for("operator")
    operator.post(reverse("batch_job_start", args=["acme", job.pk]), {"idempotency_key": "k"})
    run_send(run_id=Run.objects.get().pk)
    row = page(operator, "batch_job_row", "acme", job.pk)
    assert "80 contacts enqueued" in row and "no scheduled start to cancel" in row


@pytest.mark.parametrize(
    ("arrange", "words"),
    [
        ({"set_job_status": "completed"}, "The job has ended (completed, failed or cancelled)"),
        ({"set_job_status": "running"}, "The job is already calling its contacts"),
        ({"reset": True}, "TalkifAI has no batch job with this id for this API key"),
    ],
)
def test_start_refusals_are_explained_on_the_page(team, talkifai, register_job, arrange, words):
    talkifai.control("add_job", {"id": "job-x", "status": "pending", "name": "X"})
    job = register_job("job-x")
    team.client_for("operator").post(
        reverse("batch_job_start", args=["acme", job.pk]), {"idempotency_key": "k"}
    )
    if "reset" in arrange:
        talkifai.reset()
    else:
        talkifai.control("set_job_status", {"id": "job-x", "status": arrange["set_job_status"]})
    run_send(run_id=Run.objects.get().pk)
    text = page(team.client_for("auditor"), "batch_job_list", "acme")
    assert words in text


def test_start_form_without_its_key_creates_nothing(team, talkifai, register_job):
    job = register_job("job-pending-001")
    response = team.client_for("operator").post(
        reverse("batch_job_start", args=["acme", job.pk]), {}
    )
    assert response.status_code == 400
    assert "its one-time key is missing" in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("batch_job_id", "error"),
    [
        ("job-does-not-exist", "TalkifAI has no batch job 'job-does-not-exist' for this API key."),
        ("a/b", "A batch job id cannot contain '/' or '\\'."),
        (" job-pending-001", "The batch job id has leading or trailing spaces."),
        ("", "This field is required."),
    ],
)
def test_register_form_with_bad_input(team, talkifai, batch_job_id, error):
    from dashboard.models import VendorConnection

    connection = VendorConnection.objects.get(tenant=team.tenant, kind="talkifai")
    response = team.client_for("marketer").post(
        reverse("batch_job_register", args=["acme"]),
        {"connection": connection.pk, "batch_job_id": batch_job_id},
    )
    assert response.status_code == 400
    assert error in html.unescape(response.content.decode())
    assert not BatchJob.objects.exists()


def test_register_and_remove_from_the_page(team, talkifai):
    from dashboard.models import VendorConnection

    connection = VendorConnection.objects.get(tenant=team.tenant, kind="talkifai")
    marketer = team.client_for("marketer")
    response = marketer.post(
        reverse("batch_job_register", args=["acme"]),
        {"connection": connection.pk, "batch_job_id": "job-pending-001", "name": "Win-back"},
        follow=True,
    )
    assert "Batch job Win-back (job-pending-001) registered." in response.content.decode()
    job = BatchJob.objects.get()
    response = marketer.post(reverse("batch_job_remove", args=["acme", job.pk]), follow=True)
    assert "removed from the list" in response.content.decode()
    assert not BatchJob.objects.exists()


def test_no_secret_reaches_a_page_or_the_audit_trail(daily, talkifai, register_job, capsys):
    import json

    from dashboard.models import AuditEvent
    from tests.conftest import SANDBOX_SECRETS

    secrets = [SANDBOX_SECRETS["optimove_batch"]["api_key"], SANDBOX_SECRETS["talkifai"]["api_key"]]
    request_via_page(daily)
    run = Run.objects.get()
    approve_via_page(daily, run)
    run_send(run_id=run.pk)
    job = register_job("job-pending-001")
    operator = daily.team.client_for("operator")
    operator.post(reverse("batch_job_start", args=["acme", job.pk]), {"idempotency_key": "k"})
    run_send(run_id=Run.objects.get(operation="talkifai_start_batch_job").pk)
    pages = [
        page(operator, "daily_trigger", "acme"),
        page(operator, "batch_job_list", "acme"),
        page(operator, "batch_job_row", "acme", job.pk),
        page(operator, "batch_job_start", "acme", job.pk),
    ]
    trail = json.dumps(list(AuditEvent.objects.values("summary", "actor_label")))
    output = capsys.readouterr()
    for secret in secrets:
        for text in (*pages, trail, output.out, output.err):
            assert secret not in text


def test_a_job_row_with_a_start_under_way_keeps_refreshing_itself(
    team, sandbox_connection, sandboxes
):
    from django.urls import reverse

    from batchjobs.models import BatchJob
    from dashboard.clock import utc_now
    from tests.factories import RunFactory

    connection = sandbox_connection(team.tenant, "talkifai")
    job = BatchJob.objects.create(
        tenant=team.tenant,
        connection=connection,
        batch_job_id="job-pending-001",
        name="Win-back",
        registered_at=utc_now(),
    )
    client = team.client_for("operator")
    row_url = reverse("batch_job_row", args=[team.tenant.slug, job.pk])
    assert 'hx-trigger="every 3s"' not in client.get(row_url).content.decode()
    RunFactory(
        tenant=team.tenant,
        connection=connection,
        state="queued",
        parameters={"batch_job_id": "job-pending-001", "batch_job_name": "Win-back"},
    )
    assert 'hx-trigger="every 3s"' in client.get(row_url).content.decode()


def test_a_running_jobs_row_follows_the_vendors_progress_and_stops_when_it_ended(
    team, talkifai, register_job, sandboxes
):
    # Issue 9, item 15: the row kept saying "1 of 120 contacts" while TalkifAI was at 52,
    # because it only refreshed while a start of ours was open.
    sandboxes.clock.set_scale(0)
    started = sandboxes.clock.now().replace(microsecond=0)
    sandboxes.clock.set(started)
    talkifai.control("set_run_duration", {"seconds": 1200})
    talkifai.control(
        "add_job", {"id": "job-live", "status": "running", "contacts": 120, "name": "Live"}
    )
    job = register_job("job-live")
    client = team.client_for("auditor")
    row_url = reverse("batch_job_row", args=["acme", job.pk])

    sandboxes.clock.set(started + timedelta(seconds=15))
    first = client.get(row_url)
    assert first.status_code == 200
    assert "1 of 120 contacts called" in first.content.decode()
    assert 'hx-trigger="every 3s"' in first.content.decode()

    sandboxes.clock.set(started + timedelta(seconds=520))
    later = client.get(row_url)
    assert later.status_code == 200
    assert "52 of 120 contacts called" in later.content.decode()
    assert 'hx-trigger="every 3s"' in later.content.decode()

    # Once the job ended nothing can change: the row says so and the poll stops (286).
    talkifai.control("set_job_status", {"id": "job-live", "status": "completed"})
    ended = client.get(row_url)
    assert ended.status_code == 286
    assert "120 of 120 contacts called" in ended.content.decode()
    assert "hx-trigger" not in ended.content.decode()


def test_a_scheduled_jobs_row_keeps_checking_slowly(team, talkifai, register_job):
    job = register_job("job-scheduled-001")
    response = team.client_for("auditor").get(reverse("batch_job_row", args=["acme", job.pk]))
    assert response.status_code == 200
    assert 'hx-trigger="every 15s"' in response.content.decode()


def test_a_rejected_start_says_who_rejected_it_when_and_why(team, talkifai, register_job):
    from dashboard.audit.trail import Actor
    from dashboard.runs.services import run_reject

    job = register_job("job-pending-001")
    run = RunFactory(
        tenant=team.tenant,
        connection=job.connection,
        requested_by=team.marketer.user,
        parameters={"batch_job_id": job.batch_job_id, "batch_job_name": job.name},
    )
    run_reject(actor=Actor(user=team.operator.user), run=run, comment="Not before the holiday")
    text = page(team.client_for("auditor"), "batch_job_list", "acme")
    assert "by oscar at" in text and "“Not before the holiday”" in text


def test_a_rejected_daily_request_names_who_rejected_it(daily):
    from batchjobs.services import daily_trigger_reject

    run = daily.request("marketer")
    daily_trigger_reject(
        actor=daily.actor("operator"), tenant=daily.team.tenant, run=run, comment="Files late"
    )
    text = page(daily.team.client_for("marketer"), "daily_trigger", "acme")
    assert "rejected by oscar at" in text
    assert "“Files late”" in text
    assert "Rejected by oscar at" in text  # the history's Decision column


def test_once_today_is_done_the_request_form_is_not_offered(daily):
    run = daily.request("marketer")
    daily.approve(run)
    daily.send(run)
    assert run.state == RunState.SUCCEEDED
    text = page(daily.team.client_for("operator"), "daily_trigger", "acme")
    assert "Today's batch is done" in text
    assert 'id="request-submit"' not in text


def test_a_get_of_a_daily_form_address_goes_back_to_the_page(daily):
    # Reloading after a failed post (or opening the address again) is a GET: no empty 405.
    client = daily.team.client_for("marketer")
    for name in ("daily_trigger_request", "daily_files_landed"):
        response = client.get(reverse(name, args=["acme"]))
        assert response.status_code == 302, name
        assert response["Location"] == reverse("daily_trigger", args=["acme"])
    assert not Run.objects.exists()


def test_a_stale_second_tab_does_not_start_the_job_again(team, talkifai, register_job):
    job = register_job("job-pending-001")
    operator = team.client_for("operator")
    keys = []
    for _tab in range(2):
        confirm = page(operator, "batch_job_start", "acme", job.pk)
        keys.append(confirm.split('name="idempotency_key" value="')[1].split('"')[0])
    operator.post(reverse("batch_job_start", args=["acme", job.pk]), {"idempotency_key": keys[0]})
    first = Run.objects.get()
    assert run_send(run_id=first.pk) == "succeeded"

    stale = operator.post(
        reverse("batch_job_start", args=["acme", job.pk]), {"idempotency_key": keys[1]}
    )

    assert stale.status_code == 409
    text = html.unescape(stale.content.decode())
    assert f"TalkifAI shows this job running (run #{first.pk} started it here)" in text
    assert Run.objects.count() == 1
    assert len(talkifai.received_on("start_batch_job")) == 1
    row = page(operator, "batch_job_row", "acme", job.pk)
    assert 'badge good">started</span>' in row and "80 contacts enqueued" in row
    job.connection.refresh_from_db()
    assert job.connection.last_error == ""
