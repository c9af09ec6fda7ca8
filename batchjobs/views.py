"""The daily trigger page and the TalkifAI batch jobs page. Thin: forms check input, services
decide and write, selectors read; a guardrail's refusal is shown to the person in its own words."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from batchjobs import explanations, guardrails, selectors, services
from batchjobs.forms import (
    ApproveForm,
    BatchJobRegisterForm,
    BatchJobStartForm,
    DailyTriggerChangeForm,
    DailyTriggerRequestForm,
    FilesLandedForm,
    RejectForm,
)
from batchjobs.vendors.talkifai import status as talkifai_status
from batchjobs.vendors.talkifai.client import FINISHED_STATUSES, parse_timestamp
from dashboard.mfa.step_up import step_up_required
from dashboard.models import Permission
from dashboard.project.errors import form_post
from dashboard.runs import selectors as run_selectors
from dashboard.runs.models import Approval, Run
from dashboard.runs.operations import operation_for
from dashboard.runs.services import RunActionError, approval_progress, run_cancel_refusal
from dashboard.runs.states import RunState
from dashboard.tenancy.forms import apply_service_errors
from dashboard.tenancy.scoping import actor_from_request, tenant_view

DAILY_TEMPLATE = "batchjobs/daily_trigger.html"
JOBS_TEMPLATE = "batchjobs/batch_job_list.html"


def _annotate(run: Run | None) -> Run | None:
    """Give a run what the templates show beside it: a description, its approval, what went
    wrong in plain words."""
    if run is not None and not hasattr(run, "explanation"):
        run.description = operation_for(run.operation).describe(run.parameters)
        # The daily status reads both with its runs; other runs from their approvals.
        if not hasattr(run, "approval"):
            run.approval = (
                guardrails.approved_by(run) if run.operation == guardrails.DAILY else None
            )
        if not hasattr(run, "rejection"):
            # Who rejected it, and why (only for the few runs that were rejected).
            run.rejection = (
                run_selectors.run_rejection(run) if run.state == RunState.CANCELLED else None
            )
        run.explanation = explanations.run_explanation(run)
        run.vendor_started_at = parse_timestamp((run.result or {}).get("started_at"))
    return run


# -- the daily trigger ----------------------------------------------------------------------


def _daily_status(request: HttpRequest) -> guardrails.DailyTriggerStatus:
    status = guardrails.daily_trigger_status(tenant=request.tenant, membership=request.membership)
    for run in (status.triggered_today, status.open_run, status.latest_today, *status.recent_runs):
        _annotate(run)
    return status


def _status_context(request: HttpRequest, status: guardrails.DailyTriggerStatus) -> dict[str, Any]:
    membership = request.membership
    open_run = status.open_run
    context: dict[str, Any] = {"status": status}
    if open_run is not None and open_run.state == RunState.AWAITING_APPROVAL:
        is_requester = open_run.requested_by_id == request.user.pk
        # Only a request needing more than one approval reads who approved it so far (one
        # query): the usual page keeps its query budget.
        given = (
            list(
                open_run.approvals.filter(
                    decision=Approval.Decision.APPROVED, parameters_hash=open_run.parameters_hash
                ).select_related("decided_by")
            )
            if open_run.approvals_needed > 1
            else []
        )
        context.update(
            {
                "is_requester": is_requester,
                "approve_blockers": status.approve_blockers(open_run, membership=membership),
                "approvals_given": given,
                "i_approved": any(approval.decided_by_id == request.user.pk for approval in given),
                "approve_form": ApproveForm(
                    initial={"parameters_hash": open_run.parameters_hash},
                    auto_id=f"approve-{open_run.pk}-%s",
                ),
                "can_withdraw": not run_cancel_refusal(
                    actor=actor_from_request(request), run=open_run, membership=membership
                ),
            }
        )
    return context


def _render_daily(
    request: HttpRequest,
    status: guardrails.DailyTriggerStatus,
    *,
    request_form: Form | None = None,
    http_status: int = 200,
) -> HttpResponse:
    membership = request.membership
    # Who may press the button at all depends on the role and the tenant's approval setting.
    may_request = membership.can(Permission.REQUEST) and (
        status.approval_required or membership.can(Permission.APPROVE)
    )
    context = {
        **_status_context(request, status),
        "may_request": may_request,
        "request_form": request_form or DailyTriggerRequestForm(),
        "files_landed_form": FilesLandedForm(initial={"utc_date": status.utc_date}),
    }
    return render(request, DAILY_TEMPLATE, context, status=http_status)


@tenant_view(Permission.VIEW)
@require_GET
@vary_on_headers("HX-Request")
def daily_trigger(request: HttpRequest) -> HttpResponse:
    """Can we trigger Optimove's daily batch now, and if not, why? Refreshes itself (htmx)."""
    status = _daily_status(request)
    if request.htmx:
        # Polling never stops here: the clock, the rate window and the day boundary move on.
        return render(request, f"{DAILY_TEMPLATE}#status", _status_context(request, status))
    return _render_daily(request, status)


def _back_to_daily(request: HttpRequest) -> HttpResponse:
    return redirect("daily_trigger", tenant_slug=request.tenant.slug)


@tenant_view(Permission.REQUEST)
@form_post("daily_trigger")
def daily_trigger_request(request: HttpRequest) -> HttpResponse:
    form = DailyTriggerRequestForm(request.POST)
    http_status = 400
    if form.is_valid():
        try:
            run = services.daily_trigger_request(
                actor=actor_from_request(request),
                tenant=request.tenant,
                wait_time_for_validation_seconds=form.cleaned_data[
                    "wait_time_for_validation_seconds"
                ],
                idempotency_key=form.cleaned_data["idempotency_key"],
                files_uploaded_attested=form.cleaned_data["attest_files_uploaded"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        except RunActionError as error:
            form.add_error(None, str(error))
            http_status = 409
        else:
            if run.state == RunState.AWAITING_APPROVAL:
                messages.success(
                    request,
                    gettext(
                        "Request #%(run_pk)s is waiting for another operator's approval. It "
                        "expires at %(approval_expires_at)s UTC."
                    )
                    % {
                        "run_pk": run.pk,
                        "approval_expires_at": format(run.approval_expires_at, "%H:%M"),
                    },
                )
            else:
                messages.success(
                    request,
                    gettext("Trigger #%(run_pk)s is queued; a worker sends it to Optimove now.")
                    % {"run_pk": run.pk},
                )
            return _back_to_daily(request)
    return _render_daily(
        request, _daily_status(request), request_form=form, http_status=http_status
    )


@tenant_view(Permission.APPROVE)
@form_post("daily_trigger")
@step_up_required
def daily_trigger_approve(request: HttpRequest, run_id: int) -> HttpResponse:
    run = guardrails.daily_run_get(tenant=request.tenant, run_id=run_id)
    form = ApproveForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("The approval form was incomplete; nothing was approved."))
        return _back_to_daily(request)
    try:
        run = services.daily_trigger_approve(
            actor=actor_from_request(request),
            tenant=request.tenant,
            run=run,
            parameters_hash_seen=form.cleaned_data["parameters_hash"],
            comment=form.cleaned_data["comment"],
        )
    except RunActionError as error:
        messages.error(request, gettext("Not approved: %(error)s") % {"error": error})
    else:
        messages.success(
            request,
            approval_progress(run)
            or f"Approved: trigger #{run.pk} is queued and goes to Optimove now.",
        )
    return _back_to_daily(request)


@tenant_view(Permission.APPROVE)
@form_post("daily_trigger")
def daily_trigger_reject(request: HttpRequest, run_id: int) -> HttpResponse:
    run = guardrails.daily_run_get(tenant=request.tenant, run_id=run_id)
    form = RejectForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    try:
        services.daily_trigger_reject(
            actor=actor_from_request(request), tenant=request.tenant, run=run, comment=comment
        )
    except RunActionError as error:
        messages.error(request, gettext("Not rejected: %(error)s") % {"error": error})
    else:
        messages.success(
            request, gettext("Request #%(run_pk)s rejected; nothing was sent.") % {"run_pk": run.pk}
        )
    return _back_to_daily(request)


@tenant_view(Permission.REQUEST)
@form_post("daily_trigger")
def daily_trigger_withdraw(request: HttpRequest, run_id: int) -> HttpResponse:
    run = guardrails.daily_run_get(tenant=request.tenant, run_id=run_id)
    try:
        services.daily_trigger_withdraw(
            actor=actor_from_request(request), tenant=request.tenant, run=run
        )
    except RunActionError as error:
        messages.error(request, gettext("Not withdrawn: %(error)s") % {"error": error})
    else:
        messages.success(
            request,
            gettext("Request #%(run_pk)s withdrawn; nothing was sent.") % {"run_pk": run.pk},
        )
    return _back_to_daily(request)


@tenant_view(Permission.REQUEST)
@form_post("daily_trigger")
def daily_trigger_change(request: HttpRequest, run_id: int) -> HttpResponse:
    run = guardrails.daily_run_get(tenant=request.tenant, run_id=run_id)
    form = DailyTriggerChangeForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(message for field in form.errors.values() for message in field)
        messages.error(request, gettext("Not changed: %(errors)s") % {"errors": errors})
        return _back_to_daily(request)
    try:
        services.daily_trigger_change_wait(
            actor=actor_from_request(request),
            tenant=request.tenant,
            run=run,
            wait_time_for_validation_seconds=form.cleaned_data["wait_time_for_validation_seconds"],
        )
    except (RunActionError, ValidationError) as error:
        text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        messages.error(request, gettext("Not changed: %(text)s") % {"text": text})
    else:
        messages.success(
            request,
            gettext("Request #%(run_pk)s changed; an operator must approve the new parameters.")
            % {"run_pk": run.pk},
        )
    return _back_to_daily(request)


@tenant_view(Permission.REQUEST)
@form_post("daily_trigger")
def daily_files_landed(request: HttpRequest) -> HttpResponse:
    form = FilesLandedForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, gettext("The files-landed form was incomplete; nothing was recorded.")
        )
        return _back_to_daily(request)
    utc_date = form.cleaned_data["utc_date"]
    try:
        services.files_landed_give(
            actor=actor_from_request(request), tenant=request.tenant, utc_date=utc_date
        )
    except (ValidationError, RunActionError) as error:
        text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        messages.error(request, gettext("Not recorded: %(text)s") % {"text": text})
    else:
        messages.success(
            request,
            gettext("Recorded: all files for %(utc_date)s (UTC) landed.")
            % {"utc_date": format(utc_date, "%Y-%m-%d")},
        )
    return _back_to_daily(request)


# -- TalkifAI batch jobs ----------------------------------------------------------------------


def _starts_context(request: HttpRequest) -> dict[str, Any]:
    starts = [_annotate(run) for run in selectors.batch_job_start_runs(tenant=request.tenant)[:20]]
    return {"starts": starts, "starts_live": any(run.is_open for run in starts)}


def _render_jobs(
    request: HttpRequest, *, register_form: Form | None = None, http_status: int = 200
) -> HttpResponse:
    context = {
        **_starts_context(request),
        "jobs": selectors.batch_job_list(tenant=request.tenant),
        "register_form": register_form or BatchJobRegisterForm(tenant=request.tenant),
    }
    return render(request, JOBS_TEMPLATE, context, status=http_status)


@tenant_view(Permission.VIEW)
@require_GET
@vary_on_headers("HX-Request")
def batch_job_list(request: HttpRequest) -> HttpResponse:
    """The registered jobs (each row loads its vendor status itself) and the recent starts."""
    if request.htmx:
        # The recent starts refresh while one is under way, and stop once all are settled.
        context = _starts_context(request)
        content = render_to_string(f"{JOBS_TEMPLATE}#starts", context, request=request)
        return HttpResponse(content) if context["starts_live"] else HttpResponseStopPolling(content)
    return _render_jobs(request)


@tenant_view(Permission.VIEW)
@require_GET
def batch_job_row(request: HttpRequest, batch_job_pk: int) -> HttpResponse:
    """One job's row with its status read from TalkifAI now (loaded by the list page)."""
    job = selectors.batch_job_get(tenant=request.tenant, batch_job_pk=batch_job_pk)
    job.vendor = talkifai_status.batch_job_vendor_status(batch_job=job)
    job.last_start = _annotate(selectors.last_start_run(batch_job=job))
    job.poll_seconds = _job_poll_seconds(job)
    content = render_to_string(f"{JOBS_TEMPLATE}#job_row", {"job": job}, request=request)
    if job.poll_seconds is None:
        return HttpResponseStopPolling(content)
    return HttpResponse(content)


# How often a job's row asks TalkifAI again: fast while calls are being made or our start is
# under way, slower while it waits for its schedule or the status cannot be read, never once the
# job ended (nothing can change any more).
JOB_POLL_BUSY_SECONDS = 3
JOB_POLL_WAITING_SECONDS = 15


def _job_poll_seconds(job: Any) -> int | None:
    detail = job.vendor.detail
    if (job.last_start and job.last_start.is_open) or (detail and detail.is_running):
        return JOB_POLL_BUSY_SECONDS
    if detail is None or detail.status not in FINISHED_STATUSES:
        return JOB_POLL_WAITING_SECONDS
    return None


@tenant_view(Permission.REQUEST)
@form_post("batch_job_list")
def batch_job_register(request: HttpRequest) -> HttpResponse:
    form = BatchJobRegisterForm(request.POST, tenant=request.tenant)
    if form.is_valid():
        try:
            job = services.batch_job_register(
                actor=actor_from_request(request),
                tenant=request.tenant,
                connection=form.cleaned_data["connection"],
                batch_job_id=form.cleaned_data["batch_job_id"],
                name=form.cleaned_data["name"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        except RunActionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request,
                gettext("Batch job %(job_name)s (%(batch_job_id)s) registered.")
                % {"job_name": job.name, "batch_job_id": job.batch_job_id},
            )
            return redirect("batch_job_list", tenant_slug=request.tenant.slug)
    return _render_jobs(request, register_form=form, http_status=400)


@tenant_view(Permission.REQUEST)
@form_post("batch_job_list")
def batch_job_remove(request: HttpRequest, batch_job_pk: int) -> HttpResponse:
    job = selectors.batch_job_get(tenant=request.tenant, batch_job_pk=batch_job_pk)
    try:
        services.batch_job_remove(actor=actor_from_request(request), batch_job=job)
    except RunActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            gettext("%(job_name)s removed from the list (TalkifAI was not told).")
            % {"job_name": job.name},
        )
    return redirect("batch_job_list", tenant_slug=request.tenant.slug)


@tenant_view(Permission.APPROVE)
@require_http_methods(["GET", "POST"])
def batch_job_start(request: HttpRequest, batch_job_pk: int) -> HttpResponse:
    """The confirmation page of "Start now" (GET), and the start itself (POST)."""
    job = selectors.batch_job_get(tenant=request.tenant, batch_job_pk=batch_job_pk)
    form = BatchJobStartForm(request.POST if request.method == "POST" else None)
    http_status = 200
    if request.method == "POST":
        http_status = 400
        if form.is_valid():
            try:
                run = services.batch_job_start(
                    actor=actor_from_request(request),
                    batch_job=job,
                    idempotency_key=form.cleaned_data["idempotency_key"],
                )
            except ValidationError as error:
                apply_service_errors(form, error)
            except RunActionError as error:
                form.add_error(None, str(error))
                http_status = 409
            else:
                messages.success(
                    request,
                    gettext(
                        "Start of %(job_name)s requested (run #%(run_pk)s); a worker sends it "
                        "to TalkifAI now. The result appears under Recent starts."
                    )
                    % {"job_name": job.name, "run_pk": run.pk},
                )
                return redirect(reverse("batch_job_list", args=[request.tenant.slug]) + "#starts")
    job.vendor = talkifai_status.batch_job_vendor_status(batch_job=job)
    context = {
        "job": job,
        "form": form,
        "under_way": _annotate(selectors.open_start_run(batch_job=job)),
    }
    return render(request, "batchjobs/batch_job_start.html", context, status=http_status)
