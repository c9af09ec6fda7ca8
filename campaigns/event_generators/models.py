"""Optimove event generators, their topics and schema versions, trigger groups and schedules.

A run of the engine (dashboard.runs.models.Run) stays the one record of a vendor call; a
CampaignRun row says which generator, topic and schema version that run was validated against,
and to which trigger group it belongs.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy


class CampaignSettings(models.Model):
    """A tenant's campaign settings (kept apart from Tenant: the daily trigger has its own)."""

    tenant = models.OneToOneField(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="campaign_settings"
    )
    approval_required = models.BooleanField(
        default=False, help_text="Campaign runs need an operator's approval before they are sent."
    )

    def __str__(self) -> str:
        return f"Campaign settings of {self.tenant}"


class EventGenerator(models.Model):
    """One Optimove Event Generator a tenant may trigger, with its payload schema's history."""

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="event_generators"
    )
    connection = models.ForeignKey(
        "dashboard.VendorConnection", on_delete=models.PROTECT, related_name="event_generators"
    )
    # Optimove's id, as the marketing team gave it (stable across configuration changes).
    external_id = models.CharField(max_length=100)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # Its own send window ({"weekdays", "start", "end", "time_zone"}), on top of its
    # connection's: null for none (event_generators/send_window.py).
    send_window = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One tenant registers an Optimove id once, whatever its letter case.
            models.UniqueConstraint(
                "tenant", Lower("external_id"), name="event_generator_tenant_external_id_unique"
            ),
            models.UniqueConstraint(
                fields=["tenant", "name"], name="event_generator_tenant_name_unique"
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"

    @property
    def current_schema(self) -> SchemaVersion | None:
        return self.schema_versions.order_by("-number").first()


class Topic(models.Model):
    """A Preference Centre topic the generator may be triggered for: its key and a readable name."""

    generator = models.ForeignKey(EventGenerator, on_delete=models.CASCADE, related_name="topics")
    key = models.CharField(max_length=100)
    name = models.CharField(max_length=120)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["generator", "key"], name="topic_generator_key_unique")
        ]
        ordering = ["name", "key"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class SchemaVersion(models.Model):
    """One version of a generator's `context` schema (JSON Schema draft 2020-12). Append-only:
    every change is a new version, with who made it, when, and the diff against the previous."""

    generator = models.ForeignKey(
        EventGenerator, on_delete=models.CASCADE, related_name="schema_versions"
    )
    number = models.PositiveIntegerField()
    schema = models.JSONField()
    # The schema as JSON text in its author's key order (jsonb sorts keys; the form follows the
    # order the properties were written in).
    source = models.TextField(default="")
    diff = models.TextField(blank=True)
    comment = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["generator", "number"], name="schema_version_generator_number_unique"
            )
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.generator.name} schema v{self.number}"

    @property
    def document(self) -> dict:
        """The schema with its properties in the order they were written."""
        import json

        return json.loads(self.source) if self.source else self.schema


class TriggerGroup(models.Model):
    """One trigger for one or many topics: one run per topic, followed together."""

    tenant = models.ForeignKey("dashboard.Tenant", on_delete=models.CASCADE, related_name="+")
    generator = models.ForeignKey(
        EventGenerator, on_delete=models.PROTECT, related_name="trigger_groups"
    )
    schema_version = models.ForeignKey(SchemaVersion, on_delete=models.PROTECT, related_name="+")
    context = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=80)
    retry_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # The same form (or schedule) submitted twice is the same group.
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="trigger_group_idempotency_unique"
            )
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Trigger group {self.pk} of {self.generator.name}"


class CampaignRun(models.Model):
    """What an engine run of an event generator was: generator, topic, schema version, group."""

    run = models.OneToOneField(
        "dashboard.Run", on_delete=models.CASCADE, related_name="campaign_run"
    )
    generator = models.ForeignKey(
        EventGenerator, on_delete=models.PROTECT, related_name="campaign_runs"
    )
    schema_version = models.ForeignKey(SchemaVersion, on_delete=models.PROTECT, related_name="+")
    group = models.ForeignKey(
        TriggerGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="campaign_runs"
    )
    topic_key = models.CharField(max_length=100)
    topic_name = models.CharField(max_length=120, blank=True)

    class Meta:
        indexes = [
            # A generator's execution history, newest first.
            models.Index(fields=["generator", "-run"], name="campaign_run_generator"),
        ]

    def __str__(self) -> str:
        return f"Campaign run {self.run_id} ({self.topic_key})"


class ScheduleState(models.TextChoices):
    # waits for its time; may be edited or cancelled
    SCHEDULED = "scheduled", gettext_lazy("Scheduled")
    FIRED = "fired", gettext_lazy("Fired")  # its trigger group exists (exactly one)
    CANCELLED = "cancelled", gettext_lazy("Cancelled")  # withdrawn before its time
    # could not fire (the reason says why); nothing was sent
    FAILED = "failed", gettext_lazy("Failed")


class ScheduledTrigger(models.Model):
    """A trigger to fire at a later time (Optimove's V1 has no scheduling of its own).

    Fired by claiming the row (`SELECT … FOR UPDATE SKIP LOCKED`, state scheduled → fired) in the
    same transaction that creates its runs: a worker or beat that dies mid-fire rolls both back,
    and a second claimer skips the row, so a schedule fires once.
    """

    tenant = models.ForeignKey("dashboard.Tenant", on_delete=models.CASCADE, related_name="+")
    generator = models.ForeignKey(
        EventGenerator, on_delete=models.PROTECT, related_name="schedules"
    )
    schema_version = models.ForeignKey(SchemaVersion, on_delete=models.PROTECT, related_name="+")
    topic_keys = models.JSONField(default=list)
    context = models.JSONField(default=dict)
    fire_at = models.DateTimeField()
    state = models.CharField(
        max_length=20, choices=ScheduleState.choices, default=ScheduleState.SCHEDULED
    )
    send_anyway = models.BooleanField(default=False)
    group = models.OneToOneField(
        TriggerGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="schedule"
    )
    failure_message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150, blank=True)
    # The requester for four eyes: whoever last set what the schedule sends (its creator, or
    # the operator who last edited it). It fires as this person, so they cannot approve it.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    fired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=ScheduleState.values), name="schedule_state_known"
            )
        ]
        indexes = [
            # The firing loop: due schedules, oldest first.
            models.Index(
                fields=["fire_at"],
                condition=Q(state="scheduled"),
                name="schedule_due",
            ),
        ]
        ordering = ["fire_at", "id"]

    def __str__(self) -> str:
        return f"Schedule {self.pk} of {self.generator.name} at {self.fire_at:%Y-%m-%d %H:%M} UTC"
