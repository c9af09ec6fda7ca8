"""API tokens (stored hashed) and the idempotency records of the automation API."""

from __future__ import annotations

from django.conf import settings
from django.db import models

TOKEN_PREFIX = "tdk_"  # noqa: S105 (a public marker, not a secret)


class ApiToken(models.Model):
    """A person's key for the automation API in one tenant; it acts with that person's role.

    Only the SHA-256 of the secret is stored: the secret is shown once, at creation. `prefix`
    (the first characters of the secret) lets a person recognise a token in the list and in a
    leaked-secret report without the list ever holding the secret.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A name says which pipeline holds the token in the audit trail: one per person.
            models.UniqueConstraint(
                fields=["user", "tenant", "name"], name="api_token_user_tenant_name_unique"
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyRecord(models.Model):
    """The first request made with an Idempotency-Key in a tenant, and the run it made.

    The unique constraint is what makes fifty concurrent identical requests create one run: the
    record is inserted in the same transaction as the run, so a second insert waits for the
    first transaction and then fails, and that request answers with the first one's run.
    """

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="api_idempotency_records"
    )
    key = models.CharField(max_length=64)
    # SHA-256 of the method, the endpoint and the validated body: what "the same request" means.
    request_hash = models.CharField(max_length=64)
    run = models.ForeignKey(
        "dashboard.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="api_idempotency_key_unique")
        ]
        indexes = [
            # The hourly clean-up (api.services.idempotency_records_expire): the oldest ids
            # before the cut-off, `WHERE created_at < %s ORDER BY created_at LIMIT 5000`.
            models.Index(fields=["created_at"], name="api_idempotency_created"),
        ]

    def __str__(self) -> str:
        return f"{self.key} → run {self.run_id}"


class Webhook(models.Model):
    """Where TriggerDesk tells a tenant's pipelines that a run ended (one per tenant).

    Each notification is a POST signed with HMAC-SHA256 under `encrypted_secret` (shown once
    when set); see dashboard/api/webhooks.py for the signature and the retries.
    """

    tenant = models.OneToOneField(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="api_webhook"
    )
    url = models.URLField(max_length=500)
    encrypted_secret = models.TextField()
    is_active = models.BooleanField(default=True)
    # Only runs that end after this moment are notified (not the whole history at once).
    active_since = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Webhook of {self.tenant_id} → {self.url}"


class WebhookNotification(models.Model):
    """That one run's end must be told to the webhook; its attempts are WebhookDelivery rows."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"  # not yet delivered; retried with backoff
        DELIVERED = "delivered", "Delivered"  # the receiver answered 2xx
        FAILED = "failed", "Failed"  # every attempt failed; nothing more will be tried

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="notifications")
    run = models.ForeignKey("dashboard.Run", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # A run's end is notified once, however many dispatchers find it.
            models.UniqueConstraint(fields=["webhook", "run"], name="webhook_notification_once")
        ]

    def __str__(self) -> str:
        return f"Run {self.run_id} → webhook {self.webhook_id} ({self.state})"


class WebhookDelivery(models.Model):
    """One attempt to deliver a notification: what the receiver answered, or why it failed."""

    notification = models.ForeignKey(
        WebhookNotification, on_delete=models.CASCADE, related_name="deliveries"
    )
    attempt = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "attempt"], name="webhook_delivery_attempt_unique"
            )
        ]
        ordering = ["attempt"]

    def __str__(self) -> str:
        return f"Attempt {self.attempt} of {self.notification_id}: {self.status_code or self.error}"
