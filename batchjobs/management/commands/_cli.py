"""Shared bits of the batchjobs ops commands: describing a run (the daily trigger's or a job
start's) with what its failure means. Acting as a member, confirming and following a run are
the core's (dashboard/management/commands/_common.py)."""

from __future__ import annotations

import json

from batchjobs import explanations
from dashboard.runs.models import Run
from dashboard.runs.operations import operation_for
from dashboard.runs.states import RunState


def describe_run(run: Run) -> list[str]:
    lines = [
        f"Run #{run.pk}: {run.name}",
        f"  what: {operation_for(run.operation).describe(run.parameters)}",
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
    explanation = explanations.run_explanation(run)
    if explanation:
        lines.append(f"  {explanation.headline}")
        lines.append(f"  what to do: {explanation.advice}")
        if explanation.detail:
            lines.append(f"  details: {explanation.detail}")
    if run.state == RunState.SUCCEEDED and run.result:
        lines.append(f"  result: {json.dumps(run.result, sort_keys=True)}")
    return lines
