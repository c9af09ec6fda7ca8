"""Runs (every run operation: the daily trigger, Optimove campaigns, TalkifAI batches, Altcraft
chunks) as approval-link subjects: decided by the run engine's run_approve / run_reject."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.translation import gettext as _

from dashboard.approval_links.subjects import RequestDescription
from dashboard.audit.trail import Actor
from dashboard.models import Membership, Permission
from dashboard.runs import selectors, services
from dashboard.runs.models import Run
from dashboard.runs.states import RunState

FACT_LABELS = {
    "recipients": "Recipients",
    "topics": "Topics",
    "audience_estimate": "Audience estimate",
    "file_sha256": "File SHA-256",
}


class RunSubject:
    kind = "run"

    def get(self, *, tenant_id: int, subject_id: int) -> Run | None:
        return (
            Run.objects.select_related("tenant", "connection")
            .filter(tenant_id=tenant_id, pk=subject_id)
            .first()
        )

    def describe(self, request: Run) -> RequestDescription:
        state = selectors.run_approval_state(request)
        facts = [
            (_(label), state.facts[key])
            for key, label in FACT_LABELS.items()
            if state.facts.get(key) not in (None, "")
        ]
        return RequestDescription(
            title=_("Run #%(number)s: %(name)s") % {"number": request.pk, "name": request.name},
            requested_by=request.requested_by_label or "—",
            description=selectors.run_description(request),
            fingerprint=request.parameters_hash,
            fingerprint_label=_("Parameters hash"),
            awaiting=request.state == RunState.AWAITING_APPROVAL,
            state_words=request.state_in_words(),
            expires_at=request.approval_expires_at,
            page_path=reverse("run_detail", args=[request.tenant.slug, request.pk]),
            approvals_given=len(state.given),
            approvals_needed=state.needed,
            reasons=state.reasons,
            facts=facts,
            preview=json.dumps(request.parameters, indent=2, sort_keys=True, default=str),
        )

    def approve(
        self,
        *,
        actor: Actor,
        membership: Membership,
        request: Run,
        fingerprint_seen: str,
        comment: str,
    ) -> str:
        run = services.run_approve(
            actor=actor, run=request, parameters_hash_seen=fingerprint_seen, comment=comment
        )
        return services.approval_progress(run) or _(
            "Approved. The run is queued and will be sent shortly."
        )

    def reject(self, *, actor: Actor, membership: Membership, request: Run, comment: str) -> str:
        # The pages hold rejecting to approvers (tenant_view); the engine's run_reject does not.
        if not membership.can(Permission.APPROVE):
            raise PermissionDenied(_("Only an operator of this tenant can reject."))
        services.run_reject(actor=actor, run=request, comment=comment)
        return _("Rejected. Nothing was sent.")


RUN_SUBJECT: Any = RunSubject()
