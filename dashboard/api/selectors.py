"""Reads of the automation API's own records."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from dashboard.api.models import ApiToken, WebhookDelivery
from dashboard.models import Tenant


def api_token_list(*, user: AbstractBaseUser, tenant: Tenant) -> QuerySet[ApiToken]:
    """A person's own tokens in a tenant, newest first (a token is personal: it acts as them)."""
    return ApiToken.objects.filter(user=user, tenant=tenant).order_by("-created_at", "-id")


def api_token_get(*, user: AbstractBaseUser, tenant: Tenant, token_id: int) -> ApiToken:
    """One of the person's tokens in the tenant; 404 for anyone else's."""
    try:
        return api_token_list(user=user, tenant=tenant).select_related("tenant").get(pk=token_id)
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None


def webhook_recent_deliveries(*, tenant: Tenant, limit: int = 20) -> list[WebhookDelivery]:
    """The tenant's latest webhook delivery attempts, newest first."""
    return list(
        WebhookDelivery.objects.filter(notification__webhook__tenant=tenant)
        .select_related("notification")
        .order_by("-attempted_at", "-id")[:limit]
    )
