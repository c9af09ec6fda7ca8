"""The run operations of Altcraft launches: start a batch, import and start (the engine's adapters)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext

from campaigns.altcraft_launches import chunks as altcraft_chunks
from campaigns.vendors.altcraft.access import altcraft_body_limit, altcraft_client
from campaigns.vendors.altcraft.client import (
    AltcraftRejected,
    check_import_parameters,
    check_start_batch_parameters,
)
from dashboard.models import VendorConnection, VendorKind
from dashboard.runs.models import Operation, Run
from dashboard.runs.operations import (
    ConnectionCheck,
    PollResult,
    RunOperation,
    SendResult,
    register_operation,
)
from dashboard.vendors.http import ConfigurationError, VendorError

# The task a connection test asks about: an id no import ever gets, so Altcraft answers "Task
# not found" once it has accepted the token (a status read changes nothing, whatever its answer).
CONNECTION_TEST_TASK_ID = "triggerdesk-connection-test"
# The envelope's `error` for an unknown task of the token's account. The docs list no error
# codes; this is what the sandbox answers (see its table), and an invalid token is 401 there.
TASK_NOT_FOUND_ERROR = 404


class AltcraftConnectionCheck:
    """Both Altcraft operations test a connection the same way: a task-status read."""

    def check_connection(
        self, connection: VendorConnection, secrets: dict[str, str]
    ) -> ConnectionCheck:
        """Read the status of an unknown task: "Task not found" still proves the token."""
        host = urlsplit(connection.base_url).hostname or connection.base_url
        try:
            altcraft_client(connection, secrets).task_status(CONNECTION_TEST_TASK_ID)
        except KeyError:
            return ConnectionCheck(False, "The connection has no API token set; nothing was sent.")
        except ConfigurationError as error:
            return ConnectionCheck(False, f"Not tried: {error}")
        except AltcraftRejected as error:
            if error.error_number != TASK_NOT_FOUND_ERROR:
                return ConnectionCheck(
                    False, f"Tried to read a task's status at {host}: {error.message}"
                )
        except VendorError as error:
            return ConnectionCheck(
                False, f"Tried to read a task's status at {host}: {error.message}"
            )
        return ConnectionCheck(
            True, f"Reached {host} and read a task's status (tasks/status): API token accepted."
        )


def _altcraft_titles(runs: list[Run], verb: str) -> list[str]:
    """Chunk runs by their trigger's name and chunk; a direct call by its trigger's registered
    name (its id when the tenant never registered it) and its number of profiles."""
    chunk_runs = [run for run in runs if altcraft_chunks.is_chunk_run(run.parameters)]
    chunk_titles = iter(altcraft_chunks.chunk_titles(chunk_runs) if chunk_runs else [])
    direct = [run for run in runs if not altcraft_chunks.is_chunk_run(run.parameters)]
    names: dict[int, str] = {}
    if direct:
        # Here, not at the top: the engine looks operations up without loading the campaigns.
        from campaigns.altcraft_launches.models import AltcraftTrigger

        names = dict(
            AltcraftTrigger.objects.filter(
                connection_id=direct[0].connection_id,
                trigger_id__in={
                    run.parameters.get("trigger_id")
                    for run in direct
                    if isinstance(run.parameters.get("trigger_id"), int)
                },
            ).values_list("trigger_id", "name")
        )
    titles = []
    for run in runs:
        if altcraft_chunks.is_chunk_run(run.parameters):
            titles.append(next(chunk_titles))
            continue
        trigger_id = run.parameters.get("trigger_id")
        count = len(run.parameters.get("data") or [])
        profiles = f"{count:,} profile" + ("" if count == 1 else "s")
        titles.append(f"{names.get(trigger_id) or f'Trigger {trigger_id}'} · {verb}{profiles}")
    return titles


def _clean_altcraft(
    check: Any, parameters: dict[str, Any], connection: VendorConnection
) -> dict[str, Any]:
    cleaned = {key: value for key, value in parameters.items() if value is not None}
    try:
        check(body_limit_bytes=altcraft_body_limit(connection), **cleaned)
    except ConfigurationError as error:
        raise ValidationError(str(error)) from None
    return cleaned


class AltcraftStartBatchOperation(AltcraftConnectionCheck, RunOperation):
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
            return altcraft_chunks.describe_chunk(parameters, importing=False)
        return gettext("Trigger %(trigger_id)s for %(count)s profiles (%(matching)s)") % {
            "trigger_id": parameters.get("trigger_id"),
            "count": len(parameters.get("data") or []),
            "matching": parameters.get("matching", "email"),
        }

    def titles(self, runs: list[Run]) -> list[str]:
        return _altcraft_titles(runs, "")

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


class AltcraftImportAndStartOperation(AltcraftConnectionCheck, RunOperation):
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
            return altcraft_chunks.describe_chunk(parameters, importing=True)
        return gettext("Import %(count)s profiles, then trigger %(trigger_id)s") % {
            "count": len(parameters.get("data") or []),
            "trigger_id": parameters.get("trigger_id"),
        }

    def titles(self, runs: list[Run]) -> list[str]:
        return _altcraft_titles(runs, "import ")

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
            result=_task_result(status),
            failure_code=f"altcraft_task_{status.status}" if status.failed else "",
            failure_message=status.result_error_text or "",
        )


def _task_result(status: Any) -> dict[str, Any]:
    """What a task's status says it did: the number of profiles launched when its result lists
    them (the docs' JSON shape), None when it does not (the XML shape's `captured`/`errors`,
    kept as sent), so a page says "not reported" instead of showing 0 profiles."""
    raw = status.result or {}
    if "captured" in raw and "result" not in raw:
        errors = raw.get("errors")
        return {
            "profile_count": None,
            "captured": raw.get("captured"),
            "error_count": len(errors) if isinstance(errors, list) else None,
        }
    return {"profile_count": len(status.profile_ids or [])}


register_operation(AltcraftStartBatchOperation())


register_operation(AltcraftImportAndStartOperation())
