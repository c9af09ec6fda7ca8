"""The pages of one's own second factors ("Account security"), the check after logging in, and
the passkey ceremonies' JSON endpoints. Thin callers of services and passkeys."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard.mfa import passkeys, selectors, services, session_state
from dashboard.mfa.step_up import CODE_FIELD, PASSKEY_FIELD, step_up_required
from dashboard.models import Permission
from dashboard.project.errors import form_post
from dashboard.tenancy import selectors as tenancy_selectors
from dashboard.tenancy.scoping import actor_from_request, tenant_view

PENDING_TOTP_KEY = "mfa.pending_totp"
SECURITY = "mfa/security.html"


def _security_page(request: HttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    factors = selectors.factors_of(user=request.user)
    required_by = [
        membership.tenant.name
        for membership in request.user.memberships.select_related("tenant")
        if membership.tenant.require_second_factor and membership.role in ("operator", "admin")
    ]
    pending = services.totp_setup_pending(
        user=request.user, device_id=request.session.get(PENDING_TOTP_KEY)
    )
    context = {
        "factors": factors,
        "required_by": required_by,
        "pending": pending,
        "next": _safe_next(request),
        **extra,
    }
    if pending is not None:
        # Shown only while the setup is open: once confirmed the secret is never shown again.
        context["totp_qr"] = services.totp_qr_data_uri(pending)
        context["totp_secret"] = services.totp_secret_text(pending)
    return render(request, SECURITY, context, status=status)


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


@login_required
@require_GET
@never_cache
def security_page(request: HttpRequest) -> HttpResponse:
    return _security_page(request)


@login_required
@require_POST
@never_cache
def totp_start(request: HttpRequest) -> HttpResponse:
    device = services.totp_setup_start(user=request.user)
    request.session[PENDING_TOTP_KEY] = device.pk
    return _security_page(request)


@login_required
@require_POST
@never_cache
def totp_confirm(request: HttpRequest) -> HttpResponse:
    pending = services.totp_setup_pending(
        user=request.user, device_id=request.session.get(PENDING_TOTP_KEY)
    )
    if pending is None:
        messages.error(request, _("This setup has expired; start again."))
        return redirect("mfa_security")
    try:
        services.totp_setup_confirm(
            actor=actor_from_request(request),
            user=request.user,
            device=pending,
            code=request.POST.get("code", ""),
            name=request.POST.get("name", ""),
        )
    except services.SecondFactorRefused as refused:
        return _security_page(request, status=422, totp_error=refused.messages[0])
    request.session.pop(PENDING_TOTP_KEY, None)
    first = not session_state.is_enrolled(request)
    session_state.mark_passed(request)
    messages.success(request, _("Your authenticator app is set up."))
    if first:
        return _with_recovery_codes(request)
    return _after_change(request)


def _with_recovery_codes(request: HttpRequest) -> HttpResponse:
    """The first factor comes with recovery codes, shown once on this answer."""
    codes = services.recovery_codes_generate(actor=actor_from_request(request), user=request.user)
    return _security_page(request, recovery_codes=codes)


def _after_change(request: HttpRequest) -> HttpResponse:
    target = _safe_next(request)
    return redirect(target) if target else redirect("mfa_security")


@login_required
@require_POST
@never_cache
@step_up_required
def recovery_codes(request: HttpRequest) -> HttpResponse:
    if not session_state.is_enrolled(request):
        messages.error(request, _("Set up an authenticator app or a passkey first."))
        return redirect("mfa_security")
    return _with_recovery_codes(request)


@login_required
@require_POST
@never_cache
@step_up_required
def factor_remove(request: HttpRequest, kind: str, device_id: int) -> HttpResponse:
    try:
        name = services.factor_remove(
            actor=actor_from_request(request), user=request.user, kind=kind, device_id=device_id
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("mfa_security")
    left = selectors.has_second_factor(user_id=request.user.pk)
    session_state.set_enrolled(request, enrolled=left)
    messages.success(request, _("“%(name)s” was removed.") % {"name": name})
    return redirect("mfa_security")


def _problem(error: ValidationError, status: int = 400) -> JsonResponse:
    code = getattr(error, "code", None) or "invalid"
    if hasattr(error, "error_dict"):
        return JsonResponse(
            {"code": code, "detail": " ".join(error.messages), "fields": error.message_dict},
            status=status,
        )
    return JsonResponse({"code": code, "detail": " ".join(error.messages)}, status=status)


@login_required
@require_POST
@never_cache
def passkey_register_begin(request: HttpRequest) -> HttpResponse:
    options = passkeys.registration_begin(request=request, user=request.user)
    return HttpResponse(options, content_type="application/json")


@login_required
@require_POST
@never_cache
def passkey_register_complete(request: HttpRequest) -> HttpResponse:
    first = not session_state.is_enrolled(request)
    try:
        passkey = passkeys.registration_complete(
            request=request,
            actor=actor_from_request(request),
            user=request.user,
            response=request.POST.get("response", ""),
            name=request.POST.get("name", ""),
        )
    except ValidationError as error:
        return _problem(error, status=422)
    session_state.mark_passed(request)
    messages.success(request, _("Passkey “%(name)s” is set up.") % {"name": passkey.name})
    if first:
        request.session["mfa.show_new_recovery_codes"] = True
    return JsonResponse({"name": passkey.name, "next": _safe_next(request)})


@login_required
@require_GET
@never_cache
def recovery_codes_after_first_passkey(request: HttpRequest) -> HttpResponse:
    """Where the script goes after a first passkey: its recovery codes, shown once."""
    if request.session.pop("mfa.show_new_recovery_codes", False):
        return _with_recovery_codes(request)
    return redirect("mfa_security")


@login_required
@require_POST
@never_cache
def passkey_check_begin(request: HttpRequest) -> HttpResponse:
    try:
        options = passkeys.authentication_begin(request=request, user=request.user)
    except ValidationError as error:
        return _problem(error, status=409)
    return HttpResponse(options, content_type="application/json")


@login_required
@require_http_methods(["GET", "POST"])
@never_cache
def check(request: HttpRequest) -> HttpResponse:
    """The second step of logging in: a code or a passkey. Audited (mfa.login_check, or
    mfa.login_check_failed with why)."""
    target = _safe_next(request) or "/"
    if not session_state.login_check_pending(request):
        return redirect(target)
    factors = selectors.factors_of(user=request.user)
    if not factors.any:
        # Their factors were removed since the login began (an admin's reset): nothing to ask.
        session_state.set_enrolled(request, enrolled=False)
        return redirect(target)
    context = {
        "next": _safe_next(request),
        "has_passkey": bool(factors.passkeys),
        "has_code": bool(factors.authenticator_apps or factors.recovery_codes_left),
        "code_field": CODE_FIELD,
        "passkey_field": PASSKEY_FIELD,
    }
    if request.method == "GET":
        return render(request, "mfa/check.html", context)
    actor = actor_from_request(request)
    try:
        if request.POST.get(PASSKEY_FIELD):
            proved = passkeys.authentication_verify(
                request=request, user=request.user, response=request.POST[PASSKEY_FIELD]
            )
        else:
            proved = services.code_verify(user=request.user, code=request.POST.get(CODE_FIELD, ""))
    except services.SecondFactorRefused as refused:
        services.check_recorded(actor=actor, where=services.LOGIN, refused=refused)
        return render(
            request, "mfa/check.html", {**context, "error": refused.messages[0]}, status=422
        )
    services.check_recorded(actor=actor, where=services.LOGIN, proved=proved)
    # A new session key once the login is complete, as at the password step.
    request.session.cycle_key()
    session_state.mark_passed(request)
    if proved.recovery_codes_left is not None:
        messages.warning(
            request,
            _(
                "You used a recovery code; %(left)s left. Make new ones on Account security "
                "if you are running out."
            )
            % {"left": proved.recovery_codes_left},
        )
    return redirect(target)


@tenant_view(Permission.MANAGE)
@form_post("member_list")
@step_up_required
def member_second_factor_reset(request: HttpRequest, membership_id: int) -> HttpResponse:
    """An admin removes a member's second factors (they lost them), with a reason; the admin's
    own fresh check first."""
    membership = tenancy_selectors.member_get(tenant=request.tenant, membership_id=membership_id)
    try:
        removed = services.second_factor_reset(
            actor=actor_from_request(request),
            username=membership.user.get_username(),
            reason=request.POST.get("reason", ""),
        )
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(
            request,
            _("%(name)s's second factors were removed (%(count)s); they set up new ones.")
            % {"name": membership.user.get_username(), "count": removed},
        )
    return redirect("member_list", tenant_slug=request.tenant.slug)
