"""The chat webhooks page in the tenant's settings: hints, set/remove, send a test message."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from dashboard.chat_webhooks import selectors, services
from dashboard.chat_webhooks.forms import ChatWebhooksForm
from dashboard.models import Permission
from dashboard.project.errors import form_post
from dashboard.tenancy.scoping import actor_from_request, tenant_view

TEMPLATE = "dashboard/chat_webhooks.html"


def _page(request: HttpRequest, *, form: ChatWebhooksForm | None = None, status: int = 200):
    return render(
        request,
        TEMPLATE,
        {
            "hints": selectors.chat_webhook_state(tenant=request.tenant),
            "form": form or ChatWebhooksForm(),
        },
        status=status,
    )


@tenant_view(Permission.MANAGE)
@require_GET
def chat_webhooks_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@tenant_view(Permission.MANAGE)
@form_post("chat_webhooks_page")
def chat_webhooks_save(request: HttpRequest) -> HttpResponse:
    form = ChatWebhooksForm(request.POST)
    if form.is_valid():
        try:
            services.chat_webhooks_set(
                actor=actor_from_request(request),
                tenant=request.tenant,
                reason=form.cleaned_data["reason"],
                **form.changes(),
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, errors in error.error_dict.items():
                    name = field if field == "reason" else f"{field}_url"
                    for problem in errors:
                        form.add_error(name if name in form.fields else None, problem)
            else:
                form.add_error(None, error)
        else:
            messages.success(request, _("Chat webhooks saved."))
            return redirect("chat_webhooks_page", tenant_slug=request.tenant.slug)
    return _page(request, form=form, status=400)


@tenant_view(Permission.MANAGE)
@form_post("chat_webhooks_page")
def chat_webhooks_test(request: HttpRequest) -> HttpResponse:
    try:
        targets = services.chat_webhook_test(
            actor=actor_from_request(request), tenant=request.tenant
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        labels = ", ".join(str(services.KIND_LABELS[target]) for target in targets)
        messages.success(
            request,
            _("A test message is on its way to %(targets)s.") % {"targets": labels},
        )
    return redirect("chat_webhooks_page", tenant_slug=request.tenant.slug)
