"""Reads of approval policies, and the verdict on a request (what run_submit asks)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from dashboard.approval_policies.evaluation import ApprovalFacts, Verdict, evaluate
from dashboard.approval_policies.models import ApprovalPolicy
from dashboard.models import ROLE_PERMISSIONS, Membership, Permission, Tenant

# The old per-tenant and per-app "approval required" switches: a policy that asks one approval
# of every request (its expiry: the tenant's approval_valid_minutes).
SWITCH_POLICY_NAME = "approval required (setting)"


def policy_list(*, tenant: Tenant) -> QuerySet[ApprovalPolicy]:
    """The tenant's approval policies, by name."""
    return ApprovalPolicy.objects.filter(tenant=tenant).order_by("name", "id")


def policy_get(*, tenant: Tenant, policy_id: int) -> ApprovalPolicy:
    """One of the tenant's policies; DoesNotExist (a 404) for another tenant's."""
    return ApprovalPolicy.objects.get(tenant=tenant, pk=policy_id)


def approver_count(*, tenant: Tenant) -> int:
    """How many members of the tenant may approve (operators and admins)."""
    roles = [role for role, granted in ROLE_PERMISSIONS.items() if Permission.APPROVE in granted]
    return Membership.objects.filter(tenant=tenant, role__in=roles, user__is_active=True).count()


def approval_verdict(
    *,
    tenant: Tenant,
    operation: str,
    operation_label: str,
    facts: ApprovalFacts,
    moment: datetime,
    switch: bool,
) -> Verdict:
    """What the tenant's policies ask of a request of `operation` with `facts` at `moment`.

    `switch`: the caller's "approval required" setting is on (the tenant's for the daily
    trigger, the campaigns or Altcraft one), which counts as a policy asking one approval of
    every request. One query.
    """
    verdict = evaluate(
        policy_list(tenant=tenant),
        operation=operation,
        operation_label=operation_label,
        facts=facts,
        moment=moment,
    )
    if not switch:
        return verdict
    valid = tenant.approval_valid_minutes
    return Verdict(
        approvals_needed=max(1, verdict.approvals_needed),
        reasons=(
            f"{operation_label}: every request needs 1 approval ({SWITCH_POLICY_NAME})",
            *verdict.reasons,
        ),
        valid_minutes=valid if verdict.valid_minutes is None else min(valid, verdict.valid_minutes),
    )
