"""Writes for Altcraft launches: register triggers, store uploads, prepare (preview), confirm,
approve, send as chunk runs of the engine, retry failed chunks, expire stored files.

Every chunk is sent by exactly one engine run at a time: a chunk gets its run (idempotency key
`altcraft:<launch>:<chunk>:<retry>`) under the launch's or the chunk's row lock, and a retry is
offered only when the chunk's current run failed (the vendor did not act on it). A run whose
outcome is unknown stays with the engine, which puts it before a person with its evidence
("mark as sent" or "send again" on the run page); it is never resent from here.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils.translation import gettext, ngettext

from campaigns.altcraft_launches import notifications, reading, storage
from campaigns.altcraft_launches.models import (
    MATCHING_CHOICES,
    UNSENT_STATES,
    AltcraftChunk,
    AltcraftLaunch,
    AltcraftSettings,
    AltcraftTrigger,
    LaunchKind,
    LaunchState,
)
from campaigns.vendors.altcraft.access import altcraft_body_limit, altcraft_client
from dashboard.approval_policies.evaluation import ApprovalFacts
from dashboard.approval_policies.selectors import approval_verdict
from dashboard.audit.trail import Actor, record_audit_event, save_with_audit
from dashboard.clock import utc_now
from dashboard.input_checks import nested_unstorable_reason, parse_json_text
from dashboard.models import Membership, Permission, Tenant, VendorConnection, VendorKind
from dashboard.runs.models import Operation
from dashboard.runs.selectors import count_text
from dashboard.runs.services import (
    RunActionError,
    connection_secrets,
    owner_or_operator_refusal,
    run_submit,
)
from dashboard.runs.states import RunState
from dashboard.vendors.http import ConfigurationError

DEFAULT_UPLOAD_MAX_BYTES = 256 * 1024 * 1024
ATTACHMENT_MAX_BYTES = 5 * 1024 * 1024
SYSTEM = Actor.system("altcraft-expiry")
READING_RESUMER = Actor.system("altcraft-reading-resume")
# The largest trigger or resource id the columns hold (PositiveIntegerField: PostgreSQL integer).
MAX_ALTCRAFT_ID = 2**31 - 1
# A chunk may be sent again only when its run ended without Altcraft acting on it.
RETRYABLE_STATES = (RunState.FAILED, RunState.CANCELLED)


def upload_max_bytes() -> int:
    return int(getattr(settings, "ALTCRAFT_UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES))


class UploadTooLarge(ValidationError):
    pass


def too_large_message(size: int | None = None) -> str:
    limit = upload_max_bytes()
    names = {"limit": f"{limit / 1_000_000:,.0f}", "size": f"{(size or 0) / 1_000_000:,.1f}"}
    if size:
        return (
            gettext(
                "The file is too large (%(size)s MB): the largest upload is %(limit)s MB. "
                "Split it into several files."
            )
            % names
        )
    return (
        gettext(
            "The file is too large: the largest upload is %(limit)s MB. Split it into several files."
        )
        % names
    )


@dataclass(frozen=True)
class StoredUpload:
    """An upload encrypted at rest (storage.py): where, how large, its plaintext SHA-256."""

    path: str
    size: int
    sha256: str


# -- settings and registry ---------------------------------------------------------------------


def altcraft_settings(*, tenant: Tenant) -> AltcraftSettings:
    found, _ = AltcraftSettings.objects.get_or_create(tenant=tenant)
    return found


def altcraft_settings_update(
    *, actor: Actor, tenant: Tenant, approval_required: bool, retention_hours: int
) -> AltcraftSettings:
    """Change whether launches need an operator's approval and how long uploads are kept."""
    if not 1 <= retention_hours <= 90 * 24:
        raise ValidationError({"retention_hours": gettext("Keep uploads from 1 hour to 90 days.")})
    with transaction.atomic():
        found = altcraft_settings(tenant=tenant)
        found.approval_required = approval_required
        found.retention_hours = retention_hours
        found.save()
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="altcraft.settings_changed",
            object_type="altcraft_settings",
            object_id=found.pk,
            summary={"approval_required": approval_required, "retention_hours": retention_hours},
        )
    return found


def trigger_register(
    *,
    actor: Actor,
    tenant: Tenant,
    connection: VendorConnection,
    trigger_id: int,
    name: str,
    default_matching: str = "email",
    default_field_name: str = "",
    resource_id: int | None = None,
    content_fields: Iterable[str] = (),
) -> AltcraftTrigger:
    """Register a trigger campaign of one of the tenant's Altcraft connections."""
    if connection.tenant_id != tenant.pk or connection.kind != VendorKind.ALTCRAFT:
        raise ValidationError(
            {"connection": gettext("Choose one of this tenant's Altcraft connections.")}
        )
    for field_name, value in (("trigger_id", trigger_id), ("resource_id", resource_id)):
        if value is not None and not 1 <= value <= MAX_ALTCRAFT_ID:
            raise ValidationError(
                {
                    field_name: gettext("Must be a whole number from 1 to %(maximum)s.")
                    % {"maximum": format(MAX_ALTCRAFT_ID, ",")}
                }
            )
    fields = [field.strip() for field in content_fields if field.strip()]
    bad = [field for field in fields if not re.fullmatch(r"[A-Za-z0-9_]+", field)]
    if bad:
        raise ValidationError(
            {"content_fields": gettext("Not a field name: %(value)s.") % {"value": repr(bad[0])}}
        )
    if default_matching == "custom" and not default_field_name.strip():
        raise ValidationError(
            {"default_field_name": gettext("Custom matching needs a field name.")}
        )
    trigger = AltcraftTrigger(
        tenant=tenant,
        connection=connection,
        trigger_id=trigger_id,
        name=name.strip(),
        default_matching=default_matching,
        default_field_name=default_field_name.strip() if default_matching == "custom" else "",
        resource_id=resource_id,
        content_fields=fields,
        created_by=actor.user if actor.user is not None else None,
    )
    try:
        save_with_audit(
            trigger,
            actor=actor,
            tenant=tenant,
            action="altcraft.trigger_registered",
            object_type="altcraft_trigger",
            summary={
                "trigger_id": trigger_id,
                "name": trigger.name,
                "connection": connection.name,
                "default_matching": default_matching,
            },
        )
    except IntegrityError:
        raise ValidationError(
            {
                "trigger_id": gettext(
                    "Trigger %(trigger_id)s is already registered on %(connection_name)s."
                )
                % {"trigger_id": trigger_id, "connection_name": connection.name}
            }
        ) from None
    return trigger


# -- uploads ---------------------------------------------------------------------------------------


def upload_store(*, pieces: Iterable[bytes], size_hint: int | None = None) -> StoredUpload:
    """Encrypt an upload to disk as it arrives; UploadTooLarge past the size limit."""
    if size_hint is not None and size_hint > upload_max_bytes():
        raise UploadTooLarge(too_large_message(size_hint))
    writer = storage.EncryptedWriter(storage.new_path("upload"))
    try:
        for piece in pieces:
            writer.write(piece)
            if writer.size > upload_max_bytes():
                raise UploadTooLarge(too_large_message())
    except BaseException:
        writer.discard()
        raise
    writer.close()
    return StoredUpload(path=writer.relative, size=writer.size, sha256=writer.sha256)


def pasted_upload(*, text: str, matching: str, field_name: str | None) -> StoredUpload:
    """A pasted list (one value a line) stored like an uploaded CSV with its one column."""
    column = reading.launch_column(matching, field_name)
    lines = [line.strip() for line in text.splitlines()]
    body = "\n".join([column, *lines]) + "\n"
    return upload_store(pieces=[body.encode("utf-8")])


def parse_json_object(text: str, name: str) -> dict[str, Any] | None:
    """A form's JSON text as an object (None when blank); ValidationError naming `name`."""
    if not (text or "").strip():
        return None
    try:
        value = parse_json_text(text, subject=name)
    except ValidationError as error:
        raise ValidationError({name: error.messages}) from None
    if not isinstance(value, dict):
        raise ValidationError(
            {
                name: gettext("Must be a JSON object ({...}), not %(kind)s.")
                % {"kind": type(value).__name__}
            }
        )
    return value


def attachment(*, name: str, content: bytes, content_type: str) -> dict[str, str]:
    """A file as Altcraft's attach object: a data URI."""
    if len(content) > ATTACHMENT_MAX_BYTES:
        raise ValidationError({"attachments": gettext("%(name)s is over 5 MB.") % {"name": name}})
    content_type = content_type or "application/octet-stream"
    encoded = base64.b64encode(content).decode("ascii")
    return {"data": f"data:{content_type};base64,{encoded}", "name": name}


# -- launches -----------------------------------------------------------------------------------


def launch_create(
    *,
    actor: Actor,
    trigger: AltcraftTrigger,
    kind: str,
    upload: StoredUpload,
    source_name: str,
    parameters: dict[str, Any],
    idempotency_key: str,
) -> AltcraftLaunch:
    """Record an upload for `trigger`; nothing is read or sent yet. The same key, the same launch.

    `parameters`: matching, field_name, content, custom_data, attach, skip_triggers, and for
    imports skip_invalid_subscriptions, detect_geo, timeout, resource_id.
    """
    tenant = trigger.tenant
    existing = AltcraftLaunch.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
    if existing is not None:
        storage.delete(upload.path)
        return existing
    cleaned = _clean_parameters(trigger, kind, parameters)
    retention = altcraft_settings(tenant=tenant).retention_hours
    launch = AltcraftLaunch(
        tenant=tenant,
        trigger=trigger,
        kind=kind,
        parameters=cleaned,
        source_name=source_name[:255] or "upload",
        source_sha256=upload.sha256,
        source_bytes=upload.size,
        upload_path=upload.path,
        expires_at=utc_now() + timedelta(hours=retention),
        body_limit_bytes=altcraft_body_limit(trigger.connection),
        idempotency_key=idempotency_key,
        created_by=actor.user if actor.user is not None else None,
        created_by_label=actor.display,
    )
    try:
        save_with_audit(
            launch,
            actor=actor,
            tenant=tenant,
            action="altcraft.launch_uploaded",
            object_type="altcraft_launch",
            summary={
                "kind": kind,
                "trigger_id": trigger.trigger_id,
                "file": launch.source_name,
                "sha256": upload.sha256,
                "bytes": upload.size,
            },
        )
    except IntegrityError:
        storage.delete(upload.path)
        return AltcraftLaunch.objects.get(tenant=tenant, idempotency_key=idempotency_key)
    return launch


def _clean_parameters(trigger: AltcraftTrigger, kind: str, parameters: dict[str, Any]) -> dict:
    matching = parameters.get("matching") or trigger.default_matching
    cleaned: dict[str, Any] = {"trigger_id": trigger.trigger_id, "matching": matching}
    if matching == "custom":
        field_name = (parameters.get("field_name") or trigger.default_field_name or "").strip()
        if not field_name:
            raise ValidationError(
                {"field_name": gettext("Custom matching needs the profile field name.")}
            )
        cleaned["field_name"] = field_name
    names = ["content", "custom_data", "attach", "skip_triggers"]
    if kind == LaunchKind.IMPORT:
        names += ["skip_invalid_subscriptions", "detect_geo", "timeout", "resource_id"]
    for name in names:
        if parameters.get(name) is not None:
            cleaned[name] = parameters[name]
    for name in ("content", "custom_data"):
        if name in cleaned and not isinstance(cleaned[name], dict):
            raise ValidationError(
                {name: gettext("%(name)s must be a JSON object.") % {"name": name}}
            )
        # From a command or the API as much as from the form: jsonb refuses such values.
        reason = nested_unstorable_reason(cleaned.get(name))
        if reason:
            raise ValidationError(
                {
                    name: gettext("%(name)s contains %(reason)s, which cannot be stored.")
                    % {"name": name, "reason": reason}
                }
            )
    by_resource = matching in ("email", "email_profile", "phone") and trigger.resource_id
    if kind == LaunchKind.IMPORT and by_resource and "resource_id" not in cleaned:
        cleaned["resource_id"] = trigger.resource_id
    return cleaned


def _overhead_bytes(launch: AltcraftLaunch) -> int:
    connection = launch.trigger.connection
    client = altcraft_client(connection, connection_secrets(connection))
    arguments = dict(launch.parameters)
    try:
        if launch.kind == LaunchKind.IMPORT:
            return client.import_overhead_bytes(**arguments)
        return client.start_batch_overhead_bytes(**arguments)
    except ConfigurationError as error:
        raise reading.FileRejected(f"The launch parameters are not valid: {error}") from None


def upload_header(*, upload: StoredUpload, source_name: str) -> list[str]:
    """The header (row 1) of a stored bulk-launch upload, read in the request as far as that row
    only; FileRejected (or StoredFileError) when it is missing, holds values or names a column
    twice."""
    _, rows = reading.iter_rows(upload.path, name=source_name, header_only=True)
    return reading.launch_header(rows)


def launch_columns(*, launch: AltcraftLaunch) -> list[str]:
    """The header of an uploaded bulk launch (for choosing its column); FileRejected if
    unreadable."""
    _, rows = reading.iter_rows(launch.upload_path, name=launch.source_name, header_only=True)
    return reading.launch_header(rows)


def launch_column_default(*, launch: AltcraftLaunch, names: list[str]) -> str:
    """The column the page offers first: named like the launch's matching kind, else the one
    last chosen for its trigger (when this header has it), else ""."""
    return reading.default_column(
        names,
        matching=launch.parameters["matching"],
        field_name=launch.parameters.get("field_name"),
        remembered=(launch.trigger.launch_choice or {}).get("column", ""),
    )


def launch_column_choose(
    *,
    actor: Actor,
    launch: AltcraftLaunch,
    names: list[str],
    column: str,
    matching: str,
    field_name: str = "",
) -> AltcraftLaunch:
    """The uploader chose the column of a bulk launch whose values are sent (the others are
    ignored) and its matching kind; a worker reads the file. ValidationError, with nothing
    changed, for a column not in the header or a kind that is not valid."""
    check_uploader(actor, launch, "choose this launch's column")
    if launch.kind != LaunchKind.START_BATCH:
        raise ValidationError({"column": gettext("Only a bulk launch reads one column.")})
    if not column or column not in names:
        raise ValidationError({"column": gettext("Choose one of the file's columns.")})
    if matching not in dict(MATCHING_CHOICES):
        raise ValidationError({"matching": gettext("Choose one of the matching kinds.")})
    parameters = dict(launch.parameters)
    parameters["matching"] = matching
    parameters["field_name"] = field_name.strip() or None
    cleaned = _clean_parameters(launch.trigger, launch.kind, parameters)
    # One transaction: the kind chosen and the reading queued together, or neither.
    with transaction.atomic():
        locked = AltcraftLaunch.objects.select_for_update().get(pk=launch.pk)
        if locked.state != LaunchState.UPLOADED or locked.column:
            raise RunActionError(gettext("This launch's column is chosen already."))
        locked.parameters = cleaned
        locked.save(update_fields=["parameters"])
        return launch_prepare_queue(actor=actor, launch=locked, column=column)


def import_columns(*, launch: AltcraftLaunch) -> list[str]:
    """The header of an uploaded import file (for the mapping step); FileRejected if unreadable."""
    _, rows = reading.iter_rows(launch.upload_path, name=launch.source_name, header_only=True)
    return reading.import_header(rows)


def launch_change_refusal(
    *, actor: Actor, launch: AltcraftLaunch, doing: str, membership: Membership | None = None
) -> str:
    """Why `actor` may not discard `launch` or resend its failed chunks (`doing`), or "" when
    they may: its uploader, or an operator or admin of its tenant (the rule for runs)."""
    return owner_or_operator_refusal(
        actor=actor,
        tenant_id=launch.tenant_id,
        owner_id=launch.created_by_id,
        owner="uploader",
        doing=doing,
        membership=membership,
    )


def check_uploader(actor: Actor, launch: AltcraftLaunch, doing: str) -> None:
    """Mapping and confirming are the uploader's own request: anyone else who did them could
    then approve a file no second person asked for."""
    user = actor.user
    if user is None or launch.created_by_id is None or user.pk != launch.created_by_id:
        raise PermissionDenied(
            gettext(
                "Only the uploader (%(created_by_label)s) can %(doing)s; others may discard it."
            )
            % {"created_by_label": launch.created_by_label, "doing": doing}
        )


class ListRefused(Exception):
    """A list read in the request cannot be sent as given: the reading discarded it, or it has
    invalid rows and the caller did not skip them. Nothing was sent; `launch` says why."""

    def __init__(self, launch: AltcraftLaunch) -> None:
        super().__init__(launch.problem or f"{launch.rows_invalid} invalid row(s).")
        self.launch = launch


def launch_from_list(
    *,
    actor: Actor,
    trigger: AltcraftTrigger,
    kind: str,
    source_name: str,
    parameters: dict[str, Any],
    text: str | None = None,
    upload: StoredUpload | None = None,
    matching: str = "",
    field_name: str | None = None,
    column: str | None = None,
    mapping: dict[str, Any] | None = None,
    idempotency_key: str,
    read_now: bool = False,
    skip_invalid: bool = False,
    skip_empty: bool = False,
    confirm: bool = False,
) -> AltcraftLaunch:
    """A launch from a list: the stored `upload`, or the pasted `text` (one value a line, in the
    column `matching` and `field_name` name) -> `launch_create`; a file `launch_create`
    refuses is deleted with nothing kept.

    Then, by default (the launch page), a worker reads it (`launch_prepare_queue`: the request
    stores the file and returns, the page shows progress); an import waits for its column
    mapping instead, and a bulk launch whose file has several columns for its `column` to be
    chosen (`launch_column_choose`; the header is read here, as far as row 1: a bad header is
    a ValidationError on "file", with nothing kept). With `read_now` (the API, whose body is
    small) it is read here (`launch_prepare`: `column` or the one named like the matching kind;
    an import with its column `mapping`), ListRefused when the reading discarded it or found invalid rows not to `skip_invalid` or
    rows without a value not to `skip_empty`, and with `confirm` the preview is confirmed
    (`launch_confirm`). On any error after the launch was recorded its files are deleted too:
    the caller's transaction rolls the launch's row back, so they go now rather than a day
    later."""
    if upload is None:
        upload = pasted_upload(text=text or "", matching=matching, field_name=field_name)
        column = column or reading.launch_column(matching, field_name)
    if kind == LaunchKind.START_BATCH and not read_now and not column:
        column = _obvious_column(trigger, upload, source_name, parameters)
    try:
        launch = launch_create(
            actor=actor,
            trigger=trigger,
            kind=kind,
            upload=upload,
            source_name=source_name,
            parameters=parameters,
            idempotency_key=idempotency_key,
        )
    except BaseException:
        storage.delete(upload.path)
        raise
    if not read_now:
        if launch.state == LaunchState.UPLOADED and kind != LaunchKind.IMPORT and column:
            launch = launch_prepare_queue(actor=actor, launch=launch, column=column)
        return launch
    try:
        launch = launch_prepare(actor=actor, launch=launch, column=column, mapping=mapping)
        if (
            launch.state == LaunchState.DISCARDED
            or (launch.rows_invalid and not skip_invalid)
            or (launch.rows_empty and not skip_empty)
        ):
            raise ListRefused(launch)
        if confirm:
            launch = launch_confirm(
                actor=actor,
                launch=launch,
                sha256_seen=launch.source_sha256,
                skip_empty=skip_empty,
            )
    except BaseException:
        storage.delete(launch.upload_path)
        if launch.chunks_path:
            storage.delete(launch.chunks_path)
        raise
    return launch


def _obvious_column(
    trigger: AltcraftTrigger, upload: StoredUpload, source_name: str, parameters: dict[str, Any]
) -> str:
    """The column of an uploaded bulk-launch file when there is nothing to choose, else "";
    a header that cannot be read is a ValidationError on "file" and the upload is deleted."""
    try:
        names = upload_header(upload=upload, source_name=source_name)
    except (reading.FileRejected, storage.StoredFileError) as error:
        storage.delete(upload.path)
        raise ValidationError(
            {"file": gettext("%(error)s Nothing was sent or kept.") % {"error": error}}
        ) from None
    matching = parameters.get("matching") or trigger.default_matching
    field_name = parameters.get("field_name") or trigger.default_field_name or None
    return reading.obvious_column(names, matching=matching, field_name=field_name)


def _enqueue_reading(arguments: dict[str, Any]) -> None:
    # By name: the task module imports this one. Importing it registers the task (a worker's
    # autodiscovery has already done so; a web process has not).
    import_module("campaigns.altcraft_launches.tasks")
    current_app.tasks["altcraft.prepare_launch"].apply_async(kwargs=arguments)


def launch_prepare_queue(
    *,
    actor: Actor,
    launch: AltcraftLaunch,
    mapping: dict[str, Any] | None = None,
    column: str | None = None,
) -> AltcraftLaunch:
    """Have a worker read the upload (`launch_prepare`, task altcraft.prepare_launch) after the
    commit: a web request only stores the file, and its page shows the reading's progress.

    An import's mapping, or a bulk launch's column, is kept on the launch meanwhile (a queued
    launch is one with either). Only the uploader may (PermissionDenied otherwise), as for `launch_prepare`.
    """
    check_uploader(actor, launch, "prepare this launch")
    if launch.kind == LaunchKind.START_BATCH and not column:
        raise ValueError("A bulk launch is read once the column it sends is chosen.")
    with transaction.atomic():
        locked = AltcraftLaunch.objects.select_for_update().get(pk=launch.pk)
        if locked.state != LaunchState.UPLOADED:
            raise RunActionError(
                gettext("This launch is %(state)s already.")
                % {"state": locked.get_state_display().lower()}
            )
        if locked.kind == LaunchKind.IMPORT:
            locked.mapping = mapping or {}
        else:
            locked.column = column or ""
        locked.reading_queued_at = utc_now()
        locked.save(update_fields=["mapping", "column", "reading_queued_at"])
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="altcraft.launch_reading_queued",
            object_type="altcraft_launch",
            object_id=locked.pk,
            summary={"mapped_columns": len((mapping or {}).get("columns") or {})}
            if locked.kind == LaunchKind.IMPORT
            else {"column": locked.column},
        )
        arguments = {
            "launch_id": locked.pk,
            "user_id": actor.user.pk if actor.user is not None else None,
            "ip_address": actor.ip_address,
            "label": actor.label,
        }

        # robust: a broker outage must not turn the stored upload into an error page; the
        # launch stays uploaded (discarded when it expires).
        transaction.on_commit(lambda: _enqueue_reading(arguments), robust=True)
    return locked


# A reading queued this long ago that no worker has claimed, or claimed without progress since
# (Preparation reports every PROGRESS_EVERY rows), is presumed lost: housekeeping queues it again.
READING_STALE_AFTER = timedelta(minutes=5)


def _reading_claimable(now: datetime) -> Q:
    return Q(reading_claimed_at__isnull=True) | Q(reading_claimed_at__lte=now - READING_STALE_AFTER)


def launch_prepare_queued(
    *, launch_id: int, user_id: int | None, ip_address: str | None, label: str = ""
) -> str:
    """The worker's side of `launch_prepare_queue`: read the upload as the person who queued
    it; a launch already read (a redelivered message) is left as it is."""
    from django.contrib.auth import get_user_model

    launch = AltcraftLaunch.objects.select_related("trigger__connection", "tenant").get(
        pk=launch_id
    )
    if launch.state != LaunchState.UPLOADED:
        return launch.state
    # The claim: a second delivery of the message (or housekeeping's re-queue) while this one
    # reads leaves it alone; a claim without progress for READING_STALE_AFTER (its worker died)
    # may be taken over.
    now = utc_now()
    claimed = (
        AltcraftLaunch.objects.filter(pk=launch.pk, state=LaunchState.UPLOADED)
        .filter(_reading_claimable(now))
        .update(reading_claimed_at=now)
    )
    if not claimed:
        return "skipped"
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    actor = Actor(user=user, ip_address=ip_address, label=label)
    mapping = launch.mapping if launch.kind == LaunchKind.IMPORT else None
    try:
        return launch_prepare(actor=actor, launch=launch, mapping=mapping).state
    except RunActionError:  # read meanwhile by another delivery of the same message
        return "skipped"
    except Exception:
        # Not the file's fault (a bug, the database): the page must not say "Reading" forever.
        _refuse(
            actor,
            launch,
            "The file could not be read (an error on our side, reported to the team). Upload "
            "it again; if it happens again, contact support.",
        )
        raise


def launch_prepare(
    *,
    actor: Actor,
    launch: AltcraftLaunch,
    mapping: dict[str, Any] | None = None,
    column: str | None = None,
) -> AltcraftLaunch:
    """Read the upload, check every row, write its chunks: the preview. Nothing is sent.

    A bulk launch sends the values of `column` (or the one chosen on the launch, else the one
    named like the matching kind) and ignores the others; the choice is remembered for its
    trigger, as an import's mapping is.

    A file that cannot be sent at all (FileRejected) leaves the launch discarded with the reason
    in `problem`, and its stored files deleted.
    """
    if launch.state != LaunchState.UPLOADED:
        raise RunActionError(
            gettext("This launch is %(state)s already.")
            % {"state": launch.get_state_display().lower()}
        )
    check_uploader(actor, launch, "prepare this launch")
    preparation = reading.Preparation(report=lambda rows: _report_rows_read(launch, rows))
    writer = storage.EncryptedWriter(storage.new_path("chunks"))
    try:
        overhead = _overhead_bytes(launch)
        chunks = reading.ChunkWriter(
            writer,
            overhead_bytes=overhead,
            limit_bytes=launch.body_limit_bytes - reading.safety_bytes(launch.body_limit_bytes),
        )
        encoding, rows = reading.iter_rows(launch.upload_path, name=launch.source_name)
        preparation.encoding = encoding
        matching = launch.parameters["matching"]
        field_name = launch.parameters.get("field_name")
        if launch.kind == LaunchKind.IMPORT:
            names = reading.import_header(rows)
            mapping = mapping or {}
            reading.check_mapping(mapping, names, matching=matching, field_name=field_name)
            reading.prepare_import_rows(
                rows,
                names,
                mapping=mapping,
                matching=matching,
                field_name=field_name,
                chunks=chunks,
                preparation=preparation,
            )
        else:
            names = reading.launch_header(rows)
            column = reading.prepare_launch_rows(
                rows,
                names,
                column=column or launch.column or None,
                matching=matching,
                field_name=field_name,
                chunks=chunks,
                preparation=preparation,
            )
        chunks.flush()
        if not chunks.chunks:
            raise reading.FileRejected(
                f"No row of the file can be sent: all {preparation.rows_read} are invalid, "
                "duplicates or have no value" + (f" in the column {column!r}." if column else ".")
            )
    except (reading.FileRejected, storage.StoredFileError) as error:
        writer.discard()
        return _refuse(actor, launch, str(error))
    except BaseException:
        writer.discard()  # no half-written chunk file left behind
        raise
    writer.close()
    with transaction.atomic():
        locked = AltcraftLaunch.objects.select_for_update().get(pk=launch.pk)
        if locked.state != LaunchState.UPLOADED:
            storage.delete(writer.relative)
            return locked
        AltcraftChunk.objects.bulk_create(
            [AltcraftChunk(launch=locked, **chunk) for chunk in chunks.chunks]
        )
        locked.state = LaunchState.PREVIEWED
        locked.encoding = preparation.encoding
        locked.chunks_path = writer.relative
        locked.mapping = mapping or {}
        locked.rows_read = preparation.rows_read
        locked.rows_valid = preparation.rows_valid
        locked.rows_invalid = preparation.rows_invalid
        locked.rows_duplicate = preparation.rows_duplicate
        locked.rows_empty = preparation.rows_empty
        locked.empty_samples = preparation.empty_samples
        locked.invalid_samples = preparation.invalid_samples
        if launch.kind == LaunchKind.START_BATCH:
            locked.column = column
            locked.ignored_columns = reading.ignored_columns(names, column)
        locked.largest_body_bytes = max(chunk["body_bytes"] for chunk in chunks.chunks)
        locked.total_body_bytes = sum(chunk["body_bytes"] for chunk in chunks.chunks)
        locked.save()
        if launch.kind == LaunchKind.IMPORT and mapping:
            AltcraftTrigger.objects.filter(pk=locked.trigger_id).update(import_mapping=mapping)
        if launch.kind == LaunchKind.START_BATCH:
            choice = {
                "column": column,
                "matching": matching,
                "field_name": field_name or "",
            }
            AltcraftTrigger.objects.filter(pk=locked.trigger_id).update(launch_choice=choice)
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="altcraft.launch_previewed",
            object_type="altcraft_launch",
            object_id=locked.pk,
            summary={
                "rows_read": locked.rows_read,
                "rows_valid": locked.rows_valid,
                "rows_invalid": locked.rows_invalid,
                "rows_duplicate": locked.rows_duplicate,
                "rows_empty": locked.rows_empty,
                "requests": len(chunks.chunks),
                "encoding": locked.encoding,
            },
        )
    return locked


def launch_refuse(*, actor: Actor, launch: AltcraftLaunch, problem: str) -> AltcraftLaunch:
    """Discard an uploaded launch whose file cannot be sent (`problem` says why, for the page);
    its stored file is deleted. A launch past `uploaded` is left as it is."""
    return _refuse(actor, launch, problem)


def _report_rows_read(launch: AltcraftLaunch, rows: int) -> None:
    # The page polls this while a worker reads a large file (autocommit: visible at once); the
    # claim's time says the reading is alive (launches_reading_resume leaves it alone).
    AltcraftLaunch.objects.filter(pk=launch.pk, state=LaunchState.UPLOADED).update(
        rows_read=rows, reading_claimed_at=utc_now()
    )


def _refuse(actor: Actor, launch: AltcraftLaunch, problem: str) -> AltcraftLaunch:
    with transaction.atomic():
        updated = AltcraftLaunch.objects.filter(pk=launch.pk, state=LaunchState.UPLOADED).update(
            state=LaunchState.DISCARDED, problem=problem, files_deleted_at=utc_now()
        )
        if updated:
            record_audit_event(
                actor=actor,
                tenant=launch.tenant,
                action="altcraft.launch_refused",
                object_type="altcraft_launch",
                object_id=launch.pk,
                summary={"problem": problem[:300]},
            )
    storage.delete(launch.upload_path)
    launch.refresh_from_db()
    return launch


def _check_seen(launch: AltcraftLaunch, sha256_seen: str) -> None:
    if sha256_seen != launch.source_sha256:
        raise RunActionError(
            gettext("This is not the file you were shown (its SHA-256 differs); reload the page.")
        )


def empty_rows_refusal(launch: AltcraftLaunch) -> str:
    """Why a preview with rows that have no value to send cannot be confirmed as it is."""
    shown = ", ".join(str(row) for row in launch.empty_samples)
    more = ", …" if launch.rows_empty > len(launch.empty_samples) else ""
    return ngettext(
        "%(count)s row (row %(rows)s) has no value in the column %(column)s. Choose to skip "
        "it, or discard the launch and fill it in. Nothing was sent.",
        "%(count)s rows (rows %(rows)s) have no value in the column %(column)s. Choose to skip "
        "them, or discard the launch and fill them in. Nothing was sent.",
        launch.rows_empty,
    ) % {
        "count": count_text(launch.rows_empty),
        "rows": shown + more,
        "column": repr(launch.column),
    }


def launch_confirm(
    *, actor: Actor, launch: AltcraftLaunch, sha256_seen: str, skip_empty: bool = False
) -> AltcraftLaunch:
    """The uploader confirms the preview: send now, or wait for an operator where required.
    Nobody else may (PermissionDenied): the approver is checked against the uploader.

    Rows without a value in the sent column are never sent: with some, the uploader must say
    `skip_empty` (RunActionError otherwise, nothing changed)."""
    check_uploader(actor, launch, "confirm this launch")
    with transaction.atomic():
        locked = AltcraftLaunch.objects.select_for_update().get(pk=launch.pk)
        if locked.state != LaunchState.PREVIEWED:
            if locked.state in (LaunchState.AWAITING_APPROVAL, LaunchState.SENDING):
                return locked  # a double click
            raise RunActionError(
                gettext("This launch is %(state)s.") % {"state": locked.get_state_display().lower()}
            )
        _check_seen(locked, sha256_seen)
        if locked.rows_empty and not skip_empty:
            raise RunActionError(empty_rows_refusal(locked))
        if locked.expires_at <= utc_now():
            raise RunActionError(gettext("This upload expired; upload the file again."))
        locked.confirmed_by_label = actor.display
        locked.confirmed_at = utc_now()
        # The approval policies judge the launch as a whole (its chunks' runs are not judged
        # again); the Altcraft "approval required" setting is a policy of one approval.
        verdict = approval_verdict(
            tenant=locked.tenant,
            operation=_operation(locked),
            operation_label=Operation(_operation(locked)).label,
            facts=ApprovalFacts(recipients=locked.rows_valid, file_sha256=locked.source_sha256),
            moment=locked.confirmed_at,
            switch=altcraft_settings(tenant=locked.tenant).approval_required,
        )
        needs_approval = verdict.required
        locked.approvals_needed = max(1, verdict.approvals_needed)
        locked.approval_reasons = list(verdict.reasons)
        locked.approval_deadline = (
            min(locked.expires_at, locked.confirmed_at + timedelta(minutes=verdict.valid_minutes))
            if needs_approval and verdict.valid_minutes
            else None
        )
        locked.state = LaunchState.AWAITING_APPROVAL if needs_approval else LaunchState.SENDING
        locked.save()
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="altcraft.launch_confirmed",
            object_type="altcraft_launch",
            object_id=locked.pk,
            summary={
                "sha256": locked.source_sha256,
                "needs_approval": needs_approval,
                "approvals_needed": verdict.approvals_needed,
                "approval_reasons": list(verdict.reasons),
                "empty_rows_skipped": locked.rows_empty,
            },
        )
        if needs_approval:
            notifications.launch_approval_needed(launch=locked)
        else:
            _submit_chunks(actor, locked)
    return locked


def launch_approve(
    *,
    actor: Actor,
    membership: Membership,
    launch: AltcraftLaunch,
    sha256_seen: str,
    comment: str = "",
) -> AltcraftLaunch:
    """An operator other than the uploader approves the exact file (its SHA-256); it is sent
    once `approvals_needed` distinct operators did (before the policy's deadline), and waits,
    the approval recorded and audited, until then."""
    if not membership.can(Permission.APPROVE):
        raise PermissionDenied(gettext("Only operators approve launches."))
    with transaction.atomic():
        locked = AltcraftLaunch.objects.select_for_update().get(pk=launch.pk)
        if locked.state != LaunchState.AWAITING_APPROVAL:
            raise RunActionError(
                gettext("This launch is %(state)s; nothing to approve.")
                % {"state": locked.get_state_display().lower()}
            )
        _check_seen(locked, sha256_seen)
        if locked.created_by_id is not None and locked.created_by_id == membership.user_id:
            raise RunActionError(
                gettext("Four eyes: someone other than the uploader must approve.")
            )
        if locked.expires_at <= utc_now():
            raise RunActionError(gettext("This upload expired; it must be uploaded again."))
        if locked.approval_deadline is not None and locked.approval_deadline <= utc_now():
            raise RunActionError(
                gettext(
                    "The approval window of this launch has closed; discard it and upload the file "
                    "again."
                )
            )
        given = [a for a in locked.approvals if a.get("sha256") == locked.source_sha256]
        if any(a.get("user") == membership.user_id for a in given):
            raise RunActionError(
                gettext(
                    "You already approved this launch (%(given)s of %(approvals_needed)s); "
                    "another operator must approve it too."
                )
                % {"given": len(given), "approvals_needed": locked.approvals_needed}
            )
        given.append(
            {
                "user": membership.user_id,
                "label": actor.display,
                "at": utc_now().isoformat(),
                "sha256": locked.source_sha256,
                "comment": comment[:500],
            }
        )
        locked.approvals = given
        if len(given) < locked.approvals_needed:
            locked.save(update_fields=["approvals"])
            record_audit_event(
                actor=actor,
                tenant=locked.tenant,
                action="altcraft.launch_approval_recorded",
                object_type="altcraft_launch",
                object_id=locked.pk,
                summary={
                    "sha256": locked.source_sha256,
                    "comment": comment[:500],
                    "approvals": len(given),
                    "approvals_needed": locked.approvals_needed,
                },
            )
            return locked
        locked.state = LaunchState.SENDING
        locked.approved_by = membership.user
        locked.approved_by_label = actor.display
        locked.approved_at = utc_now()
        locked.approval_comment = comment[:500]
        locked.save()
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action="altcraft.launch_approved",
            object_type="altcraft_launch",
            object_id=locked.pk,
            summary={
                "sha256": locked.source_sha256,
                "comment": comment[:500],
                "approvals": len(given),
                "approvals_needed": locked.approvals_needed,
            },
        )
        _submit_chunks(actor, locked)
        notifications.launch_decided(
            launch=locked, approved=True, decided_by=actor.display, comment=comment[:500]
        )
    return locked


def launch_approved_message(launch: AltcraftLaunch) -> str:
    """What an approver is told after approving: sending, or how many approvals are missing."""
    if launch.state != LaunchState.AWAITING_APPROVAL:
        return "Approved: sending."
    given = [a for a in launch.approvals if a.get("sha256") == launch.source_sha256]
    missing = launch.approvals_needed - len(given)
    return (
        f"Approved ({len(given)} of {launch.approvals_needed}): it waits for {missing} more "
        f"operator{'s' if missing != 1 else ''} before anything is sent."
    )


def launch_reject(
    *, actor: Actor, membership: Membership, launch: AltcraftLaunch, comment: str = ""
) -> AltcraftLaunch:
    """An operator refuses a launch awaiting approval; nothing is sent, its files are deleted."""
    if not membership.can(Permission.APPROVE):
        raise PermissionDenied(gettext("Only operators reject launches."))
    return _close_unsent(actor, launch, LaunchState.REJECTED, "altcraft.launch_rejected", comment)


def launch_discard(*, actor: Actor, launch: AltcraftLaunch) -> AltcraftLaunch:
    """Drop a launch that was not sent; its files are deleted. Its uploader, or an operator or
    admin (PermissionDenied otherwise)."""
    refusal = launch_change_refusal(actor=actor, launch=launch, doing="discard this launch")
    if refusal:
        raise PermissionDenied(refusal)
    return _close_unsent(actor, launch, LaunchState.DISCARDED, "altcraft.launch_discarded", "")


def _close_unsent(
    actor: Actor, launch: AltcraftLaunch, state: str, action: str, comment: str
) -> AltcraftLaunch:
    with transaction.atomic():
        locked = AltcraftLaunch.objects.select_for_update().get(pk=launch.pk)
        if locked.state not in UNSENT_STATES:
            raise RunActionError(
                gettext("This launch is %(state)s.") % {"state": locked.get_state_display().lower()}
            )
        if state == LaunchState.REJECTED and locked.state != LaunchState.AWAITING_APPROVAL:
            raise RunActionError(gettext("Only a launch awaiting approval can be rejected."))
        locked.state = state
        locked.files_deleted_at = utc_now()
        locked.save()
        if state == LaunchState.REJECTED:
            notifications.launch_decided(
                launch=locked, approved=False, decided_by=actor.display, comment=comment[:500]
            )
        record_audit_event(
            actor=actor,
            tenant=locked.tenant,
            action=action,
            object_type="altcraft_launch",
            object_id=locked.pk,
            summary={"comment": comment[:500]} if comment else {},
        )
    # After the commit: a rolled-back change keeps its files.
    for path in (locked.upload_path, locked.chunks_path):
        storage.delete(path)
    return locked


def _operation(launch: AltcraftLaunch) -> str:
    if launch.kind == LaunchKind.IMPORT:
        return Operation.ALTCRAFT_IMPORT_AND_START
    return Operation.ALTCRAFT_START_BATCH


def _chunk_parameters(launch: AltcraftLaunch, chunk: AltcraftChunk) -> dict[str, Any]:
    parameters = {key: value for key, value in launch.parameters.items() if key != "attach"}
    if launch.parameters.get("attach"):
        parameters["attach_files"] = [
            {"name": item.get("name"), "bytes": len(item.get("data", ""))}
            for item in launch.parameters["attach"]
        ]
    parameters["chunk"] = {
        "launch": launch.pk,
        "number": chunk.number,
        "items": chunk.item_count,
        "rows": f"{chunk.first_row}-{chunk.last_row}",
        "sha256": chunk.sha256,
    }
    return parameters


def _submit_chunk(actor: Actor, launch: AltcraftLaunch, chunk: AltcraftChunk) -> None:
    run = run_submit(
        actor=actor,
        tenant=launch.tenant,
        connection=launch.trigger.connection,
        operation=_operation(launch),
        parameters=_chunk_parameters(launch, chunk),
        idempotency_key=f"altcraft:{launch.pk}:{chunk.number}:{chunk.retries}",
        approval_required=False,
        check_duplicates=False,
        # The launch as a whole was judged by the approval policies when it was confirmed.
        apply_policies=False,
    )
    AltcraftChunk.objects.filter(pk=chunk.pk).update(run=run)


def _submit_chunks(actor: Actor, launch: AltcraftLaunch) -> None:
    # Under the launch's row lock: each chunk gets one run (its key makes a repeat the same run).
    for chunk in launch.chunks.filter(run__isnull=True).order_by("number"):
        _submit_chunk(actor, launch, chunk)


def chunk_retry(*, actor: Actor, chunk: AltcraftChunk) -> AltcraftChunk:
    """Send a chunk again whose run failed or was cancelled (Altcraft did not act on it); never
    any other.

    Chunks that succeeded are not touched; a chunk whose outcome is unknown is for a person on
    its run's page. Only the launch's uploader, or an operator or admin, may (PermissionDenied).
    """
    refusal = launch_change_refusal(
        actor=actor, launch=chunk.launch, doing="send this launch's failed requests again"
    )
    if refusal:
        raise PermissionDenied(refusal)
    with transaction.atomic():
        locked = (
            AltcraftChunk.objects.select_for_update(of=("self",))
            .select_related("launch", "launch__trigger__connection", "launch__tenant", "run")
            .get(pk=chunk.pk)
        )
        if locked.run is None or locked.run.state not in RETRYABLE_STATES:
            state = locked.run.get_state_display().lower() if locked.run else "not sent yet"
            raise RunActionError(
                gettext("Chunk %(number)s is %(state)s: only a failed chunk can be sent again.")
                % {"number": locked.number, "state": state}
            )
        if locked.launch.files_deleted_at is not None or not locked.launch.chunks_path:
            raise RunActionError(
                gettext("The upload expired: its rows are gone. Upload the file again.")
            )
        previous = locked.run
        locked.retries += 1
        locked.save(update_fields=["retries"])
        record_audit_event(
            actor=actor,
            tenant=locked.launch.tenant,
            action="altcraft.chunk_retried",
            object_type="altcraft_launch",
            object_id=locked.launch_id,
            summary={"chunk": locked.number, "failed_run": previous.pk, "retry": locked.retries},
        )
        _submit_chunk(actor, locked.launch, locked)
    locked.refresh_from_db()
    return locked


def launch_retry_failed(*, actor: Actor, launch: AltcraftLaunch) -> int:
    """Retry every failed chunk of a launch; the number retried. Only its uploader, or an
    operator or admin, may (PermissionDenied otherwise, before anything is sent)."""
    refusal = launch_change_refusal(
        actor=actor, launch=launch, doing="send this launch's failed requests again"
    )
    if refusal:
        raise PermissionDenied(refusal)
    failed = launch.chunks.filter(run__state__in=RETRYABLE_STATES)
    count = 0
    for chunk in failed:
        chunk_retry(actor=actor, chunk=chunk)
        count += 1
    return count


def launches_expire() -> int:
    """Delete the stored files of launches past their retention; unsent ones are discarded.

    Files of a launch with a chunk still open in the engine are kept until it settles.
    """
    now = utc_now()
    expired = AltcraftLaunch.objects.filter(files_deleted_at__isnull=True, expires_at__lte=now)
    count = 0
    for launch in expired.select_related("tenant"):
        open_chunks = launch.chunks.filter(
            run__state__in=[
                RunState.QUEUED,
                RunState.SENDING,
                RunState.ACCEPTED,
                RunState.OUTCOME_UNKNOWN,
            ]
        )
        if open_chunks.exists():
            continue
        with transaction.atomic():
            locked = AltcraftLaunch.objects.select_for_update().get(pk=launch.pk)
            if locked.files_deleted_at is not None:
                continue
            if locked.state == LaunchState.AWAITING_APPROVAL:
                notifications.launch_expired(launch=locked)
            if locked.state in UNSENT_STATES:
                locked.state = LaunchState.DISCARDED
            locked.files_deleted_at = now
            locked.save()
            record_audit_event(
                actor=SYSTEM,
                tenant=locked.tenant,
                action="altcraft.files_expired",
                object_type="altcraft_launch",
                object_id=locked.pk,
                summary={"state": locked.state},
            )
        for path in (locked.upload_path, locked.chunks_path):
            storage.delete(path)
        count += 1
    return count + _orphans_delete()


def launches_reading_resume() -> int:
    """Queue again the reading of launches that have waited for it longer than
    READING_STALE_AFTER: the message never reached the broker (it was down on commit) or was
    lost, or the worker reading it died (no progress since). The number queued.

    "Waiting" is what the page shows as Reading (`AltcraftLaunch.is_reading`), timed from the
    last time it was queued (or its upload, when it never was). The claim in
    `launch_prepare_queued` makes a delivery while another reads it a no-op, and a launch read
    meanwhile is left as it is; the uploader reads it, as when they queued it.
    """
    now = utc_now()
    cutoff = now - READING_STALE_AFTER
    waiting = (
        AltcraftLaunch.objects.filter(state=LaunchState.UPLOADED, expires_at__gt=now)
        .filter(
            (Q(kind=LaunchKind.START_BATCH) & ~Q(column=""))
            | (Q(kind=LaunchKind.IMPORT) & ~Q(mapping={}))
        )
        .annotate(waiting_since=Coalesce("reading_queued_at", "created_at"))
        .filter(waiting_since__lte=cutoff)
        .filter(_reading_claimable(now))
    )
    count = 0
    for launch in waiting.select_related("tenant"):
        with transaction.atomic():
            # Conditional on what was read: two housekeeping passes at once queue it once.
            requeued = (
                AltcraftLaunch.objects.filter(
                    pk=launch.pk,
                    state=LaunchState.UPLOADED,
                    reading_queued_at=launch.reading_queued_at,
                )
                .filter(_reading_claimable(now))
                .update(reading_queued_at=now)
            )
            if not requeued:
                continue
            record_audit_event(
                actor=READING_RESUMER,
                tenant=launch.tenant,
                action="altcraft.launch_reading_requeued",
                object_type="altcraft_launch",
                object_id=launch.pk,
                summary={
                    "waiting_since": launch.waiting_since.isoformat(),
                    "claimed_at": launch.reading_claimed_at.isoformat()
                    if launch.reading_claimed_at
                    else None,
                },
            )
            arguments = {"launch_id": launch.pk, "user_id": launch.created_by_id}

            # robust: with the broker still down, the next pass tries again.
            transaction.on_commit(
                lambda arguments=arguments: _enqueue_reading(arguments), robust=True
            )
        count += 1
    return count


ORPHAN_AGE = timedelta(days=1)


def _orphans_delete() -> int:
    """Delete stored files no launch refers to (an upload whose request died half-way) once they
    are a day old: no launch can be created from them any more."""
    referenced = set()
    for upload_path, chunks_path in AltcraftLaunch.objects.filter(
        files_deleted_at__isnull=True
    ).values_list("upload_path", "chunks_path"):
        referenced.update((upload_path, chunks_path))
    cutoff = (utc_now() - ORPHAN_AGE).timestamp()
    count = 0
    for path in storage.upload_dir().iterdir():
        if path.name not in referenced and path.is_file() and path.stat().st_mtime < cutoff:
            storage.delete(path.name)
            count += 1
    return count
