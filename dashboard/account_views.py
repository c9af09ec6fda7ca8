"""The views of one's own account: accepting an invitation (setting a first password) and
changing one's password, in the app's layout (no /admin/ needed). Django's own views do the
work; these add the app's templates and the audit rows."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import reverse_lazy

from dashboard import invitations
from dashboard.tenancy import client_ip


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
        messages.success(self.request, "Your password is set. Welcome to TriggerDesk.")
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change one's own password (the current one is asked first); other sessions of the user
    are logged out, this one stays."""

    template_name = "registration/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        invitations.password_changed(user=form.user, ip_address=client_ip(self.request))
        messages.success(self.request, "Your password was changed.")
        return response
