"""Pausing and resuming sending, and the one check every trigger path calls.

The pages, the API and the commands all come here: the same rules (an operator or admin of
the tenant, a reason, nothing paused twice) and the same audit rows (who and why).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import Permission, Tenant, VendorConnection
from dashboard.pauses import selectors
from dashboard.pauses.models import SendingPause
from dashboard.runs.enqueue import batch_of, enqueue
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from dashboard.runs.transitions import transition
from dashboard.send_windows.services import check_send_window

REASON_MAX_CHARS = 500


class SendingPaused(ValidationError):
    """A new trigger refused because sending is paused (code "paused": the API's problem code)."""

    def __init__(self, pause: SendingPause) -> None:
        self.pause = pause
        super().__init__(
            _(
                "Sending is paused for %(scope)s (by %(by)s at %(when)s UTC: %(reason)s). "
                "Nothing new can be triggered until an operator resumes it."
            )
            % {
                "scope": pause.scope_label,
                "by": pause.paused_by_label,
                "when": f"{pause.paused_at:%Y-%m-%d %H:%M}",
                "reason": pause.reason,
            },
            code="paused",
        )


def check_sending_allowed(*, tenant: Tenant, connection: VendorConnection | None = None) -> None:
    """Refuse a new trigger of this tenant (through this connection) while sending is paused:
    raises SendingPaused; outside the connection's send window or on one of its blackout dates:
    raises OutsideSendWindow. Every trigger path calls it (run_submit and run_submit_many at
    the end of every path; the feature apps earlier, before any work)."""
    pause = selectors.sending_pause_for(
        tenant_id=tenant.pk, connection_id=connection.pk if connection is not None else None
    )
    if pause is not None:
        raise SendingPaused(pause)
    if connection is not None:
        # Its send window and blackout dates (issue 25 item 2): OutsideSendWindow.
        check_send_window(connection=connection)


def _check_actor(actor: Actor, tenant: Tenant, doing: str) -> None:
    """Only an operator or admin of the tenant may pause or resume (`doing`: "pause" or
    "resume")."""
    user = actor.user
    pausing = doing == "pause"
    names = {"tenant": tenant.name}
    if user is None or not user.is_authenticated:
        message = (
            _("Only a signed-in operator or admin of %(tenant)s can pause sending.")
            if pausing
            else _("Only a signed-in operator or admin of %(tenant)s can resume sending.")
        )
        raise PermissionDenied(message % names)
    membership = user.memberships.filter(tenant=tenant).first()
    if membership is None:
        message = (
            _("A non-member cannot pause sending in %(tenant)s.")
            if pausing
            else _("A non-member cannot resume sending in %(tenant)s.")
        )
        raise PermissionDenied(message % names)
    if not membership.can(Permission.APPROVE):
        message = (
            _("Your role (%(role)s) cannot pause sending in %(tenant)s.")
            if pausing
            else _("Your role (%(role)s) cannot resume sending in %(tenant)s.")
        )
        raise PermissionDenied(message % {**names, "role": membership.get_role_display()})


def connection_for_pause(
    *, tenant: Tenant, name_or_id: str | int | None
) -> VendorConnection | None:
    """The tenant's connection named (or numbered) so, None for "the whole tenant"; a clear
    ValidationError when there is no such connection."""
    if name_or_id in (None, ""):
        return None
    found = VendorConnection.objects.filter(tenant=tenant)
    text = str(name_or_id).strip()
    connection = found.filter(name=text).first()
    # isascii: "³" is a digit to str.isdigit() but not to int().
    if connection is None and text.isascii() and text.isdigit() and len(text) < 19:
        connection = found.filter(pk=int(text)).first()
    if connection is None:
        raise ValidationError(
            {
                "connection": ValidationError(
                    _("%(tenant)s has no connection '%(name)s'.")
                    % {"tenant": tenant.name, "name": text},
                    code="not_found",
                )
            }
        )
    return connection


def sending_pause(
    *, actor: Actor, tenant: Tenant, reason: str, connection: VendorConnection | None = None
) -> SendingPause:
    """Pause sending for the whole tenant (no connection) or one connection, with a reason.

    From its commit on, no request of that scope leaves: queued runs stay queued (held),
    scheduled fires wait, new triggers are refused; calls already at the vendor finish and are
    recorded, and polling goes on. Audited as sending.paused with who and why.
    """
    _check_actor(actor, tenant, "pause")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why sending is paused.")}, code="required")
    if len(reason) > REASON_MAX_CHARS:
        raise ValidationError(
            {"reason": _("Keep the reason to %(limit)s characters.") % {"limit": REASON_MAX_CHARS}},
            code="max_length",
        )
    if connection is not None and connection.tenant_id != tenant.pk:
        raise ValidationError(
            {"connection": _("%(tenant)s has no such connection.") % {"tenant": tenant.name}}
        )
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    try:
        with transaction.atomic():
            # Exclusive: waits for every engine check in progress (they hold it shared until
            # their requests are marked as leaving), so from this commit on none starts.
            selectors.lock_tenant_sending(tenant.pk, exclusive=True)
            existing = selectors.open_pause(
                tenant=tenant, connection_id=connection.pk if connection else None
            )
            if existing is not None:
                raise _already_paused(existing)
            pause = SendingPause.objects.create(
                tenant=tenant,
                connection=connection,
                reason=reason,
                paused_by=user,
                paused_by_label=actor.display,
                paused_at=utc_now(),
            )
            record_audit_event(
                actor=actor,
                tenant=tenant,
                action="sending.paused",
                object_type="connection" if connection else "tenant",
                object_id=connection.pk if connection else tenant.pk,
                summary={
                    "scope": "connection" if connection else "tenant",
                    "connection": connection.name if connection else None,
                    "reason": reason,
                    "pause": pause.pk,
                },
            )
    except IntegrityError:
        # A concurrent pause of the same scope won (the open-pause unique constraints).
        existing = selectors.open_pause(
            tenant=tenant, connection_id=connection.pk if connection else None
        )
        if existing is None:
            raise
        raise _already_paused(existing) from None
    return pause


def _already_paused(pause: SendingPause) -> ValidationError:
    return ValidationError(
        _("Sending is already paused for %(scope)s (by %(by)s at %(when)s UTC). Nothing changed.")
        % {
            "scope": pause.scope_label,
            "by": pause.paused_by_label,
            "when": f"{pause.paused_at:%Y-%m-%d %H:%M}",
        },
        code="already_paused",
    )


@dataclass
class Resumed:
    """What a resume did: the pause it closed, the held runs it sent on and those it cancelled."""

    pause: SendingPause
    released: int
    cancelled: int


def sending_resume(
    *,
    actor: Actor,
    tenant: Tenant,
    connection: VendorConnection | None = None,
    cancel_held: bool = False,
) -> Resumed:
    """Resume sending for the scope paused so: its held runs are sent (or, `cancel_held`,
    cancelled first by this person), scheduled fires that waited fire, and automatic re-checks
    of unknown outcomes go on. Audited as sending.resumed. A run still held by another open
    pause (the tenant's, while one connection resumes) stays held."""
    _check_actor(actor, tenant, "resume")
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    now = utc_now()
    with transaction.atomic():
        selectors.lock_tenant_sending(tenant.pk, exclusive=True)
        pause = selectors.open_pause(
            tenant=tenant, connection_id=connection.pk if connection else None
        )
        if pause is None:
            scope = f"{connection.name} ({tenant.name})" if connection else tenant.name
            raise ValidationError(
                _(
                    "Sending is not paused for %(scope)s; there is nothing to resume. "
                    "Nothing changed."
                )
                % {"scope": scope},
                code="not_paused",
            )
        SendingPause.objects.filter(pk=pause.pk).update(
            resumed_at=now, resumed_by=user, resumed_by_label=actor.display
        )
        pause.resumed_at, pause.resumed_by, pause.resumed_by_label = now, user, actor.display
        held = list(selectors.held_runs(pause=pause).select_related("tenant"))
        cancelled = 0
        if cancel_held:
            for run in held:
                if transition(
                    run,
                    RunState.CANCELLED,
                    from_states={RunState.QUEUED},
                    actor=actor,
                    action="run.cancelled",
                    reason="cancelled while sending was paused",
                    failure_code="cancelled",
                    failure_message=f"Cancelled by {actor.display} while sending was paused "
                    f"({pause.reason}).",
                ):
                    cancelled += 1
            held = []
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="sending.resumed",
            object_type="connection" if connection else "tenant",
            object_id=connection.pk if connection else tenant.pk,
            summary={
                "scope": "connection" if connection else "tenant",
                "connection": connection.name if connection else None,
                "reason": pause.reason,
                "paused_by": pause.paused_by_label,
                "pause": pause.pk,
                "released": len(held),
                "cancelled": cancelled,
            },
        )
        _release(held, pause)
    return Resumed(pause=pause, released=len(held), cancelled=cancelled)


def _release(held: list[Run], pause: SendingPause) -> None:
    """After the commit: wake the senders of the held runs (one dispatcher per batched
    connection and operation, a task per other run) and the re-checks that waited."""
    woken: set[tuple[int, str]] = set()
    for run in held:
        batch = batch_of(run)
        if batch is not None:
            if batch in woken:
                continue
            woken.add(batch)
        enqueue("send", run.pk, batch=batch)
    waiting = Run.objects.filter(
        tenant_id=pause.tenant_id, state=RunState.OUTCOME_UNKNOWN, needs_person=False
    )
    if pause.connection_id is not None:
        waiting = waiting.filter(connection_id=pause.connection_id)
    for run_id in waiting.values_list("pk", flat=True):
        enqueue("reconcile", run_id)
