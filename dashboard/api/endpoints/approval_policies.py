"""The automation API's approval policies: list them (the same selector as the policies page;
admins change them on the page or with the approval_policy command)."""

from datetime import datetime

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Schema

from dashboard.api.endpoints.common import ERRORS, require, router, token_use
from dashboard.approval_policies import selectors
from dashboard.approval_policies.services import policy_snapshot
from dashboard.models import Permission


class PolicyOut(Schema):
    id: int
    name: str
    operation: str
    recipients_above: int | None
    topics_above: int | None
    audience_above: int | None
    outside_office_hours: bool
    office_days: str
    office_start: str
    office_end: str
    office_zone: str
    match_all: bool
    approvals_needed: int
    valid_minutes: int
    updated_at: datetime


@router.get(
    "/t/{tenant_slug}/approval-policies",
    response={200: list[PolicyOut], **ERRORS},
    operation_id="approval_policy_list",
    summary="The tenant's approval policies: which requests wait for how many operators",
)
def approval_policy_list(request: HttpRequest, tenant_slug: str):
    """Every policy of the token's tenant, by name. A request meeting any of them waits for
    the most approvals they ask (distinct operators or admins, never the requester)."""
    require(request, Permission.VIEW, _("see approval policies"))
    tenant = token_use(request).token.tenant
    return [
        {"id": policy.pk, "updated_at": policy.updated_at, **policy_snapshot(policy)}
        for policy in selectors.policy_list(tenant=tenant)
    ]
