"""The event-generator pages, under /t/<tenant_slug>/campaigns/. Thin: forms check input, the
schema module reads the context, services decide and write, selectors read."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from campaigns.event_generators import schema as schemas
from campaigns.event_generators import selectors, services
from campaigns.event_generators.explain import explain_run
from campaigns.event_generators.forms import (
    CampaignSettingsForm,
    GeneratorForm,
    TriggerForm,
    new_idempotency_key,
)
from campaigns.event_generators.models import EventGenerator, ScheduleState
from campaigns.event_generators.send_window import (
    generator_rules,
    generator_window_set,
    next_allowed_for_generator,
)
from dashboard.clock import utc_now
from dashboard.models import Permission
from dashboard.project.errors import form_post
from dashboard.runs import selectors as run_selectors
from dashboard.runs.services import ProbableDuplicate, RunActionError
from dashboard.runs.states import RunState
from dashboard.send_windows import selectors as send_window_selectors
from dashboard.send_windows.forms import SendWindowForm
from dashboard.send_windows.services import OutsideSendWindow, WindowInput
from dashboard.tenancy.forms import apply_service_errors
from dashboard.tenancy.scoping import actor_from_request, tenant_view

T = "campaigns/"


# -- home and settings -------------------------------------------------------------------------


@tenant_view(Permission.VIEW)
@require_GET
def campaign_home(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    return render(
        request,
        T + "campaign_home.html",
        {
            "generators": selectors.generator_list(tenant=tenant),
            "schedules": selectors.schedule_list(tenant=tenant, upcoming_only=True)[:20],
            "groups": selectors.recent_groups(tenant=tenant),
            "settings": services.campaign_settings(tenant=tenant),
            "can_request": request.membership.can(Permission.REQUEST),
        },
    )


@tenant_view(Permission.MANAGE)
@require_http_methods(["GET", "POST"])
def campaign_settings(request: HttpRequest) -> HttpResponse:
    settings = services.campaign_settings(tenant=request.tenant)
    form = CampaignSettingsForm(
        request.POST or None, initial={"approval_required": settings.approval_required}
    )
    if request.method == "POST" and form.is_valid():
        services.campaign_settings_update(
            actor=actor_from_request(request),
            tenant=request.tenant,
            approval_required=form.cleaned_data["approval_required"],
        )
        messages.success(request, gettext("Campaign settings saved."))
        return redirect("campaign_home", tenant_slug=request.tenant.slug)
    return render(request, T + "campaign_settings.html", {"form": form})


# -- the registry ------------------------------------------------------------------------------


def _schema_preview_context(schema_text: str) -> dict[str, Any]:
    try:
        schema = schemas.parse_schema_text(schema_text)
    except ValidationError as error:
        return {"preview_error": " ".join(error.messages)}
    return {
        "preview_fields": schemas.form_fields(schema),
        "preview_values": schemas.form_initial(schema),
    }


@tenant_view(Permission.REQUEST)
@require_http_methods(["GET", "POST"])
def generator_create(request: HttpRequest) -> HttpResponse:
    connections = selectors.campaign_connections(tenant=request.tenant)
    form = GeneratorForm(request.POST or None, request.FILES or None, connections=connections)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            generator = services.generator_create(
                actor=actor_from_request(request),
                tenant=request.tenant,
                connection=data.get("connection"),
                external_id=data.get("external_id") or "",
                name=data.get("name") or "",
                description=data.get("description") or "",
                topics=data.get("topics") or [],
                schema=data["schema"],
                comment=data.get("comment") or "",
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(
                request,
                gettext("Event generator %(generator_name)s registered.")
                % {"generator_name": generator.name},
            )
            return redirect(
                "event_generator_detail", tenant_slug=request.tenant.slug, generator_id=generator.pk
            )
    return _render_generator_form(request, form, None)


def _render_generator_form(
    request: HttpRequest, form: GeneratorForm, generator: EventGenerator | None
) -> HttpResponse:
    schema_text = form["schema"].value() or ""
    if isinstance(schema_text, dict):
        schema_text = json.dumps(schema_text)
    return render(
        request,
        T + "generator_form.html",
        {
            "form": form,
            "generator": generator,
            **(_schema_preview_context(schema_text) if schema_text else {}),
        },
        status=400 if form.is_bound and form.errors else 200,
    )


@tenant_view(Permission.REQUEST)
@require_http_methods(["GET", "POST"])
def generator_edit(request: HttpRequest, generator_id: int) -> HttpResponse:
    generator = selectors.generator_get(tenant=request.tenant, generator_id=generator_id)
    current = generator.current_schema
    initial = {
        "name": generator.name,
        "description": generator.description,
        "topics": [(topic.key, topic.name) for topic in generator.topics.all()],
        "schema": current.document if current else None,
    }
    form = GeneratorForm(request.POST or None, request.FILES or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            version = services.generator_update(
                actor=actor_from_request(request),
                generator=generator,
                name=data.get("name") or "",
                description=data.get("description") or "",
                topics=data.get("topics") or [],
                schema=data["schema"],
                comment=data.get("comment") or "",
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(
                request,
                f"Saved. The schema is now version {version.number}."
                if version
                else "Saved. The schema did not change.",
            )
            return redirect(
                "event_generator_detail", tenant_slug=request.tenant.slug, generator_id=generator.pk
            )
    return _render_generator_form(request, form, generator)


@tenant_view(Permission.VIEW)
@require_POST
def schema_preview(request: HttpRequest) -> HttpResponse:
    """The form a schema produces, rendered as the editor's text changes (htmx)."""
    return render(
        request,
        T + "generator_form.html#preview",
        _schema_preview_context(request.POST.get("schema", "")),
    )


@tenant_view(Permission.VIEW)
@require_GET
def generator_detail(request: HttpRequest, generator_id: int) -> HttpResponse:
    generator = selectors.generator_get(tenant=request.tenant, generator_id=generator_id)
    return _generator_page(request, generator)


def _generator_page(
    request: HttpRequest,
    generator: EventGenerator,
    *,
    window_form: GeneratorWindowForm | None = None,
    status: int = 200,
) -> HttpResponse:
    history = selectors.generator_history(generator=generator)
    runs = selectors.generator_runs(generator=generator)
    for link in runs:
        link.explanation = explain_run(link.run)
    return render(
        request,
        T + "generator_detail.html",
        {
            "generator": generator,
            "versions": list(generator.schema_versions.all()),
            "topics": list(generator.topics.all()),
            "history": history,
            "chart": selectors.history_chart_svg(history),
            "runs": runs,
            "groups": selectors.recent_groups(tenant=request.tenant, generator=generator, limit=10),
            "can_request": request.membership.can(Permission.REQUEST),
            "window_rules": generator_rules(generator),
            "window_form": window_form or GeneratorWindowForm.for_rules(generator_rules(generator)),
            "window_open": window_form is not None,
        },
        status=status,
    )


class GeneratorWindowForm(SendWindowForm):
    """The connection's send-window form without blackout dates (those are the connection's)."""

    blackouts = None


@tenant_view(Permission.APPROVE)
@form_post("event_generator_detail", "generator_id")
def generator_send_window(request: HttpRequest, generator_id: int) -> HttpResponse:
    generator = selectors.generator_get(tenant=request.tenant, generator_id=generator_id)
    form = GeneratorWindowForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        window = (
            None
            if data["any_time"]
            else WindowInput(
                [int(day) for day in data["weekdays"]],
                data["start"],
                data["end"],
                data["time_zone"],
            )
        )
        try:
            found = generator_window_set(
                actor=actor_from_request(request),
                generator=generator,
                window=window,
                reason=data["reason"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(
                request,
                gettext("Send window of %(generator_name)s: %(window)s.")
                % {"generator_name": generator.name, "window": found.describe()},
            )
            return redirect(
                "event_generator_detail", tenant_slug=request.tenant.slug, generator_id=generator.pk
            )
    return _generator_page(request, generator, window_form=form, status=422)


@tenant_view(Permission.VIEW)
@require_GET
def generator_export(request: HttpRequest, generator_id: int) -> HttpResponse:
    generator = selectors.generator_get(tenant=request.tenant, generator_id=generator_id)
    response = JsonResponse(
        services.generator_export(generator=generator), json_dumps_params={"indent": 2}
    )
    response["Content-Disposition"] = (
        f'attachment; filename="event-generator-{generator.external_id}.json"'
    )
    return response


# -- the trigger form --------------------------------------------------------------------------


def _context_values(request: HttpRequest) -> dict[str, str]:
    return {
        key: value for key, value in request.POST.items() if key.startswith(schemas.FIELD_PREFIX)
    }


def _trigger_page(
    request: HttpRequest,
    generator: EventGenerator,
    *,
    form: TriggerForm,
    values: dict[str, str],
    field_errors: dict[str, list[str]] | None = None,
    duplicate: ProbableDuplicate | None = None,
    outside: OutsideSendWindow | None = None,
    schedule: Any = None,
    status: int = 200,
) -> HttpResponse:
    current = generator.current_schema
    fields = schemas.form_fields(current.document) if current else []
    schemas.bind(fields, values, field_errors or {})
    context = {
        "generator": generator,
        "schema_version": current,
        "form": form,
        "fields": fields,
        "values": values,
        "field_errors": field_errors or {},
        "non_field_errors": (field_errors or {}).get(schemas.NON_FIELD, []),
        "duplicate": duplicate,
        "outside": outside,
        "outside_next": outside.rules.when(outside.next_allowed_at) if outside else "",
        "schedule": schedule,
        "topic_count": generator.topics.count(),
        "approval_required": services.campaign_settings(tenant=request.tenant).approval_required,
        **_preview(generator, form, values),
    }
    return render(request, T + "trigger_form.html", context, status=status)


def _preview(
    generator: EventGenerator, form: TriggerForm, values: dict[str, str]
) -> dict[str, Any]:
    """The exact body the first selected topic's request will carry, and the context's errors."""
    current = generator.current_schema
    if current is None:
        return {"preview_body": "", "preview_errors": {}}
    context, errors = schemas.parse_form(current.document, values)
    for name, messages_ in schemas.context_errors(current.document, context).items():
        errors.setdefault(name, []).extend(messages_)
    topics = form["topics"].value() or []
    all_topics = form["all_topics"].value() in (True, "on", "true", "1")
    keys = list(generator.topics.values_list("key", flat=True)) if all_topics else list(topics)
    return {
        "preview_body": schemas.request_body(
            topic_key=keys[0] if keys else "<topic key>", context=context
        ),
        "preview_topic_count": len(keys),
        "preview_errors": errors,
    }


@tenant_view(Permission.REQUEST)
@require_http_methods(["GET", "POST"])
def trigger(request: HttpRequest, generator_id: int) -> HttpResponse:
    generator = selectors.generator_get(tenant=request.tenant, generator_id=generator_id)
    topics = list(generator.topics.all())
    current = generator.current_schema
    if request.method == "GET":
        initial: dict[str, Any] = {"idempotency_key": new_idempotency_key()}
        context_initial = None
        relaunch = request.GET.get("relaunch")
        if relaunch and relaunch.isdigit():
            link = selectors.campaign_run_get(tenant=request.tenant, run_id=int(relaunch))
            try:
                prefill = services.relaunch_initial(run=link.run)
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
            else:
                initial["topics"] = prefill["topic_keys"]
                context_initial = prefill["context"]
                messages.info(
                    request,
                    gettext(
                        "Relaunching run #%(run_id)s: check the values, then send. This is a "
                        "new request; an identical one sent recently is flagged before it goes "
                        "out."
                    )
                    % {"run_id": link.run_id},
                )
        values = schemas.form_initial(current.document, context_initial) if current else {}
        form = TriggerForm(initial=initial, topics=topics)
        return _trigger_page(request, generator, form=form, values=values)

    form = TriggerForm(request.POST, topics=topics)
    values = _context_values(request)
    if current is None:
        messages.error(request, gettext("This event generator has no schema yet."))
        return _trigger_page(request, generator, form=form, values=values, status=400)
    context, parse_errors = schemas.parse_form(current.document, values)
    if not form.is_valid() or parse_errors:
        return _trigger_page(
            request, generator, form=form, values=values, field_errors=parse_errors, status=400
        )
    data = form.cleaned_data
    topic_keys = form.topic_keys([topic.key for topic in topics])
    actor = actor_from_request(request)
    try:
        if data["when"] == "now" and data["at_next_allowed"]:
            scheduled = _schedule_at_next_allowed(request, generator, topic_keys, context, data)
            if scheduled is not None:
                return scheduled
        if data["when"] == "later":
            schedule = services.schedule_create(
                actor=actor,
                generator=generator,
                topic_keys=topic_keys,
                context=context,
                fire_at=data["fire_at"],
                send_anyway=data["send_anyway"],
            )
            messages.success(
                request,
                gettext("Scheduled for %(fire_at)s UTC. Nothing is sent before then.")
                % {"fire_at": format(schedule.fire_at, "%Y-%m-%d %H:%M:%S")},
            )
            return redirect("campaign_schedule_list", tenant_slug=request.tenant.slug)
        group = services.campaign_trigger(
            actor=actor,
            generator=generator,
            topic_keys=topic_keys,
            context=context,
            idempotency_key=data["idempotency_key"],
            send_anyway=data["send_anyway"],
        )
    except ProbableDuplicate as duplicate:
        return _trigger_page(
            request, generator, form=form, values=values, duplicate=duplicate, status=409
        )
    except OutsideSendWindow as outside:
        # Refused, with the choice of a schedule for when the window opens (nothing saved yet).
        return _trigger_page(
            request, generator, form=form, values=values, outside=outside, status=409
        )
    except (ValidationError, RunActionError) as error:
        field_errors: dict[str, list[str]] = {}
        if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            for name, messages_ in error.message_dict.items():
                if name in form.fields:
                    for message in messages_:
                        form.add_error(name, message)
                elif name.startswith(schemas.FIELD_PREFIX) or name in ("topics", schemas.NON_FIELD):
                    field_errors[name] = messages_
                else:  # the connection, say: not an input of this form
                    for message in messages_:
                        form.add_error(None, message)
        else:
            form.add_error(None, " ".join(getattr(error, "messages", [str(error)])))
        return _trigger_page(
            request, generator, form=form, values=values, field_errors=field_errors, status=400
        )
    return _after_trigger(request, group)


def _schedule_at_next_allowed(
    request: HttpRequest,
    generator: EventGenerator,
    topic_keys: list[str],
    context: Any,
    data: dict[str, Any],
) -> HttpResponse | None:
    """Schedule the trigger for its connection's next allowed time, through the schedule
    service (checked and audited as any schedule); None when that time is now: send now."""
    now = utc_now()
    # Both the connection's window and the generator's own.
    found = send_window_selectors.send_rules_for(
        connection_id=generator.connection_id, connection_name=generator.connection.name
    )
    fire_at = next_allowed_for_generator(generator, now)
    if fire_at is not None and fire_at <= now + timedelta(seconds=1):
        return None  # the window opened meanwhile
    if fire_at is None:
        raise ValidationError(found.when(None).capitalize() + ": nothing can be scheduled.")
    schedule = services.schedule_create(
        actor=actor_from_request(request),
        generator=generator,
        topic_keys=topic_keys,
        context=context,
        fire_at=fire_at,
        send_anyway=data["send_anyway"],
    )
    messages.success(
        request,
        gettext(
            "Scheduled for the next allowed time of %(connection_name)s: %(when)s. "
            "Nothing is sent before then."
        )
        % {"connection_name": generator.connection.name, "when": found.when(schedule.fire_at)},
    )
    return redirect("campaign_schedule_list", tenant_slug=request.tenant.slug)


def _after_trigger(request: HttpRequest, group) -> HttpResponse:
    links = list(group.campaign_runs.order_by("run_id")[:2])
    if len(links) == 1:
        return redirect(
            "campaign_run_detail", tenant_slug=request.tenant.slug, run_id=links[0].run_id
        )
    return redirect("trigger_group_detail", tenant_slug=request.tenant.slug, group_id=group.pk)


@tenant_view(Permission.REQUEST)
@require_POST
def trigger_preview(request: HttpRequest, generator_id: int) -> HttpResponse:
    """The live body preview and per-field errors while the user types (htmx)."""
    generator = selectors.generator_get(tenant=request.tenant, generator_id=generator_id)
    form = TriggerForm(request.POST, topics=list(generator.topics.all()))
    return render(
        request,
        T + "trigger_form.html#preview",
        {"generator": generator, **_preview(generator, form, _context_values(request))},
    )


# -- runs and groups ---------------------------------------------------------------------------


def _run_context(request: HttpRequest, link) -> dict[str, Any]:
    run = link.run
    attempts, timeline = run_selectors.run_attempts_and_timeline(run=run)
    return {
        "can_request": request.membership.can(Permission.REQUEST),
        "link": link,
        "run": run,
        "outcome": selectors.execution_outcome(run),
        "explanation": explain_run(run),
        "live": run.is_open and not (run.state == RunState.OUTCOME_UNKNOWN and run.needs_person),
        "attempts": attempts,
        "timeline": timeline,
    }


@tenant_view(Permission.VIEW)
@require_GET
@vary_on_headers("HX-Request")
def campaign_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    link = selectors.campaign_run_get(tenant=request.tenant, run_id=run_id)
    context = _run_context(request, link)
    if request.htmx:
        content = render_to_string(T + "run_detail.html#status", context, request=request)
        return HttpResponse(content) if context["live"] else HttpResponseStopPolling(content)
    run = link.run
    context.update(
        {
            "body": schemas.request_body(
                topic_key=run.parameters.get("topic_key", ""),
                context=run.parameters.get("context") or {},
            ),
        }
    )
    return render(request, T + "run_detail.html", context)


@tenant_view(Permission.VIEW)
@require_GET
@vary_on_headers("HX-Request")
def trigger_group_detail(request: HttpRequest, group_id: int) -> HttpResponse:
    group = selectors.group_get(tenant=request.tenant, group_id=group_id)
    status = selectors.group_status(group=group)
    for link in status.rows:
        link.explanation = explain_run(link.run)
    context = {
        "group": group,
        "status": status,
        "outcome": selectors.group_outcome(status),
        "can_request": request.membership.can(Permission.REQUEST),
        "can_retry": not services.trigger_group_retry_refusal(
            actor=actor_from_request(request), group=group, membership=request.membership
        ),
    }
    if request.htmx:
        content = render_to_string(T + "group_detail.html#rows", context, request=request)
        return HttpResponseStopPolling(content) if status.finished else HttpResponse(content)
    return render(request, T + "group_detail.html", context)


@tenant_view(Permission.REQUEST)
@require_POST
def trigger_group_retry(request: HttpRequest, group_id: int) -> HttpResponse:
    group = selectors.group_get(tenant=request.tenant, group_id=group_id)
    try:
        runs = services.trigger_group_retry_failed(actor=actor_from_request(request), group=group)
    except (ValidationError, ProbableDuplicate, RunActionError) as error:
        messages.error(request, str(error))
    else:
        if runs:
            messages.success(
                request,
                ngettext(
                    "Sending again for %(count)s failed topic.",
                    "Sending again for %(count)s failed topics.",
                    len(runs),
                )
                % {"count": len(runs)},
            )
        else:
            messages.info(
                request, gettext("No topic of this trigger has failed: nothing to retry.")
            )
    return redirect("trigger_group_detail", tenant_slug=request.tenant.slug, group_id=group.pk)


# -- schedules ---------------------------------------------------------------------------------


@tenant_view(Permission.VIEW)
@require_GET
def schedule_list(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    upcoming = list(selectors.schedule_list(tenant=request.tenant, upcoming_only=True))
    for schedule in upcoming:
        schedule.may_change = not services.schedule_change_refusal(
            actor=actor, schedule=schedule, membership=request.membership
        )
    return render(
        request,
        T + "schedule_list.html",
        {
            "upcoming": upcoming,
            "past": selectors.past_schedules(tenant=request.tenant),
            "can_request": request.membership.can(Permission.REQUEST),
        },
    )


@tenant_view(Permission.REQUEST)
@require_http_methods(["GET", "POST"])
def schedule_edit(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = selectors.schedule_get(tenant=request.tenant, schedule_id=schedule_id)
    refusal = services.schedule_change_refusal(
        actor=actor_from_request(request), schedule=schedule, membership=request.membership
    )
    if refusal:
        raise PermissionDenied(refusal)
    generator = schedule.generator
    topics = list(generator.topics.all())
    current = generator.current_schema
    if schedule.state != ScheduleState.SCHEDULED:
        messages.error(
            request, gettext("This schedule already fired or was cancelled: it cannot change.")
        )
        return redirect("campaign_schedule_list", tenant_slug=request.tenant.slug)
    if request.method == "GET":
        form = TriggerForm(
            initial={
                "topics": schedule.topic_keys,
                "when": "later",
                "fire_at": schedule.fire_at.replace(tzinfo=None),
            },
            topics=topics,
        )
        values = schemas.form_initial(current.document, schedule.context)
        return _trigger_page(request, generator, form=form, values=values, schedule=schedule)
    form = TriggerForm(request.POST, topics=topics)
    values = _context_values(request)
    context, parse_errors = schemas.parse_form(current.document, values)
    if not form.is_valid() or parse_errors:
        return _trigger_page(
            request,
            generator,
            form=form,
            values=values,
            field_errors=parse_errors,
            schedule=schedule,
            status=400,
        )
    try:
        services.schedule_update(
            actor=actor_from_request(request),
            schedule=schedule,
            topic_keys=form.topic_keys([topic.key for topic in topics]),
            context=context,
            fire_at=form.cleaned_data["fire_at"],
        )
    except ValidationError as error:
        field_errors = {}
        if hasattr(error, "error_dict"):
            for name, messages_ in error.message_dict.items():
                if name in form.fields:
                    for message in messages_:
                        form.add_error(name, message)
                else:
                    field_errors[name] = messages_
        else:
            form.add_error(None, " ".join(error.messages))
        return _trigger_page(
            request,
            generator,
            form=form,
            values=values,
            field_errors=field_errors,
            schedule=schedule,
            status=400,
        )
    messages.success(request, gettext("Schedule changed."))
    return redirect("campaign_schedule_list", tenant_slug=request.tenant.slug)


@tenant_view(Permission.REQUEST)
@require_POST
def schedule_cancel(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = selectors.schedule_get(tenant=request.tenant, schedule_id=schedule_id)
    try:
        services.schedule_cancel(actor=actor_from_request(request), schedule=schedule)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, gettext("Schedule cancelled. Nothing will be sent."))
    return redirect("campaign_schedule_list", tenant_slug=request.tenant.slug)
