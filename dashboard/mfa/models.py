"""A passkey: a WebAuthn credential registered by one person, a django-otp device."""

from __future__ import annotations

from django.db import models
from django_otp.models import Device, TimestampMixin


class Passkey(TimestampMixin, Device):
    """A public-key credential of `user` (Device.name is the name they gave it).

    Only the public key is kept: nothing here lets anyone sign in as its owner. The signature
    counter refuses a cloned authenticator that replays an older count.
    """

    credential_id = models.BinaryField(max_length=1023)
    # The credential id's hash, unique: one passkey is never registered to two people.
    credential_id_sha256 = models.CharField(max_length=64, unique=True)
    public_key = models.BinaryField(max_length=1023)
    sign_count = models.PositiveBigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Passkey {self.name!r} of {self.user}"
