"""The run operation of Optimove TriggerDaily (the engine's adapter)."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy

from batchjobs import guardrails
from batchjobs.models import FilesLanded
from batchjobs.vendors.optimove_daily import explanations
from batchjobs.vendors.optimove_daily.access import daily_rate_rule, optimove_daily_client
from batchjobs.vendors.optimove_daily.client import (
    AlreadyRunning,
    AlreadyTriggeredToday,
    check_validation_wait,
    effective_validation_wait_seconds,
)
from dashboard.clock import utc_now
from dashboard.models import Membership, OptimoveKeyRole, VendorConnection, VendorKind
from dashboard.runs.models import Operation, Run
from dashboard.runs.operations import (
    ConnectionCheck,
    RateRule,
    ReconcileResult,
    RunOperation,
    SendResult,
    reachability_check,
    register_operation,
)
from dashboard.runs.states import RunState
from dashboard.vendors.http import ConfigurationError


class TriggerDailyOperation(RunOperation):
    failure_explanations = explanations.FAILURES
    name = Operation.OPTIMOVE_TRIGGER_DAILY
    vendor_kind = VendorKind.OPTIMOVE_BATCH
    reconciles_automatically = True

    def check_connection(
        self, connection: VendorConnection, secrets: dict[str, str]
    ) -> ConnectionCheck:
        """DNS, TCP and TLS only: TriggerDaily's one endpoint starts the batch, so it is never
        called to test a connection, and the API key stays unchecked."""
        return reachability_check(connection, "TriggerDaily")

    # The longest validation wait (30 s) plus the client's margin, and room to spare.
    max_send_seconds = 120.0

    def clean_parameters(
        self, parameters: dict[str, Any], connection: VendorConnection
    ) -> dict[str, Any]:
        raw = parameters.get("wait_time_for_validation_seconds")
        if isinstance(raw, str):
            # Form and command-line input arrive as text; the client checks the number itself.
            raw = raw.strip()
            raw = None if raw == "" else int(raw) if re.fullmatch(r"-?\d+", raw) else raw
        try:
            wait = check_validation_wait(raw)
        except ConfigurationError as error:
            raise ValidationError({"wait_time_for_validation_seconds": str(error)}) from None
        return {"wait_time_for_validation_seconds": wait}

    def describe(self, parameters: dict[str, Any]) -> str:
        wait = parameters.get("wait_time_for_validation_seconds")
        return gettext("Trigger daily batch (validation wait %(seconds)s s)") % {
            "seconds": effective_validation_wait_seconds(wait)
        }

    def title(self, run: Run) -> str:
        """ "Daily batch · 2026-12-06": the UTC day it triggers the batch for."""
        day = run.utc_date or utc_now().date()
        return f"Daily batch · {day:%Y-%m-%d}"

    def rate_rules(self, connection: VendorConnection, secrets: dict[str, str]) -> list[RateRule]:
        return [daily_rate_rule(connection, secrets)]

    def pre_send_problem(self, run: Run) -> str:
        connection = run.connection
        if connection.key_role == OptimoveKeyRole.THIRD_PARTY:
            return "This connection's API key has the 3rdParty role, which TriggerDaily blocks. Use an ApiRole or TransactionalMail key."
        today = utc_now().date()
        if run.utc_date is not None and run.utc_date != today:
            return f"This trigger was for {run.utc_date:%Y-%m-%d} (UTC) and that day has ended. Request today's trigger instead."
        already = (
            Run.objects.filter(
                tenant_id=run.tenant_id,
                operation=self.name,
                utc_date=today,
                state=RunState.SUCCEEDED,
            )
            .exclude(pk=run.pk)
            .exists()
        )
        if already:
            return "Today's daily trigger already succeeded; Optimove allows one per UTC day."
        # The tenant's files-landed gate holds whichever page or command approved the run.
        if (
            run.tenant.require_files_landed
            and not FilesLanded.objects.filter(
                tenant_id=run.tenant_id, utc_date=run.utc_date or today
            ).exists()
        ):
            return f"No one has signalled that all files for {run.utc_date or today:%Y-%m-%d} (UTC) have landed, which this tenant requires before the daily trigger."
        return ""

    def approval_problem(self, run: Run, membership: Membership) -> str:
        """Everything the daily page checks (rate window, key, files landed, another open
        trigger), so the generic run page and the commands refuse for the same reasons."""
        status = guardrails.daily_trigger_status(tenant=run.tenant, membership=membership)
        blockers = status.approve_blockers(run, membership=membership)
        return " ".join(blocker.text for blocker in blockers) or self.pre_send_problem(run)

    def send(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> SendResult:
        wait = run.parameters.get("wait_time_for_validation_seconds")
        result = optimove_daily_client(connection, secrets).trigger_daily(
            wait_time_for_validation_seconds=wait
        )
        return SendResult(
            exchange=result.exchange,
            outcome="Optimove started the daily batch process.",
            vendor_status="triggered",
            result={"effective_wait_seconds": result.effective_wait_seconds},
        )

    reconcile_plan = gettext_lazy(
        "TriggerDesk asks Optimove again (its 10-minute window has passed by then): “already "
        "triggered today” proves the first call went through and the run is marked succeeded; "
        "any other answer means it had not, and that call triggers today's batch. No one needs "
        "to act meanwhile."
    )

    def duplicate_refusal(self, error: Exception) -> str:
        if isinstance(error, AlreadyTriggeredToday):
            return (
                "Optimove says the batch was already triggered today: the first call went through."
            )
        if isinstance(error, AlreadyRunning):
            return "Optimove says the batch is already running: the first call went through."
        return ""

    def reconcile(
        self, connection: VendorConnection, secrets: dict[str, str], run: Run
    ) -> ReconcileResult:
        """Send the trigger again: Optimove's own answer tells whether the first one went through."""
        wait = run.parameters.get("wait_time_for_validation_seconds")
        try:
            result = optimove_daily_client(connection, secrets).trigger_daily(
                wait_time_for_validation_seconds=wait
            )
        except AlreadyTriggeredToday as error:
            return ReconcileResult(
                error.exchange,
                went_through=True,
                outcome="Optimove says the batch was already triggered today: the first call went through.",
            )
        except AlreadyRunning as error:
            # Checked before "already triggered today" by Optimove, so right after our trigger
            # this is the answer that proves it.
            return ReconcileResult(
                error.exchange,
                went_through=True,
                outcome="Optimove says the batch is already running: the first call went through.",
            )
        return ReconcileResult(
            result.exchange,
            went_through=False,
            sent_now=True,
            outcome="The first call had not gone through; this call triggered today's batch.",
        )


register_operation(TriggerDailyOperation())
