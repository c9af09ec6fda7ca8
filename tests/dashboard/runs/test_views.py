"""The run pages: tenant isolation, the role matrix of every action, each action's happy path and
its refusals (message shown, nothing changed), the live fragments, and secrets never rendered."""

from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse

from dashboard.audit.trail import REDACTED
from dashboard.clock import utc_now
from dashboard.models import AuditEvent, Role, VendorKind
from dashboard.runs.models import Approval, Run, RunAttempt
from dashboard.runs.states import RunState
from tests.factories import (
    ApprovalFactory,
    AuditEventFactory,
    MembershipFactory,
    RunAttemptFactory,
    RunFactory,
    UserFactory,
    VendorConnectionFactory,
)

pytestmark = pytest.mark.django_db

SECRET = "SUPER-SECRET-TALKIFAI-KEY-4242"
HTMX = {"HTTP_HX_REQUEST": "true"}


def text(response) -> str:
    return unescape(response.content.decode())


def detail_url(run) -> str:
    return reverse("run_detail", args=[run.tenant.slug, run.pk])


def action_url(name: str, run) -> str:
    return reverse(name, args=[run.tenant.slug, run.pk])


def awaiting(team, **fields):
    fields.setdefault("requested_by", team.marketer.user)
    return RunFactory(tenant=team.tenant, state=RunState.AWAITING_APPROVAL, **fields)


def unknown_outcome(team, *, needs_person=True, **fields):
    run = RunFactory(
        tenant=team.tenant,
        state=RunState.OUTCOME_UNKNOWN,
        requested_by=team.marketer.user,
        needs_person=needs_person,
        attempt_count=1,
        sent_at=utc_now() - timedelta(minutes=5),
        failure_class="outcome_unknown",
        failure_code="timeout",
        failure_message="The vendor did not answer within 30 s.",
        **fields,
    )
    RunAttemptFactory(
        run=run,
        status_code=None,
        failure_class="outcome_unknown",
        failure_code="timeout",
        outcome="No answer within 30 s.",
        exchange={
            "method": "POST",
            "url": "https://vendor.example.com/api/v1/batch-jobs/job-9/start",
            "request_headers": {"Authorization": REDACTED},
            "request_body": '{"note": "evidence-body"}',
            "status_code": None,
            "response_headers": {},
            "response_body": None,
            "latency_ms": 30000.0,
            "error": "ReadTimeout after 30 s",
        },
    )
    return run


def snapshot(run):
    """What a refused action must leave untouched."""
    run.refresh_from_db()
    return (
        run.state,
        run.parameters_hash,
        run.needs_person,
        run.updated_at,
        run.approvals.count(),
        AuditEvent.objects.filter(object_type="run", object_id=str(run.pk)).count(),
    )


# -- tenant isolation ---------------------------------------------------------------------------

ACTIONS = ["run_approve", "run_reject", "run_cancel", "run_mark_as_sent", "run_send_again"]


def test_another_tenants_run_is_404_everywhere(team, other_team):
    foreign = RunFactory(tenant=other_team.tenant, requested_by=other_team.marketer.user)
    client = team.client_for("admin")
    before = snapshot(foreign)

    # Under our own slug (the id exists, but not here)...
    assert client.get(reverse("run_detail", args=["acme", foreign.pk])).status_code == 404
    assert client.get(reverse("run_detail", args=["acme", foreign.pk]), **HTMX).status_code == 404
    for name in ACTIONS:
        response = client.post(
            reverse(name, args=["acme", foreign.pk]),
            {"parameters_hash": foreign.parameters_hash, "comment": "x", "confirm": "on"},
        )
        assert response.status_code == 404, name
    # ...and under theirs.
    assert client.get(reverse("run_list", args=["other"])).status_code == 404
    assert client.get(detail_url(foreign)).status_code == 404
    assert snapshot(foreign) == before


def test_list_shows_only_own_tenants_runs(team, other_team):
    own = RunFactory(tenant=team.tenant, parameters={"batch_job_id": "own-job"})
    RunFactory(tenant=other_team.tenant, parameters={"batch_job_id": "foreign-job"})

    response = team.client_for("auditor").get(reverse("run_list", args=["acme"]))

    assert response.status_code == 200
    assert "Start batch job own-job" in text(response)
    assert "foreign-job" not in text(response)
    assert f"#{own.pk}" in text(response)


def test_list_filter_by_another_tenants_connection_shows_an_error_not_their_runs(team, other_team):
    foreign = RunFactory(tenant=other_team.tenant, parameters={"batch_job_id": "foreign-job"})

    response = team.client_for("operator").get(
        reverse("run_list", args=["acme"]), {"connection": foreign.connection_id}
    )

    assert response.status_code == 200
    assert "foreign-job" not in text(response)
    assert "(ignored)" in text(response)


# -- the role matrix ----------------------------------------------------------------------------

# Which roles may call each action (the views' permission check, before any state check).
ALLOWED = {
    "run_approve": {Role.OPERATOR, Role.ADMIN},
    "run_reject": {Role.OPERATOR, Role.ADMIN},
    "run_cancel": {Role.MARKETER, Role.OPERATOR, Role.ADMIN},
    "run_mark_as_sent": {Role.OPERATOR, Role.ADMIN},
    "run_send_again": {Role.OPERATOR, Role.ADMIN},
}


@pytest.mark.parametrize("role", [Role.MARKETER, Role.OPERATOR, Role.AUDITOR, Role.ADMIN])
def test_role_matrix(team, role):
    run = RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED, requested_by=None)
    client = team.client_for(role)
    for page in (reverse("run_list", args=["acme"]), detail_url(run)):
        assert client.get(page).status_code == 200
    for name, roles in ALLOWED.items():
        before = snapshot(run)
        response = client.post(action_url(name, run), {"comment": "x", "confirm": "on"})
        if role in roles:
            # Allowed to ask: the engine then refuses (a succeeded run takes no action).
            assert response.status_code in (302, 400), name
        else:
            assert response.status_code == 403, name
        assert snapshot(run) == before, name


def test_a_get_of_an_action_changes_nothing_and_goes_back_to_the_run(team):
    # A reload after a failed post, or the address opened from the history, is a GET: it lands
    # on the run's page instead of an empty 405, and never acts.
    run = awaiting(team)
    client = team.client_for("operator")
    before = snapshot(run)
    for name in ACTIONS:
        response = client.get(action_url(name, run))
        assert response.status_code == 302, name
        assert response["Location"] == detail_url(run), name
    assert snapshot(run) == before


def test_other_methods_get_a_styled_405(team):
    run = awaiting(team)
    client = team.client_for("operator")
    for name in ACTIONS:
        response = client.put(action_url(name, run))
        assert response.status_code == 405, name
        assert "This address does not answer that way" in response.content.decode(), name


def test_anonymous_is_sent_to_login(team, client):
    run = awaiting(team)
    response = client.get(detail_url(run))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# -- the list -----------------------------------------------------------------------------------


def test_list_row_shows_what_who_state_decision_and_outcome(team):
    run = RunFactory(
        tenant=team.tenant,
        parameters={"batch_job_id": "job-42", "batch_job_name": "Winback"},
        requested_by=team.marketer.user,
        state=RunState.ACCEPTED,
        vendor_status="running",
        progress=40,
        audience_size=1234,
    )
    ApprovalFactory(run=run, decided_by=team.operator.user)
    failed = RunFactory(
        tenant=team.tenant,
        state=RunState.FAILED,
        failure_message="The vendor refused: batch job not found.",
    )

    page = text(team.client_for("auditor").get(reverse("run_list", args=["acme"])))

    assert "Start batch job job-42 (Winback)" in page
    assert run.connection.name in page
    assert 'class="badge state accepted"' in page
    assert "mia" in page
    assert "Approved by oscar" in page
    assert "running" in page and "40%" in page and "1,234 recipients" in page
    assert 'class="badge state failed"' in page
    assert failed.failure_message in page


def test_list_filters_by_state_operation_connection_and_requester(team):
    other_connection = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.TALKIFAI)
    RunFactory(
        tenant=team.tenant,
        parameters={"batch_job_id": "match-me"},
        state=RunState.SUCCEEDED,
        requested_by=team.marketer.user,
        connection=other_connection,
    )
    RunFactory(tenant=team.tenant, parameters={"batch_job_id": "wrong-state"})
    client = team.client_for("operator")

    response = client.get(
        reverse("run_list", args=["acme"]),
        {
            "state": "succeeded",
            "operation": "talkifai_start_batch_job",
            "connection": other_connection.pk,
            "requester": team.marketer.user.pk,
        },
    )

    assert "match-me" in text(response)
    assert "wrong-state" not in text(response)


def test_list_with_bad_filter_values_still_renders(team):
    RunFactory(tenant=team.tenant, parameters={"batch_job_id": "still-here"})

    response = team.client_for("operator").get(
        reverse("run_list", args=["acme"]),
        {"state": "exploded", "connection": "abc", "requester": "999999", "page": "zzz"},
    )

    assert response.status_code == 200
    assert "still-here" in text(response)
    assert "(ignored)" in text(response)


def test_list_paginates_and_keeps_filters(team):
    connection = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.TALKIFAI)
    for _ in range(51):
        RunFactory(
            tenant=team.tenant,
            connection=connection,
            state=RunState.SUCCEEDED,
            requested_by=team.marketer.user,
        )
    client = team.client_for("operator")

    first_response = client.get(reverse("run_list", args=["acme"]), {"state": "succeeded"})
    first = text(first_response)
    cursor = first_response.context["page"].next_cursor.encode()
    second = text(
        client.get(reverse("run_list", args=["acme"]), {"state": "succeeded", "after": cursor})
    )

    assert first.count('<tr id="run-') == 50
    assert "?state=succeeded&after=" in first
    assert second.count('<tr id="run-') == 1
    assert "Older" not in second


def test_list_htmx_returns_only_the_fragment_polling_while_open(team):
    RunFactory(tenant=team.tenant, state=RunState.SENDING)

    response = team.client_for("operator").get(
        reverse("run_list", args=["acme"]), {"state": "sending"}, **HTMX
    )

    body = text(response)
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="runs"')
    assert "<html" not in body and "<form" not in body
    assert 'hx-trigger="every 2s"' in body
    assert "state=sending" in body  # the refresh keeps the filters
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_list_htmx_stops_polling_when_nothing_on_the_page_is_open(team):
    RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED)
    RunFactory(tenant=team.tenant, state=RunState.CANCELLED)

    response = team.client_for("operator").get(reverse("run_list", args=["acme"]), **HTMX)

    assert response.status_code == 286
    assert "hx-trigger" not in text(response)
    assert "<html" not in text(response)


def test_full_list_page_polls_only_with_open_runs(team):
    client = team.client_for("operator")
    RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED)
    assert 'hx-trigger="every 2s"' not in text(client.get(reverse("run_list", args=["acme"])))
    RunFactory(tenant=team.tenant, state=RunState.QUEUED)
    assert 'hx-trigger="every 2s"' in text(client.get(reverse("run_list", args=["acme"])))


# -- the detail page ----------------------------------------------------------------------------


def test_detail_answers_who_did_what_when_with_which_parameters(team):
    run = RunFactory(
        tenant=team.tenant,
        parameters={"batch_job_id": "job-77", "batch_job_name": "Reactivation"},
        requested_by=team.marketer.user,
        attestation="Audience checked with CRM team",
        state=RunState.SUCCEEDED,
        vendor_reference="bj-77",
        vendor_status="completed",
        progress=100,
        audience_size=5000,
        result={"contacts_enqueued": 5000},
    )
    ApprovalFactory(run=run, decided_by=team.operator.user, comment="Looks right")
    RunAttemptFactory(run=run, latency_ms=87.0, outcome="TalkifAI started the batch job.")
    AuditEventFactory(
        tenant=team.tenant,
        action="run.approved",
        object_type="run",
        object_id=str(run.pk),
        summary={"from": "awaiting_approval", "to": "queued", "comment": "Looks right"},
    )

    page = text(team.client_for("auditor").get(detail_url(run)))

    assert '"batch_job_id": "job-77"' in page
    assert run.parameters_hash in page
    assert run.idempotency_key in page
    assert "Audience checked with CRM team" in page
    assert "mia" in page
    # The approval: who, decision, comment, the hash approved.
    assert "oscar" in page and "Approved" in page and "Looks right" in page
    assert page.count(run.parameters_hash) >= 2
    # Timeline.
    assert "run.approved" in page and "awaiting_approval → " in page
    # Attempt with its request and response.
    assert "87 ms" in page
    assert "POST https://vendor.example.com/api/v1/batch-jobs/job-1/start" in page
    assert '"status": "running"' in page
    assert "<details>" in page
    # Vendor facts.
    assert "bj-77" in page and "completed" in page and "5000" in page
    assert '<progress max="100" value="100">' in page
    assert '"contacts_enqueued": 5000' in page
    # Terminal: nothing polls.
    assert 'hx-trigger="every 2s"' not in page


def test_detail_of_open_run_polls_its_status_block(team):
    run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED)

    page = text(team.client_for("operator").get(detail_url(run)))

    assert 'hx-trigger="every 2s"' in page
    assert f"?seen={RunState.ACCEPTED}:0" in page


def test_status_fragment_only_while_open(team):
    run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED, progress=30)

    response = team.client_for("operator").get(detail_url(run), **HTMX)

    body = text(response)
    assert response.status_code == 200
    assert body.lstrip().startswith('<section class="card" id="run-status"')
    assert "<html" not in body and "Timeline" not in body and "Parameters" not in body
    assert 'value="30"' in body


def test_status_fragment_stops_polling_when_terminal(team):
    run = RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED)

    response = team.client_for("operator").get(detail_url(run), **HTMX)

    assert response.status_code == 286
    assert "hx-trigger" not in text(response)
    assert "Succeeded" in text(response)


def test_status_fragment_reloads_the_page_when_the_actions_changed(team):
    run = RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED)

    response = team.client_for("operator").get(
        detail_url(run), {"seen": "awaiting_approval:0"}, **HTMX
    )

    assert response["HX-Refresh"] == "true"


def test_reconciling_run_says_so_and_when_the_next_check_is(team):
    check_at = utc_now().replace(microsecond=0) + timedelta(minutes=10)
    run = unknown_outcome(team, needs_person=False, reconcile_after=check_at)

    page = text(team.client_for("operator").get(detail_url(run)))

    assert "being checked automatically" in page
    assert check_at.strftime("%Y-%m-%d %H:%M:%S") in page
    # Only "mark as sent" with evidence: a second send now could act twice.
    assert "Mark as sent" in page and "Send again" not in page
    assert action_url("run_send_again", run) not in page


def test_the_page_says_what_the_run_waits_for_and_until_when(team):
    check_at = utc_now().replace(microsecond=0) + timedelta(minutes=10)
    run = unknown_outcome(team, needs_person=False, reconcile_after=check_at)
    client = team.client_for("operator")

    page = text(client.get(detail_url(run)))
    fragment = text(client.get(detail_url(run), **HTMX))

    for shown in (page, fragment):
        assert (
            "Waiting for the automatic re-check until " + check_at.strftime("%Y-%m-%d %H:%M:%S")
            in shown
        )
        assert "<strong>in 9 min" in shown or "<strong>in 10 min" in shown
        assert "TriggerDesk reads the job's status in TalkifAI" in shown


def test_send_again_while_reconciling_is_refused_by_the_engine(team):
    run = unknown_outcome(
        team, needs_person=False, reconcile_after=utc_now() + timedelta(minutes=5)
    )
    before = snapshot(run)

    response = team.client_for("operator").post(
        action_url("run_send_again", run),
        {"comment": "Nothing there", "confirm": "on"},
        follow=True,
    )

    assert "checks with the vendor itself" in text(response)
    assert snapshot(run) == before


def test_needs_person_shows_the_evidence_above_the_buttons(team):
    run = unknown_outcome(team)

    page = text(team.client_for("operator").get(detail_url(run)))

    evidence_at = page.index("Evidence")
    assert evidence_at < page.index("Mark as sent") and evidence_at < page.index("Send again")
    decision = page[evidence_at : page.index("Mark as sent")]
    assert "outcome_unknown" in decision and "timeout" in decision
    assert "POST https://vendor.example.com/api/v1/batch-jobs/job-9/start" in decision
    assert '"note": "evidence-body"' in decision
    assert "No answer: ReadTimeout after 30 s" in decision
    attempt = run.attempts.get()
    assert attempt.started_at.strftime("%Y-%m-%d %H:%M:%S") in decision
    assert 'type="checkbox"' in page


def test_needs_person_without_approve_permission_shows_no_buttons(team):
    run = unknown_outcome(team)

    page = text(team.client_for("marketer").get(detail_url(run)))

    assert "Evidence" in page
    assert "Mark as sent</button>" not in page
    assert "An operator must make this decision." in page


# -- secrets ------------------------------------------------------------------------------------


def test_secrets_are_never_rendered(team):
    connection = VendorConnectionFactory(
        tenant=team.tenant, kind=VendorKind.TALKIFAI, secret_values={"api_key": SECRET}
    )
    run = unknown_outcome(team, connection=connection)
    # As stored by the HTTP layer: the secret already replaced...
    RunAttemptFactory(
        run=run,
        exchange={
            "method": "GET",
            "url": "https://vendor.example.com/status",
            "request_headers": {"X-Api-Key": REDACTED},
            "request_body": None,
            "status_code": 200,
            "response_headers": {},
            "response_body": "{}",
            "error": "",
        },
    )
    # ...and, should a header ever slip through unredacted, the page redacts it by name.
    RunAttemptFactory(
        run=run,
        exchange={
            "method": "GET",
            "url": "https://vendor.example.com/status",
            "request_headers": {"Authorization": f"Bearer {SECRET}"},
            "request_body": None,
            "status_code": 200,
            "response_headers": {"Set-Cookie": f"session={SECRET}"},
            "response_body": "{}",
            "error": "",
        },
    )

    for role in ("marketer", "operator", "auditor", "admin"):
        client = team.client_for(role)
        for response in (
            client.get(detail_url(run)),
            client.get(detail_url(run), **HTMX),
            client.get(reverse("run_list", args=["acme"])),
        ):
            assert SECRET not in response.content.decode(), role
    page = text(team.client_for("auditor").get(detail_url(run)))
    assert REDACTED in page


# -- approve ------------------------------------------------------------------------------------


def test_approve_queues_the_run_and_audits_it(team):
    run = awaiting(team)

    response = team.client_for("operator").post(
        action_url("run_approve", run),
        {"parameters_hash": run.parameters_hash, "comment": "Checked the audience"},
        follow=True,
    )

    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    approval = run.approvals.get()
    assert approval.decided_by == team.operator.user
    assert approval.decision == Approval.Decision.APPROVED
    assert approval.comment == "Checked the audience"
    event = AuditEvent.objects.get(object_type="run", object_id=str(run.pk), action="run.approved")
    assert event.actor == team.operator.user
    assert "Approved. The run is queued" in text(response)


def test_requester_cannot_approve_their_own_run(team):
    run = awaiting(team, requested_by=team.operator.user)
    client = team.client_for("operator")

    page = text(client.get(detail_url(run)))
    assert "You requested this run, so you cannot approve it" in page
    assert '<button type="button" disabled>Approve</button>' in page
    assert action_url("run_approve", run) not in page

    before = snapshot(run)
    response = client.post(
        action_url("run_approve", run), {"parameters_hash": run.parameters_hash}, follow=True
    )
    assert "The requester cannot approve their own request" in text(response)
    assert snapshot(run) == before


def test_approver_sees_the_approve_form_with_the_hash(team):
    run = awaiting(team)

    page = text(team.client_for("operator").get(detail_url(run)))

    assert f'name="parameters_hash" value="{run.parameters_hash}"' in page
    assert action_url("run_approve", run) in page
    assert action_url("run_reject", run) in page


def test_marketer_sees_no_approve_form(team):
    run = awaiting(team, requested_by=team.operator.user)

    page = text(team.client_for("marketer").get(detail_url(run)))

    assert action_url("run_approve", run) not in page
    assert "Waiting for an operator to approve it." in page


def test_approve_of_changed_parameters_is_refused(team):
    run = awaiting(team)
    before = snapshot(run)

    response = team.client_for("operator").post(
        action_url("run_approve", run), {"parameters_hash": "0" * 64}, follow=True
    )

    assert "The parameters changed since you opened this page" in text(response)
    assert snapshot(run) == before


def test_approve_in_the_wrong_state_is_refused(team):
    run = RunFactory(tenant=team.tenant, state=RunState.QUEUED, requested_by=team.marketer.user)
    before = snapshot(run)

    response = team.client_for("operator").post(
        action_url("run_approve", run), {"parameters_hash": run.parameters_hash}, follow=True
    )

    assert (
        "There is nothing to approve: this run was already approved and is waiting to be sent."
        in text(response)
    )
    assert snapshot(run) == before


def test_approve_without_a_hash_is_a_form_error(team):
    run = awaiting(team)
    before = snapshot(run)

    response = team.client_for("operator").post(action_url("run_approve", run), {})

    assert response.status_code == 400
    assert "Nothing was changed" in text(response)
    assert snapshot(run) == before


# -- reject -------------------------------------------------------------------------------------


def test_reject_cancels_with_the_reason(team):
    run = awaiting(team)

    response = team.client_for("operator").post(
        action_url("run_reject", run), {"comment": "Wrong audience"}, follow=True
    )

    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert run.approvals.get().decision == Approval.Decision.REJECTED
    assert "Wrong audience" in run.failure_message
    assert AuditEvent.objects.filter(
        object_type="run", object_id=str(run.pk), action="run.rejected"
    ).exists()
    assert "Rejected. Nothing was sent." in text(response)


def test_reject_needs_a_reason(team):
    run = awaiting(team)
    before = snapshot(run)

    response = team.client_for("operator").post(action_url("run_reject", run), {"comment": "  "})

    assert response.status_code == 400
    assert "Say why you reject it" in text(response)
    assert snapshot(run) == before


def test_reject_in_the_wrong_state_is_refused(team):
    run = RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED)
    before = snapshot(run)

    response = team.client_for("operator").post(
        action_url("run_reject", run), {"comment": "No"}, follow=True
    )

    assert "Only a request awaiting approval can be rejected." in text(response)
    assert snapshot(run) == before


# -- cancel -------------------------------------------------------------------------------------


def test_requester_cancels_their_request(team):
    run = awaiting(team)

    response = team.client_for("marketer").post(action_url("run_cancel", run), follow=True)

    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert AuditEvent.objects.filter(
        object_type="run", object_id=str(run.pk), action="run.cancelled", actor=team.marketer.user
    ).exists()
    assert "Cancelled. Nothing was sent." in text(response)


def test_cancel_button_only_in_cancellable_states_and_for_allowed_roles(team):
    queued = RunFactory(tenant=team.tenant, state=RunState.QUEUED)
    sending = RunFactory(tenant=team.tenant, state=RunState.SENDING)

    assert action_url("run_cancel", queued) in text(
        team.client_for("operator").get(detail_url(queued))
    )
    assert action_url("run_cancel", queued) not in text(
        team.client_for("auditor").get(detail_url(queued))
    )
    assert action_url("run_cancel", sending) not in text(
        team.client_for("operator").get(detail_url(sending))
    )


def another_marketer(team):
    """A second marketer of the team's tenant, logged in."""
    from django.test import Client

    membership = MembershipFactory(
        tenant=team.tenant, role=Role.MARKETER, user=UserFactory(username="max")
    )
    client = Client()
    client.force_login(membership.user)
    return client


def test_a_marketer_cannot_cancel_another_marketers_run(team):
    run = awaiting(team)  # requested by team.marketer
    queued = RunFactory(tenant=team.tenant, state=RunState.QUEUED, requested_by=team.marketer.user)
    client = another_marketer(team)
    for target in (run, queued):
        before = snapshot(target)

        page = client.get(detail_url(target))
        response = client.post(action_url("run_cancel", target), follow=True)

        assert action_url("run_cancel", target) not in text(page)
        assert "Only the requester or an operator can cancel this run." in text(response)
        assert "Cancelled. Nothing was sent." not in text(response)
        assert snapshot(target) == before


def test_requester_operator_and_admin_may_cancel_and_see_the_button(team):
    for role in ("marketer", "operator", "admin"):
        run = awaiting(team)
        client = team.client_for(role)
        assert action_url("run_cancel", run) in text(client.get(detail_url(run))), role
        client.post(action_url("run_cancel", run))
        run.refresh_from_db()
        assert run.state == RunState.CANCELLED, role


def test_cancel_after_sending_started_is_refused(team):
    run = RunFactory(tenant=team.tenant, state=RunState.SENDING)
    before = snapshot(run)

    response = team.client_for("operator").post(action_url("run_cancel", run), follow=True)

    assert "This run is being sent right now and can no longer be cancelled." in text(response)
    assert snapshot(run) == before


# -- mark as sent / send again ------------------------------------------------------------------


def test_mark_as_sent_succeeds_and_audits_the_evidence(team):
    run = unknown_outcome(team)
    evidence = "TalkifAI dashboard shows job-9 running since 10:02 UTC"

    response = team.client_for("operator").post(
        action_url("run_mark_as_sent", run), {"comment": evidence, "confirm": "on"}, follow=True
    )

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert not run.needs_person
    assert run.result["evidence"] == evidence
    event = AuditEvent.objects.get(
        object_type="run", object_id=str(run.pk), action="run.marked_as_sent"
    )
    assert event.actor == team.operator.user
    assert event.summary["reason"] == evidence
    assert "Marked as sent" in text(response)
    assert evidence in text(response)  # on the timeline


def test_send_again_queues_and_audits_the_evidence(team):
    run = unknown_outcome(team)
    evidence = "No job-9 execution in TalkifAI today; support confirmed"

    response = team.client_for("admin").post(
        action_url("run_send_again", run), {"comment": evidence, "confirm": "on"}, follow=True
    )

    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    assert not run.needs_person
    event = AuditEvent.objects.get(
        object_type="run", object_id=str(run.pk), action="run.send_again"
    )
    assert event.actor == team.admin.user
    assert event.summary["reason"] == evidence
    assert "Queued to be sent again" in text(response)


@pytest.mark.parametrize("action", ["run_mark_as_sent", "run_send_again"])
def test_person_decision_needs_written_evidence(team, action):
    run = unknown_outcome(team)
    before = snapshot(run)

    response = team.client_for("operator").post(
        action_url(action, run), {"comment": "   ", "confirm": "on"}
    )

    assert response.status_code == 400
    assert "Write down what you checked" in text(response)
    assert snapshot(run) == before


@pytest.mark.parametrize(
    ("action", "form_id"), [("run_mark_as_sent", "mark"), ("run_send_again", "again")]
)
def test_person_decision_needs_the_confirmation_and_keeps_the_typed_evidence(team, action, form_id):
    run = unknown_outcome(team)
    before = snapshot(run)

    response = team.client_for("operator").post(
        action_url(action, run), {"comment": "Checked the vendor UI at 10:15"}
    )

    page = text(response)
    assert response.status_code == 400
    assert "Tick the box to confirm" in page
    assert f'id="{form_id}_comment">\nChecked the vendor UI at 10:15</textarea>' in page
    assert snapshot(run) == before


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("run_mark_as_sent", "Only a run whose outcome is unknown can be marked as sent."),
        ("run_send_again", "Only a run whose outcome is unknown can be sent again."),
    ],
)
def test_person_decision_in_the_wrong_state_is_refused(team, action, message):
    run = RunFactory(tenant=team.tenant, state=RunState.FAILED)
    before = snapshot(run)

    response = team.client_for("operator").post(
        action_url(action, run), {"comment": "Checked", "confirm": "on"}, follow=True
    )

    assert message in text(response)
    assert snapshot(run) == before
    assert not RunAttempt.objects.filter(run=run).exists()


def test_run_is_listed_in_the_nav(team):
    page = text(team.client_for("auditor").get(reverse("tenant_home", args=["acme"])))
    assert f'href="{reverse("run_list", args=["acme"])}"' in page


def test_queryset_of_runs_untouched_by_reads(team):
    run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED)
    before = snapshot(run)
    client = team.client_for("operator")
    client.get(detail_url(run))
    client.get(detail_url(run), **HTMX)
    client.get(reverse("run_list", args=["acme"]), **HTMX)
    assert snapshot(run) == before
    assert Run.objects.count() == 1


def test_a_rejected_run_says_who_rejected_it_when_and_why(team):
    from dashboard.audit.trail import Actor
    from dashboard.runs.services import run_reject

    run = awaiting(team)
    run_reject(actor=Actor(user=team.operator.user), run=run, comment="Wrong audience")
    detail = text(team.client_for("auditor").get(detail_url(run)))
    assert "rejected by oscar at" in detail and "“Wrong audience”" in detail
    listing = text(team.client_for("auditor").get(reverse("run_list", args=["acme"])))
    assert '<span class="badge bad">rejected</span>' in listing
    assert "Rejected by oscar" in listing


def test_detail_tells_a_call_that_may_have_left_from_one_that_never_started(team):
    """After a worker died: the person sees which call may have reached the vendor (when its
    request started) and which never left."""
    run = RunFactory(tenant=team.tenant, state=RunState.OUTCOME_UNKNOWN, attempt_count=3)
    request = {"description": "Event generator → topic NFL", "parameters_hash": "abc123"}
    started = utc_now().replace(microsecond=123456)
    RunAttemptFactory(
        run=run,
        number=1,
        exchange={},
        status_code=None,
        request=request,
        request_started_at=None,
        failure_class="not_sent",
        failure_code="worker_lost_before_sending",
        outcome="Never sent: the worker (host:1) stopped after claiming it.",
    )
    RunAttemptFactory(
        run=run,
        number=2,
        exchange={},
        status_code=None,
        request=request,
        request_started_at=started,
        failure_code="worker_lost",
        outcome="No answer recorded: the worker (host:2) stopped while sending.",
    )

    # Lost before request_started_at existed: no mark, still a call that may have left.
    RunAttemptFactory(
        run=run,
        number=3,
        exchange={},
        status_code=None,
        request=request,
        request_started_at=None,
        failure_class="outcome_unknown",
        failure_code="worker_lost",
    )

    page = text(team.client_for("auditor").get(detail_url(run)))

    assert page.count("Claimed, never sent: Event generator → topic NFL") == 1
    assert "Its request never started." in page
    assert f"Request started at {started:%Y-%m-%d %H:%M:%S}.123. No answer was recorded." in page
    assert page.count("Call recorded before it left") == 2
    assert page.count("Request started at") == 1
