"""Approval policies kept by admins (bad input refused, audited) and what they make the run
engine do: N distinct approvers, never the requester, before expiry, of the same parameters."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from dashboard.approval_policies import services as policy_services
from dashboard.approval_policies.models import ApprovalPolicy
from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent, VendorKind
from dashboard.runs import services
from dashboard.runs.models import Approval, Run
from dashboard.runs.states import RunState
from tests.factories import VendorConnectionFactory

pytestmark = pytest.mark.django_db

GENERATOR = "00000000-abcd-abcd-abcd-000000000000"
BIG_TRIGGERS = {
    "name": "Big triggers",
    "operation": "optimove_run_event_generator",
    "topics_above": "2",
    "approvals_needed": "2",
    "valid_minutes": "60",
}


def actor(membership):
    return Actor(user=membership.user)


@pytest.fixture
def campaigns(team):
    return VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.OPTIMOVE_CAMPAIGNS)


def trigger(team, connection, topics, *, key="g1"):
    return services.run_submit_many(
        actor=actor(team.marketer),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_run_event_generator",
        requests=[
            (
                f"{key}:{index}",
                {"event_generator_id": GENERATOR, "topic_key": f"t{index}", "context": {}},
            )
            for index in range(topics)
        ],
        approval_required=False,
    )


def approve(membership, run):
    run.refresh_from_db()
    return services.run_approve(
        actor=actor(membership), run=run, parameters_hash_seen=run.parameters_hash
    )


# -- keeping policies -----------------------------------------------------------------------


def test_an_admin_adds_changes_and_deletes_a_policy_each_audited(team):
    policy = policy_services.policy_create(
        actor=actor(team.admin), tenant=team.tenant, data=BIG_TRIGGERS
    )
    assert (policy.topics_above, policy.approvals_needed, policy.valid_minutes) == (2, 2, 60)
    created = AuditEvent.objects.get(action="approval_policy.created")
    assert created.summary["after"]["name"] == "Big triggers"
    policy_services.policy_update(
        actor=actor(team.admin), policy=policy, data={**BIG_TRIGGERS, "topics_above": "20"}
    )
    changed = AuditEvent.objects.get(action="approval_policy.changed")
    assert changed.summary["before"]["topics_above"] == 2
    assert changed.summary["after"]["topics_above"] == 20
    assert changed.summary["changed"] == ["topics_above"]
    assert changed.actor_label == "ada"
    policy_services.policy_delete(actor=actor(team.admin), policy=policy)
    assert not ApprovalPolicy.objects.exists()
    deleted = AuditEvent.objects.get(action="approval_policy.deleted")
    assert deleted.summary["before"]["topics_above"] == 20


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"topics_above": "twenty"}, "topics_above", "not_a_number"),
        ({"recipients_above": "-5"}, "recipients_above", "out_of_range"),
        ({"approvals_needed": "4"}, "approvals_needed", "out_of_range"),
        ({"approvals_needed": "x"}, "approvals_needed", "not_a_number"),
        ({"valid_minutes": "0"}, "valid_minutes", "out_of_range"),
        ({"name": "  "}, "name", "required"),
        ({"operation": "send_everything"}, "operation", "unknown_operation"),
        ({"office_zone": "Mars/Olympus"}, "office_zone", "unknown_zone"),
        ({"office_days": "89"}, "office_days", "bad_days"),
        ({"office_start": "18:00", "office_end": "09:00"}, "office_end", "bad_window"),
        ({"office_start": "noon"}, "office_start", "not_a_time"),
    ],
)
def test_bad_input_is_refused_by_field_and_nothing_is_saved(team, change, field, code):
    with pytest.raises(ValidationError) as refused:
        policy_services.policy_create(
            actor=actor(team.admin), tenant=team.tenant, data={**BIG_TRIGGERS, **change}
        )
    assert field in refused.value.error_dict
    assert refused.value.error_dict[field][0].code == code
    assert not ApprovalPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="approval_policy").exists()


def test_more_approvals_than_people_who_could_give_them_is_refused(team):
    # acme: oscar and olga (operators) and ada (admin) may approve.
    team.second_operator.delete()
    team.operator.delete()
    with pytest.raises(ValidationError) as refused:
        policy_services.policy_create(
            actor=actor(team.admin), tenant=team.tenant, data=BIG_TRIGGERS
        )
    assert refused.value.error_dict["approvals_needed"][0].code == "too_few_approvers"
    assert "has 1 member who may approve" in str(refused.value)
    assert not ApprovalPolicy.objects.exists()


def test_a_policy_name_is_unique_per_tenant(team):
    policy_services.policy_create(actor=actor(team.admin), tenant=team.tenant, data=BIG_TRIGGERS)
    with pytest.raises(ValidationError, match="already has a policy named"):
        policy_services.policy_create(
            actor=actor(team.admin), tenant=team.tenant, data=BIG_TRIGGERS
        )
    assert ApprovalPolicy.objects.count() == 1


@pytest.mark.parametrize("role", ["operator", "marketer", "auditor"])
def test_only_admins_keep_policies(team, role):
    with pytest.raises(PermissionDenied):
        policy_services.policy_create(
            actor=actor(getattr(team, role)), tenant=team.tenant, data=BIG_TRIGGERS
        )


# -- what they make the engine do -----------------------------------------------------------


@pytest.fixture
def big_triggers(team):
    return policy_services.policy_create(
        actor=actor(team.admin), tenant=team.tenant, data=BIG_TRIGGERS
    )


def test_below_the_threshold_nothing_waits(team, campaigns, big_triggers):
    runs = trigger(team, campaigns, 2)
    assert {run.state for run in runs} == {RunState.QUEUED}


def test_above_it_the_trigger_waits_for_two_distinct_operators(team, campaigns, big_triggers):
    runs = trigger(team, campaigns, 3)
    run = Run.objects.get(pk=runs[0].pk)
    assert run.state == RunState.AWAITING_APPROVAL
    assert run.approvals_needed == 2
    assert run.approval_facts == {"topics": 3}
    assert "(policy 'Big triggers')" in run.approval_reasons[0]
    assert run.approval_expires_at - run.requested_at == timedelta(minutes=60)

    with pytest.raises(services.RunActionError, match="cannot approve their own"):
        approve(team.marketer, run)
    approve(team.operator, run)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL  # 1 of 2
    recorded = AuditEvent.objects.get(action="run.approval_recorded", object_id=str(run.pk))
    assert recorded.summary["approvals"] == 1 and recorded.summary["approvals_needed"] == 2
    with pytest.raises(services.RunActionError, match="already approved"):
        approve(team.operator, run)
    approve(team.second_operator, run)
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    approved = AuditEvent.objects.get(action="run.approved", object_id=str(run.pk))
    assert approved.summary["approvals"] == 2
    assert services.approval_problem(run, run.requested_at) == ""


def test_the_worker_refuses_a_run_short_of_its_approvals(team, campaigns, big_triggers):
    run = trigger(team, campaigns, 3)[0]
    approve(team.operator, run)
    run.refresh_from_db()
    assert services.approval_problem(run, run.requested_at) == (
        "The run has 1 of the 2 approvals it needs."
    )


def test_changed_parameters_void_earlier_approvals(team, campaigns, big_triggers):
    run = trigger(team, campaigns, 3)[0]
    approve(team.operator, run)
    services.run_change_parameters(
        actor=actor(team.marketer),
        run=run,
        parameters={"event_generator_id": GENERATOR, "topic_key": "other", "context": {}},
    )
    # oscar's approval was of the old parameters: olga's is the first of the new ones.
    approve(team.second_operator, run)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL
    approve(team.operator, run)
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    assert Approval.objects.filter(run=run, decided_by=team.operator.user).count() == 2


def test_an_expired_request_is_not_released(team, campaigns, big_triggers):
    run = trigger(team, campaigns, 3)[0]
    approve(team.operator, run)
    Run.objects.filter(pk=run.pk).update(
        approval_expires_at=run.requested_at - timedelta(seconds=1)
    )
    with pytest.raises(services.RunActionError, match="expired"):
        approve(team.second_operator, run)
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and run.failure_code == "approval_expired"


def test_the_old_switch_is_a_policy_of_one_approval(team, campaigns):
    run = services.run_submit(
        actor=actor(team.marketer),
        tenant=team.tenant,
        connection=campaigns,
        operation="optimove_run_event_generator",
        parameters={"event_generator_id": GENERATOR, "topic_key": "t", "context": {}},
        idempotency_key="s1",
        approval_required=True,
    )
    assert run.approvals_needed == 1
    assert run.approval_reasons == [
        "Optimove: run event generator: every request needs 1 approval "
        "(approval required (setting))"
    ]
    approve(team.operator, run)
    run.refresh_from_db()
    assert run.state == RunState.QUEUED


# -- the command ----------------------------------------------------------------------------


def test_the_command_adds_changes_lists_and_deletes_through_the_same_rules(team):
    from io import StringIO

    from django.core.management import CommandError, call_command

    def run(*args):
        out = StringIO()
        call_command("approval_policy", "acme", *args, stdout=out)
        return out.getvalue()

    with pytest.raises(CommandError, match="--topics-above: 'twenty' is not a whole number"):
        run("add", "--as", "ada", "--name", "Big", "--topics-above", "twenty", "--approvals", "2")
    with pytest.raises(CommandError, match="--approvals: 2 approvals cannot be given"):
        team.operator.delete()
        team.second_operator.delete()
        run("add", "--as", "ada", "--name", "Big", "--topics-above", "20", "--approvals", "2")
    with pytest.raises(CommandError, match="can change policies"):
        run("add", "--as", "mia", "--name", "Big", "--approvals", "1")
    assert not ApprovalPolicy.objects.exists()
    run("add", "--as", "ada", "--name", "Big", "--topics-above", "20", "--approvals", "1")
    run("change", "--as", "ada", "--name", "Big", "--topics-above", "30")
    assert ApprovalPolicy.objects.get().topics_above == 30
    assert "Big:" in run("list")
    run("delete", "--as", "ada", "--name", "Big")
    assert not ApprovalPolicy.objects.exists()
    events = AuditEvent.objects.filter(action__startswith="approval_policy.").order_by("pk")
    assert [event.action for event in events] == [
        "approval_policy.created",
        "approval_policy.changed",
        "approval_policy.deleted",
    ]
    assert all("cli:" in event.actor_label for event in events)
