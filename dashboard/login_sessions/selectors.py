"""Reads of login sessions: a person's live sessions, and which of them is the caller's."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from dashboard.clock import utc_now
from dashboard.login_sessions.models import LoginSession


def session_key_hash(session_key: str) -> str:
    """The SHA-256 (hex) of a session key: what a LoginSession keeps instead of the key."""
    return hashlib.sha256(session_key.encode("utf-8")).hexdigest()


def live_since():
    """Sessions not seen since this moment have certainly expired: a session lives at most
    SESSION_COOKIE_AGE after it was last saved, and it is seen (within a minute) whenever used."""
    return utc_now() - timedelta(seconds=settings.SESSION_COOKIE_AGE)


def session_list(*, user: AbstractBaseUser) -> QuerySet[LoginSession]:
    """The person's live sessions, most recently seen first (one indexed query)."""
    return LoginSession.objects.filter(user=user, last_seen_at__gte=live_since()).order_by(
        "-last_seen_at", "-id"
    )


def current_key_hash(session_key: str | None) -> str:
    """The hash of the caller's own session key, "" without one (an API token has none)."""
    return session_key_hash(session_key) if session_key else ""
