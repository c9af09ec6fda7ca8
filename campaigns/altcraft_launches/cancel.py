"""Cancelling an Altcraft launch: what has not reached Altcraft is withdrawn, what has is said.

A launch not yet sent is discarded as a whole. A launch that is sending is a set of chunk runs
racing the workers: each chunk whose run still waits is cancelled (a compare-and-set, so a worker
that claimed it first wins and the chunk is reported as too late, never both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext as _

from campaigns.altcraft_launches.models import UNSENT_STATES, AltcraftLaunch, LaunchState
from campaigns.altcraft_launches.services import launch_change_refusal, launch_discard
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.runs.services import RunActionError
from dashboard.runs.states import CAN_CANCEL, RunState
from dashboard.runs.transitions import transition


@dataclass
class LaunchCancelled:
    """What a cancel did: the chunks it withdrew, and those it was too late for (with their
    runs' states: being sent, sent, ended)."""

    launch: AltcraftLaunch
    cancelled: list[int] = field(default_factory=list)
    too_late: list[tuple[int, str]] = field(default_factory=list)


def launch_cancel(*, actor: Actor, launch: AltcraftLaunch) -> LaunchCancelled:
    """Cancel `launch`: its uploader, or an operator or admin (PermissionDenied otherwise).

    Unsent (previewed, awaiting approval): discarded, nothing was or will be sent. Sending:
    every chunk whose run still waits is cancelled and never reaches Altcraft; the others are
    listed as too late. A launch already closed (rejected, discarded) is a RunActionError.
    """
    refusal = launch_change_refusal(actor=actor, launch=launch, doing="cancel this launch")
    if refusal:
        raise PermissionDenied(refusal)
    if launch.state in UNSENT_STATES:
        return LaunchCancelled(launch_discard(actor=actor, launch=launch))
    if launch.state != LaunchState.SENDING:
        raise RunActionError(
            _("This launch is %(state)s: there is nothing left to cancel.")
            % {"state": launch.get_state_display().lower()}
        )
    outcome = LaunchCancelled(launch)
    with transaction.atomic():
        # The launch's row lock: a confirm or retry submitting its chunks finishes first.
        locked = AltcraftLaunch.objects.select_for_update().get(pk=launch.pk)
        for chunk in locked.chunks.select_related("run").order_by("number"):
            run = chunk.run
            if run is None:
                continue
            moved = run.state in CAN_CANCEL and transition(
                run,
                RunState.CANCELLED,
                from_states=CAN_CANCEL,
                actor=actor,
                action="run.cancelled",
                failure_code="cancelled",
                failure_message=f"Cancelled with its launch by {actor.display}.",
            )
            if moved:
                outcome.cancelled.append(chunk.number)
            elif not (run.state == RunState.CANCELLED and run.failure_code == "cancelled"):
                run.refresh_from_db(fields=["state", "failure_code"])
                if run.state == RunState.CANCELLED and run.failure_code == "cancelled":
                    continue  # cancelled before (a repeated cancel): neither now nor too late
                outcome.too_late.append((chunk.number, str(run.state)))
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="altcraft.launch_cancelled",
            object_type="altcraft_launch",
            object_id=locked.pk,
            summary={
                "chunks_cancelled": outcome.cancelled,
                "chunks_too_late": [number for number, _state in outcome.too_late],
            },
        )
    outcome.launch = locked
    return outcome
