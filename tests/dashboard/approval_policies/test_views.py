"""The approval policies page (admins keep them, everyone reads them) and the run page that
shows an approver what a policy asked for."""

import pytest
from django.urls import reverse

from dashboard.approval_policies.models import ApprovalPolicy
from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent, VendorKind
from dashboard.runs import services
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.factories import VendorConnectionFactory

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Big triggers",
    "operation": "optimove_run_event_generator",
    "topics_above": "2",
    "office_days": ["1", "2", "3", "4", "5"],
    "office_start": "09:00",
    "office_end": "18:00",
    "office_zone": "UTC",
    "approvals_needed": "2",
    "valid_minutes": "60",
}


def url(name, *args):
    return reverse(name, args=["acme", *args])


def test_an_admin_adds_a_policy_and_everyone_sees_it(team):
    admin = team.client_for("admin")
    response = admin.post(url("approval_policy_create"), FORM)
    assert response.status_code == 302
    policy = ApprovalPolicy.objects.get()
    assert policy.office_days == "12345" and policy.topics_above == 2
    page = team.client_for("marketer").get(url("approval_policy_list"))
    assert page.status_code == 200
    assert "Big triggers" in page.text and "topics above 2" in page.text
    assert url("approval_policy_create") not in page.text  # no form for a marketer


def test_bad_input_keeps_what_was_typed_and_saves_nothing(team):
    admin = team.client_for("admin")
    response = admin.post(url("approval_policy_create"), {**FORM, "topics_above": "twenty"})
    assert response.status_code == 422
    assert "&#x27;twenty&#x27; is not a whole number." in response.text
    assert 'value="Big triggers"' in response.text
    response = admin.post(url("approval_policy_create"), {**FORM, "approvals_needed": "3"})
    assert response.status_code == 200 or response.status_code == 302  # 3 approvers in acme
    ApprovalPolicy.objects.all().delete()
    team.second_operator.delete()
    response = admin.post(url("approval_policy_create"), {**FORM, "approvals_needed": "3"})
    assert response.status_code == 422
    assert "3 approvals cannot be given: Acme Sports has 2 members who may approve" in (
        response.text
    )
    assert not ApprovalPolicy.objects.exists()


def test_an_admin_edits_and_deletes_a_policy(team):
    admin = team.client_for("admin")
    admin.post(url("approval_policy_create"), FORM)
    policy = ApprovalPolicy.objects.get()
    page = admin.get(url("approval_policy_edit", policy.pk))
    assert 'value="2"' in page.text
    admin.post(url("approval_policy_update", policy.pk), {**FORM, "topics_above": "20"})
    policy.refresh_from_db()
    assert policy.topics_above == 20
    admin.post(url("approval_policy_delete", policy.pk))
    assert not ApprovalPolicy.objects.exists()
    assert list(
        AuditEvent.objects.filter(action__startswith="approval_policy.")
        .order_by("pk")
        .values_list("action", flat=True)
    ) == ["approval_policy.created", "approval_policy.changed", "approval_policy.deleted"]


@pytest.mark.parametrize("role", ["operator", "marketer", "auditor"])
def test_only_admins_change_policies(team, role):
    client = team.client_for(role)
    assert client.post(url("approval_policy_create"), FORM).status_code == 403
    assert not ApprovalPolicy.objects.exists()


def test_another_tenants_policy_is_a_404(team, other_team):
    from dashboard.approval_policies.services import policy_create

    theirs = policy_create(
        actor=Actor(user=other_team.admin.user),
        tenant=other_team.tenant,
        data={**FORM, "office_days": "12345"},
    )
    admin = team.client_for("admin")
    assert admin.get(url("approval_policy_edit", theirs.pk)).status_code == 404
    assert admin.post(url("approval_policy_delete", theirs.pk)).status_code == 404
    assert ApprovalPolicy.objects.filter(pk=theirs.pk).exists()


def test_the_run_page_shows_the_approver_what_the_policy_asks(team):
    team.client_for("admin").post(url("approval_policy_create"), FORM)
    connection = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.OPTIMOVE_CAMPAIGNS)
    runs = services.run_submit_many(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_run_event_generator",
        requests=[
            (
                f"k{i}",
                {
                    "event_generator_id": "00000000-abcd-abcd-abcd-000000000000",
                    "topic_key": f"t{i}",
                    "context": {},
                },
            )
            for i in range(3)
        ],
        approval_required=False,
    )
    run = runs[0]
    oscar = team.client_for("operator")
    page = oscar.get(url("run_detail", run.pk)).text
    assert "Needs 2 of 3 operators" in page
    assert "(policy &#x27;Big triggers&#x27;)" in page
    assert "Approved so far: <strong>0 of 2</strong>" in page
    assert run.parameters_hash in page
    assert "Approve (1 of 2)" in page
    response = oscar.post(
        url("run_approve", run.pk), {"parameters_hash": run.parameters_hash, "comment": ""}
    )
    assert response.status_code == 302
    page = oscar.get(url("run_detail", run.pk)).text
    assert "Approved (1 of 2). It waits for 1 more operator before anything is sent." in page
    assert "Approved so far: <strong>1 of 2</strong> (oscar at" in page
    assert "You approved it; 1 more operator must approve it" in page
    assert Run.objects.get(pk=run.pk).state == RunState.AWAITING_APPROVAL
    olga = team.client_for("second_operator")
    assert "Approve and send" in olga.get(url("run_detail", run.pk)).text
    olga.post(url("run_approve", run.pk), {"parameters_hash": run.parameters_hash, "comment": ""})
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED


def test_the_api_lists_the_policies_and_a_runs_approval_needs(team, make_token):
    from dashboard.api.endpoints.common import run_out

    team.client_for("admin").post(url("approval_policy_create"), FORM)
    _, api = make_token("marketer")
    response = api.get("approval-policies")
    assert response.status_code == 200
    [policy] = response.json()
    assert policy["name"] == "Big triggers" and policy["approvals_needed"] == 2
    assert policy["topics_above"] == 2 and policy["office_start"] == "09:00"
    connection = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.OPTIMOVE_CAMPAIGNS)
    [run, *_] = services.run_submit_many(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_run_event_generator",
        requests=[
            (
                f"k{i}",
                {
                    "event_generator_id": "00000000-abcd-abcd-abcd-000000000000",
                    "topic_key": f"t{i}",
                    "context": {},
                },
            )
            for i in range(3)
        ],
        approval_required=False,
    )
    out = api.get(f"runs/{run.pk}").json()
    assert out["approvals_needed"] == 2 and out["approval_facts"] == {"topics": 3}
    assert out["approval_reasons"] == run_out(run)["approval_reasons"]


def test_approving_through_the_api_counts_distinct_people(team, make_token):
    team.client_for("admin").post(url("approval_policy_create"), FORM)
    connection = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.OPTIMOVE_CAMPAIGNS)
    [run, *_] = services.run_submit_many(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_run_event_generator",
        requests=[
            (
                f"k{i}",
                {
                    "event_generator_id": "00000000-abcd-abcd-abcd-000000000000",
                    "topic_key": f"t{i}",
                    "context": {},
                },
            )
            for i in range(3)
        ],
        approval_required=False,
    )
    _, oscar = make_token("operator")
    _, olga = make_token("second_operator")
    body = {"parameters_hash": run.parameters_hash}
    first = oscar.post(f"runs/{run.pk}/approve", body)
    assert first.status_code == 200 and first.json()["state"] == "awaiting_approval"
    again = oscar.post(f"runs/{run.pk}/approve", body)
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    second = olga.post(f"runs/{run.pk}/approve", body)
    assert second.status_code == 200 and second.json()["state"] == "queued"
