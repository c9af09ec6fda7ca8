"""Audit logins, logouts, failed logins and lockouts."""

from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from dashboard.accounts.lockout import USERNAME, USERNAME_AND_ADDRESS
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.preferences import selectors as preference_selectors
from dashboard.preferences import services as preference_services
from dashboard.tenancy.scoping import client_ip


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs) -> None:
    record_audit_event(
        actor=Actor(user=user, ip_address=client_ip(request)),
        action="auth.login",
        object_type="user",
        object_id=user.pk,
    )


@receiver(user_logged_in)
def remember_preferences(sender, request, user, **kwargs) -> None:
    """The person's language and time zone go into the session at login: each page then reads
    them without a query (dashboard/preferences/middleware.py)."""
    session = getattr(request, "session", None)
    if session is not None:
        preference_services.preferences_remember(
            session, preference_selectors.preferences_for_user(user)
        )


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    record_audit_event(
        actor=Actor(user=user, ip_address=client_ip(request)),
        action="auth.logout",
        object_type="user",
        object_id=user.pk,
    )


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # `credentials` is already cleansed by Django (the password shows as asterisks); keep only
    # the username.
    username = str(credentials.get("username", ""))[:150]
    record_audit_event(
        actor=Actor(label=username or "unknown", ip_address=client_ip(request)),
        action="auth.login_failed",
        object_type="user",
        summary={"username": username},
    )


@receiver(user_locked_out)
def audit_lockout(sender, request, username=None, ip_address=None, **kwargs) -> None:
    rule = getattr(request, "axes_lockout_rule", "") or USERNAME_AND_ADDRESS
    record_audit_event(
        actor=Actor(label=str(username or "unknown")[:150], ip_address=ip_address),
        action="auth.locked_out",
        object_type="user",
        summary={
            "username": username,
            "locked": "this user name from anywhere"
            if rule == USERNAME
            else "this user name from this address",
        },
    )
