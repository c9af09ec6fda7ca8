"""Tenant home, connections, members, settings and the audit trail. Thin: forms check input,
services write, selectors read."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from dashboard.accounts import invitations
from dashboard.audit.trail import latest_audit_verification, record_audit_event
from dashboard.models import Permission, VendorConnection, VendorKind
from dashboard.pauses import selectors as pause_selectors
from dashboard.project.errors import form_post
from dashboard.runs import selectors as run_selectors
from dashboard.send_windows import selectors as send_window_selectors
from dashboard.send_windows.forms import SendWindowForm
from dashboard.tenancy import charts, history, selectors, services
from dashboard.tenancy.forms import (
    AuditFilterForm,
    ConnectionEditForm,
    ConnectionForm,
    MemberAddForm,
    MemberInviteForm,
    MemberRoleForm,
    SecretForm,
    TenantSettingsForm,
    apply_service_errors,
)
from dashboard.tenancy.scoping import actor_from_request, tenant_view

# Posted secret values: hidden from Django's error reports.
SECRET_POST_FIELDS = ("api_key", "brand_key", "token", "value")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to their first tenant, or explain that they have none."""
    membership = selectors.membership_list_for_user(request.user).first()
    if membership is None:
        return render(request, "dashboard/no_tenant.html")
    return redirect("tenant_home", tenant_slug=membership.tenant.slug)


# The overview's "Needs a person" list refreshes itself this often (anything can join it).
ATTENTION_POLL_SECONDS = 10


@tenant_view(Permission.VIEW)
@vary_on_headers("HX-Request")
def tenant_home(request: HttpRequest) -> HttpResponse:
    """What needs a person now, what is under way, what failed lately, and 30 days in charts."""
    tenant = request.tenant
    attention = list(run_selectors.runs_needing_attention(tenant=tenant)[:20])
    if request.htmx and not request.htmx.history_restore_request:
        # The live "Needs a person" list alone.
        for run in attention:
            run.description = run_selectors.run_description(run)
        return render(
            request,
            "dashboard/tenant_home.html#attention",
            {"attention": attention, "attention_poll_seconds": ATTENTION_POLL_SECONDS},
        )
    recent = list(run_selectors.run_list(tenant=tenant)[:10])
    in_progress = list(run_selectors.runs_in_progress(tenant=tenant)[:10])
    failures = list(run_selectors.recent_failures(tenant=tenant)[:5])
    waiting_for_me = (
        list(run_selectors.approvals_waiting_for(tenant=tenant, user=request.user)[:10])
        if request.membership.can(Permission.APPROVE)
        else []
    )
    for run in attention + recent + in_progress + failures + waiting_for_me:
        run.description = run_selectors.run_description(run)
    activity = run_selectors.run_activity_by_day(tenant=tenant)
    return render(
        request,
        "dashboard/tenant_home.html",
        {
            "connections": selectors.connection_list(tenant=tenant),
            "attention": attention,
            "attention_poll_seconds": ATTENTION_POLL_SECONDS,
            "recent": recent,
            "in_progress": in_progress,
            "failures": failures,
            "waiting_for_me": waiting_for_me,
            "runs_chart": charts.runs_per_day_svg(activity),
            "vendor_chart": charts.vendor_health_svg(run_selectors.vendor_health(tenant=tenant)),
            "chart_days": activity["days"],
        },
    )


@tenant_view(Permission.VIEW)
def connection_list(request: HttpRequest) -> HttpResponse:
    connections = selectors.connection_list(tenant=request.tenant)
    return render(request, "dashboard/connection_list.html", {"connections": connections})


@tenant_view(Permission.MANAGE)
@sensitive_post_parameters(*SECRET_POST_FIELDS)
@require_http_methods(["GET", "POST"])
def connection_create(request: HttpRequest) -> HttpResponse:
    form = ConnectionForm(request.POST or None, initial={"kind": request.GET.get("kind")})
    if request.method == "POST" and form.is_valid():
        try:
            connection = services.connection_create(
                actor=actor_from_request(request),
                tenant=request.tenant,
                kind=form.cleaned_data["kind"],
                name=form.cleaned_data["name"],
                base_url=form.cleaned_data["base_url"],
                secrets=form.secrets(),
                options=form.connection_options(),
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, _("Connection %(name)s created.") % {"name": connection.name})
            return redirect(
                "connection_detail", tenant_slug=request.tenant.slug, connection_id=connection.pk
            )
    return render(request, "dashboard/connection_form.html", {"form": form, "creating": True})


@tenant_view(Permission.VIEW)
def connection_detail(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = selectors.connection_get(tenant=request.tenant, connection_id=connection_id)
    return connection_page(request, connection)


def connection_page(
    request: HttpRequest,
    connection: VendorConnection,
    *,
    window_form: SendWindowForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The connection's page; `window_form`: the send-window form as posted, with its errors."""
    secrets = {secret.name: secret for secret in connection.secrets.all()}
    secret_rows = [
        {"name": name, "label": label, "secret": secrets.get(name)}
        for name, label in connection.secret_fields.items()
    ]
    history = selectors.audit_event_list(
        tenant=request.tenant, object_type="connection", object_id=str(connection.pk)
    )[:20]
    send_rules = send_window_selectors.send_rules_for(
        connection_id=connection.pk, connection_name=connection.name
    )
    return render(
        request,
        "dashboard/connection_detail.html",
        {
            "connection": connection,
            "secret_rows": secret_rows,
            "secret_form": SecretForm(secret_fields=connection.secret_fields),
            "history": history,
            "pause": pause_selectors.open_pause(tenant=request.tenant, connection_id=connection.pk),
            "send_rules": send_rules,
            "window_form": window_form or SendWindowForm.for_rules(send_rules),
            "window_open": window_form is not None,
        },
        status=status,
    )


@tenant_view(Permission.MANAGE)
@require_http_methods(["GET", "POST"])
def connection_edit(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = selectors.connection_get(tenant=request.tenant, connection_id=connection_id)
    initial = {
        "name": connection.name,
        "base_url": connection.base_url,
        "key_role": connection.options.get("key_role", ""),
        "options": {k: v for k, v in connection.options.items() if k != "key_role"},
        "is_active": connection.is_active,
    }
    form = ConnectionEditForm(request.POST or None, initial=initial, kind=connection.kind)
    if request.method == "POST" and form.is_valid():
        options = dict(form.cleaned_data["options"])
        if connection.kind == VendorKind.OPTIMOVE_BATCH:
            options["key_role"] = form.cleaned_data["key_role"] or connection.key_role
        try:
            services.connection_update(
                actor=actor_from_request(request),
                connection=connection,
                name=form.cleaned_data["name"],
                base_url=form.cleaned_data["base_url"],
                options=options,
                is_active=form.cleaned_data["is_active"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, _("Connection saved."))
            return redirect(
                "connection_detail", tenant_slug=request.tenant.slug, connection_id=connection.pk
            )
    return render(
        request,
        "dashboard/connection_form.html",
        {"form": form, "connection": connection, "creating": False},
    )


@tenant_view(Permission.MANAGE)
@sensitive_post_parameters(*SECRET_POST_FIELDS)
@form_post("connection_detail", "connection_id")
def connection_secret_set(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = selectors.connection_get(tenant=request.tenant, connection_id=connection_id)
    form = SecretForm(request.POST, secret_fields=connection.secret_fields)
    if form.is_valid():
        try:
            services.connection_secret_set(
                actor=actor_from_request(request),
                connection=connection,
                name=form.cleaned_data["name"],
                value=form.cleaned_data["value"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(
                request,
                _("%(secret)s replaced.")
                % {"secret": connection.secret_fields[form.cleaned_data["name"]]},
            )
            return redirect(
                "connection_detail", tenant_slug=request.tenant.slug, connection_id=connection.pk
            )
    messages.error(
        request,
        _("The secret was not changed: ")
        + "; ".join(message for errors in form.errors.values() for message in errors),
    )
    return redirect(
        "connection_detail", tenant_slug=request.tenant.slug, connection_id=connection.pk
    )


@tenant_view(Permission.MANAGE)
@form_post("connection_detail", "connection_id")
def connection_test(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Test the connection with a call that changes nothing at the vendor; the result in place
    (htmx) or as a message on the connection page."""
    connection = selectors.connection_get(tenant=request.tenant, connection_id=connection_id)
    result = services.connection_test(actor=actor_from_request(request), connection=connection)
    if request.htmx:
        return render(
            request,
            "dashboard/connection_detail.html#connection_test",
            {"connection": connection, "test_result": result},
        )
    if result.ok:
        messages.success(request, _("Connection test passed: %(what)s") % {"what": result.checked})
    else:
        messages.error(request, _("Connection test failed: %(what)s") % {"what": result.checked})
    return redirect(
        "connection_detail", tenant_slug=request.tenant.slug, connection_id=connection.pk
    )


@tenant_view(Permission.VIEW)
def member_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/member_list.html",
        {
            "members": selectors.member_list(tenant=request.tenant),
            "add_form": MemberAddForm(),
            "invite_form": MemberInviteForm(),
            "role_form": MemberRoleForm(),
        },
    )


@tenant_view(Permission.MANAGE)
@form_post("member_list")
def member_add(request: HttpRequest) -> HttpResponse:
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            services.membership_add(
                actor=actor_from_request(request),
                tenant=request.tenant,
                user=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, _("Member added."))
            return redirect("member_list", tenant_slug=request.tenant.slug)
    return render(
        request,
        "dashboard/member_list.html",
        {
            "members": selectors.member_list(tenant=request.tenant),
            "add_form": form,
            "invite_form": MemberInviteForm(),
            "role_form": MemberRoleForm(),
        },
        status=400,
    )


@tenant_view(Permission.MANAGE)
@form_post("member_list")
def member_invite(request: HttpRequest) -> HttpResponse:
    """Invite someone by email (admins): a new account gets a one-time set-password link."""
    form = MemberInviteForm(request.POST)
    if form.is_valid():
        try:
            result = invitations.member_invite(
                actor=actor_from_request(request),
                tenant=request.tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                username=form.cleaned_data["username"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            who = result.user.get_username()
            if result.email_sent:
                messages.success(
                    request,
                    _("Invitation sent to %(email)s (%(who)s).")
                    % {"email": result.user.email, "who": who},
                )
            else:
                messages.error(
                    request,
                    _(
                        "%(who)s was added, but the email could not be sent (%(error)s). "
                        "Invite the same address again to resend it."
                    )
                    % {"who": who, "error": result.email_error},
                )
            return redirect("member_list", tenant_slug=request.tenant.slug)
    return render(
        request,
        "dashboard/member_list.html",
        {
            "members": selectors.member_list(tenant=request.tenant),
            "add_form": MemberAddForm(),
            "invite_form": form,
            "role_form": MemberRoleForm(),
        },
        status=400,
    )


@tenant_view(Permission.MANAGE)
@form_post("member_list")
def member_change_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = selectors.member_get(tenant=request.tenant, membership_id=membership_id)
    form = MemberRoleForm(request.POST)
    if form.is_valid():
        try:
            services.membership_change_role(
                actor=actor_from_request(request),
                membership=membership,
                role=form.cleaned_data["role"],
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(
                request,
                _("%(username)s is now %(role)s.")
                % {"username": membership.user.get_username(), "role": form.cleaned_data["role"]},
            )
    else:
        messages.error(request, _("Choose one of the listed roles."))
    return redirect("member_list", tenant_slug=request.tenant.slug)


@tenant_view(Permission.MANAGE)
@form_post("member_list")
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = selectors.member_get(tenant=request.tenant, membership_id=membership_id)
    try:
        removed = services.membership_remove(
            actor=actor_from_request(request), membership=membership
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request,
            _(
                "%(user)s removed: %(sessions)s session(s) ended and %(tokens)s API token(s) "
                "revoked."
            )
            % {
                "user": membership.user.get_username(),
                "sessions": removed.sessions_ended,
                "tokens": removed.api_tokens_revoked,
            },
        )
    return redirect("member_list", tenant_slug=request.tenant.slug)


@tenant_view(Permission.MANAGE)
@require_http_methods(["GET", "POST"])
def tenant_settings(request: HttpRequest) -> HttpResponse:
    form = TenantSettingsForm(request.POST or None, instance=request.tenant)
    if request.method == "POST" and form.is_valid():
        services.tenant_settings_update(
            actor=actor_from_request(request),
            tenant=request.tenant,
            **{field: form.cleaned_data[field] for field in form.Meta.fields},
        )
        messages.success(request, _("Settings saved."))
        return redirect("tenant_settings", tenant_slug=request.tenant.slug)
    return render(request, "dashboard/tenant_settings.html", {"form": form})


@tenant_view(Permission.VIEW_AUDIT)
@require_GET
@vary_on_headers("HX-Request")
def audit_list(request: HttpRequest) -> HttpResponse:
    actors = selectors.audit_actor_choices(tenant=request.tenant)
    form = AuditFilterForm(request.GET or None, actors=actors)
    filters = form.filters()
    cursor = history.Cursor.decode(request.GET.get("after"))
    page = history.keyset_page(
        selectors.audit_event_list(tenant=request.tenant, **filters), cursor=cursor
    )
    # Rows about runs name them as they were requested; one query for the page.
    run_names = run_selectors.run_names(
        tenant=request.tenant,
        run_ids=[event.object_id for event in page if event.object_type == "run"],
    )
    for event in page:
        event.changes = selectors.audit_changes(action=event.action, summary=event.summary)
        event.run_name = run_names.get(event.object_id, "") if event.object_type == "run" else ""
    context = {
        "page": page,
        "form": form,
        "actors": actors,
        # The datalist sits outside the fragment a filter change swaps in.
        "actions": [] if request.htmx else selectors.audit_action_choices(tenant=request.tenant),
        "filters": filters,
        "export_query": _without(request, "after"),
        "verification": latest_audit_verification(tenant=request.tenant),
    }
    # A history restore that missed htmx's cache asks for the whole page, not the fragment.
    fragment = request.htmx and not request.htmx.history_restore_request
    template = "dashboard/audit_list.html#events" if fragment else "dashboard/audit_list.html"
    return render(request, template, context)


@tenant_view(Permission.VIEW_AUDIT)
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered audit view as CSV, streamed in keyset batches (constant memory); audited."""
    filters = AuditFilterForm(request.GET or None).filters()
    record_audit_event(
        actor=actor_from_request(request),
        tenant=request.tenant,
        action="audit.exported",
        object_type="audit",
        summary={"filters": {key: str(value) for key, value in filters.items()}},
    )
    lines = history.stream_csv(
        header=AUDIT_EXPORT_HEADER,
        rows=selectors.audit_event_list(tenant=request.tenant, **filters),
        fields=AUDIT_EXPORT_FIELDS,
    )
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-{request.tenant.slug}-{stamp}.csv"'
    )
    return response


AUDIT_EXPORT_FIELDS = ["id", "created_at", "actor_label", "action", "object_type", "object_id"]
AUDIT_EXPORT_FIELDS += ["ip_address", "summary", "chain", "sequence", "hash"]
AUDIT_EXPORT_HEADER = ["event", "created_at_utc", *AUDIT_EXPORT_FIELDS[2:]]


def _without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()
