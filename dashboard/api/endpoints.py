"""The automation API, /api/v1/t/<tenant_slug>/...: a thin caller of the same services and
selectors as the pages and commands, so every guardrail holds whatever the way in.

Authentication is a personal API token (`Authorization: Bearer tdk_...`) that acts with its
person's current role in its one tenant. Every call that acts (POST) is audited with the token's
name. Errors are problem+json (see problems.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Annotated, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Path, Query, Router, Status
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer

from batchjobs import selectors as batch_selectors
from batchjobs import services as batch_services
from batchjobs.models import FilesLanded
from dashboard.api import schemas
from dashboard.api.models import IdempotencyRecord
from dashboard.api.problems import PROBLEM_CONTENT_TYPE, ApiProblem, from_problem, problem_response
from dashboard.api.services import TokenRefused, TokenUse, api_token_authenticate
from dashboard.audit import record_audit_event
from dashboard.input_checks import nested_unstorable_reason
from dashboard.models import Permission
from dashboard.runs import selectors as run_selectors
from dashboard.runs import services as run_services
from dashboard.runs.models import TERMINAL_STATES, Operation, Run, RunState
from dashboard.runs.operations import RateRule
from dashboard.runs.rate_limits import rate_limiter
from dashboard.tenancy import client_ip

logger = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotency-Replayed"
# A path id: a positive 64-bit integer (anything else is a 422 problem, not a page's 404).
RecordId = Annotated[int, Path(ge=1, le=2**63 - 1)]
IDEMPOTENCY_KEY_MAX_CHARS = 64
WAIT_STEP_SECONDS = 0.5
PROBLEM_STATUSES = (400, 401, 403, 404, 409, 413, 422, 429)


# -- parsing, authentication, rate limit ------------------------------------------------------


class UnstorableText(ValueError):
    """A JSON string holds a NUL or a lone surrogate, which the database cannot store."""


class StrictJsonParser(Parser):
    """JSON bodies only, and no text the database cannot store (a NUL, a lone surrogate)."""

    def parse_body(self, request: HttpRequest) -> Any:
        data = json.loads(request.body)
        reason = nested_unstorable_reason(data)
        if reason:
            raise UnstorableText(f"The body contains {reason}.")
        return data


class TokenAuth(HttpBearer):
    """`Authorization: Bearer tdk_...`; the token must belong to the tenant in the address."""

    def authenticate(self, request: HttpRequest, token: str) -> TokenUse:
        slug = (request.resolver_match.kwargs if request.resolver_match else {}).get(
            "tenant_slug", ""
        )
        try:
            use = api_token_authenticate(secret=token.strip(), tenant_slug=slug)
        except TokenRefused as refused:
            if refused.code == "tenant_not_found":
                raise ApiProblem(404, refused.code, refused.message) from None
            raise ApiProblem(
                401, refused.code, refused.message, headers={"WWW-Authenticate": "Bearer"}
            ) from None
        rule = RateRule(
            # The hash, not the id: a token's bucket is its own even when ids are reused.
            key=f"api-token:{use.token.token_hash[:24]}",
            limit=settings.API_RATE_LIMIT_PER_MINUTE,
            period_seconds=60,
            burst=settings.API_RATE_LIMIT_BURST,
        )
        wait = rate_limiter().acquire(rule)
        if wait > 0:
            retry_after = max(1, int(wait + 0.999))
            raise ApiProblem(
                429,
                "rate_limited",
                f"This token made too many requests; retry in {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
            )
        request.tenant = use.membership.tenant
        request.membership = use.membership
        return use


class TriggerDeskApi(NinjaAPI):
    """NinjaAPI whose OpenAPI description says that errors are application/problem+json."""

    def create_temporal_response(self, request: HttpRequest) -> HttpResponse:
        # Kept on the request so an endpoint can add a header (Idempotency-Replayed).
        response = super().create_temporal_response(request)
        request._api_response = response  # type: ignore[attr-defined]
        return response

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(status)[0] == "4" and "application/json" in content:
                        content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
        return schema


api = TriggerDeskApi(
    title="TriggerDesk automation API",
    version="1",
    description="Report files landed, request the daily trigger, start TalkifAI jobs, approve "
    "and watch runs, from a data pipeline. Errors are RFC 9457 problem+json with a stable "
    "`code`. Send `Idempotency-Key` on requests that create a run.",
    openapi_url="/schema",
    docs_url="/docs",
    auth=TokenAuth(),
    parser=StrictJsonParser(),
    urls_namespace="api_v1",
)


# -- errors -----------------------------------------------------------------------------------


@api.exception_handler(ApiProblem)
def _problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    return from_problem(request, exc)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem_response(
        request,
        401,
        "unauthenticated",
        "Send an API token: Authorization: Bearer tdk_...",
        headers={"WWW-Authenticate": "Bearer"},
    )


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    _audit_refused_before_the_endpoint(request, 413)
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return problem_response(
        request, 413, "body_too_large", f"The body is larger than {limit:,} bytes."
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    cause = exc.__cause__
    if isinstance(cause, RequestDataTooBig):
        return _too_big(request, cause)
    if isinstance(cause, UnstorableText):
        _audit_refused_before_the_endpoint(request, 400)
        return problem_response(request, 400, "unstorable_text", str(cause))
    if exc.status_code == 400:
        _audit_refused_before_the_endpoint(request, 400)
        return problem_response(
            request, 400, "malformed_json", "The body is not valid JSON (UTF-8)."
        )
    return problem_response(request, exc.status_code, "http_error", str(exc))


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = []
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ())]
        # ("body", "payload", "utc_date") names the field "utc_date"; ("query", "wait") "wait".
        names = location[2:] if location[:1] == ["body"] else location[1:]
        field = ".".join(names)
        if error.get("type") == "extra_forbidden":
            message = "Unknown field."
        else:
            message = str(error.get("msg", "Invalid value."))
        errors.append({"field": field, "in": location[0] if location else "", "message": message})
    first = errors[0] if errors else {"field": "", "message": "Invalid request."}
    _audit_refused_before_the_endpoint(request, 422)
    return problem_response(
        request,
        422,
        "invalid_request",
        f"{first['field'] or 'The request'}: {first['message']}",
        field=first["field"] or None,
        errors=errors,
    )


@api.exception_handler(DjangoValidationError)
def _service_invalid(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    if hasattr(exc, "error_dict"):
        errors = [
            {"field": name, "message": " ".join(messages)}
            for name, messages in exc.message_dict.items()
        ]
    else:
        errors = [{"field": "", "message": message} for message in exc.messages]
    first = errors[0]
    field = first["field"] if first["field"] != "__all__" else ""
    return problem_response(
        request, 422, "invalid", first["message"], field=field or None, errors=errors
    )


@api.exception_handler(run_services.RunActionError)
def _refused(request: HttpRequest, exc: run_services.RunActionError) -> HttpResponse:
    return problem_response(request, 409, "refused", str(exc))


@api.exception_handler(run_services.ProbableDuplicate)
def _duplicate(request: HttpRequest, exc: run_services.ProbableDuplicate) -> HttpResponse:
    return problem_response(request, 409, "probable_duplicate", str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(request, 404, "not_found", str(exc) or "Not found.")


# -- helpers ----------------------------------------------------------------------------------


def _use(request: HttpRequest) -> TokenUse:
    return request.auth  # type: ignore[attr-defined]


def _require(request: HttpRequest, permission: str, doing: str) -> None:
    membership = _use(request).membership
    if not membership.can(permission):
        raise ApiProblem(
            403,
            "forbidden",
            f"The token acts as {membership.user.get_username()}, whose role "
            f"({membership.get_role_display()}) cannot {doing}.",
        )


def _audit_call(
    request: HttpRequest, *, endpoint: str, status: int, run_id: int | None, replayed: bool
) -> None:
    use = _use(request)
    request._api_audited = True  # type: ignore[attr-defined]
    record_audit_event(
        actor=use.actor(client_ip(request)),
        tenant=use.token.tenant,
        action="api.called",
        object_type="api_token",
        object_id=use.token.pk,
        summary={
            # Not "token": the audit trail redacts values under secret-like keys.
            "client": use.token.name,
            "endpoint": endpoint,
            "path": request.path[:200],
            "status": status,
            "run": run_id,
            "replayed": replayed,
        },
    )


def _audit_refused_before_the_endpoint(request: HttpRequest, status: int) -> None:
    """A call refused while its input was read (schema, JSON, size) is still a use of the token."""
    if (
        request.method == "POST"
        and isinstance(getattr(request, "auth", None), TokenUse)
        and not getattr(request, "_api_audited", False)
    ):
        match = request.resolver_match
        _audit_call(
            request,
            # GET and POST of one path share a URL name: the method and route say which.
            endpoint=f"{request.method} {match.route if match else request.path}"[:120],
            status=status,
            run_id=None,
            replayed=False,
        )


def acting(action: str) -> Callable:
    """Audit every use of an acting endpoint with the token's name (never its value), whatever
    the outcome: the service's own audit rows say what changed, this row says who called."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            status = 500
            run_id = None
            replayed = False
            try:
                result = view(request, *args, **kwargs)
                if isinstance(result, Status):
                    status = result.status_code
                    if isinstance(result.value, dict):
                        run_id = result.value.get("id") if "state" in result.value else None
                    replayed = bool(getattr(request, "_api_replayed", False))
                return result
            except ApiProblem as problem:
                status = problem.status
                raise
            except (DjangoValidationError, NinjaValidationError):
                status = 422
                raise
            except (run_services.RunActionError, run_services.ProbableDuplicate):
                status = 409
                raise
            except Http404:
                status = 404
                raise
            finally:
                _audit_call(
                    request, endpoint=action, status=status, run_id=run_id, replayed=replayed
                )

        return wrapper

    return decorate


def _idempotency_key(request: HttpRequest) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if (
        not key
        or len(key) > IDEMPOTENCY_KEY_MAX_CHARS
        or not key.isascii()
        or not key.isprintable()
    ):
        raise ApiProblem(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} printable ASCII characters.",
            field="Idempotency-Key",
        )
    return key


def _create_once(
    request: HttpRequest, *, endpoint: str, body: dict[str, Any], create: Callable[[str], Run]
) -> tuple[Run, bool]:
    """Call `create(run_idempotency_key)` once per Idempotency-Key: (run, replayed).

    The record and the run commit together, so of fifty identical concurrent requests one makes
    the run; the others wait on the record's unique key, then answer with that run. The same key
    with another body is a 422. A request that was refused leaves no record: retrying it with the
    same key tries again.
    """
    tenant = _use(request).token.tenant
    key = _idempotency_key(request)
    if key is None:
        return create(f"api:{uuid.uuid4().hex}"), False
    request_hash = hashlib.sha256(
        json.dumps([endpoint, body], sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                tenant=tenant, key=key, request_hash=request_hash
            )
            run = create(f"api:{key}")
            record.run = run
            record.save(update_fields=["run"])
        return run, False
    except IntegrityError:
        existing = (
            IdempotencyRecord.objects.filter(tenant=tenant, key=key).select_related("run").first()
        )
        if existing is None or existing.run is None:
            raise
    if existing.request_hash != request_hash:
        raise ApiProblem(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request; use a new key.",
            field="Idempotency-Key",
        )
    return existing.run, True


def _created(request: HttpRequest, run: Run, replayed: bool) -> Status:
    request._api_replayed = replayed  # type: ignore[attr-defined]
    if replayed:
        request._api_response[REPLAYED_HEADER] = "true"  # type: ignore[attr-defined]
    return Status((200 if replayed else 201), _run_out(run))


def _run_out(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "operation": run.operation,
        "operation_label": run.get_operation_display(),
        "description": run_selectors.run_description(run),
        "state": run.state,
        "state_label": run.get_state_display(),
        "terminal": run.state in TERMINAL_STATES,
        "needs_person": run.needs_person,
        "connection": run.connection.name,
        "parameters": run.parameters,
        "parameters_hash": run.parameters_hash,
        "requested_by": run.requested_by_label,
        "requested_at": run.requested_at,
        "approval_required": run.approval_required,
        "approval_expires_at": run.approval_expires_at,
        "utc_date": run.utc_date,
        "vendor_reference": run.vendor_reference,
        "vendor_status": run.vendor_status,
        "progress": run.progress,
        "failure_code": run.failure_code,
        "failure_message": run.failure_message,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
    }


def _run_detail_out(run: Run) -> dict[str, Any]:
    out = _run_out(run)
    out["approvals"] = [
        {
            "decision": approval.decision,
            "decided_by": approval.decided_by.get_username(),
            "decided_at": approval.decided_at,
            "comment": approval.comment,
        }
        for approval in run.approvals.all()
    ]
    out["timeline"] = [
        {
            "at": event.created_at,
            "actor": event.actor_label,
            "action": event.action,
            "summary": event.summary if isinstance(event.summary, dict) else {},
        }
        for event in run_selectors.run_timeline(run=run)
    ]
    return out


def _settled(run: Run) -> bool:
    """Where a waiting pipeline should look again: the run ended, or a person must act."""
    return (
        run.state in TERMINAL_STATES
        or run.state == RunState.AWAITING_APPROVAL
        or (run.state == RunState.OUTCOME_UNKNOWN and run.needs_person)
    )


# -- endpoints --------------------------------------------------------------------------------

router = Router(tags=["tenant"])
ERRORS = dict.fromkeys(PROBLEM_STATUSES, schemas.Problem)


@router.post(
    "/t/{tenant_slug}/files-landed",
    response={200: schemas.FilesLandedOut, **ERRORS},
    operation_id="files_landed_report",
    summary="Report that all of a UTC day's files have landed",
)
@acting("files_landed_report")
def files_landed_report(request: HttpRequest, tenant_slug: str, payload: schemas.FilesLandedIn):
    """The daily trigger's gate when the tenant requires it. Reporting a day twice changes
    nothing and returns the first report."""
    _require(request, Permission.REQUEST, "report files landed")
    use = _use(request)
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
    response={200: schemas.DailyTriggerStateOut, **ERRORS},
    operation_id="daily_trigger_state",
    summary="Today's daily trigger: can it be requested, and the runs of today",
)
def daily_trigger_state(request: HttpRequest, tenant_slug: str):
    _require(request, Permission.VIEW, "see the daily trigger")
    use = _use(request)
    status = batch_selectors.daily_trigger_status(
        tenant=use.token.tenant, membership=use.membership
    )

    def maybe(run: Run | None) -> dict[str, Any] | None:
        return _run_out(run) if run is not None else None

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
def daily_trigger_request(request: HttpRequest, tenant_slug: str, payload: schemas.DailyTriggerIn):
    """201 with the new run; 200 with the same run, and `Idempotency-Replayed: true`, when the
    Idempotency-Key was used before with the same body. Guardrail refusals are 409 `refused`."""
    _require(request, Permission.REQUEST, "request the daily trigger")
    use = _use(request)
    run, replayed = _create_once(
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
    return _created(request, run, replayed)


@router.get(
    "/t/{tenant_slug}/batch-jobs",
    response={200: list[schemas.BatchJobOut], **ERRORS},
    operation_id="batch_job_list",
    summary="The tenant's registered TalkifAI batch jobs",
)
def batch_job_list(request: HttpRequest, tenant_slug: str):
    _require(request, Permission.VIEW, "see batch jobs")
    return Status(
        200,
        [
            {
                "id": job.pk,
                "batch_job_id": job.batch_job_id,
                "name": job.name,
                "connection": job.connection.name,
            }
            for job in batch_selectors.batch_job_list(tenant=_use(request).token.tenant)
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
    _require(request, Permission.APPROVE, "start batch jobs")
    use = _use(request)
    job = batch_selectors.batch_job_get(tenant=use.token.tenant, batch_job_pk=batch_job_pk)
    run, replayed = _create_once(
        request,
        endpoint=f"batch_job_start:{job.pk}",
        body={},
        create=lambda key: batch_services.batch_job_start(
            actor=use.actor(client_ip(request)), batch_job=job, idempotency_key=key
        ),
    )
    return _created(request, run, replayed)


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
    created_from: Query[date | None] = None,
    created_to: Query[date | None] = None,
    vendor_reference: Query[str | None] = None,
    before: Query[int | None] = None,
    limit: Query[int] = 50,
):
    """`before` is the `next_cursor` of the previous page (a run id): the page holds the runs
    created before that run, so runs added meanwhile never shift a page."""
    _require(request, Permission.VIEW, "see runs")
    if not 1 <= limit <= 200:
        raise ApiProblem(422, "invalid_request", "limit: between 1 and 200.", field="limit")
    tenant = _use(request).token.tenant
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
            "items": [_run_out(run) for run in page],
            "next_cursor": page[-1].pk if more else None,
        },
    )


@router.get(
    "/t/{tenant_slug}/runs/{run_id}",
    response={200: schemas.RunDetailOut, **ERRORS},
    operation_id="run_get",
    summary="One run with its approvals and timeline; `wait` long-polls for its outcome",
)
def run_get(request: HttpRequest, tenant_slug: str, run_id: RecordId, wait: Query[int] = 0):
    """With `wait=N` (at most 30), answers when the run has ended or needs a person (awaiting
    approval, an outcome a person must settle), or after N seconds, whichever comes first."""
    _require(request, Permission.VIEW, "see runs")
    if not 0 <= wait <= 30:
        raise ApiProblem(422, "invalid_request", "wait: between 0 and 30 seconds.", field="wait")
    tenant = _use(request).token.tenant
    run = run_selectors.run_get(tenant=tenant, run_id=run_id)
    deadline = time.monotonic() + min(wait, settings.API_WAIT_MAX_SECONDS)
    while not _settled(run) and time.monotonic() < deadline:
        time.sleep(WAIT_STEP_SECONDS)
        run = run_selectors.run_get(tenant=tenant, run_id=run_id)
    return Status(200, _run_detail_out(run))


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
    _require(request, Permission.APPROVE, "approve runs")
    use = _use(request)
    run = run_selectors.run_get(tenant=use.token.tenant, run_id=run_id)
    if run.requested_by_id is not None and run.requested_by_id == use.membership.user_id:
        raise ApiProblem(
            403,
            "four_eyes",
            "The token's person requested this run: another operator must approve it.",
        )
    run = run_services.run_approve(
        actor=use.actor(client_ip(request)),
        run=run,
        parameters_hash_seen=payload.parameters_hash,
        comment=payload.comment,
    )
    run.refresh_from_db()
    return Status(200, _run_out(run))


@router.post(
    "/t/{tenant_slug}/runs/{run_id}/reject",
    response={200: schemas.RunOut, **ERRORS},
    operation_id="run_reject",
    summary="Reject a run awaiting approval (an operator); nothing is sent",
)
@acting("run_reject")
def run_reject(request: HttpRequest, tenant_slug: str, run_id: RecordId, payload: schemas.RejectIn):
    _require(request, Permission.APPROVE, "reject runs")
    use = _use(request)
    run = run_selectors.run_get(tenant=use.token.tenant, run_id=run_id)
    run = run_services.run_reject(
        actor=use.actor(client_ip(request)), run=run, comment=payload.comment
    )
    run.refresh_from_db()
    return Status(200, _run_out(run))


api.add_router("/", router)
