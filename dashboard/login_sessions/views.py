"""The "Your sessions" page (/account/sessions/) and an admin's view of a member's sessions
(/t/<tenant>/members/<id>/sessions/). Thin: dashboard.login_sessions.services does the work.

The forms post with htmx and get the session list back in place (the page's `sessions`
partial); without htmx they redirect to the page with a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from dashboard.login_sessions import selectors, services
from dashboard.models import Permission
from dashboard.tenancy import selectors as tenancy_selectors
from dashboard.tenancy.scoping import actor_from_request, tenant_view

OWN_TEMPLATE = "login_sessions/own_sessions.html"
MEMBER_TEMPLATE = "login_sessions/member_sessions.html"


def _own_page(request: HttpRequest, *, notice: str = "", failed: bool = False) -> HttpResponse:
    template = f"{OWN_TEMPLATE}#sessions" if request.htmx else OWN_TEMPLATE
    current_hash = selectors.current_key_hash(request.session.session_key)
    # This browser's own session first, then the others by when they were last seen.
    sessions = sorted(
        services.live_sessions(user=request.user),
        key=lambda session: session.key_hash != current_hash,
    )
    return render(
        request,
        template,
        {
            "sessions": sessions,
            "current_hash": current_hash,
            "notice": notice,
            "failed": failed,
        },
    )


def _answer(request: HttpRequest, page: str, text: str, *, failed: bool = False, **kwargs):
    """htmx: the list again, with the outcome above it; else back to the page with a message."""
    if request.htmx:
        if page == "account_sessions":
            return _own_page(request, notice=text, failed=failed)
        return _member_page(request, kwargs["membership_id"], notice=text, failed=failed)
    (messages.error if failed else messages.success)(request, text)
    return redirect(page, **kwargs)


@login_required
@require_GET
@never_cache
@vary_on_headers("HX-Request")
def own_sessions(request: HttpRequest) -> HttpResponse:
    return _own_page(request)


@login_required
@require_POST
def own_session_end(request: HttpRequest, session_id: int) -> HttpResponse:
    try:
        ended = services.session_end(
            actor=actor_from_request(request),
            session_id=session_id,
            current_session_key=request.session.session_key,
        )
    except (PermissionDenied, ValidationError) as error:
        text = " ".join(getattr(error, "messages", None) or [str(error)])
        return _answer(request, "account_sessions", text, failed=True)
    return _answer(
        request,
        "account_sessions",
        _("Session on %(device)s ended: that browser is logged out.") % {"device": ended.device},
    )


@login_required
@require_POST
def own_sessions_end_others(request: HttpRequest) -> HttpResponse:
    count = services.sessions_end_others(
        actor=actor_from_request(request), current_session_key=request.session.session_key
    )
    return _answer(
        request,
        "account_sessions",
        _("%(count)s other session(s) ended; this one stays.") % {"count": count},
    )


def _member_page(
    request: HttpRequest, membership_id: int, *, notice: str = "", failed: bool = False
) -> HttpResponse:
    membership = tenancy_selectors.member_get(tenant=request.tenant, membership_id=membership_id)
    template = f"{MEMBER_TEMPLATE}#sessions" if request.htmx else MEMBER_TEMPLATE
    return render(
        request,
        template,
        {
            "member": membership,
            "sessions": services.live_sessions(user=membership.user),
            "current_hash": selectors.current_key_hash(request.session.session_key),
            "notice": notice,
            "failed": failed,
        },
    )


@tenant_view(Permission.MANAGE)
@require_GET
@never_cache
@vary_on_headers("HX-Request")
def member_sessions(request: HttpRequest, membership_id: int) -> HttpResponse:
    return _member_page(request, membership_id)


@tenant_view(Permission.MANAGE)
@require_POST
def member_sessions_end(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = tenancy_selectors.member_get(tenant=request.tenant, membership_id=membership_id)
    count = services.member_sessions_end(actor=actor_from_request(request), membership=membership)
    return _answer(
        request,
        "member_sessions",
        _("%(count)s session(s) of %(user)s ended: they must log in again.")
        % {"count": count, "user": membership.user.get_username()},
        tenant_slug=request.tenant.slug,
        membership_id=membership.pk,
    )
