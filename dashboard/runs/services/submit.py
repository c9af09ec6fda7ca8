"""Requesting a run: submit, approve, reject, cancel, change its parameters."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from dashboard.approval_policies.evaluation import ApprovalFacts, Verdict
from dashboard.approval_policies.selectors import approval_verdict
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import next_utc_midnight, utc_now
from dashboard.models import Membership, Permission, Tenant, VendorConnection
from dashboard.pauses.services import check_sending_allowed
from dashboard.runs import notifications
from dashboard.runs.enqueue import batch_of, enqueue
from dashboard.runs.models import Approval, Run
from dashboard.runs.operations import RunOperation, operation_for
from dashboard.runs.states import CAN_CANCEL, RunState, check_initial
from dashboard.runs.transitions import RunActionError, transition

logger = logging.getLogger(__name__)


@dataclass
class ProbableDuplicate(Exception):
    """An identical run was sent recently; the vendor does not deduplicate."""

    existing: Run

    def __str__(self) -> str:
        return (
            f"An identical run (#{self.existing.pk}, {self.existing.get_state_display().lower()}) was "
            f"requested at {self.existing.created_at:%Y-%m-%d %H:%M UTC}. Send anyway?"
        )


def parameters_hash(*, operation: str, connection_id: int, parameters: dict[str, Any]) -> str:
    """A stable fingerprint of what would be sent, for approvals and duplicate detection."""
    canonical = json.dumps(
        {"operation": operation, "connection": connection_id, "parameters": parameters},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def run_titles(operation: RunOperation, runs: list[Run]) -> list[str]:
    """The titles of `runs` being requested (unsaved, of one connection), as they are stored.

    A title is a name for people, never a reason to refuse a request: when the operation cannot
    make one (a name it reads is gone), the run is named by its parameters instead.
    """
    field = Run._meta.get_field("title").max_length
    try:
        titles = operation.titles(runs)
    except Exception:
        logger.exception("Could not name a %s run; naming it by its parameters.", operation.name)
        titles = [run.name for run in runs]  # its parameters in a line, else its operation
    return [" ".join(str(title).split())[:field] for title in titles]


def request_verdict(
    *,
    tenant: Tenant,
    connection: VendorConnection,
    run_operation: RunOperation,
    parameters: list[dict[str, Any]],
    switch: bool,
    now: datetime,
    apply_policies: bool = True,
) -> tuple[Verdict, ApprovalFacts]:
    """What the tenant's approval policies (and the caller's "approval required" `switch`) ask
    of a request of these cleaned parameter sets, and the facts they judged. With
    `apply_policies` False (a part of something already judged as a whole, such as a chunk of
    an Altcraft launch) only the switch counts."""
    facts = run_operation.approval_facts(parameters, connection) if apply_policies else None
    if facts is None:
        facts = ApprovalFacts()
    if not apply_policies:
        label = Run(operation=run_operation.name).get_operation_display()
        reasons = (f"{label}: every request needs 1 approval (approval required (setting))",)
        verdict = Verdict(1, reasons, tenant.approval_valid_minutes) if switch else Verdict()
        return verdict, facts
    verdict = approval_verdict(
        tenant=tenant,
        operation=run_operation.name,
        operation_label=Run(operation=run_operation.name).get_operation_display(),
        facts=facts,
        moment=now,
        switch=switch,
    )
    return verdict, facts


# -- requesting -------------------------------------------------------------------------------


def run_submit(
    *,
    actor: Actor,
    tenant: Tenant,
    connection: VendorConnection,
    operation: str,
    parameters: dict[str, Any],
    idempotency_key: str,
    approval_required: bool,
    send_anyway: bool = False,
    attestation: str = "",
    utc_date: Any = None,
    check_duplicates: bool = True,
    apply_policies: bool = True,
) -> Run:
    """Record a requested vendor call; queue it now, or hold it for approval.

    It is held when `approval_required` (the caller's setting) or one of the tenant's approval
    policies asks for it (request_verdict): the run keeps how many approvals it needs, why,
    and the facts judged. The same idempotency key always yields the same run (a double click,
    a resubmitted form). A run identical to a recent one raises ProbableDuplicate unless
    `send_anyway`.
    """
    if connection.tenant_id != tenant.pk:
        raise ValidationError(gettext("That connection belongs to another tenant."))
    if not connection.is_active:
        raise ValidationError(
            {
                "connection": gettext("Connection %(connection_name)s is inactive.")
                % {"connection_name": connection.name}
            }
        )
    idempotency_key = (idempotency_key or "").strip()
    if not idempotency_key or len(idempotency_key) > 80:
        raise ValidationError(gettext("A request needs an idempotency key of 1 to 80 characters."))
    run_operation = operation_for(operation)
    if connection.kind != run_operation.vendor_kind:
        raise ValidationError(
            {
                "connection": gettext("%(connection_name)s is not a %(vendor_kind)s connection.")
                % {"connection_name": connection.name, "vendor_kind": run_operation.vendor_kind}
            }
        )

    existing = Run.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    # After the replay: a retry of a request made before the pause answers with its run.
    check_sending_allowed(tenant=tenant, connection=connection)

    cleaned = run_operation.clean_parameters(parameters, connection)
    fingerprint = parameters_hash(
        operation=operation, connection_id=connection.pk, parameters=cleaned
    )
    now = utc_now()
    duplicate = None
    if check_duplicates and tenant.duplicate_window_minutes:
        duplicate = (
            Run.objects.filter(
                tenant=tenant,
                parameters_hash=fingerprint,
                created_at__gte=now - timedelta(minutes=tenant.duplicate_window_minutes),
            )
            .exclude(state__in=[RunState.FAILED, RunState.CANCELLED, RunState.DRAFT])
            # A concurrent submission of this same form is this request, not a duplicate of it;
            # the unique key settles which one is saved.
            .exclude(idempotency_key=idempotency_key)
            .order_by("-created_at")
            .first()
        )
        if duplicate is not None and not send_anyway:
            raise ProbableDuplicate(duplicate)

    verdict, facts = request_verdict(
        tenant=tenant,
        connection=connection,
        run_operation=run_operation,
        parameters=[cleaned],
        switch=approval_required,
        now=now,
        apply_policies=apply_policies,
    )
    approval_required = verdict.required
    expires = now + timedelta(minutes=verdict.valid_minutes or tenant.approval_valid_minutes)
    if utc_date is not None:
        expires = min(expires, next_utc_midnight(now))
    state = check_initial(RunState.AWAITING_APPROVAL if approval_required else RunState.QUEUED)
    run = Run(
        tenant=tenant,
        connection=connection,
        operation=operation,
        parameters=cleaned,
        parameters_hash=fingerprint,
        idempotency_key=idempotency_key,
        state=state,
        utc_date=utc_date,
        requested_by=actor.user if actor.user is not None and actor.user.is_authenticated else None,
        requested_by_label=actor.display,
        requested_at=now,
        approval_required=approval_required,
        approval_expires_at=expires if approval_required else None,
        approvals_needed=max(1, verdict.approvals_needed),
        approval_reasons=list(verdict.reasons),
        approval_facts=facts.as_dict(),
        attestation=attestation,
        send_anyway=bool(send_anyway and duplicate is not None),
        duplicate_of=duplicate if send_anyway else None,
        connection_name=connection.name,
    )
    run.title = run_titles(run_operation, [run])[0]
    try:
        with transaction.atomic():
            run.save()
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="run.requested",
                object_type="run",
                object_id=run.pk,
                summary={
                    "operation": operation,
                    "connection": connection.name,
                    "parameters": cleaned,
                    "state": state,
                    "attestation": attestation,
                    "send_anyway": run.send_anyway,
                    "duplicate_of": duplicate.pk if duplicate and send_anyway else None,
                    "approvals_needed": verdict.approvals_needed,
                    "approval_reasons": list(verdict.reasons),
                },
            )
            if state == RunState.QUEUED:
                enqueue("send", run.pk, batch=batch_of(run))
            else:
                notifications.approval_needed(run=run)
    except IntegrityError:
        existing = Run.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        raise RunActionError(
            gettext(
                "Another daily trigger for this tenant is already in flight or succeeded today."
            )
        ) from None
    return run


def run_approve(*, actor: Actor, run: Run, parameters_hash_seen: str, comment: str = "") -> Run:
    """An operator who did not request it approves the exact parameters they saw.

    The run is queued once `approvals_needed` distinct people (operators or admins, never the
    requester, each counted once) approved its current parameters before it expired; until
    then each approval is recorded and audited (run.approval_recorded) and the run waits.
    """
    now = utc_now()
    with transaction.atomic():
        locked = Run.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=run.pk)
        if locked.state != RunState.AWAITING_APPROVAL:
            raise RunActionError(
                gettext("There is nothing to approve: this run %(state)s.")
                % {"state": locked.state_in_words()}
            )
        if actor.user is None or (
            locked.requested_by_id is not None and locked.requested_by_id == actor.user.pk
        ):
            raise RunActionError(
                gettext("The requester cannot approve their own request: a second person must.")
            )
        membership = actor.user.memberships.filter(tenant=locked.tenant).first()
        if membership is None or not membership.can(Permission.APPROVE):
            raise RunActionError(gettext("Only an operator of this tenant can approve."))
        if parameters_hash_seen != locked.parameters_hash:
            raise RunActionError(
                gettext("The parameters changed since you opened this page. Review them again.")
            )
        expired = bool(locked.approval_expires_at and now >= locked.approval_expires_at)
        if not expired:
            given = approvers_of(locked)
            if actor.user.pk in given:
                raise RunActionError(
                    gettext(
                        "You already approved this request (%(given)s of %(approvals_needed)s); "
                        "another operator must approve it too."
                    )
                    % {"given": len(given), "approvals_needed": locked.approvals_needed}
                )
            problem = operation_for(locked.operation).approval_problem(locked, membership)
            if problem:
                raise RunActionError(problem)
            _approve_locked(actor=actor, run=locked, now=now, comment=comment, count=len(given) + 1)
            if locked.state == RunState.QUEUED:
                notifications.request_decided(
                    run=locked, approved=True, decided_by=actor.display, comment=comment
                )
    if expired:
        # Outside the approval's transaction: the expiry is recorded even though we refuse.
        if transition(
            locked,
            RunState.CANCELLED,
            from_states={RunState.AWAITING_APPROVAL},
            actor=actor,
            reason="the request expired before approval",
            failure_code="approval_expired",
            failure_message="The request expired before anyone approved it. Request it again.",
        ):
            notifications.request_expired(run=locked)
        raise RunActionError(gettext("This request has expired. Ask for a new one."))
    return locked


def approval_progress(run: Run) -> str:
    """What an approver is told after approving `run`: "" once it is released (queued), else
    how many approvals it has and how many are missing (the pages, the API and the commands)."""
    if run.state != RunState.AWAITING_APPROVAL:
        return ""
    given = len(approvers_of(run))
    missing = max(0, run.approvals_needed - given)
    return (
        f"Approved ({given} of {run.approvals_needed}). It waits for {missing} more "
        f"operator{'s' if missing != 1 else ''} before anything is sent."
    )


def approvers_of(run: Run) -> list[int]:
    """The ids of the people who approved the run's current parameters, first first: those who
    count towards its `approvals_needed` (an approval of earlier parameters no longer does)."""
    seen: list[int] = []
    for user_id in (
        Approval.objects.filter(
            run=run, decision=Approval.Decision.APPROVED, parameters_hash=run.parameters_hash
        )
        .order_by("decided_at", "pk")
        .values_list("decided_by_id", flat=True)
    ):
        if user_id not in seen:
            seen.append(user_id)
    return seen


def _approve_locked(*, actor: Actor, run: Run, now: datetime, comment: str, count: int) -> None:
    """Record the approval, the `count`th of the run's current parameters, and queue the run
    when it is the last one needed; the caller holds the run's row lock."""
    Approval.objects.create(
        run=run,
        decided_by=actor.user,
        decision=Approval.Decision.APPROVED,
        parameters_hash=run.parameters_hash,
        comment=comment,
        decided_at=now,
        expires_at=run.approval_expires_at,
    )
    if count < run.approvals_needed:
        record_audit_event(
            actor=actor,
            tenant=run.tenant,
            action="run.approval_recorded",
            object_type="run",
            object_id=run.pk,
            summary={
                "comment": comment,
                "parameters_hash": run.parameters_hash,
                "approvals": count,
                "approvals_needed": run.approvals_needed,
                "reasons": run.approval_reasons,
            },
        )
        return
    try:
        with transaction.atomic():
            moved = transition(
                run,
                RunState.QUEUED,
                from_states={RunState.AWAITING_APPROVAL},
                actor=actor,
                action="run.approved",
                extra_summary={
                    "comment": comment,
                    "parameters_hash": run.parameters_hash,
                    "approvals": count,
                    "approvals_needed": run.approvals_needed,
                },
            )
    except IntegrityError:
        raise RunActionError(
            gettext(
                "Another daily trigger for this tenant is already in flight or succeeded today."
            )
        ) from None
    if not moved:
        raise RunActionError(gettext("Someone else decided on this run first."))
    enqueue("send", run.pk, batch=batch_of(run))


def run_reject(*, actor: Actor, run: Run, comment: str = "") -> Run:
    """A second person declines the request; nothing is sent."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.state != RunState.AWAITING_APPROVAL:
            raise RunActionError(gettext("Only a request awaiting approval can be rejected."))
        if actor.user is None:
            raise RunActionError(gettext("A person must reject."))
        Approval.objects.create(
            run=locked,
            decided_by=actor.user,
            decision=Approval.Decision.REJECTED,
            parameters_hash=locked.parameters_hash,
            comment=comment,
            decided_at=utc_now(),
        )
        transition(
            locked,
            RunState.CANCELLED,
            from_states={RunState.AWAITING_APPROVAL},
            actor=actor,
            action="run.rejected",
            reason=comment or "rejected",
            failure_code="rejected_by_approver",
            failure_message=f"Rejected by {actor.display}" + (f": {comment}" if comment else "."),
        )
        notifications.request_decided(
            run=locked, approved=False, decided_by=actor.display, comment=comment
        )
    return locked


def owner_or_operator_refusal(
    *,
    actor: Actor,
    tenant_id: int,
    owner_id: int | None,
    doing: str,
    owner: str = "requester",
    membership: Membership | None = None,
) -> str:
    """Why `actor` may not change or withdraw something another person asked for, or "" when
    they may.

    The one rule for runs, schedules, trigger groups and launches, on every page, API call and
    command: the person who asked for it (`owner_id`), or an operator or admin of its tenant.
    `doing` completes "Only the requester or an operator can …"; `membership`: the actor's
    membership in the tenant, when the caller has it already.
    """
    user = actor.user
    if user is None or not user.is_authenticated:
        return f"Only a signed-in member of the tenant can {doing}."
    if membership is None or membership.tenant_id != tenant_id or membership.user_id != user.pk:
        membership = Membership.objects.filter(user=user, tenant_id=tenant_id).first()
    if membership is None:
        return f"{user.get_username()} is not a member of this tenant."
    if membership.can(Permission.APPROVE):
        return ""
    if membership.can(Permission.REQUEST) and owner_id is not None and owner_id == user.pk:
        return ""
    return f"Only the {owner} or an operator can {doing}."


def run_cancel_refusal(*, actor: Actor, run: Run, membership: Membership | None = None) -> str:
    """Why `actor` may not cancel (withdraw) `run`, or "" when they may.

    The one rule for every page and command: the person who requested the run, or an operator
    or admin of the run's tenant. `membership`: the actor's membership in the run's tenant, when
    the caller has it already. The run's state is not judged here (run_cancel does that).
    """
    return owner_or_operator_refusal(
        actor=actor,
        tenant_id=run.tenant_id,
        owner_id=run.requested_by_id,
        doing="cancel this run",
        membership=membership,
    )


def run_cancel(*, actor: Actor, run: Run) -> Run:
    """Withdraw a run that has not been sent: its requester, or an operator or admin."""
    refusal = run_cancel_refusal(actor=actor, run=run)
    if refusal:
        raise RunActionError(refusal)
    moved = transition(
        run,
        RunState.CANCELLED,
        from_states=CAN_CANCEL,
        actor=actor,
        action="run.cancelled",
        failure_code="cancelled",
        failure_message=f"Cancelled by {actor.display}.",
    )
    if not moved:
        run.refresh_from_db()
        raise RunActionError(
            gettext("This run %(state)s and can no longer be cancelled.")
            % {"state": run.state_in_words()}
        )
    return run


def run_change_parameters(*, actor: Actor, run: Run, parameters: dict[str, Any]) -> Run:
    """Change what an unapproved request will send; any approval must then be given anew.

    Only its requester may: anyone else who changed it would decide what is sent and could
    then approve it as "the second person" (four eyes).
    """
    with transaction.atomic():
        locked = (
            Run.objects.select_for_update(of=("self",)).select_related("connection").get(pk=run.pk)
        )
        if locked.state != RunState.AWAITING_APPROVAL:
            raise RunActionError(gettext("Only a request awaiting approval can be changed."))
        if actor.user is None or locked.requested_by_id != actor.user.pk:
            raise RunActionError(
                gettext("Only the requester can change the request; others can reject it.")
            )
        run_operation = operation_for(locked.operation)
        cleaned = run_operation.clean_parameters(parameters, locked.connection)
        old = locked.parameters
        locked.parameters = cleaned
        locked.parameters_hash = parameters_hash(
            operation=locked.operation, connection_id=locked.connection_id, parameters=cleaned
        )
        # What it will send changed, so may what it is called (not the connection's name: the
        # request still goes through the connection as it was named when requested).
        locked.title = run_titles(run_operation, [locked])[0]
        # The new parameters may meet more policies (more recipients): they can raise what the
        # request needs, never lower it (earlier approvals no longer count anyway).
        verdict, facts = request_verdict(
            tenant=locked.tenant,
            connection=locked.connection,
            run_operation=run_operation,
            parameters=[cleaned],
            switch=False,
            now=utc_now(),
        )
        locked.approvals_needed = max(locked.approvals_needed, verdict.approvals_needed)
        locked.approval_reasons = [
            *locked.approval_reasons,
            *(reason for reason in verdict.reasons if reason not in locked.approval_reasons),
        ]
        locked.approval_facts = facts.as_dict()
        locked.save(
            update_fields=[
                "parameters",
                "parameters_hash",
                "title",
                "approvals_needed",
                "approval_reasons",
                "approval_facts",
                "updated_at",
            ]
        )
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="run.parameters_changed",
            object_type="run",
            object_id=locked.pk,
            summary={"from": old, "to": cleaned},
        )
    return locked
