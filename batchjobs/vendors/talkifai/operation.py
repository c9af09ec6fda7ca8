"""The run operation of TalkifAI "start now" (the engine's adapter)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy

from batchjobs.vendors.talkifai import explanations
from batchjobs.vendors.talkifai.access import talkifai_client
from batchjobs.vendors.talkifai.client import (
    AlreadyRunning as TalkifaiAlreadyRunning,
)
from batchjobs.vendors.talkifai.client import (
    BatchJobStatus,
    InvalidStatus,
    JobNotFound,
    validate_batch_job_id,
)
from dashboard.models import VendorConnection, VendorKind
from dashboard.runs.models import Operation, Run
from dashboard.runs.operations import (
    ConnectionCheck,
    ReconcileResult,
    RunOperation,
    SendResult,
    register_operation,
)
from dashboard.vendors.http import ConfigurationError, VendorError

# The job a connection test reads: an id no one uses, so TalkifAI answers "not found" once it
# has accepted the key (a read of a job changes nothing, whatever its answer).
CONNECTION_TEST_JOB_ID = "triggerdesk-connection-test"


class StartBatchJobOperation(RunOperation):
    failure_explanations = explanations.FAILURES
    name = Operation.TALKIFAI_START_BATCH_JOB
    vendor_kind = VendorKind.TALKIFAI
    # An unknown outcome is settled by reading the job's status, which changes nothing.
    reconciles_automatically = True
    reconcile_plan = gettext_lazy(
        "TriggerDesk reads the job's status in TalkifAI: running or completed proves the start "
        "went through (the run is then marked succeeded); still scheduled or pending means it "
        "did not, and a person decides whether to start it again. No one needs to act meanwhile."
    )

    def check_connection(
        self, connection: VendorConnection, secrets: dict[str, str]
    ) -> ConnectionCheck:
        """Read a batch job (Get Batch Job Detail): "not found" still proves the key."""
        host = urlsplit(connection.base_url).hostname or connection.base_url
        try:
            talkifai_client(connection, secrets).batch_job_detail(CONNECTION_TEST_JOB_ID)
        except KeyError:
            return ConnectionCheck(False, "The connection has no API key set; nothing was sent.")
        except ConfigurationError as error:
            return ConnectionCheck(False, f"Not tried: {error}")
        except JobNotFound:
            pass
        except VendorError as error:
            return ConnectionCheck(False, f"Tried to read a batch job at {host}: {error.message}")
        return ConnectionCheck(
            True, f"Reached {host} and read a batch job (Get Batch Job Detail): API key accepted."
        )

    def duplicate_refusal(self, error: Exception) -> str:
        if isinstance(error, TalkifaiAlreadyRunning):
            return "TalkifAI says the job is already running: the first start went through."
        if isinstance(error, InvalidStatus) and error.job_status == BatchJobStatus.COMPLETED:
            return "TalkifAI says the job already completed: the first start went through."
        return ""

    def reconcile(
        self, connection: VendorConnection, secrets: dict[str, str], run: Run
    ) -> ReconcileResult:
        """Read the job's status: only a start makes a scheduled or pending job run."""
        detail = talkifai_client(connection, secrets).batch_job_detail(
            run.parameters["batch_job_id"]
        )
        if detail.is_running or detail.status == BatchJobStatus.COMPLETED:
            return ReconcileResult(
                detail.exchange,
                went_through=True,
                outcome=f"TalkifAI shows the job {detail.status}: the start went through.",
            )
        if detail.can_start_now:
            return ReconcileResult(
                detail.exchange,
                went_through=False,
                outcome=(
                    f"TalkifAI shows the job still {detail.status}: the start did not take effect. "
                    "Start it again if it is still wanted."
                ),
            )
        return ReconcileResult(
            detail.exchange,
            went_through=None,
            outcome=(
                f"TalkifAI shows the job {detail.status}, which does not tell whether this start "
                "went through. Check in TalkifAI Studio, then mark the run as sent or not."
            ),
        )

    def clean_parameters(
        self, parameters: dict[str, Any], connection: VendorConnection
    ) -> dict[str, Any]:
        try:
            batch_job_id = validate_batch_job_id(parameters.get("batch_job_id"))
        except ConfigurationError as error:
            raise ValidationError({"batch_job_id": str(error)}) from None
        return {
            "batch_job_id": batch_job_id,
            "batch_job_name": str(parameters.get("batch_job_name") or "")[:200],
        }

    def describe(self, parameters: dict[str, Any]) -> str:
        name = parameters.get("batch_job_name")
        if name:
            return gettext("Start batch job %(job_id)s (%(name)s)") % {
                "job_id": parameters["batch_job_id"],
                "name": name,
            }
        return gettext("Start batch job %(job_id)s") % {"job_id": parameters["batch_job_id"]}

    def title(self, run: Run) -> str:
        """The job's name as registered when the start was requested (its id without one)."""
        name = run.parameters.get("batch_job_name")
        return name or f"Batch job {run.parameters['batch_job_id']}"

    def send(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> SendResult:
        started = talkifai_client(connection, secrets).start_batch_job(
            run.parameters["batch_job_id"]
        )
        return SendResult(
            exchange=started.exchange,
            outcome=started.message or "TalkifAI started the batch job.",
            vendor_reference=started.batch_job_id,
            vendor_status=started.status,
            result={
                "contacts_enqueued": started.contacts_enqueued,
                "started_at": started.started_at.isoformat() if started.started_at else None,
                "scheduled_start_cancelled": started.redis_job_cancelled,
                "message": started.message,
            },
        )


register_operation(StartBatchJobOperation())
