"""The API tokens page, /t/<tenant_slug>/api-tokens/: a person creates (secret shown once) and
revokes their own tokens for the tenant. Thin: dashboard.api.services does the work."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dashboard.api import selectors, services, webhooks
from dashboard.api.forms import ApiTokenForm, WebhookForm
from dashboard.api.models import Webhook
from dashboard.models import Permission
from dashboard.tenancy.scoping import actor_from_request, tenant_view


@tenant_view(Permission.VIEW)
@never_cache
def api_token_list(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    secret = ""
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = services.api_token_create(
                actor=actor_from_request(request),
                user=request.user,
                tenant=request.tenant,
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            # Rendered, not redirected: the secret is in this one response and nowhere else.
            form = ApiTokenForm()
            messages.success(
                request, _("Token “%(name)s” created. Copy it now.") % {"name": token.name}
            )
    return _page(request, form=form, secret=secret)


def _page(
    request: HttpRequest,
    *,
    form: ApiTokenForm | None = None,
    webhook_form: WebhookForm | None = None,
    secret: str = "",
    webhook_secret: str = "",
) -> HttpResponse:
    tokens = selectors.api_token_list(user=request.user, tenant=request.tenant)
    webhook = Webhook.objects.filter(tenant=request.tenant).first()
    context = {
        "form": form or ApiTokenForm(),
        "tokens": tokens,
        "secret": secret,
        "can_manage": request.membership.can(Permission.MANAGE),
        "webhook": webhook,
        "webhook_form": webhook_form
        or WebhookForm(initial={"url": webhook.url if webhook else ""}),
        "webhook_secret": webhook_secret,
        "deliveries": selectors.webhook_recent_deliveries(tenant=request.tenant),
    }
    return render(
        request,
        "api/token_list.html",
        context,
        status=201 if secret or webhook_secret else 200,
    )


@tenant_view(Permission.MANAGE)
@require_POST
@never_cache
def webhook_set(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            secret = webhooks.webhook_set(
                actor=actor_from_request(request),
                tenant=request.tenant,
                url=form.cleaned_data["url"],
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Webhook set. Copy its signing secret now."))
            return _page(request, webhook_secret=secret)
    return _page(request, webhook_form=form)


@tenant_view(Permission.MANAGE)
@require_POST
def webhook_remove(request: HttpRequest) -> HttpResponse:
    webhooks.webhook_remove(actor=actor_from_request(request), tenant=request.tenant)
    messages.success(request, _("Webhook removed."))
    return redirect("api_token_list", tenant_slug=request.tenant.slug)


@tenant_view(Permission.VIEW)
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.api_token_get(user=request.user, tenant=request.tenant, token_id=token_id)
    services.api_token_revoke(actor=actor_from_request(request), token=token)
    messages.success(
        request, _("Token “%(name)s” revoked; it no longer works.") % {"name": token.name}
    )
    return redirect("api_token_list", tenant_slug=request.tenant.slug)
