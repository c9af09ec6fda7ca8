"""One-time approval links: issued per approver, decided through the run engine, once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard.approval_links import services
from dashboard.approval_links.models import ApprovalLink
from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent
from dashboard.runs.models import Approval, Run
from dashboard.runs.states import RunState
from dashboard.runs.transitions import RunActionError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def state_of(run) -> str:
    return Run.objects.get(pk=run.pk).state


def test_each_approver_gets_their_own_link_and_only_its_hash_is_stored(team, requested):
    run, tokens = requested
    assert set(tokens) == {"oscar@example.com", "olga@example.com", "ada@example.com"}
    assert len(set(tokens.values())) == 3
    links = ApprovalLink.objects.filter(subject_type="run", subject_id=run.pk)
    assert {link.recipient.email for link in links} == set(tokens)
    for link in links:
        assert link.expires_at == run.approval_expires_at and link.used_at is None
        assert tokens[link.recipient.email] not in link.token_hash
        assert link.token_hash == services.token_hash(tokens[link.recipient.email])


def test_approving_through_the_link_queues_the_run_and_audits_the_way(team, requested):
    run, tokens = requested
    message = services.approval_link_decide(
        token=tokens["oscar@example.com"],
        actor=Actor(user=team.operator.user),
        approve=True,
        comment="Files checked",
        fingerprint_seen=run.parameters_hash,
    )
    assert "queued" in message
    assert state_of(run) == RunState.QUEUED
    approval = Approval.objects.get(run=run)
    assert approval.decided_by == team.operator.user and approval.comment == "Files checked"
    used = AuditEvent.objects.get(action="approval_link.used")
    assert used.summary["via"] == "email link" and used.summary["decision"] == "approved"
    assert used.summary["comment"] == "Files checked"
    assert AuditEvent.objects.filter(action="run.approved", object_id=str(run.pk)).exists()
    assert tokens["oscar@example.com"] not in str(list(AuditEvent.objects.values("summary")))


def test_a_used_link_refuses_a_second_decision_and_changes_nothing(team, requested):
    run, tokens = requested
    token = tokens["oscar@example.com"]
    actor = Actor(user=team.operator.user)
    services.approval_link_decide(token=token, actor=actor, approve=False, comment="Wrong day")
    assert state_of(run) == RunState.CANCELLED
    with pytest.raises(services.ApprovalLinkRefused) as refused:
        services.approval_link_decide(
            token=token, actor=actor, approve=True, fingerprint_seen=run.parameters_hash
        )
    assert refused.value.code == "used"
    assert Approval.objects.filter(run=run).count() == 1
    assert AuditEvent.objects.filter(
        action="approval_link.rejected", summary__reason="used"
    ).exists()


def test_a_tampered_token_is_not_a_link_and_is_audited_without_it(team, requested):
    run, tokens = requested
    token = tokens["oscar@example.com"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(services.ApprovalLinkRefused) as refused:
        services.approval_link_decide(
            token=tampered,
            actor=Actor(user=team.operator.user),
            approve=True,
            fingerprint_seen=run.parameters_hash,
        )
    assert refused.value.code == "invalid"
    assert str(refused.value) == "This approval link is not valid."
    assert state_of(run) == RunState.AWAITING_APPROVAL
    event = AuditEvent.objects.get(action="approval_link.rejected")
    assert event.summary["reason"] == "invalid"
    assert tampered not in str(event.summary) and token not in str(event.summary)


def test_someone_elses_link_is_refused(team, requested):
    run, tokens = requested
    with pytest.raises(services.ApprovalLinkRefused) as refused:
        services.approval_link_decide(
            token=tokens["olga@example.com"],
            actor=Actor(user=team.operator.user),
            approve=True,
            fingerprint_seen=run.parameters_hash,
        )
    assert refused.value.code == "wrong_recipient"
    assert state_of(run) == RunState.AWAITING_APPROVAL
    assert not ApprovalLink.objects.filter(used_at__isnull=False).exists()


def test_an_expired_link_changes_nothing(team, requested):
    run, tokens = requested
    past = run.approval_expires_at - timedelta(days=1)
    ApprovalLink.objects.filter(subject_id=run.pk).update(expires_at=past)
    with pytest.raises(services.ApprovalLinkRefused) as refused:
        services.approval_link_decide(
            token=tokens["oscar@example.com"],
            actor=Actor(user=team.operator.user),
            approve=True,
            fingerprint_seen=run.parameters_hash,
        )
    assert refused.value.code == "expired"
    assert state_of(run) == RunState.AWAITING_APPROVAL
    assert not Approval.objects.filter(run=run).exists()


def test_a_request_decided_elsewhere_says_so(team, requested):
    run, tokens = requested
    from dashboard.runs import services as run_services

    run_services.run_reject(actor=Actor(user=team.second_operator.user), run=run, comment="No")
    opened = services.approval_link_open(
        token=tokens["oscar@example.com"], actor=Actor(user=team.operator.user)
    )
    assert opened.refusal == "decided"


def test_the_engine_rules_hold_through_the_link(team, requested, settings):
    """N of M distinct approvers and the parameters seen: the link adds no way around them."""
    run, tokens = requested
    Run.objects.filter(pk=run.pk).update(approvals_needed=2)
    with pytest.raises(RunActionError):
        services.approval_link_decide(
            token=tokens["oscar@example.com"],
            actor=Actor(user=team.operator.user),
            approve=True,
            fingerprint_seen="0" * 64,
        )
    # Refused by the engine: the link is still unused and can still decide.
    assert ApprovalLink.objects.get(recipient=team.operator.user).used_at is None
    for address, user in (
        ("oscar@example.com", team.operator),
        ("olga@example.com", team.second_operator),
    ):
        services.approval_link_decide(
            token=tokens[address],
            actor=Actor(user=user.user),
            approve=True,
            fingerprint_seen=run.parameters_hash,
        )
    assert state_of(run) == RunState.QUEUED
    assert Approval.objects.filter(run=run).count() == 2


def test_a_rejection_needs_a_reason(team, requested):
    run, tokens = requested
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.approval_link_decide(
            token=tokens["oscar@example.com"], actor=Actor(user=team.operator.user), approve=False
        )
    assert state_of(run) == RunState.AWAITING_APPROVAL
