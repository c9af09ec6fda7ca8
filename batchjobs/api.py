"""The automation API's batch job endpoints: the daily trigger (report files landed, see and
request it) and TalkifAI batch jobs (list them, start one). Contributed to the core's router
through AppConfig.api_modules."""

from datetime import date, datetime
from typing import Any

from django.http import HttpRequest
from ninja import Schema, Status
from pydantic import Field, StrictBool, StrictInt

from batchjobs import guardrails
from batchjobs import selectors as batch_selectors
from batchjobs import services as batch_services
from batchjobs.models import FilesLanded
from dashboard.api import schemas
from dashboard.api.endpoints.common import (
    ERRORS,
    RecordId,
    acting,
    create_once,
    require,
    router,
    run_created_response,
    run_out,
    token_use,
)
from dashboard.api.schemas import IsoDate, RunOut, Strict
from dashboard.models import Permission
from dashboard.runs.models import Run
from dashboard.tenancy.scoping import client_ip


class FilesLandedIn(Strict):
    utc_date: IsoDate = Field(description="The UTC day whose files have all landed, as YYYY-MM-DD.")
    note: str = Field("", max_length=300)


class FilesLandedOut(Schema):
    utc_date: date
    source: str
    given_by: str
    given_at: datetime
    note: str


class DailyTriggerIn(Strict):
    files_uploaded_attested: StrictBool = Field(
        description="The pipeline attests that all of today's files have finished uploading "
        "(Optimove does not check it). Must be true."
    )
    wait_time_for_validation_seconds: StrictInt | None = Field(
        None,
        ge=0,
        le=30,
        description="Optimove's validation wait in seconds; null for the vendor's default.",
    )


class Blocker(Schema):
    code: str
    text: str


class DailyTriggerStateOut(Schema):
    utc_date: date
    can_request: bool
    blockers: list[Blocker]
    approval_required: bool
    files_landed_required: bool
    files_landed: bool
    window_ends_at: datetime | None
    open_run: RunOut | None
    triggered_today: RunOut | None
    latest_today: RunOut | None


class BatchJobOut(Schema):
    id: int
    batch_job_id: str
    name: str
    connection: str


@router.post(
    "/t/{tenant_slug}/files-landed",
    response={200: FilesLandedOut, **ERRORS},
    operation_id="files_landed_report",
    summary="Report that all of a UTC day's files have landed",
)
@acting("files_landed_report")
def files_landed_report(request: HttpRequest, tenant_slug: str, payload: FilesLandedIn):
    """The daily trigger's gate when the tenant requires it. Reporting a day twice changes
    nothing and returns the first report."""
    require(request, Permission.REQUEST, "report files landed")
    use = token_use(request)
    signal = batch_services.files_landed_give(
        actor=use.actor(client_ip(request)),
        tenant=use.token.tenant,
        utc_date=payload.utc_date,
        source=FilesLanded.Source.PIPELINE,
        note=payload.note,
    )
    return Status(
        200,
        {
            "utc_date": signal.utc_date,
            "source": signal.source,
            "given_by": signal.given_by_label,
            "given_at": signal.given_at,
            "note": signal.note,
        },
    )


@router.get(
    "/t/{tenant_slug}/daily-trigger",
    response={200: DailyTriggerStateOut, **ERRORS},
    operation_id="daily_trigger_state",
    summary="Today's daily trigger: can it be requested, and the runs of today",
)
def daily_trigger_state(request: HttpRequest, tenant_slug: str):
    require(request, Permission.VIEW, "see the daily trigger")
    use = token_use(request)
    status = guardrails.daily_trigger_status(tenant=use.token.tenant, membership=use.membership)

    def maybe(run: Run | None) -> dict[str, Any] | None:
        return run_out(run) if run is not None else None

    return Status(
        200,
        {
            "utc_date": status.utc_date,
            "can_request": status.can_request,
            "blockers": [{"code": b.code, "text": b.text} for b in status.blockers],
            "approval_required": status.approval_required,
            "files_landed_required": status.files_landed_required,
            "files_landed": status.files_landed is not None,
            "window_ends_at": status.window_ends_at,
            "open_run": maybe(status.open_run),
            "triggered_today": maybe(status.triggered_today),
            "latest_today": maybe(status.latest_today),
        },
    )


@router.post(
    "/t/{tenant_slug}/daily-trigger",
    response={200: schemas.RunOut, 201: schemas.RunOut, **ERRORS},
    operation_id="daily_trigger_request",
    summary="Request today's daily trigger (approval queue unless the tenant allows direct)",
)
@acting("daily_trigger_request")
def daily_trigger_request(request: HttpRequest, tenant_slug: str, payload: DailyTriggerIn):
    """201 with the new run; 200 with the same run, and `Idempotency-Replayed: true`, when the
    Idempotency-Key was used before with the same body. Guardrail refusals are 409 `refused`."""
    require(request, Permission.REQUEST, "request the daily trigger")
    use = token_use(request)
    run, replayed = create_once(
        request,
        endpoint="daily_trigger_request",
        body=payload.model_dump(),
        create=lambda key: batch_services.daily_trigger_request(
            actor=use.actor(client_ip(request)),
            tenant=use.token.tenant,
            wait_time_for_validation_seconds=payload.wait_time_for_validation_seconds,
            idempotency_key=key,
            files_uploaded_attested=payload.files_uploaded_attested,
        ),
    )
    return run_created_response(request, run, replayed)


@router.get(
    "/t/{tenant_slug}/batch-jobs",
    response={200: list[BatchJobOut], **ERRORS},
    operation_id="batch_job_list",
    summary="The tenant's registered TalkifAI batch jobs",
)
def batch_job_list(request: HttpRequest, tenant_slug: str):
    require(request, Permission.VIEW, "see batch jobs")
    return Status(
        200,
        [
            {
                "id": job.pk,
                "batch_job_id": job.batch_job_id,
                "name": job.name,
                "connection": job.connection.name,
            }
            for job in batch_selectors.batch_job_list(tenant=token_use(request).token.tenant)
        ],
    )


@router.post(
    "/t/{tenant_slug}/batch-jobs/{batch_job_pk}/start",
    response={200: schemas.RunOut, 201: schemas.RunOut, **ERRORS},
    operation_id="batch_job_start",
    summary="Start a registered TalkifAI batch job now (operators)",
)
@acting("batch_job_start")
def batch_job_start(request: HttpRequest, tenant_slug: str, batch_job_pk: RecordId):
    require(request, Permission.APPROVE, "start batch jobs")
    use = token_use(request)
    job = batch_selectors.batch_job_get(tenant=use.token.tenant, batch_job_pk=batch_job_pk)
    run, replayed = create_once(
        request,
        endpoint=f"batch_job_start:{job.pk}",
        body={},
        create=lambda key: batch_services.batch_job_start(
            actor=use.actor(client_ip(request)), batch_job=job, idempotency_key=key
        ),
    )
    return run_created_response(request, run, replayed)
