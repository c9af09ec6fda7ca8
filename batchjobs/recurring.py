"""The daily-trigger target of recurring schedules (dashboard.recurring.targets): each fire
requests the day's Optimove daily trigger through daily_trigger_request, so its guardrails hold:
once per UTC day, the files-landed gate, the rate window, approvals. A fire they refuse is
skipped, with their reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from batchjobs import guardrails, services
from batchjobs.vendors.optimove_daily.client import MAXIMUM_VALIDATION_WAIT_SECONDS
from dashboard.audit.trail import Actor
from dashboard.models import Tenant
from dashboard.recurring.targets import CheckedTarget, FireSkipped
from dashboard.runs.transitions import RunActionError


class DailyTriggerTarget:
    kind = "daily_trigger"
    label = gettext_lazy("Optimove daily trigger")

    def choices(self, *, tenant: Tenant) -> list[tuple[int, str]]:
        return [(item.pk, item.name) for item in guardrails.daily_connection_list(tenant=tenant)]

    def check(
        self, *, tenant: Tenant, target_input: dict[str, Any], stored: dict[str, Any] | None
    ) -> CheckedTarget:
        """The tenant's daily connection, a validation wait of 0 to 30 s (or none), and the
        creator's attestation that each day's files are uploaded before the fire."""
        errors: dict[str, list[str]] = {}
        connection = None
        try:
            connection_id = int(target_input.get("id") or 0)
        except (ValueError, TypeError):
            connection_id = 0
        if 0 < connection_id < 2**63:
            connection = (
                guardrails.daily_connection_list(tenant=tenant).filter(pk=connection_id).first()
            )
        if connection is None:
            errors["target"] = [_("Choose the tenant's Optimove batch connection.")]
        wait = target_input.get("wait_time_for_validation_seconds")
        if wait in ("", None):
            wait = None
        else:
            try:
                wait = int(wait)
            except (ValueError, TypeError):
                wait = -1
            if not 0 <= wait <= MAXIMUM_VALIDATION_WAIT_SECONDS:
                errors["wait_time_for_validation_seconds"] = [
                    _("Enter a whole number of seconds from 0 to 30, or leave it empty.")
                ]
        if not target_input.get("files_uploaded_attested") and stored is None:
            errors["files_uploaded_attested"] = [
                _(
                    "Confirm that each day's files finish uploading before this schedule fires: "
                    "Optimove does not check it, and triggers once per day."
                )
            ]
        if errors:
            raise ValidationError(errors)
        assert connection is not None
        return CheckedTarget(
            parameters={"connection": connection.pk, "wait_time_for_validation_seconds": wait},
            label=_("Optimove daily trigger through %(name)s") % {"name": connection.name},
            connection_id=connection.pk,
        )

    def form_values(self, *, parameters: dict[str, Any]) -> dict[str, Any]:
        return {
            "target": f"{self.kind}:{parameters.get('connection')}",
            "wait_time_for_validation_seconds": parameters.get("wait_time_for_validation_seconds"),
        }

    def fire(
        self,
        *,
        actor: Actor,
        tenant: Tenant,
        parameters: dict[str, Any],
        idempotency_key: str,
        fire_at: datetime,
    ) -> str:
        """Request the day's trigger; the daily guardrails' refusals skip the fire."""
        try:
            run = services.daily_trigger_request(
                actor=actor,
                tenant=tenant,
                wait_time_for_validation_seconds=parameters.get("wait_time_for_validation_seconds"),
                idempotency_key=idempotency_key,
                # Attested by the schedule's creator when they saved it.
                files_uploaded_attested=True,
            )
        except RunActionError as error:
            raise FireSkipped(str(error)) from None
        return _("Run #%(id)s") % {"id": run.pk}
