"""Adding, changing and deleting approval policies: admins only, through the pages, the API
and the commands alike, each change audited with its before and after.

Bad input (a threshold that is not a whole number, more approvals than the tenant has people
who could give them, an unknown time zone...) raises ValidationError naming each field, with
a code, and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dashboard.approval_policies import selectors
from dashboard.approval_policies.models import MAX_APPROVALS, ApprovalPolicy
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.models import Tenant
from dashboard.runs.models import Operation
from dashboard.tenancy.permissions import require_tenant_admin

FIELDS = (
    "name",
    "operation",
    "recipients_above",
    "topics_above",
    "audience_above",
    "outside_office_hours",
    "office_days",
    "office_start",
    "office_end",
    "office_zone",
    "match_all",
    "approvals_needed",
    "valid_minutes",
)
MAX_VALID_MINUTES = 7 * 24 * 60
MAX_THRESHOLD = 2_000_000_000


def _whole(value: Any, field: str, errors: dict, *, low: int, high: int, optional: bool):
    if value is None or (isinstance(value, str) and not value.strip()):
        if optional:
            return None
        errors[field] = ValidationError(_("Give a whole number."), code="required")
        return None
    if isinstance(value, bool):
        value = str(value)
    text = str(value).strip().replace(",", "").replace("_", "")
    try:
        number = int(text)
    except ValueError:
        errors[field] = ValidationError(
            _("'%(value)s' is not a whole number.") % {"value": str(value)[:40]},
            code="not_a_number",
        )
        return None
    if not low <= number <= high:
        errors[field] = ValidationError(
            _("Give a whole number from %(low)s to %(high)s.")
            % {
                "low": number_format(low, force_grouping=True),
                "high": number_format(high, force_grouping=True),
            },
            code="out_of_range",
        )
        return None
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _time(value: Any, field: str, errors: dict) -> time | None:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    text = str(value or "").strip()
    try:
        hours, minutes = text.split(":")[:2]
        return time(int(hours), int(minutes))
    except ValueError:
        errors[field] = ValidationError(
            _("'%(value)s' is not a time of day (HH:MM).") % {"value": text[:20]},
            code="not_a_time",
        )
        return None


def clean_policy(*, tenant: Tenant, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` (strings from a form, JSON from the API, a command's options) made into a
    policy's fields; ValidationError with every problem, by field, otherwise."""
    errors: dict[str, ValidationError] = {}
    name = " ".join(str(data.get("name") or "").split())
    if not name:
        errors["name"] = ValidationError(_("Give the policy a name."), code="required")
    elif len(name) > 80:
        errors["name"] = ValidationError(_("Keep the name to 80 characters."), code="max_length")
    operation = str(data.get("operation") or "").strip()
    if operation and operation not in Operation.values:
        errors["operation"] = ValidationError(
            _(
                "'%(operation)s' is not an operation; use one of %(operations)s "
                "or leave it empty for any."
            )
            % {"operation": operation[:60], "operations": ", ".join(Operation.values)},
            code="unknown_operation",
        )
    cleaned: dict[str, Any] = {"name": name, "operation": operation}
    for field in ("recipients_above", "topics_above", "audience_above"):
        cleaned[field] = _whole(
            data.get(field), field, errors, low=0, high=MAX_THRESHOLD, optional=True
        )
    cleaned["outside_office_hours"] = _flag(data.get("outside_office_hours"))
    cleaned["match_all"] = _flag(data.get("match_all"))
    days = data.get("office_days", "12345")
    if isinstance(days, list | tuple):
        days = "".join(str(day) for day in days)
    days = "".join(sorted(set(str(days or "").replace(",", "").replace(" ", ""))))
    if not days or any(day not in "1234567" for day in days):
        errors["office_days"] = ValidationError(
            _("Give office days as ISO weekday numbers, Monday = 1 (e.g. 12345)."),
            code="bad_days",
        )
    cleaned["office_days"] = days
    cleaned["office_start"] = _time(data.get("office_start", "09:00"), "office_start", errors)
    cleaned["office_end"] = _time(data.get("office_end", "18:00"), "office_end", errors)
    if (
        cleaned["office_start"] is not None
        and cleaned["office_end"] is not None
        and cleaned["office_start"] >= cleaned["office_end"]
    ):
        errors["office_end"] = ValidationError(
            _("Office hours must end after they start, within the day."), code="bad_window"
        )
    zone = str(data.get("office_zone") or "UTC").strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["office_zone"] = ValidationError(
            _("'%(zone)s' is not a time zone (use a name such as Europe/Paris).")
            % {"zone": zone[:64]},
            code="unknown_zone",
        )
    cleaned["office_zone"] = zone
    needed = _whole(
        data.get("approvals_needed"),
        "approvals_needed",
        errors,
        low=1,
        high=MAX_APPROVALS,
        optional=False,
    )
    if needed is not None:
        approvers = selectors.approver_count(tenant=tenant)
        if needed > approvers:
            errors["approvals_needed"] = ValidationError(
                ngettext(
                    "%(needed)s approvals cannot be given: %(tenant)s has %(approvers)s "
                    "member who may approve (operators and admins).",
                    "%(needed)s approvals cannot be given: %(tenant)s has %(approvers)s "
                    "members who may approve (operators and admins).",
                    approvers,
                )
                % {"needed": needed, "tenant": tenant.name, "approvers": approvers},
                code="too_few_approvers",
            )
    cleaned["approvals_needed"] = needed
    cleaned["valid_minutes"] = _whole(
        data.get("valid_minutes", 240),
        "valid_minutes",
        errors,
        low=1,
        high=MAX_VALID_MINUTES,
        optional=False,
    )
    if errors:
        raise ValidationError(errors)
    return cleaned


def policy_snapshot(policy: ApprovalPolicy) -> dict[str, Any]:
    """A policy's fields as the audit trail and the API show them."""
    values = {field: getattr(policy, field) for field in FIELDS}
    values["office_start"] = f"{policy.office_start:%H:%M}"
    values["office_end"] = f"{policy.office_end:%H:%M}"
    return values


def _name_taken(tenant: Tenant, name: str) -> ValidationError:
    return ValidationError(
        {
            "name": ValidationError(
                _("%(tenant)s already has a policy named '%(name)s'.")
                % {"tenant": tenant.name, "name": name},
                code="name_taken",
            )
        }
    )


def policy_create(*, actor: Actor, tenant: Tenant, data: Mapping[str, Any]) -> ApprovalPolicy:
    """Add an approval policy to the tenant (an admin); audited as approval_policy.created."""
    require_tenant_admin(
        actor,
        tenant,
        refusal=_("Only a signed-in admin of %(tenant)s can change policies.")
        % {"tenant": tenant.name},
    )
    cleaned = clean_policy(tenant=tenant, data=data)
    policy = ApprovalPolicy(tenant=tenant, created_by=actor.user, **cleaned)
    try:
        with transaction.atomic():
            policy.save()
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="approval_policy.created",
                object_type="approval_policy",
                object_id=policy.pk,
                summary={"after": policy_snapshot(policy)},
            )
    except IntegrityError:
        raise _name_taken(tenant, cleaned["name"]) from None
    return policy


def policy_update(
    *, actor: Actor, policy: ApprovalPolicy, data: Mapping[str, Any]
) -> ApprovalPolicy:
    """Change a policy (an admin); audited as approval_policy.changed with before and after.
    Runs already waiting keep the verdict they were requested under."""
    tenant = policy.tenant
    require_tenant_admin(
        actor,
        tenant,
        refusal=_("Only a signed-in admin of %(tenant)s can change policies.")
        % {"tenant": tenant.name},
    )
    cleaned = clean_policy(tenant=tenant, data=data)
    try:
        with transaction.atomic():
            locked = ApprovalPolicy.objects.select_for_update().get(pk=policy.pk)
            before = policy_snapshot(locked)
            for field, value in cleaned.items():
                setattr(locked, field, value)
            locked.save()
            after = policy_snapshot(locked)
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="approval_policy.changed",
                object_type="approval_policy",
                object_id=locked.pk,
                summary={
                    "before": before,
                    "after": after,
                    "changed": sorted(key for key in after if after[key] != before[key]),
                },
            )
    except IntegrityError:
        raise _name_taken(tenant, cleaned["name"]) from None
    return locked


def policy_delete(*, actor: Actor, policy: ApprovalPolicy) -> None:
    """Delete a policy (an admin); audited as approval_policy.deleted with what it was."""
    tenant = policy.tenant
    require_tenant_admin(
        actor,
        tenant,
        refusal=_("Only a signed-in admin of %(tenant)s can change policies.")
        % {"tenant": tenant.name},
    )
    with transaction.atomic():
        # What it is now, not what the caller last read: the audit row says what was deleted.
        locked = ApprovalPolicy.objects.select_for_update().filter(pk=policy.pk).first()
        if locked is None:
            raise ValidationError(
                _("This policy was already deleted. Nothing changed."), code="gone"
            )
        before = policy_snapshot(locked)
        policy_id = locked.pk
        locked.delete()
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="approval_policy.deleted",
            object_type="approval_policy",
            object_id=policy_id,
            summary={"before": before},
        )
