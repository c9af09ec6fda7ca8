"""Record every login's session, whatever signed the person in (password, invitation, reset,
single sign-on), and forget it at logout."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from dashboard.login_sessions import services
from dashboard.tenancy.scoping import client_ip


@receiver(user_logged_in, dispatch_uid="login_sessions.record")
def record_login_session(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    if session.session_key is None:
        # login() flushed another person's session: the new one has no key until saved.
        session.save()
    services.login_session_record(
        user=user,
        session_key=session.session_key,
        ip_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )


@receiver(user_logged_out, dispatch_uid="login_sessions.forget")
def forget_login_session(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if session is not None:
        services.login_session_forget(session_key=session.session_key)
