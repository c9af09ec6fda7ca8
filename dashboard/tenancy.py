"""Tenant scoping for views: every tenant URL is /t/<slug>/..., resolved against the user's
memberships. A tenant the user does not belong to is a 404, a missing permission a 403."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from dashboard.audit import Actor
from dashboard.models import Permission
from dashboard.selectors import membership_for


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address: REMOTE_ADDR, or the header named by CLIENT_IP_HEADER when the app
    runs behind a trusted reverse proxy (X-Forwarded-For: the last entry, the one that proxy
    added). Anything that is not an IP address counts as unknown."""
    if request is None:
        return None
    header = getattr(settings, "CLIENT_IP_HEADER", "REMOTE_ADDR") or "REMOTE_ADDR"
    key = header.upper().replace("-", "_")
    if key != "REMOTE_ADDR" and not key.startswith("HTTP_"):
        key = f"HTTP_{key}"
    value = request.META.get(key) or request.META.get("REMOTE_ADDR") or ""
    candidate = value.split(",")[-1].strip().split("%")[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def actor_from_request(request: HttpRequest) -> Actor:
    return Actor(user=request.user, ip_address=client_ip(request))


def tenant_view(permission: str = Permission.VIEW) -> Callable:
    """Resolve `tenant_slug` to the user's membership, set request.tenant and request.membership,
    and require `permission`."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, tenant_slug: str, *args, **kwargs) -> HttpResponse:
            membership = membership_for(user=request.user, tenant_slug=tenant_slug)
            # Set before the permission check, so that a 403 page still has the tenant's
            # navigation and names the role.
            request.membership = membership
            request.tenant = membership.tenant
            if not membership.can(permission):
                raise PermissionDenied(
                    f"Your role ({membership.get_role_display()}) cannot do this."
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
