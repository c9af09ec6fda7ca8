"""The Altcraft pages, under /t/<tenant_slug>/campaigns/altcraft/. Thin: forms check input,
services decide and write, selectors read."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    ValidationError,
)
from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling

from campaigns.altcraft_launches import reading, selectors, services, storage
from campaigns.altcraft_launches.forms import (
    ColumnForm,
    HashForm,
    ImportForm,
    LaunchForm,
    SettingsForm,
    TriggerRegisterForm,
)
from campaigns.altcraft_launches.models import UNSENT_STATES, LaunchKind, LaunchState
from campaigns.altcraft_launches.uploads import EncryptingUploadHandler, StoredUploadFile
from dashboard.input_checks import unstorable_reason
from dashboard.mfa.step_up import step_up_required
from dashboard.models import Permission
from dashboard.runs.services import RunActionError
from dashboard.tenancy.forms import apply_service_errors
from dashboard.tenancy.scoping import actor_from_request, tenant_view

HOME = "campaigns/altcraft/home.html"
NEW = "campaigns/altcraft/launch_new.html"
MAPPING = "campaigns/altcraft/launch_mapping.html"
COLUMN = "campaigns/altcraft/launch_column.html"
DETAIL = "campaigns/altcraft/launch_detail.html"
TARGETS = [
    ("field", gettext_lazy("Profile field")),
    ("email_subscription", gettext_lazy("Email subscription")),
    ("phone_subscription", gettext_lazy("Phone subscription")),
    ("ignore", gettext_lazy("Ignore this column")),
]


def _home_context(request: HttpRequest, **forms: Any) -> dict[str, Any]:
    tenant = request.tenant
    found = services.altcraft_settings(tenant=tenant)
    return {
        "triggers": selectors.trigger_list(tenant=tenant),
        "launches": selectors.launch_list_with_outcomes(tenant=tenant),
        "altcraft_settings": found,
        "register_form": forms.get("register_form") or TriggerRegisterForm(tenant=tenant),
        "settings_form": forms.get("settings_form")
        or SettingsForm(
            initial={
                "approval_required": found.approval_required,
                "retention_hours": found.retention_hours,
            }
        ),
        "may_register": request.membership.can(Permission.APPROVE),
        "may_manage": request.membership.can(Permission.MANAGE),
        "may_request": request.membership.can(Permission.REQUEST),
    }


@tenant_view(Permission.VIEW)
@require_GET
def altcraft_home(request: HttpRequest) -> HttpResponse:
    """The registered trigger campaigns, the tenant's rules, and recent launches."""
    return render(request, HOME, _home_context(request))


@tenant_view(Permission.APPROVE)
@require_POST
def trigger_register(request: HttpRequest) -> HttpResponse:
    form = TriggerRegisterForm(request.POST, tenant=request.tenant)
    if form.is_valid():
        data = form.cleaned_data
        try:
            trigger = services.trigger_register(
                actor=actor_from_request(request),
                tenant=request.tenant,
                connection=data["connection"],
                trigger_id=data["trigger_id"],
                name=data["name"],
                default_matching=data["default_matching"],
                default_field_name=data["default_field_name"],
                resource_id=data["resource_id"],
                content_fields=data["content_fields"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, gettext("Registered %(trigger)s.") % {"trigger": trigger})
            return redirect("altcraft_home", tenant_slug=request.tenant.slug)
    return render(request, HOME, _home_context(request, register_form=form), status=400)


@tenant_view(Permission.MANAGE)
@require_POST
def altcraft_settings(request: HttpRequest) -> HttpResponse:
    form = SettingsForm(request.POST)
    if form.is_valid():
        try:
            services.altcraft_settings_update(
                actor=actor_from_request(request), tenant=request.tenant, **form.cleaned_data
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, gettext("Altcraft settings saved."))
            return redirect("altcraft_home", tenant_slug=request.tenant.slug)
    return render(request, HOME, _home_context(request, settings_form=form), status=400)


# -- a new launch ------------------------------------------------------------------------------


@csrf_exempt
@tenant_view(Permission.REQUEST)
@require_http_methods(["GET", "POST"])
def launch_new(request: HttpRequest) -> HttpResponse:
    """Upload a list (streamed and encrypted as it arrives), then read it: the preview."""
    # The list file goes to the encrypting handler; attachments to Django's usual ones. This
    # must happen before anything reads request.POST, hence csrf_exempt outside, protect inside.
    request.upload_handlers = [
        EncryptingUploadHandler(request),
        MemoryFileUploadHandler(request),
        TemporaryFileUploadHandler(request),
    ]
    content_length = int(request.META.get("CONTENT_LENGTH") or 0)
    if request.method == "POST" and content_length > services.upload_max_bytes() + 1024 * 1024:
        # Refused before anything reads the body (the CSRF check would read all of it): a
        # 2 GB upload gets its answer at once. Nothing changes, so no CSRF check is needed.
        kind = request.GET.get("kind") or LaunchKind.START_BATCH
        form_class = ImportForm if kind == LaunchKind.IMPORT else LaunchForm
        form = form_class(tenant=request.tenant)
        refusal = services.too_large_message(content_length)
        return _render_new(request, form, kind, status=413, refusal=refusal)
    if request.method == "POST":
        # Before the CSRF check reads the form: a form too large to read, or a field the
        # database cannot store, gets the app's bad-input page (the middleware left it to us).
        unstorable = _unstorable_field(request)
        if unstorable:
            return _bad_input(request, unstorable)
    return _launch_new(request)


# dashboard.project.middleware leaves this view's body unread: it sets its own upload handlers above
# and checks its own fields for unstorable characters (`_unstorable_field`).
launch_new.streams_upload = True


def _unstorable_field(request: HttpRequest) -> str:
    """What dashboard.project.middleware would refuse in this form, read through our handlers."""
    try:
        items = list(request.POST.lists())
    except (RequestDataTooBig, TooManyFieldsSent):
        return gettext("The form sent is too large to read. Shorten the long fields and retry.")
    except (SuspiciousOperation, MultiPartParserError):
        return gettext("The form sent could not be read.")
    for name, values in items:
        for value in [name, *values]:
            reason = unstorable_reason(value)
            if reason:
                return gettext("A form field contains %(reason)s.") % {"reason": reason}
    return ""


def _bad_input(request: HttpRequest, message: str) -> HttpResponse:
    # The same page the middleware answers bad input with on every other form.
    uploaded = request.FILES.get("file") if hasattr(request, "_files") else None
    _forget(uploaded.stored if isinstance(uploaded, StoredUploadFile) else None)
    return render(
        request,
        "dashboard/bad_input.html",
        {"message": message, "back": request.path},
        status=400,
    )


@csrf_protect
def _launch_new(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind") or request.POST.get("kind") or LaunchKind.START_BATCH
    if kind not in LaunchKind.values:
        kind = LaunchKind.START_BATCH
    form_class = ImportForm if kind == LaunchKind.IMPORT else LaunchForm
    initial = {"trigger": request.GET.get("trigger")}
    trigger = _trigger_from_query(request)
    if trigger is not None:
        initial["matching"] = trigger.default_matching
        initial["field_name"] = trigger.default_field_name
    if request.method == "GET":
        form = form_class(tenant=request.tenant, initial=initial)
        return _render_new(request, form, kind)
    form = form_class(request.POST, request.FILES, tenant=request.tenant)
    handler = request.upload_handlers[0]
    uploaded = request.FILES.get("file")
    stored = uploaded.stored if isinstance(uploaded, StoredUploadFile) else None
    if getattr(handler, "error", ""):
        form.add_error("file", handler.error)
    if not form.is_valid() or form.errors:
        _forget(stored)
        return _render_new(request, form, kind, status=400)
    data = form.cleaned_data
    try:
        parameters = _parameters(form, kind)
        if stored is None and (kind == LaunchKind.IMPORT or not (data.get("pasted") or "").strip()):
            raise ValidationError({"file": gettext("Choose a file (or paste a list).")})
        # A worker reads the list (the request stores the file and returns; the page shows
        # progress); an import waits for its column mapping first.
        launch = services.launch_from_list(
            actor=actor_from_request(request),
            trigger=data["trigger"],
            kind=kind,
            upload=stored,
            text=data["pasted"] if stored is None else None,
            matching=data["matching"],
            field_name=data["field_name"],
            source_name="pasted list" if stored is None else uploaded.name,
            parameters=parameters,
            idempotency_key=data["idempotency_key"],
        )
    except ValidationError as error:
        _forget(stored)
        apply_service_errors(form, error)
        return _render_new(request, form, kind, status=400)
    if launch.state == LaunchState.UPLOADED and kind == LaunchKind.IMPORT:
        return redirect(
            "altcraft_launch_mapping", tenant_slug=request.tenant.slug, launch_pk=launch.pk
        )
    if launch.state == LaunchState.UPLOADED and not launch.is_reading:
        return redirect(
            "altcraft_launch_column", tenant_slug=request.tenant.slug, launch_pk=launch.pk
        )
    return redirect("altcraft_launch_detail", tenant_slug=request.tenant.slug, launch_pk=launch.pk)


def _trigger_from_query(request: HttpRequest):
    try:
        pk = int(request.GET.get("trigger") or 0)
    except ValueError:
        return None
    return selectors.trigger_list(tenant=request.tenant).filter(pk=pk).first() if pk else None


def _forget(stored: services.StoredUpload | None) -> None:
    if stored is not None:
        storage.delete(stored.path)


def _parameters(form: LaunchForm, kind: str) -> dict[str, Any]:
    data = form.cleaned_data
    parameters: dict[str, Any] = {
        "matching": data["matching"],
        "field_name": data["field_name"] or None,
        "content": data["content"],
        "custom_data": data["custom_data"],
        "skip_triggers": True if data["skip_triggers"] else None,
    }
    files = data.get("attachments") or []
    if files:
        parameters["attach"] = [
            services.attachment(
                name=file.name, content=file.read(), content_type=file.content_type or ""
            )
            for file in files
        ]
    if kind == LaunchKind.IMPORT:
        parameters["skip_invalid_subscriptions"] = data["skip_invalid_subscriptions"] or None
        parameters["detect_geo"] = data["detect_geo"] or None
        parameters["timeout"] = form.timeout()
    return parameters


def _render_new(
    request: HttpRequest, form: LaunchForm, kind: str, status: int = 200, refusal: str = ""
) -> HttpResponse:
    context = {
        "refusal": refusal,
        "form": form,
        "kind": kind,
        "is_import": kind == LaunchKind.IMPORT,
        "max_bytes": services.upload_max_bytes(),
        "max_megabytes": services.upload_max_bytes() // 1_000_000,
        "triggers": selectors.trigger_list(tenant=request.tenant),
    }
    return render(request, NEW, context, status=status)


# -- mapping (imports) -------------------------------------------------------------------------------


def _guess(name: str) -> dict[str, Any]:
    lowered = name.strip().lower()
    if lowered in ("email", "e-mail", "mail"):
        return {"to": "field", "name": "email"}
    if lowered in ("phone", "phones", "mobile"):
        return {"to": "field", "name": "phones"}
    return {"to": "field", "name": name.strip()}


@tenant_view(Permission.REQUEST)
@require_http_methods(["GET", "POST"])
def launch_mapping(request: HttpRequest, launch_pk: int) -> HttpResponse:
    """Map each column of an import file to a profile field, a subscription, or nothing."""
    launch = selectors.launch_get(tenant=request.tenant, launch_pk=launch_pk)
    if launch.kind != LaunchKind.IMPORT or launch.state != LaunchState.UPLOADED:
        return redirect(
            "altcraft_launch_detail", tenant_slug=request.tenant.slug, launch_pk=launch.pk
        )
    services.check_uploader(actor_from_request(request), launch, "map this import's columns")
    if launch.is_reading:  # mapped already: a worker reads the file
        return redirect(
            "altcraft_launch_detail", tenant_slug=request.tenant.slug, launch_pk=launch.pk
        )
    try:
        names = services.import_columns(launch=launch)
    except (reading.FileRejected, storage.StoredFileError) as error:
        # The refusal is recorded (with its reason) and the stored file deleted.
        launch = services.launch_refuse(
            actor=actor_from_request(request), launch=launch, problem=str(error)
        )
        messages.error(request, str(error))
        return redirect(
            "altcraft_launch_detail", tenant_slug=request.tenant.slug, launch_pk=launch.pk
        )
    remembered = (launch.trigger.import_mapping or {}).get("columns", {})
    errors: list[str] = []
    if request.method == "POST":
        columns: dict[str, Any] = {}
        for index, name in enumerate(names):
            if not name:
                continue
            target = request.POST.get(f"target_{index}", "ignore")
            entry: dict[str, Any] = {"to": target}
            if target == "field":
                entry["name"] = request.POST.get(f"field_{index}", "").strip()
            elif target in ("email_subscription", "phone_subscription"):
                resource = request.POST.get(f"resource_{index}", "").strip()
                if resource:
                    if not resource.isdigit():
                        errors.append(
                            gettext("Column %(name)s: the resource ID must be a number.")
                            % {"name": repr(name)}
                        )
                    else:
                        entry["resource_id"] = int(resource)
            columns[name] = entry
        if not errors:
            # Read by a worker, as an upload is: the page shows its progress.
            launch = services.launch_prepare_queue(
                actor=actor_from_request(request), launch=launch, mapping={"columns": columns}
            )
            return redirect(
                "altcraft_launch_detail", tenant_slug=request.tenant.slug, launch_pk=launch.pk
            )
        remembered = columns
    rows = []
    for index, name in enumerate(names):
        if not name:
            continue
        current = remembered.get(name) or _guess(name)
        rows.append(
            {
                "index": index,
                "name": name,
                "to": current.get("to"),
                "field": current.get("name", ""),
                "resource": current.get("resource_id") or launch.trigger.resource_id or "",
            }
        )
    context = {"launch": launch, "rows": rows, "targets": TARGETS, "errors": errors}
    return render(request, MAPPING, context, status=400 if errors else 200)


# -- the column to send (bulk launches) ----------------------------------------------------------


@tenant_view(Permission.REQUEST)
@require_http_methods(["GET", "POST"])
def launch_column(request: HttpRequest, launch_pk: int) -> HttpResponse:
    """Choose which column of a bulk-launch file is sent (and its matching kind); the others
    are ignored."""
    launch = selectors.launch_get(tenant=request.tenant, launch_pk=launch_pk)
    if launch.kind != LaunchKind.START_BATCH or launch.state != LaunchState.UPLOADED:
        return _back(request, launch)
    actor = actor_from_request(request)
    services.check_uploader(actor, launch, "choose this launch's column")
    if launch.is_reading:  # chosen already: a worker reads the file
        return _back(request, launch)
    try:
        names = services.launch_columns(launch=launch)
    except (reading.FileRejected, storage.StoredFileError) as error:
        launch = services.launch_refuse(actor=actor, launch=launch, problem=str(error))
        messages.error(request, str(error))
        return _back(request, launch)
    if request.method == "POST":
        form = ColumnForm(request.POST, names=names)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.launch_column_choose(
                    actor=actor,
                    launch=launch,
                    names=names,
                    column=data["column"],
                    matching=data["matching"],
                    field_name=data["field_name"],
                )
            except ValidationError as error:
                apply_service_errors(form, error)
            except RunActionError as error:
                messages.error(request, str(error))
                return _back(request, launch)
            else:
                return _back(request, launch)
    else:
        form = ColumnForm(
            names=names,
            initial={
                "column": services.launch_column_default(launch=launch, names=names),
                "matching": launch.parameters["matching"],
                "field_name": launch.parameters.get("field_name") or "",
            },
        )
    context = {"launch": launch, "form": form, "names": [name for name in names if name]}
    return render(request, COLUMN, context, status=400 if form.errors else 200)


# -- a launch --------------------------------------------------------------------------------------


def _detail_context(request: HttpRequest, launch) -> dict[str, Any]:
    membership = request.membership
    progress = selectors.launch_progress(launch=launch)
    is_uploader = launch.created_by_id == request.user.pk
    actor = actor_from_request(request)
    approvals_given = [a for a in launch.approvals if a.get("sha256") == launch.source_sha256]
    i_approved = any(a.get("user") == request.user.pk for a in approvals_given)
    return {
        "launch": launch,
        "progress": progress,
        "outcome": selectors.launch_outcome(launch, progress),
        "hash_form": HashForm(initial={"sha256": launch.source_sha256}),
        "may_confirm": membership.can(Permission.REQUEST)
        and is_uploader
        and launch.state == LaunchState.PREVIEWED,
        "may_discard": launch.state in UNSENT_STATES
        and not services.launch_change_refusal(
            actor=actor, launch=launch, doing="discard", membership=membership
        ),
        "may_approve": membership.can(Permission.APPROVE)
        and launch.state == LaunchState.AWAITING_APPROVAL
        and not is_uploader
        and not i_approved,
        "i_approved": i_approved,
        "approvals_given": approvals_given,
        "is_uploader": is_uploader,
        "may_retry": not services.launch_change_refusal(
            actor=actor, launch=launch, doing="retry", membership=membership
        ),
        "live": launch.state == LaunchState.SENDING and not progress.settled,
    }


@tenant_view(Permission.VIEW)
@require_GET
@vary_on_headers("HX-Request")
def launch_detail(request: HttpRequest, launch_pk: int) -> HttpResponse:
    """The reading's progress, then the preview before sending; each chunk's live progress
    after."""
    launch = selectors.launch_get(tenant=request.tenant, launch_pk=launch_pk)
    context = _detail_context(request, launch)
    if request.htmx and request.htmx.target == "launch-reading":
        if not launch.is_reading:
            return HttpResponseClientRefresh()  # read: the whole page shows the preview now
        return HttpResponse(render_to_string(f"{DETAIL}#reading", context, request=request))
    if request.htmx:
        content = render_to_string(f"{DETAIL}#progress", context, request=request)
        if not context["live"]:
            return HttpResponseStopPolling(content)
        return HttpResponse(content)
    return render(request, DETAIL, context)


def _back(request: HttpRequest, launch) -> HttpResponse:
    return redirect("altcraft_launch_detail", tenant_slug=request.tenant.slug, launch_pk=launch.pk)


def _act(request: HttpRequest, launch_pk: int, action) -> HttpResponse:
    launch = selectors.launch_get(tenant=request.tenant, launch_pk=launch_pk)
    form = HashForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("This form is incomplete; reload the page."))
        return _back(request, launch)
    try:
        result = action(launch, form.cleaned_data)
    except (RunActionError, ValidationError, PermissionDenied) as error:
        messages.error(request, "; ".join(getattr(error, "messages", [str(error)])))
    else:
        if result:
            messages.success(request, result)
    return _back(request, launch)


@tenant_view(Permission.REQUEST)
@require_POST
def launch_confirm(request: HttpRequest, launch_pk: int) -> HttpResponse:
    def confirm(launch, data):
        launch = services.launch_confirm(
            actor=actor_from_request(request),
            launch=launch,
            sha256_seen=data["sha256"],
            skip_empty=data["skip_empty"],
        )
        if launch.state == LaunchState.AWAITING_APPROVAL:
            return gettext("Confirmed. An operator must now approve this file before it is sent.")
        count = launch.chunks.count()
        return ngettext(
            "Confirmed: sending in %(count)s request.",
            "Confirmed: sending in %(count)s requests.",
            count,
        ) % {"count": count}

    return _act(request, launch_pk, confirm)


@tenant_view(Permission.APPROVE)
@require_POST
@step_up_required
def launch_approve(request: HttpRequest, launch_pk: int) -> HttpResponse:
    def approve(launch, data):
        launch = services.launch_approve(
            actor=actor_from_request(request),
            membership=request.membership,
            launch=launch,
            sha256_seen=data["sha256"],
            comment=data["comment"],
        )
        return services.launch_approved_message(launch)

    return _act(request, launch_pk, approve)


@tenant_view(Permission.APPROVE)
@require_POST
def launch_reject(request: HttpRequest, launch_pk: int) -> HttpResponse:
    def reject(launch, data):
        services.launch_reject(
            actor=actor_from_request(request),
            membership=request.membership,
            launch=launch,
            comment=data["comment"],
        )
        return gettext("Rejected: nothing was sent.")

    return _act(request, launch_pk, reject)


@tenant_view(Permission.REQUEST)
@require_POST
def launch_discard(request: HttpRequest, launch_pk: int) -> HttpResponse:
    def discard(launch, data):
        services.launch_discard(actor=actor_from_request(request), launch=launch)
        return gettext("Discarded: nothing was sent and the file is deleted.")

    return _act(request, launch_pk, discard)


@tenant_view(Permission.REQUEST)
@require_POST
def launch_retry(request: HttpRequest, launch_pk: int) -> HttpResponse:
    def retry(launch, data):
        count = services.launch_retry_failed(actor=actor_from_request(request), launch=launch)
        return ngettext(
            "Sending %(count)s failed chunk again; the others are not resent.",
            "Sending %(count)s failed chunks again; the others are not resent.",
            count,
        ) % {"count": count}

    return _act(request, launch_pk, retry)
