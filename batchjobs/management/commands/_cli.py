"""Shared bits of the batchjobs ops commands: acting as a named member, printing the daily
trigger's status, following a run to its outcome.

A command acts as the member named by --as, so the same role rules and the four-eyes rule apply
as in the browser; the audit row names that member and the operating-system user who ran it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from batchjobs import selectors
from dashboard.audit import Actor
from dashboard.management.commands._common import command_label
from dashboard.models import Membership, Tenant
from dashboard.runs.models import Run
from dashboard.runs.operations import operation_for
from dashboard.runs.states import RunState


def tenant_by_slug(slug: str) -> Tenant:
    try:
        return Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist:
        raise CommandError(f"No tenant with slug {slug!r}.") from None


def acting_as(username: str, tenant: Tenant, command_name: str) -> tuple[Actor, Membership]:
    """The member `username` of `tenant` as an actor labelled with the OS user and command."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None or not user.is_active:
        raise CommandError(f"No active user named {username!r}.")
    membership = selectors.user_membership(user=user, tenant=tenant)
    if membership is None:
        raise CommandError(f"{username} is not a member of {tenant.name}.")
    label = command_label(command_name, acting_as=user.get_username())
    return Actor(user=user, label=label), membership


def error_text(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)


def confirmed(prompt: str, *, expected: str, stdin: TextIO | None = None) -> bool:
    """Ask on a terminal; False without one (a script must pass the explicit option instead)."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return False
    sys.stdout.write(prompt)
    sys.stdout.flush()
    return stdin.readline().strip().lower() == expected.lower()


def describe_run(run: Run) -> list[str]:
    lines = [
        f"Run #{run.pk}: {operation_for(run.operation).describe(run.parameters)}",
        f"  state: {run.get_state_display()}",
    ]
    if run.utc_date:
        lines.append(f"  for UTC day: {run.utc_date:%Y-%m-%d}")
    lines.append(
        f"  requested by: {run.requested_by_label}"
        + (f" at {run.requested_at:%Y-%m-%d %H:%M:%S} UTC" if run.requested_at else "")
    )
    if run.attestation:
        lines.append(f"  attestation: {run.attestation}")
    lines.append(f"  parameters: {json.dumps(run.parameters, sort_keys=True)}")
    lines.append(f"  parameters hash: {run.parameters_hash}")
    if run.state == RunState.AWAITING_APPROVAL and run.approval_expires_at:
        lines.append(f"  request expires at: {run.approval_expires_at:%Y-%m-%d %H:%M:%S} UTC")
    explanation = selectors.run_explanation(run)
    if explanation:
        lines.append(f"  {explanation.headline}")
        lines.append(f"  what to do: {explanation.advice}")
        if explanation.detail:
            lines.append(f"  details: {explanation.detail}")
    if run.state == RunState.SUCCEEDED and run.result:
        lines.append(f"  result: {json.dumps(run.result, sort_keys=True)}")
    return lines


def follow(run: Run, *, timeout: float, out: TextIO, interval: float = 1.0) -> Run:
    """Print the run's state changes until it settles (or `timeout` seconds pass)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        run.refresh_from_db()
        if run.state != seen:
            seen = run.state
            out.write(f"run #{run.pk}: {run.get_state_display()}\n")
        settled = run.is_terminal or (run.state == RunState.OUTCOME_UNKNOWN and run.needs_person)
        if settled or time.monotonic() >= deadline:
            if not settled:
                out.write(f"Still {run.get_state_display().lower()} after {timeout:.0f} s.\n")
            out.write("\n".join(describe_run(run)) + "\n")
            return run
        time.sleep(interval)
