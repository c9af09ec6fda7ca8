"""Altcraft launches as approval-link subjects (dashboard/approval_links): the link's page shows
the file (its SHA-256, how many recipients, which trigger, what is sent with every chunk) and
decides through launch_approve / launch_reject, as the launch's page does."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.models import AltcraftLaunch, LaunchState
from dashboard.approval_links.subjects import RequestDescription
from dashboard.audit.trail import Actor
from dashboard.models import Membership


class LaunchSubject:
    kind = "altcraft_launch"

    def get(self, *, tenant_id: int, subject_id: int) -> AltcraftLaunch | None:
        return (
            AltcraftLaunch.objects.select_related("trigger", "tenant")
            .filter(tenant_id=tenant_id, pk=subject_id)
            .first()
        )

    def describe(self, request: AltcraftLaunch) -> RequestDescription:
        launch = request
        given = [a for a in launch.approvals if a.get("sha256") == launch.source_sha256]
        return RequestDescription(
            title=_("Altcraft launch #%(number)s: %(trigger)s")
            % {"number": launch.pk, "trigger": launch.trigger.name},
            requested_by=launch.created_by_label or "—",
            description=f"{launch.get_kind_display()}: {launch.source_name}",
            fingerprint=launch.source_sha256,
            fingerprint_label=_("File SHA-256"),
            awaiting=launch.state == LaunchState.AWAITING_APPROVAL,
            state_words=_("is %(state)s") % {"state": launch.get_state_display().lower()},
            expires_at=launch.approval_deadline or launch.expires_at,
            page_path=reverse("altcraft_launch_detail", args=[launch.tenant.slug, launch.pk]),
            approvals_given=len(given),
            approvals_needed=launch.approvals_needed,
            reasons=[str(reason) for reason in launch.approval_reasons or []],
            facts=[
                (_("Recipients"), f"{launch.rows_valid:,}"),
                (_("Trigger"), f"{launch.trigger.name} ({launch.trigger.trigger_id})"),
            ],
            preview=json.dumps(
                {"column": launch.column, **launch.parameters, "mapping": launch.mapping},
                indent=2,
                sort_keys=True,
                default=str,
            ),
        )

    def approve(
        self,
        *,
        actor: Actor,
        membership: Membership,
        request: AltcraftLaunch,
        fingerprint_seen: str,
        comment: str,
    ) -> str:
        launch = services.launch_approve(
            actor=actor,
            membership=membership,
            launch=request,
            sha256_seen=fingerprint_seen,
            comment=comment,
        )
        return services.launch_approved_message(launch)

    def reject(
        self, *, actor: Actor, membership: Membership, request: AltcraftLaunch, comment: str
    ) -> str:
        services.launch_reject(actor=actor, membership=membership, launch=request, comment=comment)
        return _("Rejected. Nothing was sent.")


LAUNCH_SUBJECT: Any = LaunchSubject()
