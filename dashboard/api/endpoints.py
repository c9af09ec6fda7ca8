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
from campaigns.altcraft_launches import reading as altcraft_reading
from campaigns.altcraft_launches import selectors as altcraft_selectors
from campaigns.altcraft_launches import services as altcraft_services
from campaigns.altcraft_launches import storage as altcraft_storage
from campaigns.altcraft_launches.models import (
    MATCHING_CHOICES,
    AltcraftLaunch,
    LaunchKind,
    LaunchState,
)
from campaigns.event_generators import schema as generator_schema
from campaigns.event_generators import selectors as generator_selectors
from campaigns.event_generators import services as generator_services
from campaigns.event_generators.models import TriggerGroup
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
    description="Report files landed, request the daily trigger, start TalkifAI jobs, run "
    "event generators, launch Altcraft triggers, approve and watch runs, from a data pipeline. "
    "Errors are RFC 9457 problem+json with a stable `code`. Send `Idempotency-Key` on requests "
    "that create a run, a trigger group or a launch.",
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
            # A path may hold a NUL (%00), which the database cannot store.
            "path": request.path[:200].replace("\x00", "\ufffd"),
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
                        # A run (not a launch, which has a state too): it has a parameters hash.
                        run_id = (
                            result.value.get("id") if "parameters_hash" in result.value else None
                        )
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
        if existing is None:
            raise
    if existing.request_hash != request_hash or existing.run is None:
        # (No run: the key was used by an endpoint that makes something else, another body.)
        raise ApiProblem(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request; use a new key.",
            field="Idempotency-Key",
        )
    return existing.run, True


def _create_object_once(
    request: HttpRequest,
    *,
    endpoint: str,
    body: dict[str, Any],
    create: Callable[[str], Any],
    find: Callable[[str], Any],
) -> tuple[Any, bool]:
    """`_create_once` for what is not one run (a trigger group, an Altcraft launch): the service
    is called with a key derived from the Idempotency-Key, and a replay finds its object by it.

    The record commits with the object, so a refused request leaves nothing and may be retried
    with the same key; the same key with another body is a 422.
    """
    tenant = _use(request).token.tenant
    key = _idempotency_key(request)
    if key is None:
        with transaction.atomic():  # a refusal part-way leaves nothing, as with a key
            return create(f"api:{uuid.uuid4().hex}"), False
    # Services keep keys of at most 40 characters: a digest of the tenant's key fits.
    service_key = "api:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    request_hash = hashlib.sha256(
        json.dumps([endpoint, body], sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(tenant=tenant, key=key, request_hash=request_hash)
            return create(service_key), False
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(tenant=tenant, key=key).first()
        if existing is None:
            raise
    if existing.request_hash != request_hash:
        raise ApiProblem(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request; use a new key.",
            field="Idempotency-Key",
        )
    found = find(service_key)
    if found is None:
        # The key was used for a run of another endpoint with this very body: impossible, since
        # the endpoint is part of the hash; a record without its object means it was deleted.
        raise ApiProblem(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used before; use a new key.",
            field="Idempotency-Key",
        )
    return found, True


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


# -- event generators -------------------------------------------------------------------------


def _generator_out(generator: Any) -> dict[str, Any]:
    current = generator.current_schema
    return {
        "id": generator.pk,
        "external_id": generator.external_id,
        "name": generator.name,
        "description": generator.description,
        "connection": generator.connection.name,
        "topics": [{"key": topic.key, "name": topic.name} for topic in generator.topics.all()],
        "schema_version": current.number if current else None,
        "context_schema": current.schema if current else None,
    }


def _generator_get(request: HttpRequest, reference: str) -> Any:
    found = (
        generator_selectors.generator_find(
            tenants=[_use(request).token.tenant], reference=reference[:200]
        )
        if "\x00" not in reference  # no name holds a NUL, and the database refuses one
        else []
    )
    if len(found) != 1:
        raise ApiProblem(
            404,
            "not_found",
            "No event generator of this tenant has that id or name."
            if not found
            else "Several event generators have that name; use the generator's id.",
        )
    return found[0]


def _context_field(name: str) -> str:
    """The service's form field name (ctx/venue/city) as the API's (context.venue.city)."""
    if name == "topics":
        return "topic_keys"
    if name == generator_schema.NON_FIELD:
        return "context"
    parts = name.split("/")
    if parts[:1] == [generator_schema.FIELD_PREFIX]:
        parts = parts[1:]
    return ".".join(["context", *(p.replace("~1", "/").replace("~0", "~") for p in parts)])


@router.get(
    "/t/{tenant_slug}/event-generators",
    response={200: list[schemas.EventGeneratorOut], **ERRORS},
    operation_id="event_generator_list",
    summary="The tenant's Optimove event generators, their topics and current context schema",
)
def event_generator_list(request: HttpRequest, tenant_slug: str):
    _require(request, Permission.VIEW, "see event generators")
    generators = generator_selectors.generator_list(tenant=_use(request).token.tenant)
    return Status(200, [_generator_out(generator) for generator in generators])


@router.post(
    "/t/{tenant_slug}/event-generators/{generator}/run",
    response={200: schemas.TriggerGroupOut, 201: schemas.TriggerGroupOut, **ERRORS},
    operation_id="event_generator_run",
    summary="Trigger an event generator for topics with a context (one run per topic)",
)
@acting("event_generator_run")
def event_generator_run(
    request: HttpRequest, tenant_slug: str, generator: str, payload: schemas.EventGeneratorRunIn
):
    """`generator` is its Optimove id (a UUID) or registered name; topics by key or name. A
    context the schema refuses is a 422 `invalid_context` naming each field (`context.<path>`);
    an unknown topic a 422 `unknown_topic`; an identical trigger sent recently a 409
    `probable_duplicate` (send again with `send_anyway: true`)."""
    _require(request, Permission.REQUEST, "trigger event generators")
    use = _use(request)
    found = _generator_get(request, generator)
    if (payload.topic_keys is None) == (payload.topic_key is None):
        raise ApiProblem(
            422,
            "invalid_request",
            "topic_keys: send either topic_keys (a list) or topic_key (one), not both.",
            field="topic_keys",
        )
    by_name = {topic.name: topic.key for topic in found.topics.all()}
    references = payload.topic_keys if payload.topic_keys is not None else [payload.topic_key]
    topic_keys = [by_name.get(reference, reference) for reference in references]

    def create(key: str) -> Any:
        try:
            return generator_services.campaign_trigger(
                actor=use.actor(client_ip(request)),
                generator=found,
                topic_keys=topic_keys,
                context=payload.context,
                idempotency_key=key,
                send_anyway=payload.send_anyway,
            )
        except DjangoValidationError as error:
            if not hasattr(error, "error_dict"):
                raise
            errors = [
                {"field": _context_field(name), "message": " ".join(messages)}
                for name, messages in error.message_dict.items()
            ]
            errors.sort(key=lambda error: error["field"] != "topic_keys")
            code = "unknown_topic" if errors[0]["field"] == "topic_keys" else "invalid_context"
            raise ApiProblem(
                422,
                code,
                f"{errors[0]['field']}: {errors[0]['message']}",
                field=errors[0]["field"],
                errors=errors,
            ) from None

    group, replayed = _create_object_once(
        request,
        endpoint=f"event_generator_run:{found.pk}",
        body=payload.model_dump(),
        create=create,
        find=lambda key: TriggerGroup.objects.filter(
            tenant=use.token.tenant, idempotency_key=key
        ).first(),
    )
    links = list(group.campaign_runs.select_related("run", "run__connection").order_by("run_id"))
    request._api_replayed = replayed  # type: ignore[attr-defined]
    if replayed:
        request._api_response[REPLAYED_HEADER] = "true"  # type: ignore[attr-defined]
    return Status(
        200 if replayed else 201,
        {
            "trigger_group_id": group.pk,
            "generator": found.name,
            "schema_version": group.schema_version.number,
            "context": group.context,
            "runs": [
                {
                    **_run_out(link.run),
                    "topic_key": link.topic_key,
                    "topic_name": link.topic_name,
                    "status_url": f"/api/v1/t/{tenant_slug}/runs/{link.run_id}",
                }
                for link in links
            ],
        },
    )


# -- Altcraft launches ------------------------------------------------------------------------


def _altcraft_trigger_get(request: HttpRequest, reference: int | str) -> Any:
    triggers = altcraft_selectors.trigger_list(tenant=_use(request).token.tenant)
    if isinstance(reference, int) or str(reference).strip().isdigit():
        number = int(reference)
        found = list(triggers.filter(trigger_id=number)) if 0 < number < 2**31 else []
    else:
        found = list(triggers.filter(name=str(reference).strip()))
    if len(found) != 1:
        raise ApiProblem(
            404 if not found else 422,
            "not_found" if not found else "ambiguous_trigger",
            "No trigger campaign of this tenant has that Altcraft id or name."
            if not found
            else "Several trigger campaigns match; register them apart or use the other one's name.",
            field="trigger",
        )
    return found[0]


def _recipient_values(payload: schemas.AltcraftLaunchIn, column: str) -> list[str]:
    """The recipients as lines of the pasted list; 422 naming the first one that cannot be."""
    values = []
    for index, recipient in enumerate(payload.recipients):
        field = f"recipients.{index}"
        if isinstance(recipient, dict):
            if len(recipient) != 1 or column not in recipient:
                raise ApiProblem(
                    422,
                    "invalid_recipient",
                    f"{field}: an object recipient holds exactly one key, {column!r}.",
                    field=field,
                )
            recipient = recipient[column]
        value = str(recipient).strip()
        if not value:
            # A blank line of a list is skipped, not counted: say so rather than drop it.
            raise ApiProblem(422, "invalid_recipient", f"{field}: an empty recipient.", field=field)
        if len(value.splitlines()) > 1:
            raise ApiProblem(
                422, "invalid_recipient", f"{field}: a value cannot span lines.", field=field
            )
        values.append(value)
    return values


def _invalid_recipients(values: list[str], matching: str) -> list[dict[str, Any]]:
    """Each recipient the launch would refuse, by the launch's own rule, with its row number."""
    invalid = []
    for index, value in enumerate(values):
        _, _, reason = altcraft_reading.clean_value(matching, value)
        if reason:
            invalid.append({"field": f"recipients.{index}", "row": index + 2, "message": reason})
    return invalid


def _launch_out(request: HttpRequest, launch: Any) -> dict[str, Any]:
    progress = altcraft_selectors.launch_progress(launch=launch)
    return {
        "id": launch.pk,
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
        },
        "created_at": launch.created_at,
    }


@router.post(
    "/t/{tenant_slug}/altcraft/launches",
    response={200: schemas.AltcraftLaunchOut, 201: schemas.AltcraftLaunchOut, **ERRORS},
    operation_id="altcraft_launch_create",
    summary="Launch an Altcraft trigger campaign for a list of recipients (preview, confirm)",
)
@acting("altcraft_launch_create")
def altcraft_launch_create(
    request: HttpRequest, tenant_slug: str, payload: schemas.AltcraftLaunchIn
):
    """The list is read as a pasted list is on the launch page: checked, deduplicated, cut into
    requests. Invalid recipients are a 422 `invalid_recipients` listing each (or left out with
    `skip_invalid: true`). Unless `dry_run`, the preview is confirmed: sent now, or
    `awaiting_approval` where the tenant requires an operator's approval."""
    _require(request, Permission.REQUEST, "launch Altcraft triggers")
    use = _use(request)
    trigger = _altcraft_trigger_get(request, payload.trigger)
    if payload.resource_id is not None:
        raise ApiProblem(
            422,
            "invalid_request",
            "resource_id: only a profile import takes a resource; a bulk launch matches "
            "existing profiles.",
            field="resource_id",
        )
    matching = payload.matching or trigger.default_matching
    if matching not in dict(MATCHING_CHOICES):
        raise ApiProblem(
            422,
            "invalid_request",
            f"matching: one of {', '.join(dict(MATCHING_CHOICES))}.",
            field="matching",
        )
    field_name = (payload.field_name or trigger.default_field_name or "").strip() or None
    if matching == "custom" and not field_name:
        raise ApiProblem(
            422,
            "invalid_request",
            "field_name: custom matching needs the profile field name.",
            field="field_name",
        )
    values = _recipient_values(payload, altcraft_reading.launch_column(matching, field_name))
    invalid = _invalid_recipients(values, matching)
    if invalid and (not payload.skip_invalid or len(invalid) == len(values)):
        raise ApiProblem(
            422,
            "invalid_recipients",
            f"{len(invalid)} of {len(values)} recipient(s) are invalid, the first "
            f"{invalid[0]['field']}: {invalid[0]['message']}. Nothing was sent.",
            field=invalid[0]["field"],
            errors=invalid[:200],
        )
    actor = use.actor(client_ip(request))

    def create(key: str) -> Any:
        stored = altcraft_services.pasted_upload(
            text="\n".join(values), matching=matching, field_name=field_name
        )
        try:
            launch = altcraft_services.launch_create(
                actor=actor,
                trigger=trigger,
                kind=LaunchKind.START_BATCH,
                upload=stored,
                source_name="API recipients",
                parameters={
                    "matching": matching,
                    "field_name": field_name,
                    "content": payload.content,
                    "custom_data": payload.custom_data,
                    "skip_triggers": payload.skip_triggers,
                },
                idempotency_key=key,
            )
        except BaseException:
            altcraft_storage.delete(stored.path)
            raise
        try:
            launch = altcraft_services.launch_prepare(actor=actor, launch=launch)
            if launch.state == LaunchState.DISCARDED:
                raise ApiProblem(422, "invalid_recipients", launch.problem, field="recipients")
            if launch.rows_invalid and not payload.skip_invalid:
                rows = [
                    {
                        "field": f"recipients.{sample['row'] - 2}",
                        "row": sample["row"],
                        "message": sample["reason"],
                    }
                    for sample in launch.invalid_samples
                ]
                raise ApiProblem(
                    422,
                    "invalid_recipients",
                    f"{launch.rows_invalid} recipient(s) are invalid, the first {rows[0]['field']}: "
                    f"{rows[0]['message']}. Nothing was sent.",
                    field=rows[0]["field"],
                    errors=rows,
                )
            if not payload.dry_run:
                launch = altcraft_services.launch_confirm(
                    actor=actor, launch=launch, sha256_seen=launch.source_sha256
                )
        except BaseException:
            # The launch's row rolls back with this request: its files go now, not a day later.
            altcraft_storage.delete(launch.upload_path)
            if launch.chunks_path:
                altcraft_storage.delete(launch.chunks_path)
            raise
        return launch

    launch, replayed = _create_object_once(
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
    return Status(200 if replayed else 201, _launch_out(request, launch))


@router.get(
    "/t/{tenant_slug}/altcraft/launches/{launch_id}",
    response={200: schemas.AltcraftLaunchOut, **ERRORS},
    operation_id="altcraft_launch_get",
    summary="An Altcraft launch: its preview and progress (chunks sent, failed, profiles)",
)
def altcraft_launch_get(request: HttpRequest, tenant_slug: str, launch_id: RecordId):
    _require(request, Permission.VIEW, "see Altcraft launches")
    launch = altcraft_selectors.launch_get(tenant=_use(request).token.tenant, launch_pk=launch_id)
    return Status(200, _launch_out(request, launch))


api.add_router("/", router)
