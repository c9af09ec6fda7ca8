"""Run reads: tenant scoping, filters, the timeline, descriptions that never break a page."""

from datetime import timedelta

import pytest
from django.http import Http404

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import VendorKind
from dashboard.runs import selectors
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import RunState
from dashboard.tenancy.services import membership_remove
from tests.factories import (
    ApprovalFactory,
    AuditEventFactory,
    MembershipFactory,
    RunFactory,
    UserFactory,
    VendorConnectionFactory,
)

pytestmark = pytest.mark.django_db


def test_run_list_is_the_tenants_runs_newest_first(team, other_team):
    older = RunFactory(tenant=team.tenant)
    newer = RunFactory(tenant=team.tenant)
    Run.objects.filter(pk=older.pk).update(created_at=utc_now() - timedelta(hours=1))
    RunFactory(tenant=other_team.tenant)

    assert list(selectors.run_list(tenant=team.tenant)) == [newer, older]


def test_run_list_filters(team):
    talkifai = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.TALKIFAI)
    optimove = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.OPTIMOVE_BATCH)
    by_mia = RunFactory(tenant=team.tenant, connection=talkifai, requested_by=team.marketer.user)
    daily = RunFactory(
        tenant=team.tenant,
        connection=optimove,
        operation=Operation.OPTIMOVE_TRIGGER_DAILY,
        parameters={"wait_time_for_validation_seconds": None},
        requested_by=team.operator.user,
        state=RunState.SUCCEEDED,
    )

    def ids(**filters):
        return {run.pk for run in selectors.run_list(tenant=team.tenant, filters=filters)}

    assert ids() == {by_mia.pk, daily.pk}
    assert ids(state=RunState.SUCCEEDED) == {daily.pk}
    assert ids(operation=Operation.TALKIFAI_START_BATCH_JOB) == {by_mia.pk}
    assert ids(connection=optimove) == {daily.pk}
    assert ids(requester=team.marketer.user) == {by_mia.pk}
    assert ids(state=RunState.SUCCEEDED, requester=team.marketer.user) == set()
    # Empty values mean "any".
    assert ids(state="", operation="", connection=None, requester=None) == {by_mia.pk, daily.pk}


def test_run_list_never_matches_another_tenants_connection(team, other_team):
    foreign = RunFactory(tenant=other_team.tenant)
    RunFactory(tenant=team.tenant)

    runs = selectors.run_list(tenant=team.tenant, filters={"connection": foreign.connection})

    assert list(runs) == []


def test_run_list_fetches_rows_in_a_fixed_number_of_queries(team, django_assert_max_num_queries):
    for _ in range(5):
        ApprovalFactory(run=RunFactory(tenant=team.tenant), decided_by=team.operator.user)

    with django_assert_max_num_queries(2):
        for run in selectors.run_list(tenant=team.tenant):
            _ = (run.connection.name, run.requested_by, [a.decided_by for a in run.approvals.all()])


def test_run_get_returns_own_run_and_404s_for_another_tenants(team, other_team):
    own = RunFactory(tenant=team.tenant)
    foreign = RunFactory(tenant=other_team.tenant)

    assert selectors.run_get(tenant=team.tenant, run_id=own.pk) == own
    with pytest.raises(Http404):
        selectors.run_get(tenant=team.tenant, run_id=foreign.pk)
    with pytest.raises(Http404):
        selectors.run_get(tenant=team.tenant, run_id=foreign.pk + 1000)


def test_run_timeline_is_the_runs_own_events_oldest_first(team, other_team):
    run = RunFactory(tenant=team.tenant)
    first = record_audit_event(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        action="run.requested",
        object_type="run",
        object_id=run.pk,
    )
    second = record_audit_event(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        action="run.approved",
        object_type="run",
        object_id=run.pk,
    )
    # Neither another run (whose id starts with the same digits), another object type, nor
    # another tenant's row with the same id belongs in it.
    AuditEventFactory(tenant=team.tenant, object_type="run", object_id=f"{run.pk}0")
    AuditEventFactory(tenant=team.tenant, object_type="connection", object_id=str(run.pk))
    AuditEventFactory(tenant=other_team.tenant, object_type="run", object_id=str(run.pk))

    assert list(selectors.run_timeline(run=run)) == [first, second]


def test_run_description_uses_the_operation(team):
    run = RunFactory(
        tenant=team.tenant, parameters={"batch_job_id": "job-7", "batch_job_name": "Winback"}
    )

    assert selectors.run_description(run) == "Start batch job job-7 (Winback)"


def test_run_description_falls_back_when_parameters_do_not_fit(team):
    run = RunFactory(tenant=team.tenant, parameters={"something": "else"})

    assert selectors.run_description(run) == "TalkifAI: start batch job now"


def test_requester_choices_are_members_and_former_members_of_this_tenant(team, other_team):
    departed = UserFactory(username="departed")
    RunFactory(tenant=team.tenant, requested_by=departed)
    membership = MembershipFactory(tenant=team.tenant, user=departed)
    membership_remove(actor=Actor.system(), membership=membership)
    RunFactory(tenant=other_team.tenant, requested_by=other_team.marketer.user)

    names = {user.username for user in selectors.run_requester_choices(tenant=team.tenant)}

    assert names == {"mia", "oscar", "olga", "aude", "ada", "departed"}


def test_attempts_and_timeline_in_one_query_match_the_separate_reads(
    team, other_team, django_assert_num_queries
):
    from tests.factories import RunAttemptFactory

    run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED)
    for _ in range(3):
        RunAttemptFactory(run=run, status_code=202, latency_ms=12.5, outcome="accepted")
    RunAttemptFactory(run=RunFactory(tenant=team.tenant))  # another run's
    for state in ("queued", "sending", "accepted"):
        record_audit_event(
            actor=Actor.system("test"), tenant=team.tenant, action="run.state_changed",
            object_type="run", object_id=run.pk, summary={"from": "x", "to": state},
        )  # fmt: skip
    record_audit_event(
        actor=Actor.system("test"), tenant=other_team.tenant, action="run.state_changed",
        object_type="run", object_id=run.pk, summary={"to": "elsewhere"},
    )  # fmt: skip

    with django_assert_num_queries(1):
        attempts, timeline = selectors.run_attempts_and_timeline(run=run)

    fields = ("pk", "number", "purpose", "started_at", "latency_ms", "status_code", "outcome")
    expected = list(run.attempts.order_by("number"))
    assert [[getattr(a, f) for f in fields] for a in attempts] == [
        [getattr(a, f) for f in fields] for a in expected
    ]
    assert attempts[0].get_purpose_display() == expected[0].get_purpose_display()
    separate = list(selectors.run_timeline(run=run))
    assert [(e.pk, e.created_at, e.action, e.actor_label, e.summary) for e in timeline] == [
        (e.pk, e.created_at, e.action, e.actor_label, e.summary) for e in separate
    ]
    assert [e.summary["to"] for e in timeline] == ["queued", "sending", "accepted"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"state": RunState.QUEUED}, selectors.Outcome("Queued", "", "")),
        (
            {"state": RunState.SUCCEEDED, "audience_size": 1250},
            selectors.Outcome("Succeeded", "good"),
        ),
        (
            {"state": RunState.SUCCEEDED, "audience_size": 0},
            selectors.Outcome("Succeeded", "warn", "reached nobody (an audience of 0)"),
        ),
        (
            {"state": RunState.FAILED, "failure_message": "HTTP 422: not API-triggered"},
            selectors.Outcome("Failed", "bad", "HTTP 422: not API-triggered"),
        ),
        (
            {"state": RunState.OUTCOME_UNKNOWN, "needs_person": True},
            selectors.Outcome("Outcome unknown", "bad", "needs a person"),
        ),
    ],
)
def test_run_outcome_words_and_tones(fields, expected):
    assert selectors.run_outcome(RunFactory.build(**fields)) == expected


def test_counts_are_shown_with_thousands_separators():
    assert selectors.count_text(5000) == "5,000" and selectors.count_text(3120) == "3,120"


def test_a_count_and_its_noun_agree():
    assert selectors.count_noun(1, "request") == "1 request"
    assert selectors.count_noun(0, "request") == "0 requests"
    assert selectors.count_noun(220734, "row") == "220,734 rows"
    assert selectors.count_noun(2, "person", "people") == "2 people"
