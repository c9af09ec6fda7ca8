"""The views of one's own account: accepting an invitation (setting a first password),
changing one's password and resetting a forgotten one, in the app's layout (no /admin/ needed).
Django's own views do the work; these add the app's templates and the audit rows."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dashboard.accounts import invitations, password_reset
from dashboard.login_sessions import services as login_sessions
from dashboard.sso import configuration as sso
from dashboard.tenancy.scoping import client_ip


def passwords_off_page(request) -> HttpResponse:
    """What a password page answers while local passwords are switched off: a clear refusal
    (403) with the way in that works."""
    return render(
        request,
        "registration/sso_refused.html",
        {
            "message": _(
                "Local passwords are switched off for this TriggerDesk: sign in with "
                "%(provider)s instead."
            )
            % {"provider": sso.provider_name()},
            "passwords_off": True,
        },
        status=403,
    )


class PasswordsOffMixin:
    """Refuse the view (any method) while local passwords are switched off."""

    def dispatch(self, request, *args, **kwargs):
        if not sso.local_passwords_enabled():
            return passwords_off_page(request)
        return super().dispatch(request, *args, **kwargs)


class LoginView(auth_views.LoginView):
    """Django's login page with the single sign-on button; only the button while local
    passwords are off (a password POST is then refused)."""

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if not sso.local_passwords_enabled():
            return passwords_off_page(request)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs) -> dict:
        return {
            **super().get_context_data(**kwargs),
            "sso_enabled": sso.sso_enabled(),
            "sso_provider_name": sso.provider_name(),
            "local_passwords": sso.local_passwords_enabled(),
        }


class InviteAcceptView(PasswordsOffMixin, auth_views.PasswordResetConfirmView):
    """The one-time invitation link: Django's password-reset confirmation with the invitation
    token (its own salt and lifetime). Django moves the token into the session and redirects,
    so it does not linger in the address bar or a Referer header."""

    token_generator = invitations.invite_token_generator
    template_name = "registration/invite_accept.html"
    post_reset_login = True
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("home")

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        invitations.invite_accepted(user=form.user, ip_address=client_ip(self.request))
        messages.success(self.request, _("Your password is set. Welcome to TriggerDesk."))
        return response


class PasswordChangeView(PasswordsOffMixin, auth_views.PasswordChangeView):
    """Change one's own password (the current one is asked first); other sessions of the user
    are logged out, this one stays."""

    template_name = "registration/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form) -> HttpResponse:
        old_key = self.request.session.session_key
        response = super().form_valid(form)
        # Django gave this browser a new session key: the same login, the same record.
        login_sessions.login_session_rekey(
            old_key=old_key, new_key=self.request.session.session_key
        )
        login_sessions.sessions_end_after_password_change(
            user=form.user,
            current_session_key=self.request.session.session_key,
            ip_address=client_ip(self.request),
            why="password changed",
        )
        invitations.password_changed(user=form.user, ip_address=client_ip(self.request))
        messages.success(self.request, _("Your password was changed."))
        return response


class PasswordResetRequestView(PasswordsOffMixin, auth_views.PasswordResetView):
    """The "Forgot your password?" page: ask for a reset link by email. The next page is the same
    whether or not the address has an account (see dashboard.accounts.password_reset)."""

    template_name = "registration/password_reset_form.html"
    success_url = reverse_lazy("password_reset_done")

    def get_context_data(self, **kwargs) -> dict:
        return {**super().get_context_data(**kwargs), **_validity()}

    def form_valid(self, form) -> HttpResponse:
        result = password_reset.password_reset_request(
            email=form.cleaned_data["email"], ip_address=client_ip(self.request)
        )
        if result.retry_after_seconds:
            minutes = -(-result.retry_after_seconds // 60)
            form.add_error(
                "email",
                ngettext(
                    "Too many reset requests for this address or from your network; "
                    "try again in %(minutes)s minute.",
                    "Too many reset requests for this address or from your network; "
                    "try again in %(minutes)s minutes.",
                    minutes,
                )
                % {"minutes": minutes},
            )
            response = self.form_invalid(form)
            response.status_code = 429
            response["Retry-After"] = str(result.retry_after_seconds)
            return response
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetDoneView(PasswordsOffMixin, auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset_done.html"

    def get_context_data(self, **kwargs) -> dict:
        return {**super().get_context_data(**kwargs), **_validity()}


class PasswordResetConfirmView(PasswordsOffMixin, auth_views.PasswordResetConfirmView):
    """The link from the reset email: Django's confirmation (the token moves into the session,
    out of the address bar). Setting the password logs this browser in and every other session
    of the account out."""

    template_name = "registration/password_reset_confirm.html"
    post_reset_login = True
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("home")

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        login_sessions.sessions_end_after_password_change(
            user=form.user,
            current_session_key=self.request.session.session_key,
            ip_address=client_ip(self.request),
            why="password reset",
        )
        password_reset.password_reset_completed(user=form.user, ip_address=client_ip(self.request))
        messages.success(
            self.request,
            _("Your password was reset. Any other session of yours was logged out."),
        )
        return response


def _validity() -> dict:
    return {"valid_minutes": password_reset.reset_valid_minutes()}
