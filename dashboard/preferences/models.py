"""A person's own preferences: the language and time zone the product shows them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class PersonalPreference(models.Model):
    """One row per person who has chosen something; no row means "as my browser says"."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_preference"
    )
    # Empty: the browser's Accept-Language decides (LocaleMiddleware).
    language = models.CharField(_("language"), max_length=10, blank=True)
    # Empty: the browser's own zone (static/js/app.js shows it beside UTC); else an IANA name.
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language or 'browser'} / {self.time_zone or 'browser'}"
