"""Forgot password: a reset link by email, without an admin. Every step is audited.

Someone enters an email address on the login page's "Forgot your password?" page. Every active
account of that address that has a password gets an email with a link to set a new one; the
page answers the same whether or not there is one, so it tells nobody which addresses have an
account (the audit row records what happened, for admins). The link is Django's password-reset
token: it works once (it hashes the password and the last login, so setting a password or
logging in kills it) and for PASSWORD_RESET_TIMEOUT. Requests are rate-limited per email address
and per client address (counted from those audit rows), whatever the answer, so a refusal says
nothing about the account either.

The email leaves from a Celery task on the "poll" queue (auth.password_reset_email), enqueued
after the request's audit row commits: the request does the same work whether or not the
address has an account (no SMTP time to measure), and the task makes the token itself at send
time, so no token travels through the broker.

The link starts with SITE_URL, never with the Host header of the request (which an attacker can
choose, to have the token sent to a host of theirs). The token never reaches an audit row or a
log line (RequestContextMiddleware writes the path of the link's page with the token redacted).
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.preferences.selectors import language_for_user
from dashboard.runs.enqueue import on_commit_task

logger = logging.getLogger(__name__)

REQUESTED = "auth.password_reset_requested"
RATE_PERIOD = timedelta(hours=1)
PER_EMAIL_SETTING = "PASSWORD_RESET_REQUESTS_PER_EMAIL_PER_HOUR"
PER_ADDRESS_SETTING = "PASSWORD_RESET_REQUESTS_PER_ADDRESS_PER_HOUR"


class ResetRequest(NamedTuple):
    """What a reset request did; only `retry_after_seconds` may be shown to the requester."""

    accounts_emailed: int
    # > 0: refused by the rate limit, ask again after this long; nothing was sent.
    retry_after_seconds: int


def reset_valid_minutes() -> int:
    """How long a reset link works (PASSWORD_RESET_TIMEOUT), in minutes."""
    return settings.PASSWORD_RESET_TIMEOUT // 60


def reset_link(*, user: AbstractBaseUser) -> str:
    """The one-time reset link for `user`, under SITE_URL."""
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return settings.SITE_URL + path


def _seconds_to_wait(*, email: str, ip_address: str | None) -> float:
    """0 when a request for `email` from `ip_address` may be taken now, else the seconds until
    it may: at most PASSWORD_RESET_REQUESTS_PER_EMAIL_PER_HOUR taken requests per email address
    and PASSWORD_RESET_REQUESTS_PER_ADDRESS_PER_HOUR per client address, in any hour.

    The count comes from the audit rows of earlier requests (refused ones do not count), so it
    holds across every web process and machine with nothing more to keep: no Redis keys or
    rate-limit metrics named after people's email addresses.
    """
    now = utc_now()
    taken = AuditEvent.objects.filter(
        tenant__isnull=True, action=REQUESTED, created_at__gt=now - RATE_PERIOD
    ).exclude(summary__has_key="rate_limited")
    limits = [
        (taken.filter(summary__email__iexact=email), PER_EMAIL_SETTING),
        (taken.filter(ip_address=ip_address), PER_ADDRESS_SETTING) if ip_address else None,
    ]
    wait = 0.0
    for rows, setting in filter(None, limits):
        limit = getattr(settings, setting)
        times = list(rows.order_by("-created_at").values_list("created_at", flat=True)[:limit])
        if len(times) >= limit:
            # The oldest of the last `limit` taken requests frees its place an hour after it.
            wait = max(wait, (times[-1] + RATE_PERIOD - now).total_seconds())
    return wait


def password_reset_request(*, email: str, ip_address: str | None) -> ResetRequest:
    """Have a reset link emailed to every active account of `email` that has a password, unless
    the rate limit refuses; audit the request either way (`auth.password_reset_requested`, with
    how many accounts are emailed, never a token). The emails leave from a Celery task, one per
    account, enqueued after the commit (password_reset_email_send). See the module docstring."""
    wait = _seconds_to_wait(email=email, ip_address=ip_address)
    users = [] if wait else list(PasswordResetForm().get_users(email))
    summary: dict = {"email": email, "accounts_emailed": len(users)}
    if wait:
        summary["rate_limited"] = True
    with transaction.atomic():
        record_audit_event(
            actor=Actor(label=f"{email[:130]} (reset request)", ip_address=ip_address),
            action=REQUESTED,
            object_type="user",
            object_id=users[0].pk if len(users) == 1 else "",
            summary=summary,
        )
        for user in users:
            # Only the user id goes through the broker; the task makes the token when it sends.
            # robust: a broker outage must not turn the answer into an error page for existing
            # accounts only (that would tell which addresses have one).
            # By name: the task module imports this one (enqueue.on_commit_task is robust).
            # The email speaks the person's own language, else the one of the browser that asked.
            on_commit_task("auth.password_reset_email", user.pk, translation.get_language())
    return ResetRequest(len(users), math.ceil(wait))


def password_reset_email_send(*, user_id: int, language: str = "") -> str:
    """Email the account `user_id` a fresh reset link (the task auth.password_reset_email, which
    password_reset_request enqueues): "sent"; "skipped" when the account is by now gone,
    inactive, without an email address or without a usable password; "failed" when the mail
    transport refused (logged with the user id only, never the address or the link).

    The token is made here, at send time, so it never travels through the broker. The email is
    in the person's chosen language, else in `language` (the requesting browser's)."""
    user = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_usable_password() or not user.email:
        logger.info("password reset email to user %s skipped: account no longer eligible", user_id)
        return "skipped"
    with translation.override(language_for_user(user, fallback=language)):
        body = render_to_string(
            "registration/password_reset_email.txt",
            {
                "username": user.get_username(),
                "link": reset_link(user=user),
                "valid_minutes": reset_valid_minutes(),
                "login_url": settings.SITE_URL + reverse("login"),
            },
        )
        subject = _("Reset your TriggerDesk password")
    try:
        send_mail(
            subject=subject,
            message=body,
            from_email=None,
            recipient_list=[user.email],
        )
    except Exception as error:  # any transport failure; its text may name the address
        logger.warning(
            "password reset email to user %s not sent: %s", user.pk, type(error).__name__
        )
        return "failed"
    return "sent"


def password_reset_completed(*, user: AbstractBaseUser, ip_address: str | None) -> None:
    """Audit that `user` set a new password through a reset link (never the password or the
    link). Their other sessions end by themselves: each stores a hash of the old password."""
    record_audit_event(
        actor=Actor(user=user, ip_address=ip_address),
        action="user.password_reset",
        object_type="user",
        object_id=user.pk,
    )
