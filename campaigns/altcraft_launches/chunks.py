"""How an engine run of an Altcraft operation finds the rows of its chunk.

A chunk's run carries everything it sends except the rows (and the attachments' content): its
parameters name the chunk (`{"chunk": {"launch", "number", "items", "rows", "sha256"}}`) and the
worker reads the rows from the launch's encrypted chunk file, checking their SHA-256, so the run
sends exactly what the preview counted. A chunk whose file is gone or altered fails as not sent.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils.translation import gettext

from campaigns.altcraft_launches import storage
from campaigns.altcraft_launches.models import AltcraftChunk, AltcraftLaunch
from dashboard.vendors.http import ConfigurationError

# Parameters a chunk run records that are not client arguments.
RECORD_ONLY = ("chunk", "attach_files")


def is_chunk_run(parameters: dict[str, Any]) -> bool:
    return isinstance(parameters.get("chunk"), dict)


def describe_chunk(parameters: dict[str, Any], *, importing: bool) -> str:
    chunk = parameters["chunk"]
    names = {
        "trigger_id": parameters.get("trigger_id"),
        "launch": chunk.get("launch"),
        "number": chunk.get("number"),
        "items": chunk.get("items"),
        "rows": chunk.get("rows"),
    }
    if importing:
        return (
            gettext(
                "Import + launch trigger %(trigger_id)s: launch %(launch)s chunk %(number)s "
                "(%(items)s rows, file rows %(rows)s)"
            )
            % names
        )
    return (
        gettext(
            "Launch trigger %(trigger_id)s: launch %(launch)s chunk %(number)s (%(items)s rows, "
            "file rows %(rows)s)"
        )
        % names
    )


def chunk_titles(runs: list[Any]) -> list[str]:
    """ "<trigger's name> · chunk k of n (5,000 rows)" for chunk runs being requested: one query
    for the launches they belong to, however many chunks."""
    launches = {
        launch.pk: launch
        for launch in AltcraftLaunch.objects.filter(
            pk__in={run.parameters["chunk"].get("launch") for run in runs}
        )
        .select_related("trigger")
        .only("id", "trigger__name")
        .annotate(chunk_count=Count("chunks"))
    }
    titles = []
    for run in runs:
        chunk = run.parameters["chunk"]
        launch = launches.get(chunk.get("launch"))
        items = chunk.get("items") or 0
        rows = f"{items:,} row" + ("" if items == 1 else "s")
        if launch is None:
            titles.append(f"Launch {chunk.get('launch')} · chunk {chunk.get('number')} ({rows})")
        else:
            titles.append(
                f"{launch.trigger.name} · chunk {chunk.get('number')} of {launch.chunk_count} "
                f"({rows})"
            )
    return titles


def clean_chunk_parameters(parameters: dict[str, Any], connection: Any) -> dict[str, Any]:
    """Chunk runs are made by the launch services only; check they name a chunk of this tenant."""
    chunk = parameters["chunk"]
    exists = AltcraftChunk.objects.filter(
        launch_id=chunk.get("launch"),
        number=chunk.get("number"),
        launch__tenant_id=connection.tenant_id,
        launch__trigger__connection=connection,
    ).exists()
    if not exists:
        raise ValidationError("That Altcraft chunk does not exist for this connection.")
    return dict(parameters)


def send_arguments(parameters: dict[str, Any]) -> dict[str, Any]:
    """The client's keyword arguments for a chunk run: its parameters plus its rows' bytes."""
    reference = parameters["chunk"]
    chunk = (
        AltcraftChunk.objects.select_related("launch")
        .filter(launch_id=reference["launch"], number=reference["number"])
        .first()
    )
    if chunk is None or chunk.launch.files_deleted_at is not None or not chunk.launch.chunks_path:
        raise ConfigurationError("The chunk's rows are gone (the upload expired); nothing sent.")
    try:
        data = storage.read_record(
            chunk.launch.chunks_path, offset=chunk.offset, length=chunk.length
        )
    except storage.StoredFileError as error:
        raise ConfigurationError(
            f"The chunk's rows cannot be read: {error} Nothing sent."
        ) from None
    if hashlib.sha256(data).hexdigest() != reference["sha256"]:
        raise ConfigurationError("The chunk's rows changed since the preview; nothing sent.")
    arguments = {key: value for key, value in parameters.items() if key not in RECORD_ONLY}
    # The exact bytes the preview counted, spliced into the body unparsed (the client's
    # *_encoded methods): a 10 MB chunk is not turned into 200,000 dictionaries.
    arguments["data_json"] = data
    attach = chunk.launch.parameters.get("attach")
    if attach:
        arguments["attach"] = attach
    return arguments
