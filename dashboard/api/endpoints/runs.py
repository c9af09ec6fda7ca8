"""The automation API's run endpoints: list, get (optionally waiting), approve, reject, cancel."""

from __future__ import annotations

import time
from typing import Annotated

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Status

from dashboard.api import schemas
from dashboard.api.endpoints.common import (
    ERRORS,
    WAIT_STEP_SECONDS,
    RecordId,
    acting,
    require,
    router,
    run_detail_out,
    run_out,
    token_use,
)
from dashboard.api.problems import ApiProblem
from dashboard.api.schemas import IsoDate
from dashboard.models import Permission
from dashboard.runs import selectors as run_selectors
from dashboard.runs import services as run_services
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import TERMINAL_STATES, RunState
from dashboard.tenancy.scoping import client_ip


def pause(seconds: float) -> None:
    """The long poll's wait between two reads; its own name so a test can replace this one
    pause without replacing `time.sleep` for every thread of the process."""
    time.sleep(seconds)


def _settled(run: Run) -> bool:
    """Where a waiting pipeline should look again: the run ended, or a person must act."""
    return (
        run.state in TERMINAL_STATES
        or run.state == RunState.AWAITING_APPROVAL
        or (run.state == RunState.OUTCOME_UNKNOWN and run.needs_person)
    )


@router.get(
    "/t/{tenant_slug}/runs",
    response={200: schemas.RunPage, **ERRORS},
    operation_id="run_list",
    summary="The tenant's runs, newest first, with filters and keyset pagination",
)
def run_list(
    request: HttpRequest,
    tenant_slug: str,
    state: Query[RunState | None] = None,
    operation: Query[Operation | None] = None,
    connection: Query[str | None] = None,
    requester: Query[str | None] = None,
    approver: Query[str | None] = None,
    created_from: Annotated[
        IsoDate | None,
        Query(description="Runs created on or after this UTC day (YYYY-MM-DD)."),
    ] = None,
    created_to: Annotated[
        IsoDate | None,
        Query(description="Runs created on or before this UTC day (YYYY-MM-DD)."),
    ] = None,
    vendor_reference: Query[str | None] = None,
    before: Annotated[
        int | None,
        Query(
            ge=1,
            description="The cursor: the `next_cursor` of the previous page, a run id. The "
            "page holds the runs created before that run (older ones), so runs added meanwhile "
            "never shift a page; an id that is not one of this tenant's runs is a 422 "
            "`invalid_cursor`.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Runs per page, 1 to 200.")] = 50,
):
    """`before` is the `next_cursor` of the previous page (a run id): the page holds the runs
    created before that run, so runs added meanwhile never shift a page."""
    require(request, Permission.VIEW, _("see runs"))
    tenant = token_use(request).token.tenant
    filters: run_selectors.RunFilters = {}
    if state:
        filters["state"] = state
    if operation:
        filters["operation"] = operation
    nothing = Status(200, {"items": [], "next_cursor": None})
    if connection:
        # By name, within the tenant: an unknown name matches nothing rather than everything.
        found = run_selectors.run_connection_choices(tenant=tenant).filter(name=connection).first()
        if found is None:
            return nothing
        filters["connection"] = found
    if requester:
        person = run_selectors.run_requester_choices(tenant=tenant).filter(username=requester)
        if not person.exists():
            return nothing
        filters["requester"] = person.first()
    if approver:
        person = run_selectors.run_requester_choices(tenant=tenant).filter(username=approver)
        if not person.exists():
            return nothing
        filters["approver"] = person.first()
    if created_from:
        filters["created_from"] = created_from
    if created_to:
        filters["created_to"] = created_to
    if vendor_reference:
        filters["vendor_reference"] = vendor_reference[:120]
    runs = run_selectors.run_list(tenant=tenant, filters=filters)
    if before is not None:
        cursor = Run.objects.filter(tenant=tenant, pk=before).values("created_at").first()
        if cursor is None:
            raise ApiProblem(
                422, "invalid_cursor", "before: no run of this tenant has that id.", field="before"
            )
        runs = runs.filter(
            Q(created_at__lt=cursor["created_at"])
            | Q(created_at=cursor["created_at"], pk__lt=before)
        )
    page = list(runs[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return Status(
        200,
        {
            "items": [run_out(run) for run in page],
            "next_cursor": page[-1].pk if more else None,
        },
    )


@router.get(
    "/t/{tenant_slug}/runs/{run_id}",
    response={200: schemas.RunDetailOut, **ERRORS},
    operation_id="run_get",
    summary="One run with its approvals and timeline; `wait` long-polls for its outcome",
)
def run_get(
    request: HttpRequest,
    tenant_slug: str,
    run_id: RecordId,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=30,
            description="Seconds (0 to 30) to wait for the run to end or to need a person; "
            "0 answers at once.",
        ),
    ] = 0,
):
    """With `wait=N` (at most 30), answers when the run has ended or needs a person (awaiting
    approval, an outcome a person must settle), or after N seconds, whichever comes first."""
    require(request, Permission.VIEW, _("see runs"))
    tenant = token_use(request).token.tenant
    run = run_selectors.run_get(tenant=tenant, run_id=run_id)
    deadline = time.monotonic() + min(wait, settings.API_WAIT_MAX_SECONDS)
    while not _settled(run) and time.monotonic() < deadline:
        pause(WAIT_STEP_SECONDS)
        run = run_selectors.run_get(tenant=tenant, run_id=run_id)
    return Status(200, run_detail_out(run))


@router.post(
    "/t/{tenant_slug}/runs/{run_id}/approve",
    response={200: schemas.RunOut, **ERRORS},
    operation_id="run_approve",
    summary="Approve a run awaiting approval (an operator; never the requester)",
)
@acting("run_approve")
def run_approve(
    request: HttpRequest, tenant_slug: str, run_id: RecordId, payload: schemas.ApproveIn
):
    require(request, Permission.APPROVE, _("approve runs"))
    use = token_use(request)
    run = run_selectors.run_get(tenant=use.token.tenant, run_id=run_id)
    if run.requested_by_id is not None and run.requested_by_id == use.membership.user_id:
        raise ApiProblem(
            403,
            "four_eyes",
            _("The token's person requested this run: another operator must approve it."),
        )
    run = run_services.run_approve(
        actor=use.actor(client_ip(request)),
        run=run,
        parameters_hash_seen=payload.parameters_hash,
        comment=payload.comment,
    )
    run.refresh_from_db()
    return Status(200, run_out(run))


@router.post(
    "/t/{tenant_slug}/runs/{run_id}/reject",
    response={200: schemas.RunOut, **ERRORS},
    operation_id="run_reject",
    summary="Reject a run awaiting approval (an operator); nothing is sent",
)
@acting("run_reject")
def run_reject(request: HttpRequest, tenant_slug: str, run_id: RecordId, payload: schemas.RejectIn):
    require(request, Permission.APPROVE, _("reject runs"))
    use = token_use(request)
    run = run_selectors.run_get(tenant=use.token.tenant, run_id=run_id)
    run = run_services.run_reject(
        actor=use.actor(client_ip(request)), run=run, comment=payload.comment
    )
    run.refresh_from_db()
    return Status(200, run_out(run))


@router.post(
    "/t/{tenant_slug}/runs/{run_id}/cancel",
    response={200: schemas.RunOut, **ERRORS},
    operation_id="run_cancel",
    summary="Withdraw a run before it is sent (its requester, or an operator); 409 when too late",
)
@acting("run_cancel")
def run_cancel(request: HttpRequest, tenant_slug: str, run_id: RecordId):
    """A run still waiting (for approval, or in the queue) is cancelled and never reaches the
    vendor. One that lost the race (being sent, sent, ended) is a 409 `too_late` whose `state`
    says where it is: the cancel did nothing. Cancelling a cancelled run again answers it as it
    is (a client may retry a cancel whose answer it lost)."""
    require(request, Permission.REQUEST, "cancel runs")
    use = token_use(request)
    run = run_selectors.run_get(tenant=use.token.tenant, run_id=run_id)
    actor = use.actor(client_ip(request))
    refusal = run_services.run_cancel_refusal(actor=actor, run=run, membership=use.membership)
    if refusal:
        raise ApiProblem(403, "forbidden", refusal)
    try:
        run = run_services.run_cancel(actor=actor, run=run)
    except run_services.RunActionError:
        run.refresh_from_db()
        if not (run.state == RunState.CANCELLED and run.failure_code == "cancelled"):
            raise ApiProblem(
                409,
                "too_late",
                _("This run %(state)s and can no longer be cancelled: the cancel did nothing.")
                % {"state": run.state_in_words()},
                errors=[{"field": "state", "message": str(run.state)}],
            ) from None
    run.refresh_from_db()
    return Status(200, run_out(run))
