"""The connection page's send-window form (operators, admins): set the window and blackouts."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from dashboard.models import Permission
from dashboard.project.errors import form_post
from dashboard.send_windows import services
from dashboard.send_windows.forms import SendWindowForm
from dashboard.tenancy import selectors as tenancy_selectors
from dashboard.tenancy.forms import apply_service_errors
from dashboard.tenancy.scoping import actor_from_request, tenant_view
from dashboard.tenancy.views import connection_page


@tenant_view(Permission.APPROVE)
@form_post("connection_detail", "connection_id")
def connection_send_window(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = tenancy_selectors.connection_get(
        tenant=request.tenant, connection_id=connection_id
    )
    form = SendWindowForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        window = (
            None
            if data["any_time"]
            else services.WindowInput(
                [int(day) for day in data["weekdays"]],
                data["start"],
                data["end"],
                data["time_zone"],
            )
        )
        try:
            found = services.send_window_set(
                actor=actor_from_request(request),
                connection=connection,
                window=window,
                blackouts=data["blackouts"],
                reason=data["reason"],
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(
                request,
                _("Send window of %(connection)s: %(rules)s.")
                % {"connection": connection.name, "rules": found.describe()},
            )
            return redirect(
                "connection_detail", tenant_slug=request.tenant.slug, connection_id=connection.pk
            )
    return connection_page(request, connection, window_form=form, status=422)
