"""The run history pages: the list, one run's full record, and the people's actions on a run.

Thin: selectors read, the engine's services decide and write (and audit); these views only turn
input into service calls and service refusals into messages.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import Form
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling

from dashboard.audit.trail import REDACTED, SECRET_KEY_WORDS, record_audit_event
from dashboard.clock import utc_now
from dashboard.mfa.step_up import step_up_required
from dashboard.models import Permission
from dashboard.pauses.selectors import sending_pause_for
from dashboard.project.errors import form_post
from dashboard.runs import selectors, services
from dashboard.runs.forms import ApproveForm, PersonDecisionForm, RejectForm, RunFilterForm
from dashboard.runs.models import Approval, Run
from dashboard.runs.result_fields import result_fields
from dashboard.runs.states import CAN_CANCEL, RunState
from dashboard.send_windows.selectors import send_hold_for
from dashboard.tenancy import history
from dashboard.tenancy.scoping import actor_from_request, tenant_view

PAGE_SIZE = 50
# Bodies are shown in full up to this size; Altcraft answers can list thousands of profile ids.
MAX_BODY_CHARS = 20_000
# Headers that carry credentials. The HTTP layer already replaced every secret value it knew;
# this catches a header it did not know to be secret (a vendor adding a session cookie).
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-brand-key"}
)


# -- the list ---------------------------------------------------------------------------------


@tenant_view(Permission.VIEW)
@require_GET
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    form = RunFilterForm(request.GET or None, tenant=request.tenant)
    filters = form.filters() if form.is_bound else {}
    cursor = history.Cursor.decode(request.GET.get("after"))
    page = selectors.run_history_page(
        tenant=request.tenant, filters=filters, cursor=cursor, size=PAGE_SIZE
    )
    # Only the first page refreshes itself, and only while something on it can still change.
    live = page.is_first and any(run.is_open for run in page)
    context = {
        "page": page,
        "form": form,
        "live": live,
        "estimated_total": (
            history.estimated_count(selectors.run_filter(tenant=request.tenant, filters=filters))
            if page.is_first
            else None
        ),
        "export_query": _without(request, "after"),
    }
    # A history restore that missed htmx's cache asks for the whole page, not the fragment.
    if not request.htmx or request.htmx.history_restore_request:
        return render(request, "runs/run_list.html", context)
    content = render_to_string("runs/run_list.html#runs", context, request=request)
    return HttpResponse(content) if live else HttpResponseStopPolling(content)


@tenant_view(Permission.VIEW)
@require_GET
def run_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered run history as CSV, streamed in keyset batches (constant memory at any size);
    the export itself is audited, with its filters."""
    form = RunFilterForm(request.GET or None, tenant=request.tenant)
    filters = form.filters() if form.is_bound else {}
    record_audit_event(
        actor=actor_from_request(request),
        tenant=request.tenant,
        action="runs.exported",
        object_type="run",
        summary={"filters": {key: str(value) for key, value in filters.items()}},
    )
    # In the request's language, once: the rows are written after the view has returned.
    words = selectors.run_outcome_words()
    lines = history.stream_csv(
        header=[*RUN_EXPORT_HEADER, "outcome"],
        rows=selectors.run_filter(tenant=request.tenant, filters=filters),
        fields=[*RUN_EXPORT_FIELDS, "needs_person"],
        to_cells=partial(_run_export_cells, words=words),
    )
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="runs-{request.tenant.slug}-{stamp}.csv"'
    )
    return response


# The title and connection name as they were when each run was requested (a renamed generator
# or connection does not rewrite the history); the ids beside them for joining elsewhere.
RUN_EXPORT_FIELDS = [
    "id",
    "title",
    "created_at",
    "operation",
    "connection_name",
    "connection_id",
    "state",
    "requested_by_label",
    "requested_at",
    "vendor_reference",
    "vendor_status",
    "progress",
    "audience_size",
    "sent_at",
    "finished_at",
    "failure_class",
    "failure_code",
    "failure_message",
    "parameters",
]
RUN_EXPORT_HEADER = [
    "run",
    "title",
    "created_at_utc",
    "operation",
    "connection",
    "connection_id",
    "state",
    "requested_by",
    "requested_at_utc",
    "vendor_reference",
    "vendor_status",
    "progress_percent",
    "audience_size",
    "sent_at_utc",
    "finished_at_utc",
    "failure_class",
    "failure_code",
    "failure_message",
    "parameters",
]


def _run_export_cells(row: dict[str, Any], *, words: selectors.RunOutcomeWords) -> list[Any]:
    """An export row's cells, then its outcome in the words the pages use ("Succeeded: reached
    nobody (an audience of 0)", "Failed: <the vendor's reason>")."""
    outcome = selectors.outcome_of_run_values(
        state=row["state"],
        needs_person=row["needs_person"],
        audience_size=row["audience_size"],
        failure_message=row["failure_message"],
        words=words,
    )
    row["title"] = row["title"] or selectors.OPERATION_LABELS.get(
        row["operation"], row["operation"]
    )
    return [*(row[field] for field in RUN_EXPORT_FIELDS), outcome.text]


def _without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


# -- one run ----------------------------------------------------------------------------------


@tenant_view(Permission.VIEW)
@require_GET
@vary_on_headers("HX-Request")
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    if request.htmx:
        # The live status block: the run's own row is all it shows.
        return _status_response(
            request, selectors.run_status_get(tenant=request.tenant, run_id=run_id)
        )
    return _render_detail(request, selectors.run_get(tenant=request.tenant, run_id=run_id))


def _live_key(run: Run) -> str:
    """What the page's actions depend on. When it changes under an open page, the whole page is
    reloaded (actions, attempts, timeline); otherwise only the status block is swapped, so an
    open <details> or a half-written comment is never thrown away."""
    return f"{run.state}:{int(run.needs_person)}"


def _status_response(request: HttpRequest, run: Run) -> HttpResponse:
    seen = request.GET.get("seen")
    if seen and seen != _live_key(run):
        return HttpResponseClientRefresh()
    content = render_to_string("runs/run_detail.html#status", _status_context(run), request=request)
    if run.is_terminal:
        return HttpResponseStopPolling(content)
    return HttpResponse(content)


def _status_context(run: Run) -> dict[str, Any]:
    return {
        "run": run,
        "wait": selectors.run_wait(run),
        # A queued run a pause holds says so, with who paused and why.
        "held": sending_pause_for(tenant_id=run.tenant_id, connection_id=run.connection_id)
        if run.state == RunState.QUEUED
        else None,
        # ... and one its connection's send window holds, until when.
        "window_hold": send_hold_for(
            connection_id=run.connection_id, at=utc_now(), connection_name=run.connection_name
        )
        if run.state == RunState.QUEUED
        else None,
        "live_key": _live_key(run),
        "result_rows": result_fields(run.result) if run.result else [],
        "result_json": _pretty_json(run.result) if run.result else "",
    }


def _render_detail(
    request: HttpRequest,
    run: Run,
    *,
    forms: dict[str, Form] | None = None,
    status: int = 200,
) -> HttpResponse:
    membership = request.membership
    attempts = list(run.attempts.all())
    for attempt in attempts:
        attempt.display = _display_exchange(attempt.exchange)
    timeline = list(selectors.run_timeline(run=run))
    for event in timeline:
        summary = event.summary if isinstance(event.summary, dict) else {}
        event.why = summary.get("comment") or summary.get("reason") or ""
        event.details = _event_details(summary)
    can_approve = membership.can(Permission.APPROVE)
    # Who approved so far and of how many (two queries): only while a decision is awaited.
    approval_state = (
        selectors.run_approval_state(run) if run.state == RunState.AWAITING_APPROVAL else None
    )
    is_requester = run.requested_by_id is not None and run.requested_by_id == request.user.pk
    context = {
        **_status_context(run),
        "description": selectors.run_description(run),
        "parameters_json": _pretty_json(run.parameters),
        "approvals": list(run.approvals.all()),
        "approval_state": approval_state,
        "i_approved": bool(approval_state and approval_state.approved_by(request.user.pk)),
        "approval": next(
            (a for a in run.approvals.all() if a.decision == Approval.Decision.APPROVED), None
        ),
        "rejection": selectors.run_rejection(run),
        "attempts": attempts,
        "timeline": timeline,
        "evidence": attempts[-1] if attempts else None,
        "is_requester": is_requester,
        "can_approve": can_approve,
        "can_cancel": run.state in CAN_CANCEL
        and not services.run_cancel_refusal(
            actor=actor_from_request(request), run=run, membership=membership
        ),
        "awaiting_approval": run.state == RunState.AWAITING_APPROVAL,
        "needs_person": run.state == RunState.OUTCOME_UNKNOWN and run.needs_person,
        "reconciling": run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person,
        "approve_form": ApproveForm(
            initial={"parameters_hash": run.parameters_hash}, auto_id="approve_%s"
        ),
        "reject_form": RejectForm(auto_id="reject_%s"),
        "mark_form": PersonDecisionForm(auto_id="mark_%s"),
        "again_form": PersonDecisionForm(auto_id="again_%s"),
        **(forms or {}),
    }
    return render(request, "runs/run_detail.html", context, status=status)


# -- actions ----------------------------------------------------------------------------------


def approved_message(run: Run) -> str:
    """What an approver is told: queued, or how many approvals are still missing."""
    return services.approval_progress(run) or gettext(
        "Approved. The run is queued and will be sent shortly."
    )


def _act(
    request: HttpRequest,
    run_id: int,
    *,
    perform: Callable[[Run, dict[str, Any]], Any],
    done: str | Callable[[Any], str],
    form_class: type[Form] | None = None,
    form_key: str = "",
) -> HttpResponse:
    """Check the input, call the service, and say what happened.

    Bad input re-renders the page with the typed text kept (400); a refusal by the engine (wrong
    state, guardrail, someone else was faster) becomes an error message. Nothing changes in
    either case: the services only write when they accept.
    """
    run = selectors.run_get(tenant=request.tenant, run_id=run_id)
    cleaned: dict[str, Any] = {}
    if form_class is not None:
        form = form_class(request.POST, auto_id=f"{form_key.removesuffix('_form')}_%s")
        if not form.is_valid():
            messages.error(
                request,
                gettext("Nothing was changed: %(errors)s") % {"errors": _form_error_text(form)},
            )
            return _render_detail(request, run, forms={form_key: form}, status=400)
        cleaned = form.cleaned_data
    try:
        result = perform(run, cleaned)
    except services.RunActionError as error:
        messages.error(request, str(error))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, done if isinstance(done, str) else done(result))
    return redirect("run_detail", tenant_slug=request.tenant.slug, run_id=run.pk)


def _form_error_text(form: Form) -> str:
    return " ".join(message for errors in form.errors.values() for message in errors)


@tenant_view(Permission.APPROVE)
@form_post("run_detail", "run_id")
@step_up_required
def run_approve(request: HttpRequest, run_id: int) -> HttpResponse:
    actor = actor_from_request(request)
    return _act(
        request,
        run_id,
        form_class=ApproveForm,
        form_key="approve_form",
        perform=lambda run, data: services.run_approve(
            actor=actor,
            run=run,
            parameters_hash_seen=data["parameters_hash"],
            comment=data["comment"],
        ),
        done=approved_message,
    )


@tenant_view(Permission.APPROVE)
@form_post("run_detail", "run_id")
def run_reject(request: HttpRequest, run_id: int) -> HttpResponse:
    actor = actor_from_request(request)
    return _act(
        request,
        run_id,
        form_class=RejectForm,
        form_key="reject_form",
        perform=lambda run, data: services.run_reject(
            actor=actor, run=run, comment=data["comment"]
        ),
        done=gettext("Rejected. Nothing was sent."),
    )


@tenant_view(Permission.VIEW)
@form_post("run_detail", "run_id")
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    # Who may cancel which run is the engine's rule (run_cancel_refusal): the requester, or an
    # operator or admin. A role that can never cancel is refused here already.
    membership = request.membership
    if not (membership.can(Permission.REQUEST) or membership.can(Permission.APPROVE)):
        raise PermissionDenied(
            gettext("Your role (%(role)s) cannot cancel runs.")
            % {"role": membership.get_role_display()}
        )
    actor = actor_from_request(request)
    return _act(
        request,
        run_id,
        perform=lambda run, data: services.run_cancel(actor=actor, run=run),
        done=gettext("Cancelled. Nothing was sent."),
    )


@tenant_view(Permission.APPROVE)
@form_post("run_detail", "run_id")
def run_mark_as_sent(request: HttpRequest, run_id: int) -> HttpResponse:
    actor = actor_from_request(request)
    return _act(
        request,
        run_id,
        form_class=PersonDecisionForm,
        form_key="mark_form",
        perform=lambda run, data: services.run_mark_as_sent(
            actor=actor, run=run, comment=data["comment"]
        ),
        done=gettext("Marked as sent, with your evidence recorded."),
    )


@tenant_view(Permission.APPROVE)
@form_post("run_detail", "run_id")
def run_send_again(request: HttpRequest, run_id: int) -> HttpResponse:
    actor = actor_from_request(request)
    return _act(
        request,
        run_id,
        form_class=PersonDecisionForm,
        form_key="again_form",
        perform=lambda run, data: services.run_send_again(
            actor=actor, run=run, comment=data["comment"]
        ),
        done=gettext("Queued to be sent again, with your evidence recorded."),
    )


# -- presentation helpers ---------------------------------------------------------------------


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _pretty_body(body: Any) -> str:
    if body in (None, ""):
        return ""
    text = body if isinstance(body, str) else _pretty_json(body)
    # Not every body is JSON (HTML error pages, form posts): those are shown as they came.
    with contextlib.suppress(TypeError, ValueError):
        text = _pretty_json(json.loads(text))
    if len(text) > MAX_BODY_CHARS:
        text = f"{text[:MAX_BODY_CHARS]}\n… ({len(text) - MAX_BODY_CHARS} more characters)"
    return text


def _safe_headers(headers: Any) -> list[tuple[str, str]]:
    if not isinstance(headers, dict):
        return []
    rows = []
    for name, value in sorted(headers.items()):
        lowered = str(name).lower()
        if lowered in CREDENTIAL_HEADERS or any(word in lowered for word in SECRET_KEY_WORDS):
            value = REDACTED
        rows.append((str(name), str(value)))
    return rows


def _display_exchange(exchange: Any) -> dict[str, Any] | None:
    """An attempt's stored (already redacted) exchange, shaped for reading."""
    if not isinstance(exchange, dict) or not exchange:
        return None
    return {
        "method": exchange.get("method", ""),
        "url": exchange.get("url", ""),
        "request_headers": _safe_headers(exchange.get("request_headers")),
        "request_body": _pretty_body(exchange.get("request_body")),
        "status_code": exchange.get("status_code"),
        "response_headers": _safe_headers(exchange.get("response_headers")),
        "response_body": _pretty_body(exchange.get("response_body")),
        "error": exchange.get("error", ""),
    }


def _event_details(summary: Any) -> str:
    """What an audit row says beyond the state change and its reason (shown beside them)."""
    if not isinstance(summary, dict):
        return ""
    rest = {
        key: value
        for key, value in summary.items()
        if key not in ("from", "to", "reason", "comment")
    }
    return json.dumps(rest, sort_keys=True, ensure_ascii=False, default=str) if rest else ""
