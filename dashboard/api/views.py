"""The API tokens page, /t/<tenant_slug>/api-tokens/: a person creates (secret shown once) and
revokes their own tokens for the tenant. Thin: dashboard.api.services does the work."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dashboard.api import selectors, services
from dashboard.api.forms import ApiTokenForm
from dashboard.models import Permission
from dashboard.tenancy import actor_from_request, tenant_view


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
            messages.success(request, f"Token “{token.name}” created. Copy it now.")
    tokens = selectors.api_token_list(user=request.user, tenant=request.tenant)
    return render(
        request,
        "api/token_list.html",
        {"form": form, "tokens": tokens, "secret": secret},
        status=201 if secret else 200,
    )


@tenant_view(Permission.VIEW)
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.api_token_get(user=request.user, tenant=request.tenant, token_id=token_id)
    services.api_token_revoke(actor=actor_from_request(request), token=token)
    messages.success(request, f"Token “{token.name}” revoked; it no longer works.")
    return redirect("api_token_list", tenant_slug=request.tenant.slug)
