"""The pure evaluation of approval policies: which apply to a request's facts, and what they ask."""

from datetime import UTC, datetime, time

from hypothesis import given
from hypothesis import strategies as st

from dashboard.approval_policies.evaluation import ApprovalFacts, evaluate, within_office_hours
from dashboard.approval_policies.models import ApprovalPolicy

ALTCRAFT = "altcraft_start_batch"
GENERATOR = "optimove_run_event_generator"
# A Wednesday, 10:00 UTC = 11:00 in Paris (winter).
WEDNESDAY_MORNING = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SATURDAY_NIGHT = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)


def policy(**fields) -> ApprovalPolicy:
    return ApprovalPolicy(**{"name": "p", "approvals_needed": 1, "valid_minutes": 60, **fields})


def judge(policies, operation=GENERATOR, moment=WEDNESDAY_MORNING, **facts):
    return evaluate(
        policies,
        operation=operation,
        operation_label="Some operation",
        facts=ApprovalFacts(**facts),
        moment=moment,
    )


def test_no_policy_asks_nothing():
    verdict = judge([], recipients=10**6)
    assert not verdict.required and verdict.reasons == () and verdict.valid_minutes is None


def test_a_threshold_holds_only_above_it_and_names_the_policy():
    big = policy(name="Big lists", operation=ALTCRAFT, recipients_above=50_000, approvals_needed=2)
    assert not judge([big], ALTCRAFT, recipients=50_000).required
    verdict = judge([big], ALTCRAFT, recipients=50_001)
    assert verdict.approvals_needed == 2
    assert verdict.reasons == (
        "Some operation: 50,001 recipients, above 50,000; needs 2 approvals (policy 'Big lists')",
    )


def test_a_policy_of_another_operation_does_not_apply():
    big = policy(operation=ALTCRAFT, recipients_above=1)
    assert not judge([big], GENERATOR, recipients=99).required


def test_an_unknown_fact_never_meets_a_condition():
    assert not judge([policy(audience_above=0)], topics=3).required


def test_any_condition_by_default_all_with_match_all():
    either = policy(topics_above=20, audience_above=1000)
    both = policy(topics_above=20, audience_above=1000, match_all=True)
    assert judge([either], topics=21, audience_estimate=5).required
    assert not judge([both], topics=21, audience_estimate=5).required
    assert judge([both], topics=21, audience_estimate=1001).required


def test_a_policy_without_conditions_asks_of_every_request():
    verdict = judge([policy(name="All")], topics=1)
    assert verdict.reasons == (
        "any request (Some operation): every request; needs 1 approval (policy 'All')",
    )


def test_the_most_approvals_and_the_shortest_expiry_win():
    verdict = judge(
        [
            policy(name="a", topics_above=1, approvals_needed=1, valid_minutes=30),
            policy(name="b", topics_above=5, approvals_needed=3, valid_minutes=120),
            policy(name="c", topics_above=100, approvals_needed=2, valid_minutes=5),
        ],
        topics=10,
    )
    assert verdict.approvals_needed == 3 and verdict.valid_minutes == 30
    assert [reason.rsplit("'", 2)[1] for reason in verdict.reasons] == ["a", "b"]


def test_outside_office_hours_in_the_policys_zone():
    after_hours = policy(
        name="Nights",
        outside_office_hours=True,
        office_days="12345",
        office_start=time(9),
        office_end=time(18),
        office_zone="Europe/Paris",
    )
    assert not judge([after_hours], moment=WEDNESDAY_MORNING).required
    verdict = judge([after_hours], moment=SATURDAY_NIGHT)
    assert verdict.required
    assert "outside office hours (Sun 00:30 Europe/Paris" in verdict.reasons[0]
    # 17:30 UTC is 18:30 in Paris: closed there, though open in UTC.
    assert judge([after_hours], moment=datetime(2026, 12, 2, 17, 30, tzinfo=UTC)).required


@given(
    thresholds=st.lists(
        st.tuples(st.integers(0, 100), st.integers(1, 3), st.integers(1, 600)), max_size=6
    ),
    topics=st.none() | st.integers(0, 200),
)
def test_the_verdict_is_the_max_over_the_policies_that_apply(thresholds, topics):
    policies = [
        policy(name=f"p{index}", topics_above=above, approvals_needed=needed, valid_minutes=valid)
        for index, (above, needed, valid) in enumerate(thresholds)
    ]
    applying = [p for p in policies if topics is not None and topics > p.topics_above]
    verdict = judge(policies, topics=topics)
    assert verdict.approvals_needed == max((p.approvals_needed for p in applying), default=0)
    assert len(verdict.reasons) == len(applying)
    assert verdict.valid_minutes == min((p.valid_minutes for p in applying), default=None)


@given(st.datetimes(timezones=st.just(UTC)))
def test_office_hours_is_a_weekly_window(moment):
    window = policy(office_days="135", office_start=time(8), office_end=time(12))
    inside = moment.isoweekday() in (1, 3, 5) and 8 <= moment.hour < 12
    assert within_office_hours(window, moment) is inside
