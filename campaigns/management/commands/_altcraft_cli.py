"""Shared bits of the Altcraft ops commands: find the trigger, store the file, print the preview,
confirm, approve, retry, follow. The same services as the pages; the audit rows name the --as
member and the operating-system user (batchjobs' `acting_as`)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.altcraft_launches import selectors, services, storage
from campaigns.altcraft_launches.models import AltcraftLaunch, AltcraftTrigger, LaunchState
from dashboard.management.commands._common import acting_as, confirmed, error_text
from dashboard.models import Membership, Tenant
from dashboard.runs.services import RunActionError


def add_common_arguments(parser) -> None:
    parser.add_argument("--as", dest="username", required=True, help="Act as this member.")
    parser.add_argument("--tenant", help="Tenant slug (needed when the user has several).")
    parser.add_argument("--trigger", type=int, help="The Altcraft trigger campaign ID.")
    parser.add_argument("--connection", help="The Altcraft connection's name, if several.")
    parser.add_argument("--file", help="The CSV or XLSX file.")
    parser.add_argument("--matching", help="email, email_profile, phone, profile_id or custom.")
    parser.add_argument("--field-name", help="The profile field for custom matching.")
    parser.add_argument("--content", help="content: a JSON object.")
    parser.add_argument("--custom-data", help="custom_data: a JSON object.")
    parser.add_argument("--attach", action="append", default=[], help="A file to attach.")
    parser.add_argument("--skip-triggers", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="Preview only; send nothing.")
    parser.add_argument("--yes", action="store_true", help="Confirm without asking.")
    parser.add_argument("--follow", action="store_true", help="Print progress until settled.")
    parser.add_argument("--wait", type=float, default=300.0, help="Seconds to follow at most.")
    parser.add_argument("--approve", type=int, metavar="LAUNCH", help="Approve a launch.")
    parser.add_argument("--sha256", help="With --approve: the file's SHA-256 you checked.")
    parser.add_argument("--retry", type=int, metavar="LAUNCH", help="Resend failed requests.")


def membership_for(username: str, slug: str | None, command: str) -> tuple[Any, Membership]:
    memberships = Membership.objects.filter(user__username=username).select_related("tenant")
    if slug:
        memberships = memberships.filter(tenant__slug=slug)
    tenants = [membership.tenant for membership in memberships]
    if not tenants:
        raise CommandError(f"{username} is not a member of {slug or 'any tenant'}.")
    if len(tenants) > 1:
        raise CommandError(f"{username} is in several tenants; name one with --tenant.")
    tenant: Tenant = tenants[0]
    return acting_as(username, tenant, command)


def find_trigger(tenant: Tenant, options: dict[str, Any]) -> AltcraftTrigger:
    if not options.get("trigger"):
        raise CommandError("Name the trigger campaign with --trigger <id>.")
    triggers = selectors.trigger_list(tenant=tenant).filter(trigger_id=options["trigger"])
    if options.get("connection"):
        triggers = triggers.filter(connection__name=options["connection"])
    found = list(triggers)
    if not found:
        raise CommandError(
            f"{tenant.name} has not registered Altcraft trigger {options['trigger']}; register "
            "it on the Altcraft page or with altcraft_trigger_register first."
        )
    if len(found) > 1:
        raise CommandError("Several connections have this trigger; name one with --connection.")
    return found[0]


def json_option(options: dict[str, Any], name: str) -> dict[str, Any] | None:
    try:
        return services.parse_json_object(options.get(name) or "", name)
    except ValidationError as error:
        raise CommandError(f"--{name.replace('_', '-')}: {error_text(error)}") from None


def attachments(paths: list[str]) -> list[dict[str, str]] | None:
    import mimetypes

    found = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"--attach: no file {path}.")
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        try:
            found.append(
                services.attachment(
                    name=file.name, content=file.read_bytes(), content_type=content_type
                )
            )
        except ValidationError as error:
            raise CommandError(f"--attach: {error_text(error)}") from None
    return found or None


def store_file(path: str) -> services.StoredUpload:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"No file {path}.")
    try:
        with file.open("rb") as stream:
            return services.upload_store(
                pieces=iter(lambda: stream.read(1024 * 1024), b""),
                size_hint=file.stat().st_size,
            )
    except ValidationError as error:
        raise CommandError(error_text(error)) from None


def create_from_file(
    actor, trigger: AltcraftTrigger, *, kind: str, path: str, parameters: dict[str, Any]
) -> AltcraftLaunch:
    """A launch of `kind` from the file at `path`, stored encrypted; nothing is kept or sent
    when the service refuses it."""
    stored = store_file(path)
    try:
        return services.launch_create(
            actor=actor,
            trigger=trigger,
            kind=kind,
            upload=stored,
            source_name=path.rsplit("/", 1)[-1],
            parameters=parameters,
            idempotency_key=new_key(),
        )
    except ValidationError as error:
        storage.delete(stored.path)
        raise CommandError(f"Not sent: {error_text(error)}") from None


def print_preview(command: BaseCommand, launch: AltcraftLaunch) -> None:
    write = command.stdout.write
    write(f"Launch #{launch.pk}: {launch.get_kind_display()} → {launch.trigger}")
    write(f"  file: {launch.source_name} ({launch.source_bytes} bytes, {launch.encoding or '?'})")
    write(f"  sha256: {launch.source_sha256}")
    if launch.problem:
        raise CommandError(f"This file cannot be sent: {launch.problem} Nothing was sent.")
    write(f"  rows read: {launch.rows_read}")
    write(f"  rows to send: {launch.rows_valid}")
    write(f"  invalid rows (left out): {launch.rows_invalid}")
    for problem in launch.invalid_samples[:20]:
        write(f"    row {problem['row']}: {problem['reason']}")
    if launch.rows_invalid > 20:
        write(f"    … and {launch.rows_invalid - 20} more")
    write(f"  duplicates removed: {launch.rows_duplicate}")
    if launch.column:
        write(f"  column sent: {launch.column}")
        if launch.ignored_columns:
            write(f"  ignored: {', '.join(launch.ignored_columns)}")
    if launch.rows_empty:
        shown = ", ".join(str(row) for row in launch.empty_samples)
        write(f"  rows with no {launch.column} (not sent): {launch.rows_empty} (rows {shown})")
    write(
        f"  requests: {launch.chunks.count()} (limit {launch.body_limit_bytes} bytes, "
        f"largest {launch.largest_body_bytes})"
    )


def confirm_and_send(command: BaseCommand, actor, launch: AltcraftLaunch, options) -> None:
    if options["dry_run"]:
        services.launch_discard(actor=actor, launch=launch)
        command.stdout.write("Dry run: nothing was sent; the stored file is deleted.")
        return
    skip_empty = bool(options.get("skip_empty"))
    if launch.rows_empty and not skip_empty:
        services.launch_discard(actor=actor, launch=launch)
        raise CommandError(
            f"{services.empty_rows_refusal(launch)} (Pass --skip-empty to skip them.) "
            "The stored file is deleted."
        )
    if not options["yes"] and not confirmed(
        f"Send to {launch.rows_valid} recipients? Type yes to confirm: ", expected="yes"
    ):
        services.launch_discard(actor=actor, launch=launch)
        raise CommandError("Not sent (pass --yes, or confirm on a terminal). File deleted.")
    try:
        launch = services.launch_confirm(
            actor=actor, launch=launch, sha256_seen=launch.source_sha256, skip_empty=skip_empty
        )
    except RunActionError as error:
        raise CommandError(f"Not sent: {error}") from None
    if launch.state == LaunchState.AWAITING_APPROVAL:
        command.stdout.write(
            f"Confirmed. An operator must approve it: altcraft_launch --approve {launch.pk} "
            f"--sha256 {launch.source_sha256} --as <operator>"
        )
        return
    command.stdout.write(
        command.style.SUCCESS(f"Sending in {launch.chunks.count()} requests (launch #{launch.pk}).")
    )
    if options["follow"]:
        follow(command, launch, timeout=options["wait"])


def approve_or_retry(command: BaseCommand, options, command_name: str) -> bool:
    """Handle --approve / --retry; True when one of them was given."""
    launch_pk = options.get("approve") or options.get("retry")
    if not launch_pk:
        return False
    actor, membership = membership_for(options["username"], options.get("tenant"), command_name)
    launch = (
        AltcraftLaunch.objects.filter(pk=launch_pk, tenant=membership.tenant)
        .select_related("trigger", "tenant")
        .first()
    )
    if launch is None:
        raise CommandError(f"No launch #{launch_pk} in {membership.tenant.name}.")
    try:
        if options.get("approve"):
            if not options.get("sha256"):
                raise CommandError("--approve needs --sha256: the hash of the file you checked.")
            launch = services.launch_approve(
                actor=actor, membership=membership, launch=launch, sha256_seen=options["sha256"]
            )
            command.stdout.write(
                command.style.SUCCESS(
                    f"Launch #{launch.pk}: {services.launch_approved_message(launch)}"
                )
            )
        else:
            count = services.launch_retry_failed(actor=actor, launch=launch)
            command.stdout.write(f"Sending {count} failed request(s) again.")
    except (RunActionError, PermissionDenied) as error:
        raise CommandError(str(error)) from None
    if options["follow"]:
        follow(command, launch, timeout=options["wait"])
    return True


def follow(command: BaseCommand, launch: AltcraftLaunch, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        progress = selectors.launch_progress(launch=launch)
        line = (
            f"{progress.percent}% · {progress.succeeded}/{len(progress.chunks)} requests done, "
            f"{progress.failed} failed, {progress.unknown} outcome unknown"
        )
        if line != seen:
            command.stdout.write(line)
            seen = line
        if progress.settled or time.monotonic() >= deadline:
            for status in progress.chunks:
                detail = status.run.failure_message if status.run else ""
                command.stdout.write(
                    f"  request {status.chunk.number} (rows {status.chunk.first_row}-"
                    f"{status.chunk.last_row}): {status.state_label}"
                    + (f", {status.profile_count} profiles" if status.profile_count else "")
                    + (f" — {detail}" if detail else "")
                )
            return
        time.sleep(1.0)


def new_key() -> str:
    return uuid.uuid4().hex
