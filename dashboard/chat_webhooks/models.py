"""A tenant's chat webhook URLs (encrypted)."""

from __future__ import annotations

from django.db import models


class ChatWebhook(models.Model):
    """Where a tenant's approval news is posted. Each URL is stored encrypted
    (`dashboard.tenancy.crypto`), with a hint (its host and last characters) for the pages."""

    tenant = models.OneToOneField(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="chat_webhook"
    )
    slack_url_encrypted = models.TextField(blank=True)
    slack_url_hint = models.CharField(max_length=120, blank=True)
    teams_url_encrypted = models.TextField(blank=True)
    teams_url_hint = models.CharField(max_length=120, blank=True)
    updated_at = models.DateTimeField()
    updated_by_label = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"Chat webhooks of {self.tenant_id}"

    @property
    def targets(self) -> list[str]:
        """The kinds that are set ("slack", "teams")."""
        return [
            kind
            for kind, stored in (
                ("slack", self.slack_url_encrypted),
                ("teams", self.teams_url_encrypted),
            )
            if stored
        ]
