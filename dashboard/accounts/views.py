"""The views of one's own account: accepting an invitation (setting a first password),
changing one's password and resetting a forgotten one, in the app's layout (no /admin/ needed).
Django's own views do the work; these add the app's templates and the audit rows."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dashboard.accounts import invitations, password_reset
from dashboard.tenancy.scoping import client_ip


class InviteAcceptView(auth_views.PasswordResetConfirmView):
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


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change one's own password (the current one is asked first); other sessions of the user
    are logged out, this one stays."""

    template_name = "registration/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        invitations.password_changed(user=form.user, ip_address=client_ip(self.request))
        messages.success(self.request, _("Your password was changed."))
        return response


class PasswordResetRequestView(auth_views.PasswordResetView):
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


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset_done.html"

    def get_context_data(self, **kwargs) -> dict:
        return {**super().get_context_data(**kwargs), **_validity()}


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The link from the reset email: Django's confirmation (the token moves into the session,
    out of the address bar). Setting the password logs this browser in and every other session
    of the account out."""

    template_name = "registration/password_reset_confirm.html"
    post_reset_login = True
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("home")

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        password_reset.password_reset_completed(user=form.user, ip_address=client_ip(self.request))
        messages.success(
            self.request,
            _("Your password was reset. Any other session of yours was logged out."),
        )
        return response


def _validity() -> dict:
    return {"valid_minutes": password_reset.reset_valid_minutes()}
