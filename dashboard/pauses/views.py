"""The pause page: what is paused and why, what it holds; pause and resume (operators, admins)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET

from dashboard.models import Permission
from dashboard.pauses import selectors, services
from dashboard.pauses.forms import PauseForm, ResumeForm
from dashboard.project.errors import form_post
from dashboard.tenancy import selectors as tenancy_selectors
from dashboard.tenancy.scoping import actor_from_request, tenant_view

HELD_SHOWN = 50


def _page(request: HttpRequest, *, pause_form: PauseForm | None = None, status: int = 200):
    pauses = selectors.open_pauses(tenant=request.tenant)
    rows = []
    for pause in pauses:
        held = selectors.held_runs(pause=pause)
        rows.append(
            {
                "pause": pause,
                "held": list(held[:HELD_SHOWN]),
                "held_count": held.count(),
                "resume_form": ResumeForm(initial={"connection": pause.connection_id or ""}),
            }
        )
    return render(
        request,
        "dashboard/sending_pause.html",
        {
            "rows": rows,
            "connections": tenancy_selectors.connection_list(tenant=request.tenant),
            "pause_form": pause_form or PauseForm(),
            "history": selectors.pause_history(tenant=request.tenant),
        },
        status=status,
    )


@tenant_view(Permission.VIEW)
@require_GET
def sending_pause_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@tenant_view(Permission.APPROVE)
@form_post("sending_pause_page")
def sending_pause(request: HttpRequest) -> HttpResponse:
    form = PauseForm(request.POST)
    if form.is_valid():
        try:
            connection = services.connection_for_pause(
                tenant=request.tenant, name_or_id=form.cleaned_data["connection"]
            )
            pause = services.sending_pause(
                actor=actor_from_request(request),
                tenant=request.tenant,
                connection=connection,
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(
                request, _("Sending paused for %(scope)s.") % {"scope": pause.scope_label}
            )
            return redirect("sending_pause_page", tenant_slug=request.tenant.slug)
    return _page(request, pause_form=form, status=422)


@tenant_view(Permission.APPROVE)
@form_post("sending_pause_page")
def sending_resume(request: HttpRequest) -> HttpResponse:
    form = ResumeForm(request.POST)
    if not form.is_valid():  # a hidden field and a checkbox: only a forged post gets here
        messages.error(request, _("This form is incomplete; reload the page."))
        return redirect("sending_pause_page", tenant_slug=request.tenant.slug)
    try:
        connection = services.connection_for_pause(
            tenant=request.tenant, name_or_id=form.cleaned_data["connection"]
        )
        resumed = services.sending_resume(
            actor=actor_from_request(request),
            tenant=request.tenant,
            connection=connection,
            cancel_held=form.cleaned_data["cancel_held"],
        )
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, "; ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(
            request,
            ngettext(
                "Sending resumed for %(scope)s: %(released)s held run sent on, "
                "%(cancelled)s cancelled.",
                "Sending resumed for %(scope)s: %(released)s held runs sent on, "
                "%(cancelled)s cancelled.",
                resumed.released,
            )
            % {
                "scope": resumed.pause.scope_label,
                "released": resumed.released,
                "cancelled": resumed.cancelled,
            },
        )
    return redirect("sending_pause_page", tenant_slug=request.tenant.slug)


def _add_errors(form: PauseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)
