"""The automation API's shared helpers: the router every resource adds its endpoints to, its
error responses, permission checks, auditing, idempotency and the shape of a run."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from ninja import Path, Router, Status
from ninja.errors import ValidationError as NinjaValidationError

from dashboard.api import schemas
from dashboard.api.models import IdempotencyRecord
from dashboard.api.problems import ApiProblem
from dashboard.api.services import TokenUse
from dashboard.audit.trail import record_audit_event
from dashboard.pauses.services import SendingPaused
from dashboard.runs import selectors as run_selectors
from dashboard.runs import services as run_services
from dashboard.runs.models import Run
from dashboard.runs.states import TERMINAL_STATES
from dashboard.send_windows.services import OutsideSendWindow
from dashboard.tenancy.scoping import client_ip

REPLAYED_HEADER = "Idempotency-Replayed"
# A path id: a positive 64-bit integer (anything else is a 422 problem, not a page's 404).
RecordId = Annotated[int, Path(ge=1, le=2**63 - 1)]
IDEMPOTENCY_KEY_MAX_CHARS = 64
WAIT_STEP_SECONDS = 0.5
PROBLEM_STATUSES = (400, 401, 403, 404, 409, 413, 422, 429)

# -- helpers ----------------------------------------------------------------------------------


def token_use(request: HttpRequest) -> TokenUse:
    return request.auth  # type: ignore[attr-defined]


def require(request: HttpRequest, permission: str, doing: str) -> None:
    membership = token_use(request).membership
    if not membership.can(permission):
        raise ApiProblem(
            403,
            "forbidden",
            _("The token acts as %(username)s, whose role (%(role)s) cannot %(doing)s.")
            % {
                "username": membership.user.get_username(),
                "role": membership.get_role_display(),
                "doing": doing,
            },
        )


def audit_call(
    request: HttpRequest, *, endpoint: str, status: int, run_id: int | None, replayed: bool
) -> None:
    use = token_use(request)
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


def audit_refused_before_the_endpoint(request: HttpRequest, status: int) -> None:
    """A call refused while its input was read (schema, JSON, size) is still a use of the token."""
    if (
        request.method == "POST"
        and isinstance(getattr(request, "auth", None), TokenUse)
        and not getattr(request, "_api_audited", False)
    ):
        match = request.resolver_match
        audit_call(
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
            except (SendingPaused, OutsideSendWindow):
                status = 409
                raise
            except (DjangoValidationError, NinjaValidationError):
                status = 422
                raise
            except PermissionDenied:
                status = 403
                raise
            except (run_services.RunActionError, run_services.ProbableDuplicate):
                status = 409
                raise
            except Http404:
                status = 404
                raise
            finally:
                audit_call(
                    request, endpoint=action, status=status, run_id=run_id, replayed=replayed
                )

        return wrapper

    return decorate


def request_idempotency_key(request: HttpRequest) -> str | None:
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
            _("Idempotency-Key must be 1 to %(limit)s printable ASCII characters.")
            % {"limit": IDEMPOTENCY_KEY_MAX_CHARS},
            field="Idempotency-Key",
        )
    return key


def create_once(
    request: HttpRequest, *, endpoint: str, body: dict[str, Any], create: Callable[[str], Run]
) -> tuple[Run, bool]:
    """Call `create(run_idempotency_key)` once per Idempotency-Key: (run, replayed).

    The record and the run commit together, so of fifty identical concurrent requests one makes
    the run; the others wait on the record's unique key, then answer with that run. The same key
    with another body is a 422. A request that was refused leaves no record: retrying it with the
    same key tries again. Once the record has expired (API_IDEMPOTENCY_RETENTION_HOURS) the key
    still yields its run, as a replay, whatever the body: see `_replay_of_expired_key`.
    """
    tenant = token_use(request).token.tenant
    key = request_idempotency_key(request)
    if key is None:
        return create(f"api:{uuid.uuid4().hex}"), False
    request_hash = hashlib.sha256(
        json.dumps([endpoint, body], sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()
    run_key = f"api:{key}"
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                tenant=tenant, key=key, request_hash=request_hash
            )
            made_before = Run.objects.filter(tenant=tenant, idempotency_key=run_key).exists()
            # The service, not this function, answers for a run the key made before: it returns
            # that run, or refuses one the key made at another endpoint (another operation).
            run = create(run_key)
            if made_before:
                return _replay_of_expired_key(run)
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
            _("This Idempotency-Key was used with a different request; use a new key."),
            field="Idempotency-Key",
        )
    return existing.run, True


def _replay_of_expired_key[T](made: T) -> tuple[T, bool]:
    """A new record, yet the key made `made` before: its record expired and was deleted
    (api.services.idempotency_records_expire). The object keeps the key for good, so this is a
    retry: answer with it as a replay, never a second one. The body it first came with is no
    longer known, so nothing is compared; and no record is kept (rolled back), so that every
    later request with the key is answered alike, whatever its body."""
    transaction.set_rollback(True)
    return made, True


def create_object_once(
    request: HttpRequest,
    *,
    endpoint: str,
    body: dict[str, Any],
    create: Callable[[str], Any],
    find: Callable[[str], Any],
) -> tuple[Any, bool]:
    """`create_once` for what is not one run (a trigger group, an Altcraft launch): the service
    is called with a key derived from the Idempotency-Key, and a replay finds its object by it.

    The record commits with the object, so a refused request leaves nothing and may be retried
    with the same key; the same key with another body is a 422.
    """
    tenant = token_use(request).token.tenant
    key = request_idempotency_key(request)
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
            earlier = find(service_key)
            if earlier is not None:
                # Not through the service: an Altcraft launch would be prepared and confirmed
                # again (and its files deleted when that is refused).
                return _replay_of_expired_key(earlier)
            return create(service_key), False
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(tenant=tenant, key=key).first()
        if existing is None:
            raise
    if existing.request_hash != request_hash:
        raise ApiProblem(
            422,
            "idempotency_key_reused",
            _("This Idempotency-Key was used with a different request; use a new key."),
            field="Idempotency-Key",
        )
    found = find(service_key)
    if found is None:
        # The key was used for a run of another endpoint with this very body: impossible, since
        # the endpoint is part of the hash; a record without its object means it was deleted.
        raise ApiProblem(
            422,
            "idempotency_key_reused",
            _("This Idempotency-Key was used before; use a new key."),
            field="Idempotency-Key",
        )
    return found, True


def run_created_response(request: HttpRequest, run: Run, replayed: bool) -> Status:
    request._api_replayed = replayed  # type: ignore[attr-defined]
    if replayed:
        request._api_response[REPLAYED_HEADER] = "true"  # type: ignore[attr-defined]
    return Status((200 if replayed else 201), run_out(run))


def run_out(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "title": run.name,
        "operation": run.operation,
        "operation_label": run.get_operation_display(),
        "description": run_selectors.run_description(run),
        "state": run.state,
        "state_label": run.get_state_display(),
        "terminal": run.state in TERMINAL_STATES,
        "needs_person": run.needs_person,
        "connection": run.connection_name or run.connection.name,
        "connection_id": run.connection_id,
        "parameters": run.parameters,
        "parameters_hash": run.parameters_hash,
        "requested_by": run.requested_by_label,
        "requested_at": run.requested_at,
        "approval_required": run.approval_required,
        "approval_expires_at": run.approval_expires_at,
        "approvals_needed": run.approvals_needed if run.approval_required else 0,
        "approval_reasons": run.approval_reasons,
        "approval_facts": run.approval_facts,
        "utc_date": run.utc_date,
        "vendor_reference": run.vendor_reference,
        "vendor_status": run.vendor_status,
        "progress": run.progress,
        "failure_code": run.failure_code,
        "failure_message": run.failure_message,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
        "outcome": vars(run_selectors.run_outcome(run)),
    }


def run_detail_out(run: Run) -> dict[str, Any]:
    out = run_out(run)
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


# -- the router the resource modules add their endpoints to -----------------------------------

router = Router(tags=["tenant"])
ERRORS = dict.fromkeys(PROBLEM_STATUSES, schemas.Problem)
