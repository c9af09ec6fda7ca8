"""The automation API's Altcraft profile import: import rows of profiles, then launch a trigger
campaign for them (the vendor's import_and_start_batch_task), as `manage.py altcraft_import` and
the import page do. The launch it makes is seen and cancelled through the launch endpoints
(`GET altcraft/launches/<id>`, `POST altcraft/launches/<id>/cancel`), whatever its kind."""

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext
from ninja import Status
from pydantic import Field, StrictBool, StrictInt

from campaigns.altcraft_launches import reading as altcraft_reading
from campaigns.altcraft_launches import selectors as altcraft_selectors
from campaigns.altcraft_launches import services as altcraft_services
from campaigns.altcraft_launches.api import (
    HEADER_FORBIDDEN,
    AltcraftLaunchOut,
    altcraft_trigger_get,
    csv_upload,
    duplicate_key,
    launch_out,
    matching_of,
)
from campaigns.altcraft_launches.models import AltcraftLaunch, LaunchKind, LaunchState
from dashboard.api.endpoints.common import (
    ERRORS,
    REPLAYED_HEADER,
    acting,
    create_object_once,
    require,
    router,
    token_use,
)
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import Strict
from dashboard.models import Permission
from dashboard.tenancy.scoping import client_ip

SUBSCRIPTIONS = ("email_subscription", "phone_subscription")


class MappingTargetIn(Strict):
    to: str = Field(
        description="field (a profile field, named by `name`), email_subscription or "
        "phone_subscription (with an optional `resource_id`), or ignore (not sent)."
    )
    name: str | None = Field(None, max_length=255, description="The profile field (`field`).")
    resource_id: StrictInt | None = Field(
        None, ge=1, le=2**31 - 1, description="The subscription's resource (a subscription)."
    )


class ImportMappingIn(Strict):
    columns: dict[str, MappingTargetIn] = Field(
        description="Each column of the rows → where its value goes; every column needs one."
    )


class ImportTimeoutIn(Strict):
    days: StrictInt = Field(0, ge=0, le=365)
    hours: StrictInt = Field(0, ge=0, le=10_000)
    minutes: StrictInt = Field(0, ge=0, le=100_000)


class AltcraftImportIn(Strict):
    trigger: StrictInt | str = Field(
        description="The registered trigger campaign: its Altcraft trigger id or its name."
    )
    rows: list[dict[str, str | StrictInt]] = Field(
        min_length=1,
        description="The profiles: objects {<column>: value}, as the rows of a file whose "
        "header is every column named (in the order first seen).",
    )
    mapping: ImportMappingIn | None = Field(
        None,
        description="Where each column goes; the trigger's remembered mapping (the last one "
        "used) when omitted, 422 `no_mapping` when it has none.",
    )
    matching: str | None = Field(
        None,
        description="email, email_profile, phone, profile_id or custom; the trigger's default "
        "when omitted. The matching value must be among the mapped columns.",
    )
    field_name: str | None = Field(None, max_length=120)
    resource_id: StrictInt | None = Field(None, ge=1, le=2**31 - 1)
    content: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    skip_triggers: StrictBool | None = None
    skip_invalid_subscriptions: StrictBool | None = None
    detect_geo: StrictBool | None = None
    timeout: ImportTimeoutIn | None = Field(None, description="The vendor task's timeout.")
    skip_invalid: StrictBool = Field(
        False, description="Leave invalid rows out (listed in the preview) instead of a 422."
    )
    dry_run: StrictBool = Field(False, description="Only preview: nothing is confirmed or sent.")


def _import_rows(request: HttpRequest, payload: AltcraftImportIn) -> tuple[list[str], list]:
    """The rows as a file: (header, rows), each column in the order first seen. 422 with a code
    naming the first problem: too many rows, a column named twice or unnamable, an empty row."""
    if len(payload.rows) + 1 > altcraft_reading.max_rows():  # the header is a row of the file
        raise ApiProblem(
            422,
            "too_many_rows",
            gettext(
                "rows: %(count)s rows, more than the %(most)s a list may have. Split them "
                "into several imports. Nothing was sent."
            )
            % {"count": len(payload.rows), "most": altcraft_reading.max_rows() - 1},
            field="rows",
        )
    repeated = duplicate_key(request.body, "rows")
    if repeated is not None:
        index, key = repeated
        raise ApiProblem(
            422,
            "duplicate_column",
            gettext(
                "rows.%(index)s: names the column %(key)s twice; each column needs one "
                "name. Nothing was sent."
            )
            % {"index": index, "key": repr(key)},
            field=f"rows.{index}",
        )
    header: list[str] = []
    for row in payload.rows:
        header += [key for key in row if key not in header]
    for key in header:
        problem = ""
        if any(mark in key for mark in HEADER_FORBIDDEN) or not key.strip() or key != key.strip():
            problem = gettext(
                "holds a comma, semicolon, tab, line break or edge spaces, or is blank"
            )
        else:
            try:
                altcraft_reading.import_header(iter([(1, [key])]))
            except altcraft_reading.FileRejected:
                problem = gettext("looks like a value (an address or phone number)")
        if problem:
            raise ApiProblem(
                422,
                "invalid_column",
                gettext("rows: the column name %(name)s %(problem)s; rename it.")
                % {"name": repr(key), "problem": problem},
                field="rows",
            )
    cells = []
    for index, row in enumerate(payload.rows):
        values = [str(row.get(key, "")).strip() for key in header]
        if not any(values):
            # A blank row of a file is skipped, not counted: say so rather than drop it.
            raise ApiProblem(
                422,
                "invalid_row",
                gettext("rows.%(index)s: an empty row.") % {"index": index},
                field=f"rows.{index}",
            )
        cells.append(values)
    return header, cells


def _import_mapping(payload: AltcraftImportIn, trigger: Any, header: list[str]) -> dict:
    """The mapping to use: the request's (each of its columns among the rows', each target
    whole) or the trigger's remembered one. 422 `no_mapping`, `unknown_column`, `bad_target`."""
    if payload.mapping is None:
        if not (trigger.import_mapping or {}).get("columns"):
            raise ApiProblem(
                422,
                "no_mapping",
                gettext(
                    "mapping: this trigger has no remembered mapping yet; map every column "
                    "of the rows. Nothing was sent."
                ),
                field="mapping",
            )
        return trigger.import_mapping
    for column, target in payload.mapping.columns.items():
        field = f"mapping.columns.{column}"
        if column not in header:
            raise ApiProblem(
                422,
                "unknown_column",
                gettext("%(field)s: no row has the column %(column)s. Nothing was sent.")
                % {"field": field, "column": repr(column)},
                field=field,
            )
        misplaced = (target.name is not None and target.to != "field") or (
            target.resource_id is not None and target.to not in SUBSCRIPTIONS
        )
        if target.to not in altcraft_reading.MAPPING_TARGETS or misplaced:
            raise ApiProblem(
                422,
                "bad_target",
                gettext(
                    "%(field)s: map a column to field (with its name), email_subscription or "
                    "phone_subscription (with an optional resource_id), or ignore. Nothing "
                    "was sent."
                )
                % {"field": field},
                field=field,
            )
    return payload.mapping.model_dump(exclude_none=True)


def _refusal_problem(launch: AltcraftLaunch) -> ApiProblem:
    """The 422 for rows the reading refused: all of them (discarded), or its invalid rows."""
    if launch.state == LaunchState.DISCARDED:
        return ApiProblem(422, "rows_refused", launch.problem, field="rows")
    rows = [
        {"field": f"rows.{sample['row'] - 2}", "row": sample["row"], "message": sample["reason"]}
        for sample in launch.invalid_samples
    ]
    return ApiProblem(
        422,
        "invalid_rows",
        gettext("%(count)s row(s) are invalid, the first %(first)s: %(reason)s. Nothing was sent.")
        % {"count": launch.rows_invalid, "first": rows[0]["field"], "reason": rows[0]["message"]},
        field=rows[0]["field"],
        errors=rows,
    )


@router.post(
    "/t/{tenant_slug}/altcraft/imports",
    response={200: AltcraftLaunchOut, 201: AltcraftLaunchOut, **ERRORS},
    operation_id="altcraft_import_create",
    summary="Import profiles into Altcraft, then launch a trigger campaign (preview, confirm)",
)
@acting("altcraft_import_create")
def altcraft_import_create(request: HttpRequest, tenant_slug: str, payload: AltcraftImportIn):
    """The rows are read as an uploaded import file is with its column mapping: checked,
    deduplicated by the matching value, cut into requests (each a vendor task polled to its
    result). Invalid rows are a 422 `invalid_rows` listing each (or left out with
    `skip_invalid: true`). Unless `dry_run`, the preview is confirmed: sent now, or
    `awaiting_approval` where the tenant requires an operator's approval. The answer is a
    launch (`kind` import): see it and cancel it through `altcraft/launches/<id>`."""
    require(request, Permission.REQUEST, "import profiles into Altcraft")
    use = token_use(request)
    trigger = altcraft_trigger_get(request, payload.trigger)
    matching, field_name = matching_of(payload, trigger)
    header, rows = _import_rows(request, payload)
    mapping = _import_mapping(payload, trigger, header)
    try:
        altcraft_reading.check_mapping(mapping, header, matching=matching, field_name=field_name)
    except altcraft_reading.MappingRejected as rejected:
        raise ApiProblem(
            422,
            rejected.code,
            str(rejected),
            field=f"mapping.columns.{rejected.column}" if rejected.column else "mapping",
        ) from None
    actor = use.actor(client_ip(request))

    def create(key: str) -> Any:
        try:
            return altcraft_services.launch_from_list(
                actor=actor,
                trigger=trigger,
                kind=LaunchKind.IMPORT,
                upload=csv_upload(header, rows),
                source_name="API rows",
                mapping=mapping,
                parameters={
                    "matching": matching,
                    "field_name": field_name,
                    "resource_id": payload.resource_id,
                    "content": payload.content,
                    "custom_data": payload.custom_data,
                    "skip_triggers": payload.skip_triggers,
                    "skip_invalid_subscriptions": payload.skip_invalid_subscriptions,
                    "detect_geo": payload.detect_geo,
                    "timeout": payload.timeout.model_dump() if payload.timeout else None,
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
        endpoint=f"altcraft_import_create:{trigger.pk}",
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
