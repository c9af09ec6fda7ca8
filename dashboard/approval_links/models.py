"""One approval link: one approver, one request, one use."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApprovalLink(models.Model):
    """A one-time link mailed to `recipient` for one approval request (`subject_type`,
    `subject_id`). Only the SHA-256 of its token is kept: a database leak gives no working link.
    `used_at` is set when a decision was made through it; a used or expired link changes
    nothing."""

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="approval_links"
    )
    # "run" or a feature app's kind ("altcraft_launch"): see approval_links.subjects.
    subject_type = models.CharField(max_length=40)
    subject_id = models.BigIntegerField()
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approval_links"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True)

    class Meta:
        indexes = [
            # approval_links.services.links_of: a request's links (when it is decided elsewhere).
            models.Index(fields=["subject_type", "subject_id"], name="approval_link_subject"),
        ]

    def __str__(self) -> str:
        return f"Approval link for {self.subject_type} #{self.subject_id} to {self.recipient_id}"
