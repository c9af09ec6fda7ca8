"""A login's session as its person sees it: device, address, when it began and was last seen."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from dashboard.login_sessions.devices import device_label


class LoginSession(models.Model):
    """One logged-in browser of a person, while its session lives.

    `key_hash` is the SHA-256 of the session key: the key itself (which would let anyone who
    reads it act as the person) is never stored here, shown or sent. The row is deleted when the
    session ends (logout, ended by its person or an admin); the audit trail keeps the history.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="login_sessions"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    # Moved forward at most once a minute per session (see middleware.py), not on every request.
    last_seen_at = models.DateTimeField()
    # The address it was last seen from.
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    # What the user agent reads as ("Chrome", "macOS"; "" when it cannot be read): names, not
    # words, so each reader gets "Chrome on macOS" in their own language (`device`).
    browser = models.CharField(max_length=60, blank=True)
    operating_system = models.CharField(max_length=60, blank=True)

    class Meta:
        indexes = [
            # "Your sessions" and a member's sessions: one person's rows, most recent first.
            models.Index(fields=["user", "-last_seen_at"], name="login_session_by_user"),
        ]
        ordering = ["-last_seen_at", "-id"]

    def __str__(self) -> str:
        return f"{self.browser or '?'} on {self.operating_system or '?'} of user {self.user_id}"

    @property
    def device(self) -> str:
        """The device in words, in the reader's language: "Chrome on macOS"."""
        return device_label(self.browser, self.operating_system)
