"""The automation API's TalkifAI batch job endpoints: list batch jobs, start one."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Status

from batchjobs import selectors as batch_selectors
from batchjobs import services as batch_services
from dashboard.api import schemas
from dashboard.api.endpoints.common import (
    ERRORS,
    RecordId,
    acting,
    create_once,
    require,
    router,
    run_created_response,
    token_use,
)
from dashboard.models import Permission
from dashboard.tenancy import client_ip


@router.get(
    "/t/{tenant_slug}/batch-jobs",
    response={200: list[schemas.BatchJobOut], **ERRORS},
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
