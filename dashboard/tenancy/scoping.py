"""Tenant scoping for views: every tenant URL is /t/<slug>/..., resolved against the user's
memberships. A tenant the user does not belong to is a 404, a missing permission a 403."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.utils.functional import empty
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor
from dashboard.models import Membership, Permission
from dashboard.observability.logs import bind
from dashboard.tenancy.selectors import membership_for, membership_with_user


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


def _user_not_loaded_yet(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return user is not None and getattr(user, "_wrapped", None) is empty


def _membership_and_user_at_once(request: HttpRequest, tenant_slug: str) -> Membership | None:
    """The logged-in user's membership of the tenant with its user, in one query, and the user
    set on the request; None whenever anything is not the plain case (then the caller takes
    Django's own path: session user, then membership).

    Every page polled by htmx pays for its user and its membership; fetched apart they are two
    queries, a third of a live fragment's budget. The user comes from the same session fields
    and the same ModelBackend rule (active users only) as `django.contrib.auth.get_user`, and is
    accepted only when the session's hash matches the current secret exactly; a fallback secret,
    a stale hash, another backend or no membership all go Django's way unchanged.
    """
    if not _user_not_loaded_yet(request):
        return None
    session = request.session
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError):
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    backend = load_backend(backend_path)
    if not isinstance(backend, ModelBackend):
        return None
    membership = membership_with_user(user_id=user_id, tenant_slug=tenant_slug)
    if membership is None or not backend.user_can_authenticate(membership.user):
        return None
    user = membership.user
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    request.user = user
    return membership


def tenant_view(permission: str = Permission.VIEW) -> Callable:
    """Resolve `tenant_slug` to the user's membership, set request.tenant and request.membership,
    and require `permission`."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def member_view(
            request: HttpRequest,
            tenant_slug: str,
            *args,
            _membership: Membership | None = None,
            **kwargs,
        ) -> HttpResponse:
            membership = _membership or membership_for(user=request.user, tenant_slug=tenant_slug)
            bind(user=request.user.get_username())
            # Set before the permission check, so that a 403 page still has the tenant's
            # navigation and names the role.
            request.membership = membership
            request.tenant = membership.tenant
            if not membership.can(permission):
                raise PermissionDenied(
                    _("Your role (%(role)s) cannot do this.")
                    % {"role": membership.get_role_display()}
                )
            return view(request, *args, **kwargs)

        @wraps(view)
        def wrapper(request: HttpRequest, tenant_slug: str, *args, **kwargs) -> HttpResponse:
            membership = _membership_and_user_at_once(request, tenant_slug)
            return member_view(request, tenant_slug, *args, _membership=membership, **kwargs)

        wrapper.binds_log_user = True  # see RequestContextMiddleware.process_view
        return wrapper

    return decorate
