"""The Altcraft registry and launches.

A launch is one uploaded list sent to one trigger campaign: read, checked and cut into chunks
at upload (the preview), confirmed by a person (and, where the tenant asks for it, approved by
an operator against the file's SHA-256), then sent as one engine run per chunk. Each chunk's
rows are stored encrypted, so a retry sends exactly the rows the preview counted.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy

MATCHING_CHOICES = [
    ("email", gettext_lazy("Email (profile and subscriptions)")),
    ("email_profile", gettext_lazy("Email (profile only)")),
    ("phone", gettext_lazy("Phone")),
    ("profile_id", gettext_lazy("Profile ID")),
    ("custom", gettext_lazy("Custom profile field")),
]


class AltcraftSettings(models.Model):
    """A tenant's rules for Altcraft launches."""

    tenant = models.OneToOneField(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="altcraft_settings"
    )
    approval_required = models.BooleanField(
        default=False,
        help_text="A launch needs an operator (not the uploader) to approve the exact file.",
    )
    retention_hours = models.PositiveIntegerField(
        default=7 * 24,
        help_text="Uploaded lists are kept (encrypted) this long for retries, then deleted.",
    )

    def __str__(self) -> str:
        return f"Altcraft settings of {self.tenant_id}"


class AltcraftTrigger(models.Model):
    """A trigger campaign the tenant registered (Altcraft has no endpoint that lists them)."""

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="altcraft_triggers"
    )
    connection = models.ForeignKey(
        "dashboard.VendorConnection", on_delete=models.PROTECT, related_name="altcraft_triggers"
    )
    trigger_id = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    default_matching = models.CharField(max_length=20, choices=MATCHING_CHOICES, default="email")
    default_field_name = models.CharField(max_length=120, blank=True)
    resource_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Resource for email and phone matching (imports)."
    )
    # The names its templates use as {apicontent.<name>}: the content form offers them.
    content_fields = models.JSONField(default=list, blank=True)
    # The last column mapping used for an import to this trigger, offered again next time.
    import_mapping = models.JSONField(default=dict, blank=True)
    # The last column a bulk launch to this trigger sent ({"column", "matching", "field_name"}),
    # offered again next time when no column is named like the matching kind.
    launch_choice = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "connection", "trigger_id"],
                name="altcraft_trigger_unique_per_connection",
            ),
            models.CheckConstraint(
                condition=Q(default_matching__in=[value for value, _ in MATCHING_CHOICES]),
                name="altcraft_trigger_matching_known",
            ),
        ]
        ordering = ["name", "trigger_id"]

    def __str__(self) -> str:
        return f"{self.name} (trigger {self.trigger_id})"


class LaunchKind(models.TextChoices):
    START_BATCH = "start_batch", gettext_lazy("Bulk trigger launch")
    IMPORT = "import", gettext_lazy("Profile import + launch")


class LaunchState(models.TextChoices):
    # stored; an import waits for its column mapping
    UPLOADED = "uploaded", gettext_lazy("Uploaded")
    # read and checked; nothing sent; waiting for confirm
    PREVIEWED = "previewed", gettext_lazy("Previewed")
    # confirmed; needs an operator
    AWAITING_APPROVAL = "awaiting_approval", gettext_lazy("Awaiting approval")
    SENDING = "sending", gettext_lazy("Sending")  # its chunks are runs of the engine
    REJECTED = "rejected", gettext_lazy("Rejected")  # the operator said no; nothing sent
    # dropped, refused as unreadable, or expired unsent
    DISCARDED = "discarded", gettext_lazy("Discarded")


# A person may still confirm, approve or discard these; nothing of theirs was sent.
UNSENT_STATES = frozenset(
    {LaunchState.UPLOADED, LaunchState.PREVIEWED, LaunchState.AWAITING_APPROVAL}
)


class AltcraftLaunch(models.Model):
    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="altcraft_launches"
    )
    trigger = models.ForeignKey(AltcraftTrigger, on_delete=models.PROTECT, related_name="launches")
    kind = models.CharField(max_length=20, choices=LaunchKind.choices)
    state = models.CharField(
        max_length=20, choices=LaunchState.choices, default=LaunchState.UPLOADED
    )
    # Why the file cannot be sent (a FileRejected message with its row number), when it cannot.
    problem = models.TextField(blank=True)
    # What is sent with every chunk besides its rows (matching, field_name, content, custom_data,
    # attach, skip_triggers, and for imports the import flags, timeout and resource_id).
    parameters = models.JSONField(default=dict)
    # The column mapping of an import (CSV column -> profile field or subscription).
    mapping = models.JSONField(default=dict, blank=True)
    # A bulk launch: the header of the column whose values are sent, "" while the uploader has
    # not chosen it; the other columns of the header, which are not sent (for the preview).
    column = models.CharField(max_length=255, blank=True)
    ignored_columns = models.JSONField(default=list, blank=True)

    source_name = models.CharField(max_length=255)
    source_sha256 = models.CharField(max_length=64)
    source_bytes = models.PositiveBigIntegerField()
    encoding = models.CharField(max_length=20, blank=True)
    # The file as uploaded and the prepared chunks, both encrypted (see storage.py); emptied when
    # they expire.
    upload_path = models.CharField(max_length=300, blank=True)
    chunks_path = models.CharField(max_length=300, blank=True)
    expires_at = models.DateTimeField()
    files_deleted_at = models.DateTimeField(null=True, blank=True)
    # When a worker was last asked to read the upload, and when one claimed the reading or last
    # reported progress: housekeeping queues again a reading whose message was lost or whose
    # worker died (launches_reading_resume), and a second delivery does not read it twice.
    reading_queued_at = models.DateTimeField(null=True, blank=True)
    reading_claimed_at = models.DateTimeField(null=True, blank=True)

    rows_read = models.PositiveIntegerField(default=0)
    rows_valid = models.PositiveIntegerField(default=0)
    rows_invalid = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    # Rows with other cells but none in the sent column: never sent, and the uploader must say
    # "skip them" to confirm. The first few row numbers are kept for the preview.
    rows_empty = models.PositiveIntegerField(default=0)
    empty_samples = models.JSONField(default=list, blank=True)
    # The first invalid rows, each {"row": n, "reason": "..."}; the counts above are complete.
    invalid_samples = models.JSONField(default=list, blank=True)
    body_limit_bytes = models.PositiveIntegerField()
    largest_body_bytes = models.PositiveIntegerField(default=0)
    total_body_bytes = models.PositiveBigIntegerField(default=0)

    idempotency_key = models.CharField(max_length=80)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_by_label = models.CharField(max_length=150, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by_label = models.CharField(max_length=150, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approval_comment = models.CharField(max_length=500, blank=True)
    # What the approval policies asked when it was confirmed (dashboard.approval_policies):
    # how many distinct operators, why, and by when; and the approvals given so far, each
    # {"user": id, "label", "at", "sha256", "comment"} (the last one releases it).
    approvals_needed = models.PositiveSmallIntegerField(default=1)
    approval_reasons = models.JSONField(default=list, blank=True)
    approval_deadline = models.DateTimeField(null=True, blank=True)
    approvals = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="altcraft_launch_idempotency_unique"
            ),
            models.CheckConstraint(
                condition=Q(state__in=LaunchState.values), name="altcraft_launch_state_known"
            ),
        ]
        indexes = [
            # The launch list: one tenant's launches, newest first.
            models.Index(fields=["tenant", "-created_at"], name="altcraft_launch_tenant_new"),
            # The expiry sweep: launches whose files are still on disk, by expiry.
            models.Index(
                fields=["expires_at"],
                condition=Q(files_deleted_at__isnull=True),
                name="altcraft_launch_files_expiry",
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Altcraft launch {self.pk} ({self.kind}, {self.state})"

    @property
    def is_reading(self) -> bool:
        """Uploaded and queued for a worker to read: once an import's columns are mapped, once
        a bulk launch's column is chosen."""
        if self.state != LaunchState.UPLOADED:
            return False
        return bool(self.mapping) if self.kind == LaunchKind.IMPORT else bool(self.column)

    @property
    def content_text(self) -> str:
        """The content object as the JSON that is sent, for pages and commands."""
        content = self.parameters.get("content")
        return json.dumps(content, ensure_ascii=False) if content is not None else ""


class AltcraftChunk(models.Model):
    """One request's worth of rows: sent by exactly one engine run at a time.

    `run` is the chunk's current run; a retry (only after the current run failed, i.e. the vendor
    did not act on it) makes a new run and points here to it; earlier runs stay in the engine's
    history and name this chunk in their parameters.
    """

    launch = models.ForeignKey(AltcraftLaunch, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_row = models.PositiveIntegerField(help_text="File row (header = 1) of its first item.")
    last_row = models.PositiveIntegerField()
    item_count = models.PositiveIntegerField()
    body_bytes = models.PositiveIntegerField(help_text="The exact size of its request body.")
    # Where its encrypted rows sit in the launch's chunk file, and their plaintext SHA-256.
    offset = models.PositiveBigIntegerField()
    length = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    run = models.ForeignKey(
        "dashboard.Run", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    retries = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["launch", "number"], name="altcraft_chunk_launch_number_unique"
            )
        ]
        ordering = ["launch", "number"]

    def __str__(self) -> str:
        return f"Chunk {self.number} of launch {self.launch_id}"
