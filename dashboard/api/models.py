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

    def __str__(self) -> str:
        return f"{self.key} → run {self.run_id}"
