"""Recurring schedule pages: the list (with the create form), one schedule (its next fires,
history and edit form), enable/disable/delete, and the tenant's calendar (week and month)."""

from __future__ import annotations

import contextlib
from datetime import date

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from dashboard.models import Permission
from dashboard.project.errors import form_post
from dashboard.recurring import cron, selectors, services
from dashboard.recurring.forms import RecurringScheduleForm
from dashboard.recurring.models import RecurringSchedule
from dashboard.recurring.targets import target_for
from dashboard.tenancy.forms import apply_service_errors
from dashboard.tenancy.scoping import actor_from_request, tenant_view

LIST_PAGE = "dashboard/recurring_list.html"
DETAIL_PAGE = "dashboard/recurring_detail.html"
CALENDAR_PAGE = "dashboard/recurring_calendar.html"


def _rows(request: HttpRequest) -> list[dict]:
    rows = []
    for schedule in selectors.schedule_list(tenant=request.tenant):
        rows.append(
            {
                "schedule": schedule,
                "words": cron.rule_words(schedule.cron),
                "next": selectors.next_fires(schedule=schedule, count=1),
            }
        )
    return rows


def _list_page(
    request: HttpRequest, *, form: RecurringScheduleForm | None = None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        LIST_PAGE,
        {
            "rows": _rows(request),
            "form": form or RecurringScheduleForm(tenant=request.tenant),
        },
        status=status,
    )


def _detail_page(
    request: HttpRequest,
    schedule: RecurringSchedule,
    *,
    form: RecurringScheduleForm | None = None,
    status: int = 200,
) -> HttpResponse:
    if form is None:
        initial = {
            "name": schedule.name,
            "cron": schedule.cron,
            "time_zone": schedule.time_zone,
            "enabled": schedule.enabled,
        }
        # Its target's app is gone: the form starts without a target.
        with contextlib.suppress(ValidationError):
            initial.update(
                target_for(schedule.target_kind).form_values(parameters=schedule.parameters)
            )
        form = RecurringScheduleForm(tenant=request.tenant, initial=initial)
    return render(
        request,
        DETAIL_PAGE,
        {
            "schedule": schedule,
            "words": cron.rule_words(schedule.cron),
            "fires": selectors.next_fires(schedule=schedule),
            "history": selectors.fire_history(schedule=schedule),
            "form": form,
            "refusal": services.schedule_change_refusal(
                actor=actor_from_request(request),
                schedule=schedule,
                membership=request.membership,
            ),
        },
        status=status,
    )


@tenant_view(Permission.VIEW)
@require_GET
def recurring_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@tenant_view(Permission.REQUEST)
@form_post("recurring_list")
def recurring_create(request: HttpRequest) -> HttpResponse:
    form = RecurringScheduleForm(request.POST, tenant=request.tenant)
    if form.is_valid():
        try:
            schedule = services.schedule_create(
                actor=actor_from_request(request),
                tenant=request.tenant,
                data=form.schedule_input(),
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(
                request, _("Recurring schedule %(name)s created.") % {"name": schedule.name}
            )
            return redirect(
                "recurring_detail", tenant_slug=request.tenant.slug, schedule_id=schedule.pk
            )
    messages.error(request, _("Nothing was saved: correct the fields marked below."))
    return _list_page(request, form=form, status=422)


@tenant_view(Permission.VIEW)
@require_GET
def recurring_detail(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = selectors.schedule_get(tenant=request.tenant, schedule_id=schedule_id)
    return _detail_page(request, schedule)


@tenant_view(Permission.REQUEST)
@form_post("recurring_detail", "schedule_id")
def recurring_update(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = selectors.schedule_get(tenant=request.tenant, schedule_id=schedule_id)
    form = RecurringScheduleForm(request.POST, tenant=request.tenant)
    if form.is_valid():
        try:
            schedule = services.schedule_update(
                actor=actor_from_request(request), schedule=schedule, data=form.schedule_input()
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, _("Recurring schedule saved."))
            return redirect(
                "recurring_detail", tenant_slug=request.tenant.slug, schedule_id=schedule.pk
            )
    messages.error(request, _("Nothing was saved: correct the fields marked below."))
    return _detail_page(request, schedule, form=form, status=422)


@tenant_view(Permission.REQUEST)
@require_POST
def recurring_set_enabled(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = selectors.schedule_get(tenant=request.tenant, schedule_id=schedule_id)
    enabled = request.POST.get("enabled") == "1"
    try:
        services.schedule_set_enabled(
            actor=actor_from_request(request), schedule=schedule, enabled=enabled
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Schedule enabled.") if enabled else _("Schedule disabled."))
    return redirect("recurring_detail", tenant_slug=request.tenant.slug, schedule_id=schedule.pk)


@tenant_view(Permission.REQUEST)
@require_POST
def recurring_delete(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = selectors.schedule_get(tenant=request.tenant, schedule_id=schedule_id)
    services.schedule_delete(actor=actor_from_request(request), schedule=schedule)
    messages.success(request, _("Recurring schedule %(name)s deleted.") % {"name": schedule.name})
    return redirect("recurring_list", tenant_slug=request.tenant.slug)


def _anchor(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@tenant_view(Permission.VIEW)
@require_GET
@vary_on_headers("HX-Request")
def recurring_calendar(request: HttpRequest) -> HttpResponse:
    zone = selectors.calendar_zone(tenant=request.tenant, requested=request.GET.get("zone", ""))
    found = selectors.tenant_calendar(
        tenant=request.tenant,
        view=request.GET.get("view", "week"),
        anchor=_anchor(request.GET.get("date")),
        zone_name=zone,
    )
    template = f"{CALENDAR_PAGE}#calendar" if request.htmx else CALENDAR_PAGE
    return render(request, template, {"calendar": found})
