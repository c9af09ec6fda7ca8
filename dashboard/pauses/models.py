"""A pause of sending: tenant-wide (no connection) or for one connection."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext as _


class SendingPause(models.Model):
    """While `resumed_at` is null, nothing of its tenant (or its one connection) is sent."""

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="sending_pauses"
    )
    # Null: the whole tenant.
    connection = models.ForeignKey(
        "dashboard.VendorConnection",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sending_pauses",
    )
    reason = models.CharField(max_length=500)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paused_by_label = models.CharField(max_length=150)
    paused_at = models.DateTimeField()
    resumed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resumed_by_label = models.CharField(max_length=150, blank=True)
    resumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One open pause per scope: two concurrent clicks make one pause, the other is told.
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(connection__isnull=True, resumed_at__isnull=True),
                name="pause_one_open_per_tenant",
            ),
            models.UniqueConstraint(
                fields=["connection"],
                condition=Q(connection__isnull=False, resumed_at__isnull=True),
                name="pause_one_open_per_connection",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="pause_reason_given"),
        ]
        indexes = [
            # The engine's check before a batch leaves, the banner on every page and the
            # sweeper's list of paused scopes: the few open pauses, by tenant.
            models.Index(
                fields=["tenant", "connection"],
                condition=Q(resumed_at__isnull=True),
                name="pause_open_by_tenant",
            ),
        ]
        ordering = ["-paused_at", "-id"]

    def __str__(self) -> str:
        return f"Pause of {self.scope_label} since {self.paused_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.resumed_at is None

    @property
    def scope_label(self) -> str:
        """What is paused, in words: the tenant's name, or its connection's."""
        if self.connection_id is None:
            return self.tenant.name
        return f"{self.connection.name} ({self.tenant.name})"

    def held_reason(self) -> str:
        """Why a run or a scheduled fire waits, as shown beside it."""
        return _("Held: sending paused for %(scope)s by %(by)s at %(when)s UTC: %(reason)s") % {
            "scope": self.scope_label,
            "by": self.paused_by_label,
            "when": f"{self.paused_at:%Y-%m-%d %H:%M}",
            "reason": self.reason,
        }
