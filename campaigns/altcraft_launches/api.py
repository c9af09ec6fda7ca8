"""The automation API's Altcraft launch endpoints: launch a trigger, see or cancel a launch."""

import csv
import io
import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext
from ninja import Schema, Status
from pydantic import Field, StrictBool, StrictInt

from campaigns.altcraft_launches import cancel as altcraft_cancel
from campaigns.altcraft_launches import reading as altcraft_reading
from campaigns.altcraft_launches import selectors as altcraft_selectors
from campaigns.altcraft_launches import services as altcraft_services
from campaigns.altcraft_launches.models import (
    MATCHING_CHOICES,
    AltcraftLaunch,
    LaunchKind,
    LaunchState,
)
from dashboard.api.endpoints.common import (
    ERRORS,
    REPLAYED_HEADER,
    RecordId,
    acting,
    create_object_once,
    require,
    router,
    token_use,
)
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import OutcomeOut, Strict
from dashboard.models import Permission
from dashboard.tenancy.scoping import client_ip


class AltcraftLaunchIn(Strict):
    trigger: StrictInt | str = Field(
        description="The registered trigger campaign: its Altcraft trigger id or its name."
    )
    matching: str | None = Field(
        None,
        description="email, email_profile, phone, profile_id or custom; the trigger's default "
        "when omitted.",
    )
    field_name: str | None = Field(None, max_length=120)
    resource_id: StrictInt | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Only for profile imports; a bulk launch must leave it out.",
    )
    recipients: list[str | StrictInt | dict[str, str | StrictInt]] = Field(
        min_length=1,
        description="Values of the matching key, or objects {<column>: value} (column: email, "
        "phone, profile_id, or the custom field's name). With `column`, objects are rows of a "
        "CRM export: only `column`'s value is sent, their other keys are ignored.",
    )
    column: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description='The key of object recipients whose value is sent (e.g. "email" of '
        '{"first_name": …, "email": …}); 422 `column_missing` when one lacks it, '
        "`duplicate_column` when one names it twice, `empty_values` when it is empty.",
    )
    content: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    skip_triggers: StrictBool | None = None
    skip_invalid: StrictBool = Field(
        False, description="Leave invalid recipients out (listed in the preview) instead of a 422."
    )
    skip_empty: StrictBool = Field(
        False,
        description="With `column`: leave out the recipients whose value in it is empty "
        "(counted in the preview) instead of a 422 `empty_values`.",
    )
    dry_run: StrictBool = Field(False, description="Only preview: nothing is confirmed or sent.")


class InvalidRecipient(Schema):
    recipient: int = Field(description="Index in `recipients` (from 0).")
    row: int = Field(description="Row of the list as the launch page shows it (header is 1).")
    reason: str


class LaunchPreviewOut(Schema):
    rows: int
    valid: int
    invalid: int
    invalid_rows: list[InvalidRecipient]
    duplicates_removed: int
    requests_needed: int
    column: str = Field(description="The column whose values are sent.")
    ignored_columns: list[str] = Field(description="The other columns: not sent.")
    empty: int = Field(description="Recipients with no value in `column`: not sent.")
    empty_recipients: list[int] = Field(
        description="Indexes in `recipients` of the first empty ones."
    )


class LaunchProgressOut(Schema):
    chunks: int
    chunks_sent: int
    chunks_succeeded: int
    chunks_failed: int
    chunks_unknown: int
    chunks_open: int
    percent: int
    profiles_reached: int
    rows_succeeded: int = Field(description="Rows in the requests that succeeded.")
    profiles_reported: bool = Field(
        description="False when some succeeded request's answer did not say how many profiles "
        "it reached: then profiles_reached counts only the others."
    )


class AltcraftLaunchOut(Schema):
    id: int
    kind: str = Field(description="start_batch (a bulk launch) or import (profile import).")
    trigger: str
    trigger_id: int
    state: str
    state_label: str
    problem: str
    status_url: str
    preview: LaunchPreviewOut
    progress: LaunchProgressOut
    outcome: OutcomeOut
    created_at: datetime


def altcraft_trigger_get(request: HttpRequest, reference: int | str) -> Any:
    """The token's tenant's trigger named by its Altcraft id or name: 404 or 422 otherwise."""
    triggers = altcraft_selectors.trigger_list(tenant=token_use(request).token.tenant)
    text = str(reference).strip()
    # isascii: "¹" is a digit to str.isdigit() but not to int() (as dashboard.pauses.services
    # reads a connection's id); past ten digits no Altcraft id fits.
    if isinstance(reference, int) or (text.isascii() and text.isdigit()):
        number = int(text) if len(text) <= 10 else 0
        found = list(triggers.filter(trigger_id=number)) if 0 < number < 2**31 else []
    else:
        found = list(triggers.filter(name=text))
    if len(found) != 1:
        raise ApiProblem(
            404 if not found else 422,
            "not_found" if not found else "ambiguous_trigger",
            gettext("No trigger campaign of this tenant has that Altcraft id or name.")
            if not found
            else gettext(
                "Several trigger campaigns match; register them apart or use the other one's name."
            ),
            field="trigger",
        )
    return found[0]


def matching_of(payload: Any, trigger: Any) -> tuple[str, str | None]:
    """(matching, field_name) of a launch or import request, the trigger's defaults for those
    left out; 422 `invalid_request` for an unknown matching or custom matching without a field."""
    matching = payload.matching or trigger.default_matching
    if matching not in dict(MATCHING_CHOICES):
        raise ApiProblem(
            422,
            "invalid_request",
            gettext("matching: one of %(choices)s.")
            % {"choices": ", ".join(dict(MATCHING_CHOICES))},
            field="matching",
        )
    field_name = (payload.field_name or trigger.default_field_name or "").strip() or None
    if matching == "custom" and not field_name:
        raise ApiProblem(
            422,
            "invalid_request",
            gettext("field_name: custom matching needs the profile field name."),
            field="field_name",
        )
    return matching, field_name


def _recipient_values(payload: AltcraftLaunchIn, column: str) -> list[str]:
    """The recipients as lines of the pasted list; 422 naming the first one that cannot be."""
    values = []
    for index, recipient in enumerate(payload.recipients):
        field = f"recipients.{index}"
        if isinstance(recipient, dict):
            if len(recipient) != 1 or column not in recipient:
                raise ApiProblem(
                    422,
                    "invalid_recipient",
                    gettext("%(field)s: an object recipient holds exactly one key, %(column)s.")
                    % {"field": field, "column": repr(column)},
                    field=field,
                )
            recipient = recipient[column]
        value = str(recipient).strip()
        if not value:
            # A blank line of a list is skipped, not counted: say so rather than drop it.
            raise ApiProblem(
                422,
                "invalid_recipient",
                gettext("%(field)s: an empty recipient.") % {"field": field},
                field=field,
            )
        if len(value.splitlines()) > 1:
            raise ApiProblem(
                422,
                "invalid_recipient",
                gettext("%(field)s: a value cannot span lines.") % {"field": field},
                field=field,
            )
        values.append(value)
    return values


# What the list written for a `column` request may not hold in its header: its delimiter and
# line breaks (the reader finds the delimiter from the header line).
HEADER_FORBIDDEN = (",", ";", "\t", "\n", "\r")


class _JsonObject(dict):
    """A parsed JSON object that remembers the first key its text named twice."""

    repeated = ""


def _json_object(items: list[tuple[str, Any]]) -> _JsonObject:
    parsed = _JsonObject(items)
    seen: set[str] = set()
    for name, _ in items:
        if name in seen:
            parsed.repeated = name
            break
        seen.add(name)
    return parsed


def duplicate_key(body: bytes, list_name: str = "recipients") -> tuple[int, str] | None:
    """(index, key) of the first object of the body's `list_name` that names a key twice: the
    JSON parser keeps only the last of the two, so it is found in the raw body."""
    try:
        raw = json.loads(body, object_pairs_hook=_json_object)
    except ValueError:
        return None
    recipients = raw.get(list_name) if isinstance(raw, dict) else None
    for index, recipient in enumerate(recipients if isinstance(recipients, list) else []):
        if isinstance(recipient, _JsonObject) and recipient.repeated:
            return index, recipient.repeated
    return None


def _export_rows(
    request: HttpRequest, payload: AltcraftLaunchIn, column: str
) -> tuple[list[str], list[list[str]]]:
    """The recipients as a CRM export: (header, rows), `column` first, then each other key in
    the order first seen. 422 with a code naming the first recipient that cannot be a row."""
    repeated = duplicate_key(request.body)
    if repeated is not None:
        index, key = repeated
        raise ApiProblem(
            422,
            "duplicate_column",
            gettext(
                "recipients.%(index)s: names the key %(key)s twice; each column needs "
                "one name. Nothing was sent."
            )
            % {"index": index, "key": repr(key)},
            field=f"recipients.{index}",
        )
    header = [column]
    for recipient in payload.recipients:
        if isinstance(recipient, dict):
            header += [key for key in recipient if key not in header]
    bad = next((key for key in header if any(mark in key for mark in HEADER_FORBIDDEN)), None)
    if bad is not None or any(not key.strip() for key in header):
        raise ApiProblem(
            422,
            "invalid_recipient",
            gettext(
                "recipients: the key %(bad)s holds a comma, semicolon, tab or line "
                "break (or is blank); rename it."
            )
            % {"bad": repr(bad)},
            field="recipients",
        )
    rows, empty = [], []
    for index, recipient in enumerate(payload.recipients):
        field = f"recipients.{index}"
        if not isinstance(recipient, dict):
            recipient = {column: recipient}
        if column not in recipient:
            raise ApiProblem(
                422,
                "column_missing",
                gettext(
                    "%(field)s: has no key %(column)s, the column whose value is sent. "
                    "Nothing was sent."
                )
                % {"field": field, "column": repr(column)},
                field=field,
            )
        cells = [str(recipient.get(key, "")).strip() for key in header]
        if not any(cells):
            # A blank row of a list is skipped, not counted: say so rather than drop it.
            raise ApiProblem(
                422,
                "invalid_recipient",
                gettext("%(field)s: an empty recipient.") % {"field": field},
                field=field,
            )
        if len(cells[0].splitlines()) > 1:
            raise ApiProblem(
                422,
                "invalid_recipient",
                gettext("%(field)s: a value cannot span lines.") % {"field": field},
                field=field,
            )
        if not cells[0]:
            empty.append({"field": field, "row": index + 2, "message": f"no {column}"})
        rows.append(cells)
    if empty and (not payload.skip_empty or len(empty) == len(rows)):
        raise ApiProblem(
            422,
            "empty_values",
            gettext(
                "%(count)s of %(total)s recipient(s) have no value in %(column)s, the "
                "first %(first)s. Fill them, or pass skip_empty: true to send the "
                "others without them. Nothing was sent."
            )
            % {
                "count": len(empty),
                "total": len(rows),
                "column": repr(column),
                "first": empty[0]["field"],
            },
            field=empty[0]["field"],
            errors=empty[:200],
        )
    return header, rows


def csv_upload(header: list[str], rows: list[list[str]]) -> Any:
    """`header` and `rows` stored as the CSV file an upload would be (the reader reads it)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return altcraft_services.upload_store(pieces=[text.getvalue().encode("utf-8")])


def _invalid_recipients(values: list[str], matching: str) -> list[dict[str, Any]]:
    """Each recipient the launch would refuse, by the launch's own rule, with its row number
    (an empty value is not invalid: `empty_values` is about those)."""
    invalid = []
    for index, value in enumerate(values):
        if not value:
            continue
        _, _, reason = altcraft_reading.clean_value(matching, value)
        if reason:
            invalid.append({"field": f"recipients.{index}", "row": index + 2, "message": reason})
    return invalid


def launch_out(request: HttpRequest, launch: Any) -> dict[str, Any]:
    """A launch (bulk or import) as the API answers it: its preview, progress and outcome."""
    progress = altcraft_selectors.launch_progress(launch=launch)
    return {
        "id": launch.pk,
        "kind": launch.kind,
        "trigger": launch.trigger.name,
        "trigger_id": launch.trigger.trigger_id,
        "state": launch.state,
        "state_label": launch.get_state_display(),
        "problem": launch.problem,
        "status_url": f"/api/v1/t/{launch.tenant.slug}/altcraft/launches/{launch.pk}",
        "preview": {
            "rows": launch.rows_read,
            "valid": launch.rows_valid,
            "invalid": launch.rows_invalid,
            "invalid_rows": [
                {"recipient": sample["row"] - 2, "row": sample["row"], "reason": sample["reason"]}
                for sample in launch.invalid_samples or []
            ],
            "duplicates_removed": launch.rows_duplicate,
            "requests_needed": len(progress.chunks),
            "column": launch.column,
            "ignored_columns": launch.ignored_columns or [],
            "empty": launch.rows_empty,
            "empty_recipients": [row - 2 for row in launch.empty_samples or []],
        },
        "progress": {
            "chunks": len(progress.chunks),
            "chunks_sent": sum(1 for status in progress.chunks if status.run is not None),
            "chunks_succeeded": progress.succeeded,
            "chunks_failed": progress.failed,
            "chunks_unknown": progress.unknown,
            "chunks_open": progress.open,
            "percent": progress.percent,
            "profiles_reached": progress.profiles_reached,
            "rows_succeeded": progress.rows_succeeded,
            "profiles_reported": not progress.profiles_unreported,
        },
        "outcome": vars(altcraft_selectors.launch_outcome(launch, progress)),
        "created_at": launch.created_at,
    }


def _refusal_problem(launch: AltcraftLaunch) -> ApiProblem:
    """The 422 for a list the reading refused: discarded, or its invalid rows, each named."""
    if launch.state == LaunchState.DISCARDED:
        return ApiProblem(422, "invalid_recipients", launch.problem, field="recipients")
    if not launch.rows_invalid:
        return ApiProblem(
            422,
            "empty_values",
            altcraft_services.empty_rows_refusal(launch),
            field=f"recipients.{launch.empty_samples[0] - 2}",
        )
    rows = [
        {
            "field": f"recipients.{sample['row'] - 2}",
            "row": sample["row"],
            "message": sample["reason"],
        }
        for sample in launch.invalid_samples
    ]
    return ApiProblem(
        422,
        "invalid_recipients",
        gettext(
            "%(count)s recipient(s) are invalid, the first %(first)s: %(reason)s. Nothing was sent."
        )
        % {
            "count": launch.rows_invalid,
            "first": rows[0]["field"],
            "reason": rows[0]["message"],
        },
        field=rows[0]["field"],
        errors=rows,
    )


@router.post(
    "/t/{tenant_slug}/altcraft/launches",
    response={200: AltcraftLaunchOut, 201: AltcraftLaunchOut, **ERRORS},
    operation_id="altcraft_launch_create",
    summary="Launch an Altcraft trigger campaign for a list of recipients (preview, confirm)",
)
@acting("altcraft_launch_create")
def altcraft_launch_create(request: HttpRequest, tenant_slug: str, payload: AltcraftLaunchIn):
    """The list is read as a pasted list is on the launch page: checked, deduplicated, cut into
    requests. Invalid recipients are a 422 `invalid_recipients` listing each (or left out with
    `skip_invalid: true`). Unless `dry_run`, the preview is confirmed: sent now, or
    `awaiting_approval` where the tenant requires an operator's approval."""
    require(request, Permission.REQUEST, "launch Altcraft triggers")
    use = token_use(request)
    trigger = altcraft_trigger_get(request, payload.trigger)
    if payload.resource_id is not None:
        raise ApiProblem(
            422,
            "invalid_request",
            gettext(
                "resource_id: only a profile import takes a resource; a bulk launch matches "
                "existing profiles."
            ),
            field="resource_id",
        )
    matching, field_name = matching_of(payload, trigger)
    if payload.column is None:
        header, rows = None, None
        values = _recipient_values(payload, altcraft_reading.launch_column(matching, field_name))
    else:
        header, rows = _export_rows(request, payload, payload.column)
        values = [row[0] for row in rows]
    invalid = _invalid_recipients(values, matching)
    if invalid and (not payload.skip_invalid or len(invalid) == len(values)):
        raise ApiProblem(
            422,
            "invalid_recipients",
            gettext(
                "%(count)s of %(total)s recipient(s) are invalid, the first "
                "%(first)s: %(reason)s. Nothing was sent."
            )
            % {
                "count": len(invalid),
                "total": len(values),
                "first": invalid[0]["field"],
                "reason": invalid[0]["message"],
            },
            field=invalid[0]["field"],
            errors=invalid[:200],
        )
    actor = use.actor(client_ip(request))

    def create(key: str) -> Any:
        upload = csv_upload(header, rows) if header is not None else None
        try:
            return altcraft_services.launch_from_list(
                actor=actor,
                trigger=trigger,
                kind=LaunchKind.START_BATCH,
                text="\n".join(values) if upload is None else None,
                upload=upload,
                column=payload.column,
                skip_empty=payload.skip_empty,
                matching=matching,
                field_name=field_name,
                source_name="API recipients",
                parameters={
                    "matching": matching,
                    "field_name": field_name,
                    "content": payload.content,
                    "custom_data": payload.custom_data,
                    "skip_triggers": payload.skip_triggers,
                },
                idempotency_key=key,
                read_now=True,
                skip_invalid=payload.skip_invalid,
                confirm=not payload.dry_run,
            )
        except altcraft_services.ListRefused as refused:
            raise _refusal_problem(refused.launch) from None

    launch, replayed = create_object_once(
        request,
        endpoint=f"altcraft_launch_create:{trigger.pk}",
        body=payload.model_dump(),
        create=create,
        find=lambda key: AltcraftLaunch.objects.filter(
            tenant=use.token.tenant, idempotency_key=key
        ).first(),
    )
    launch = altcraft_selectors.launch_get(tenant=use.token.tenant, launch_pk=launch.pk)
    request._api_replayed = replayed  # type: ignore[attr-defined]
    if replayed:
        request._api_response[REPLAYED_HEADER] = "true"  # type: ignore[attr-defined]
    return Status(200 if replayed else 201, launch_out(request, launch))


@router.get(
    "/t/{tenant_slug}/altcraft/launches/{launch_id}",
    response={200: AltcraftLaunchOut, **ERRORS},
    operation_id="altcraft_launch_get",
    summary="An Altcraft launch: its preview and progress (chunks sent, failed, profiles)",
)
def altcraft_launch_get(request: HttpRequest, tenant_slug: str, launch_id: RecordId):
    require(request, Permission.VIEW, "see Altcraft launches")
    launch = altcraft_selectors.launch_get(
        tenant=token_use(request).token.tenant, launch_pk=launch_id
    )
    return Status(200, launch_out(request, launch))


class ChunkTooLate(Schema):
    chunk: int = Field(description="The chunk's number (from 1).")
    state: str = Field(description="Its run's state: being sent, sent or ended.")


class LaunchCancelOut(Schema):
    launch: AltcraftLaunchOut
    chunks_cancelled: list[int] = Field(
        description="Chunks withdrawn by this cancel: they never reach Altcraft."
    )
    chunks_too_late: list[ChunkTooLate] = Field(
        description="Chunks this cancel was too late for: being sent or already sent."
    )


@router.post(
    "/t/{tenant_slug}/altcraft/launches/{launch_id}/cancel",
    response={200: LaunchCancelOut, **ERRORS},
    operation_id="altcraft_launch_cancel",
    summary="Cancel a launch: unsent, it is discarded; sending, its waiting chunks are withdrawn",
)
@acting("altcraft_launch_cancel")
def altcraft_launch_cancel(request: HttpRequest, tenant_slug: str, launch_id: RecordId):
    """Its uploader, or an operator. `chunks_too_late` lists the chunks the workers had already
    taken (being sent, sent, ended): the cancel says what it could not stop. A launch already
    closed (discarded, rejected) is a 409 `refused`."""
    require(request, Permission.REQUEST, "cancel Altcraft launches")
    use = token_use(request)
    launch = altcraft_selectors.launch_get(tenant=use.token.tenant, launch_pk=launch_id)
    outcome = altcraft_cancel.launch_cancel(actor=use.actor(client_ip(request)), launch=launch)
    launch = altcraft_selectors.launch_get(tenant=use.token.tenant, launch_pk=launch_id)
    return Status(
        200,
        {
            "launch": launch_out(request, launch),
            "chunks_cancelled": outcome.cancelled,
            "chunks_too_late": [
                {"chunk": number, "state": state} for number, state in outcome.too_late
            ],
        },
    )
