"""Single sign-on (OpenID Connect): a tenant's mapping of IdP groups to roles, and each person's
link to their IdP account (its subject and, encrypted, the refresh token the sync uses)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class SsoGroupMapping(models.Model):
    """Members of the IdP group `group` get `role` in `tenant` at their next login (or sync)."""

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="sso_group_mappings"
    )
    group = models.CharField(max_length=200)
    role = models.CharField(max_length=20)
    created_by_label = models.CharField(max_length=150)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Group names from IdPs are compared without case: "Ops" and "ops" are one group.
            models.UniqueConstraint(
                "tenant", Lower("group"), name="sso_mapping_tenant_group_unique"
            ),
            models.CheckConstraint(condition=~Q(group=""), name="sso_mapping_group_given"),
        ]
        ordering = ["group", "id"]

    def __str__(self) -> str:
        return f"{self.group} → {self.role} in {self.tenant_id}"


class SsoIdentity(models.Model):
    """A person's IdP account: matched once by verified email, then held to its subject."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity"
    )
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    # Fernet ciphertext (dashboard.tenancy.crypto), empty when the IdP gave none or refused it.
    encrypted_refresh_token = models.TextField(blank=True)
    groups = models.JSONField(default=list, blank=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} at {self.issuer}"
