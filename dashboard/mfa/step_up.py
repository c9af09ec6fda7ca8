"""Step-up: an approval made in a page (and removing a factor) needs a second-factor check
within the last STEP_UP_SECONDS. The approve button's answer is then the check form, in place
(htmx) or as a page (no script); the form carries the approval's own fields, so a valid code or
passkey approves at once. API tokens and commands do not pass through here.

Who is asked: a person who has a factor, and everyone in a tenant that requires one (such a
person without a factor is sent to set one up first). A person without a factor in a tenant
that does not require one approves as before: asking them for a factor they do not have would
only block them, and the tenant chose not to require it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRedirect

from dashboard.mfa import passkeys, selectors, services, session_state
from dashboard.tenancy.scoping import actor_from_request

CODE_FIELD = "second_factor_code"
PASSKEY_FIELD = "second_factor_passkey"
NOT_CARRIED = {CODE_FIELD, PASSKEY_FIELD, "csrfmiddlewaretoken"}


def step_up_needed(request: HttpRequest) -> bool:
    """Whether this person must have checked a factor recently to approve here."""
    tenant = getattr(request, "tenant", None)
    required = tenant is not None and tenant.require_second_factor
    return required or session_state.is_enrolled(request)


def step_up_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For a POST view (inside tenant_view when it is a tenant's): run it only after a fresh
    second-factor check; otherwise answer with the check form. Audited as mfa.step_up /
    mfa.step_up_failed. For htmx requests, the view's redirect becomes a client redirect (the
    page then shows the result)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if (
            request.method != "POST"
            or not step_up_needed(request)
            or session_state.step_up_is_fresh(request)
        ):
            return _for_htmx(request, view(request, *args, **kwargs))
        if session_state.is_enrolled(request) and not selectors.has_second_factor(
            user_id=request.user.pk
        ):
            # Their factors were removed elsewhere (another session, an admin's reset).
            session_state.set_enrolled(request, enrolled=False)
            if not step_up_needed(request):
                return _for_htmx(request, view(request, *args, **kwargs))
        if not session_state.is_enrolled(request):
            messages.error(
                request, _("Set up a second factor first: this tenant requires one to approve.")
            )
            return _go(request, reverse("mfa_security"))
        code = request.POST.get(CODE_FIELD, "")
        passkey_response = request.POST.get(PASSKEY_FIELD, "")
        if not code.strip() and not passkey_response:
            return check_form(request)
        actor = actor_from_request(request)
        tenant = getattr(request, "tenant", None)
        try:
            if passkey_response:
                proved = passkeys.authentication_verify(
                    request=request, user=request.user, response=passkey_response
                )
            else:
                proved = services.code_verify(user=request.user, code=code)
        except services.SecondFactorRefused as refused:
            services.check_recorded(
                actor=actor, where=services.STEP_UP, refused=refused, tenant=tenant,
                doing=request.path,
            )  # fmt: skip
            return check_form(request, error=refused.messages[0])
        services.check_recorded(
            actor=actor, where=services.STEP_UP, proved=proved, tenant=tenant, doing=request.path
        )
        session_state.mark_passed(request)
        return _for_htmx(request, view(request, *args, **kwargs))

    return wrapper


def check_form(request: HttpRequest, *, error: str = "") -> HttpResponse:
    """The check form carrying the original POST's fields; the fragment for htmx, else a page.
    A refused check answers 200 to htmx (so it swaps in with its message), 422 otherwise."""
    factors = selectors.factors_of(user=request.user)
    context = {
        "action": request.path,
        "fields": [
            (name, value)
            for name, values in request.POST.lists()
            if name not in NOT_CARRIED
            for value in values
        ],
        "error": error,
        "has_passkey": bool(factors.passkeys),
        "has_code": bool(factors.authenticator_apps or factors.recovery_codes_left),
    }
    if request.headers.get("HX-Request") == "true":
        return render(request, "mfa/step_up.html#check", context)
    return render(request, "mfa/step_up.html", context, status=422 if error else 200)


def _go(request: HttpRequest, url: str) -> HttpResponse:
    if request.headers.get("HX-Request") == "true":
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _for_htmx(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """An htmx request gets the view's redirect as a client redirect (the browser loads the
    result page with its message), and a page answer (a refusal re-rendered) in place of the
    page's body."""
    if request.headers.get("HX-Request") != "true":
        return response
    if 300 <= response.status_code < 400 and response.has_header("Location"):
        return HttpResponseClientRedirect(response["Location"])
    if response.status_code >= 400:
        response.status_code = 200
    response["HX-Retarget"] = "body"
    response["HX-Reswap"] = "innerHTML"
    return response
