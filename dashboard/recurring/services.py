"""Writes of recurring schedules: create, change, enable or disable, delete (audited with who and
why), and the beat's firing of due schedules (exactly once per schedule and fire time).

The pages, the API and the recurring_schedule command all come here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import Membership, Permission, Tenant
from dashboard.pauses.services import SendingPaused
from dashboard.recurring import cron
from dashboard.recurring.models import FireOutcome, RecurringFire, RecurringSchedule
from dashboard.recurring.targets import FireSkipped, target_for
from dashboard.runs.services import ProbableDuplicate, owner_or_operator_refusal
from dashboard.runs.transitions import RunActionError
from dashboard.send_windows.services import OutsideSendWindow

logger = logging.getLogger(__name__)
SCHEDULER = Actor.system("recurring scheduler")
NAME_MAX_CHARS = 120
# A fire found later than this (the scheduler was not running at its time) is recorded as
# missed rather than sent late: a Monday 09:00 newsletter must not go out on Monday evening.
LATE_LIMIT = timedelta(minutes=10)


@dataclass(frozen=True)
class ScheduleInput:
    """What a person sets: a name, the rule and its zone, the target and what it sends."""

    name: str
    cron: str
    time_zone: str
    target_kind: str
    target_input: dict[str, Any]
    enabled: bool = True


def _user(actor: Actor) -> Any:
    user = actor.user
    return user if user is not None and user.is_authenticated else None


def _check_requester(actor: Actor, tenant: Tenant) -> None:
    user = _user(actor)
    if user is None:
        raise PermissionDenied(_("Only a signed-in member of the tenant can schedule triggers."))
    membership = Membership.objects.filter(user=user, tenant=tenant).first()
    if membership is None or not membership.can(Permission.REQUEST):
        raise PermissionDenied(
            _("Your role cannot schedule triggers in %(tenant)s.") % {"tenant": tenant.name}
        )


def schedule_change_refusal(
    *, actor: Actor, schedule: RecurringSchedule, membership: Membership | None = None
) -> str:
    """Why `actor` may not change, disable or delete `schedule`, or "" when they may: its
    creator, or an operator or admin of its tenant."""
    return owner_or_operator_refusal(
        actor=actor,
        tenant_id=schedule.tenant_id,
        owner_id=schedule.created_by_id,
        owner="person who created it",
        doing="change this recurring schedule",
        membership=membership,
    )


def _check_may_change(actor: Actor, schedule: RecurringSchedule) -> None:
    refusal = schedule_change_refusal(actor=actor, schedule=schedule)
    if refusal:
        raise PermissionDenied(refusal)


def _checked(
    tenant: Tenant, data: ScheduleInput, stored: RecurringSchedule | None
) -> tuple[cron.Rule, Any, str]:
    """Every field checked at once: ValidationError naming each bad field, nothing saved."""
    errors: dict[str, list[str]] = {}
    name = " ".join((data.name or "").split())
    if not name:
        errors["name"] = [_("Give the schedule a name.")]
    elif len(name) > NAME_MAX_CHARS:
        errors["name"] = [_("A name has at most 120 characters.")]
    else:
        same = RecurringSchedule.objects.filter(tenant=tenant, name=name)
        if stored is not None:
            same = same.exclude(pk=stored.pk)
        if same.exists():
            errors["name"] = [_("Another recurring schedule is named so.")]
    rule = checked = None
    try:
        rule = cron.rule_check(expression=data.cron, time_zone=data.time_zone, now=utc_now())
    except ValidationError as error:
        for field, messages in error.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    try:
        target = target_for(data.target_kind)
        if stored is not None and stored.target_kind != data.target_kind:
            stored_parameters = None
        else:
            stored_parameters = stored.parameters if stored is not None else None
        checked = target.check(
            tenant=tenant, target_input=data.target_input, stored=stored_parameters
        )
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            for field, messages in error.message_dict.items():
                errors.setdefault(field, []).extend(messages)
        else:
            errors.setdefault("__all__", []).extend(error.messages)
    if errors:
        raise ValidationError(errors)
    assert rule is not None and checked is not None
    return rule, checked, name


def _snapshot(schedule: RecurringSchedule) -> dict[str, Any]:
    """What the audit records of a schedule (never a stored recipient list: only its label)."""
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "time_zone": schedule.time_zone,
        "target": schedule.target_label,
        "enabled": schedule.enabled,
    }


def schedule_create(*, actor: Actor, tenant: Tenant, data: ScheduleInput) -> RecurringSchedule:
    """Create a recurring schedule (a member who may request triggers); audited. Its creator is
    its requester: every fire is submitted as them."""
    _check_requester(actor, tenant)
    rule, checked, name = _checked(tenant, data, None)
    now = utc_now()
    with transaction.atomic():
        schedule = RecurringSchedule.objects.create(
            tenant=tenant,
            name=name,
            target_kind=data.target_kind,
            parameters=checked.parameters,
            target_label=checked.label[:300],
            connection_id=checked.connection_id,
            cron=rule.expression,
            time_zone=rule.zone_name,
            enabled=data.enabled,
            next_fire_at=rule.next_after(now) if data.enabled else None,
            created_by=_user(actor),
            created_by_label=actor.display,
            requested_by=_user(actor),
            requested_by_label=actor.display,
        )
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="recurring.created",
            object_type="recurring_schedule",
            object_id=schedule.pk,
            summary=_snapshot(schedule),
        )
    return schedule


def schedule_update(
    *, actor: Actor, schedule: RecurringSchedule, data: ScheduleInput
) -> RecurringSchedule:
    """Change a schedule (its creator, or an operator or admin); audited field by field. Whoever
    changes it becomes its requester. Its next fire follows the new rule."""
    _check_may_change(actor, schedule)
    rule, checked, name = _checked(schedule.tenant, data, schedule)
    with transaction.atomic():
        locked = RecurringSchedule.objects.select_for_update().get(pk=schedule.pk)
        before = _snapshot(locked)
        locked.name = name
        locked.target_kind = data.target_kind
        locked.parameters = checked.parameters
        locked.target_label = checked.label[:300]
        locked.connection_id = checked.connection_id
        locked.cron = rule.expression
        locked.time_zone = rule.zone_name
        locked.enabled = data.enabled
        locked.next_fire_at = rule.next_after(utc_now()) if data.enabled else None
        locked.requested_by = _user(actor)
        locked.requested_by_label = actor.display
        locked.save()
        after = _snapshot(locked)
        diff = {
            key: {"from": before[key], "to": after[key]}
            for key in after
            if before[key] != after[key]
        }
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="recurring.changed",
            object_type="recurring_schedule",
            object_id=locked.pk,
            summary=diff or {"unchanged": True},
        )
    return locked


def schedule_set_enabled(
    *, actor: Actor, schedule: RecurringSchedule, enabled: bool
) -> RecurringSchedule:
    """Enable or disable a schedule; a disabled one fires nothing until enabled again (its next
    fire is then counted from now: nothing missed meanwhile is sent)."""
    _check_may_change(actor, schedule)
    with transaction.atomic():
        locked = RecurringSchedule.objects.select_for_update().get(pk=schedule.pk)
        if locked.enabled == enabled:
            return locked
        locked.enabled = enabled
        locked.next_fire_at = (
            cron.rule_of(expression=locked.cron, time_zone=locked.time_zone).next_after(utc_now())
            if enabled
            else None
        )
        if enabled and locked.next_fire_at is None:
            raise ValidationError({"cron": _("This rule never fires.")})
        locked.save(update_fields=["enabled", "next_fire_at", "updated_at"])
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="recurring.enabled" if enabled else "recurring.disabled",
            object_type="recurring_schedule",
            object_id=locked.pk,
            summary={"name": locked.name},
        )
    return locked


def schedule_delete(*, actor: Actor, schedule: RecurringSchedule) -> None:
    """Delete a schedule and its fire history (what its fires sent stays, as runs); audited."""
    _check_may_change(actor, schedule)
    with transaction.atomic():
        record_audit_event(
            actor=actor,
            tenant=schedule.tenant,
            action="recurring.deleted",
            object_type="recurring_schedule",
            object_id=schedule.pk,
            summary=_snapshot(schedule),
        )
        RecurringSchedule.objects.filter(pk=schedule.pk).delete()


# -- firing ------------------------------------------------------------------------------------


def recurring_fire_due(*, limit: int = 200) -> int:
    """Fire every enabled schedule whose next fire has come; how many fires were handled.

    The claim of dashboard's one-off schedules: each schedule row is taken with
    `SELECT … FOR UPDATE SKIP LOCKED` and its fire row (unique per schedule and fire time),
    what the target submitted and the move to the next fire commit together. A second beat
    skips the locked row (and finds the fire already moved on after the commit); a beat that
    dies mid-fire rolls all of it back, so the next pass fires it again, once.
    """
    handled = 0
    while handled < limit:
        with transaction.atomic():
            schedule = (
                RecurringSchedule.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(enabled=True, next_fire_at__lte=utc_now())
                .select_related("tenant")
                .order_by("next_fire_at", "id")
                .first()
            )
            if schedule is None:
                return handled
            _fire(schedule)
        handled += 1
    return handled


def _fire(schedule: RecurringSchedule) -> None:
    now = utc_now()
    fire_at = schedule.next_fire_at
    assert fire_at is not None
    rule = cron.rule_of(expression=schedule.cron, time_zone=schedule.time_zone)
    # Every fire due by now: after a stop of the scheduler, only the latest is sent (when it is
    # still recent); the ones before it are recorded as missed, in one row.
    due = [fire_at, *rule.fires_between(fire_at + timedelta(microseconds=1), now)]
    latest = due[-1]
    send = now - latest <= LATE_LIMIT
    missed = due[:-1] if send else due
    if missed:
        _record(
            schedule,
            missed[0],
            now,
            FireOutcome.SKIPPED,
            _(
                "Missed: the scheduler was not running at its time (%(count)d fire(s) missed "
                "until %(until)s UTC); nothing was sent late."
            )
            % {"count": len(missed), "until": f"{missed[-1]:%Y-%m-%d %H:%M}"},
            "",
        )
    if send:
        try:
            with transaction.atomic():
                # The unique fire row first: should the schedule's row ever be fired from
                # elsewhere, the second writer stops here, before anything is sent.
                RecurringFire.objects.create(
                    schedule=schedule, fire_at=latest, outcome=FireOutcome.FIRED, recorded_at=now
                )
        except IntegrityError:
            pass  # fired already: only move on
        else:
            outcome, reason, result = _submit(schedule, latest)
            _record(schedule, latest, now, outcome, reason, result)
    _move_on(schedule, rule.next_after(max(latest, now)))


def _record(
    schedule: RecurringSchedule,
    fire_at: datetime,
    now: datetime,
    outcome: str,
    reason: str,
    result: str,
) -> None:
    """The fire's row (what happened and why) and its audit row, by the scheduler."""
    RecurringFire.objects.update_or_create(
        schedule=schedule,
        fire_at=fire_at,
        defaults={
            "outcome": outcome,
            "reason": reason[:2000],
            "result_label": result[:200],
            "recorded_at": now,
        },
    )
    record_audit_event(
        actor=SCHEDULER,
        tenant=schedule.tenant,
        action=f"recurring.{outcome}",
        object_type="recurring_schedule",
        object_id=schedule.pk,
        summary={
            "fire_at": fire_at.isoformat(),
            "result": result,
            "reason": reason[:500],
            "late_seconds": round((now - fire_at).total_seconds(), 1),
        },
    )


def _move_on(schedule: RecurringSchedule, following: datetime | None) -> None:
    RecurringSchedule.objects.filter(pk=schedule.pk).update(
        next_fire_at=following, enabled=following is not None
    )


def _submit(schedule: RecurringSchedule, fire_at: datetime) -> tuple[str, str, str]:
    """(outcome, reason, result) of submitting one fire through the target's services."""
    # As its requester (whoever last set what it sends): four eyes compare approvers with them.
    actor = Actor(
        user=schedule.requested_by,
        label=f"{schedule.requested_by_label} (recurring #{schedule.pk})"[:150],
    )
    try:
        target = target_for(schedule.target_kind)
        with transaction.atomic():
            result = target.fire(
                actor=actor,
                tenant=schedule.tenant,
                parameters=schedule.parameters,
                idempotency_key=f"recurring-{schedule.pk}-{fire_at:%Y%m%d%H%M%S}",
                fire_at=fire_at,
            )
    except (SendingPaused, OutsideSendWindow, FireSkipped) as error:
        text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        return FireOutcome.SKIPPED, text, ""
    except (ValidationError, PermissionDenied, RunActionError, ProbableDuplicate) as error:
        text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        return FireOutcome.FAILED, text, ""
    except DatabaseError:
        # The database itself failed: the claim rolls back and the next pass fires it again.
        raise
    except Exception as error:
        # A defect, not the schedule's fault: without this the schedule would stay due and
        # every pass would stop on it, holding up every schedule behind it.
        logger.exception("Recurring schedule %s could not fire", schedule.pk)
        return (
            FireOutcome.FAILED,
            _(
                "TriggerDesk could not submit it (an internal error: %(kind)s); nothing was "
                "sent. Tell your administrator."
            )
            % {"kind": type(error).__name__},
            "",
        )
    return FireOutcome.FIRED, "", result
