"""At every login, however the password step happened (the login form, SSO, an invitation or
a password reset): the session starts with its second factor not proved."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from dashboard.mfa import session_state


@receiver(user_logged_in, dispatch_uid="mfa_login_starts_unproved")
def login_starts_unproved(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        session_state.start(request)
