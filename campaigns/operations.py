"""Run operations of the campaigns app: Optimove event generators and Altcraft launches."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from campaigns.altcraft_launches import chunks as altcraft_chunks
from campaigns.vendors.altcraft.client import (
    DEFAULT_BODY_LIMIT_BYTES,
    AltcraftClient,
    check_import_parameters,
    check_start_batch_parameters,
)
from campaigns.vendors.optimove_campaigns.client import (
    OptimoveCampaignsClient,
    check_context,
    check_event_generator_id,
    check_topic_key,
)
from dashboard.models import VendorConnection, VendorKind
from dashboard.runs.models import Operation, Run
from dashboard.runs.operations import (
    PollResult,
    RateRule,
    RunOperation,
    SendResult,
    account_key,
    cached_client,
    connection_fingerprint,
    register_operation,
)
from dashboard.vendors.http import ConfigurationError

OPTIMOVE_REQUESTS_PER_SECOND = 500
# The sliding rule already keeps each request's place until a second after its answer, whatever
# the delays; the small margin is for the vendor's own clock and rounding at the window's edge.
RATE_SAFETY = 0.98


def optimove_campaigns_client(
    connection: VendorConnection, secrets: dict[str, str]
) -> OptimoveCampaignsClient:
    return cached_client(
        ("optimove_campaigns", *connection_fingerprint(connection, secrets)),
        lambda: OptimoveCampaignsClient(
            connection.base_url,
            api_key=secrets["api_key"],
            brand_key=secrets["brand_key"],
            pool_maxsize=int(connection.options.get("pool_maxsize", 100)),
        ),
    )


def optimove_brand_rate_rule(connection: VendorConnection, secrets: dict[str, str]) -> RateRule:
    """500 requests/s per brand (runs and status reads alike), shared by every worker."""
    per_second = float(
        connection.options.get("rate_limit_per_second", OPTIMOVE_REQUESTS_PER_SECOND)
    )
    return RateRule(
        key=account_key("optimove_campaigns", connection.base_url, secrets.get("brand_key", "")),
        limit=max(1, int(per_second * RATE_SAFETY)),
        period_seconds=1.0,
        sliding=True,
    )


class RunEventGeneratorOperation(RunOperation):
    name = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
    vendor_kind = VendorKind.OPTIMOVE_CAMPAIGNS
    polls = True
    # The vendor's docs: "500 Internal Server Error - Retry with exponential backoff".
    retry_server_errors = True
    max_send_seconds = 90.0
    poll_deadline_seconds = 2 * 3600
    # Thousands of these may go out at once against 500 requests/s per brand: one task claims,
    # sends and records a hundred at a time (dashboard.runs.dispatch).
    batch_size = 100

    def clean_parameters(
        self, parameters: dict[str, Any], connection: VendorConnection
    ) -> dict[str, Any]:
        cleaned = {
            "event_generator_id": str(parameters.get("event_generator_id") or "").strip(),
            "topic_key": parameters.get("topic_key"),
            "context": parameters.get("context"),
        }
        for field, check in (
            ("event_generator_id", check_event_generator_id),
            ("topic_key", check_topic_key),
            ("context", check_context),
        ):
            try:
                check(cleaned[field])
            except ConfigurationError as error:
                raise ValidationError({field: str(error)}) from None
        return cleaned

    def describe(self, parameters: dict[str, Any]) -> str:
        return (
            f"Event generator {parameters['event_generator_id']} → topic {parameters['topic_key']}"
        )

    def rate_rules(self, connection: VendorConnection, secrets: dict[str, str]) -> list[RateRule]:
        return [optimove_brand_rate_rule(connection, secrets)]

    def send(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> SendResult:
        parameters = run.parameters
        accepted = optimove_campaigns_client(connection, secrets).run_event_generator(
            parameters["event_generator_id"],
            topic_key=parameters["topic_key"],
            context=parameters["context"],
        )
        return SendResult(
            exchange=accepted.exchange,
            outcome=f"Optimove queued execution {accepted.execution_id}.",
            accepted=True,
            vendor_reference=accepted.execution_id,
            vendor_status=accepted.status,
        )

    def poll(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> PollResult:
        status = optimove_campaigns_client(connection, secrets).execution_status(
            run.vendor_reference
        )
        return PollResult(
            exchange=status.exchange,
            vendor_status=status.status,
            terminal=status.is_terminal,
            succeeded=status.status == "published",
            progress=100 if status.is_terminal else None,
            audience_size=status.audience_size,
            result={"updated_at": status.updated_at.isoformat() if status.updated_at else None},
            failure_code=status.error_code or "",
            failure_message=status.error_message or "",
        )


register_operation(RunEventGeneratorOperation())


# -- Altcraft ---------------------------------------------------------------------------------


def altcraft_client(connection: VendorConnection, secrets: dict[str, str]) -> AltcraftClient:
    return cached_client(
        ("altcraft", *connection_fingerprint(connection, secrets)),
        lambda: AltcraftClient(
            connection.base_url,
            token=secrets["token"],
            body_limit_bytes=altcraft_body_limit(connection),
        ),
    )


def altcraft_body_limit(connection: VendorConnection) -> int:
    return int(connection.options.get("body_limit_bytes", DEFAULT_BODY_LIMIT_BYTES))


def _clean_altcraft(
    check: Any, parameters: dict[str, Any], connection: VendorConnection
) -> dict[str, Any]:
    cleaned = {key: value for key, value in parameters.items() if value is not None}
    try:
        check(body_limit_bytes=altcraft_body_limit(connection), **cleaned)
    except ConfigurationError as error:
        raise ValidationError(str(error)) from None
    return cleaned


class AltcraftStartBatchOperation(RunOperation):
    name = Operation.ALTCRAFT_START_BATCH
    vendor_kind = VendorKind.ALTCRAFT

    def clean_parameters(
        self, parameters: dict[str, Any], connection: VendorConnection
    ) -> dict[str, Any]:
        if altcraft_chunks.is_chunk_run(parameters):
            return altcraft_chunks.clean_chunk_parameters(parameters, connection)
        return _clean_altcraft(check_start_batch_parameters, parameters, connection)

    def describe(self, parameters: dict[str, Any]) -> str:
        if altcraft_chunks.is_chunk_run(parameters):
            return altcraft_chunks.describe_chunk(parameters, "Launch")
        return f"Trigger {parameters.get('trigger_id')} for {len(parameters.get('data') or [])} profiles ({parameters.get('matching', 'email')})"

    def send(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> SendResult:
        client = altcraft_client(connection, secrets)
        if altcraft_chunks.is_chunk_run(run.parameters):
            result = client.start_batch_encoded(**altcraft_chunks.send_arguments(run.parameters))
        else:
            result = client.start_batch(**run.parameters)
        return SendResult(
            exchange=result.exchange,
            outcome=f"Altcraft launched the trigger for {len(result.profile_ids)} profiles.",
            vendor_status="launched",
            audience_size=len(result.profile_ids),
            result={
                "profile_ids": result.profile_ids[:1000],
                "profile_count": len(result.profile_ids),
            },
        )


class AltcraftImportAndStartOperation(RunOperation):
    name = Operation.ALTCRAFT_IMPORT_AND_START
    vendor_kind = VendorKind.ALTCRAFT
    polls = True
    poll_deadline_seconds = 24 * 3600

    def clean_parameters(
        self, parameters: dict[str, Any], connection: VendorConnection
    ) -> dict[str, Any]:
        if altcraft_chunks.is_chunk_run(parameters):
            return altcraft_chunks.clean_chunk_parameters(parameters, connection)
        return _clean_altcraft(check_import_parameters, parameters, connection)

    def describe(self, parameters: dict[str, Any]) -> str:
        if altcraft_chunks.is_chunk_run(parameters):
            return altcraft_chunks.describe_chunk(parameters, "Import + launch")
        return f"Import {len(parameters.get('data') or [])} profiles, then trigger {parameters.get('trigger_id')}"

    def send(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> SendResult:
        client = altcraft_client(connection, secrets)
        if altcraft_chunks.is_chunk_run(run.parameters):
            arguments = altcraft_chunks.send_arguments(run.parameters)
            accepted = client.import_and_start_batch_task_encoded(**arguments)
        else:
            accepted = client.import_and_start_batch_task(**run.parameters)
        return SendResult(
            exchange=accepted.exchange,
            outcome=f"Altcraft accepted import task {accepted.task_id}.",
            accepted=True,
            vendor_reference=accepted.task_id,
            vendor_status="accepted",
            progress=0,
        )

    def poll(self, connection: VendorConnection, secrets: dict[str, str], run: Run) -> PollResult:
        status = altcraft_client(connection, secrets).task_status(run.vendor_reference)
        return PollResult(
            exchange=status.exchange,
            vendor_status=status.status,
            terminal=status.is_terminal,
            succeeded=status.is_terminal and not status.failed,
            progress=status.progress,
            audience_size=len(status.profile_ids) if status.profile_ids else None,
            result={"profile_count": len(status.profile_ids or [])},
            failure_code=f"altcraft_task_{status.status}" if status.failed else "",
            failure_message=status.result_error_text or "",
        )


register_operation(AltcraftStartBatchOperation())
register_operation(AltcraftImportAndStartOperation())
