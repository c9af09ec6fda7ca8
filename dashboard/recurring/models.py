"""Recurring schedules (a cron rule in a time zone, firing a feature app's target) and their fires."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class RecurringSchedule(models.Model):
    """A rule like "every weekday at 09:00 Europe/Berlin" that fires one target each time.

    The target is a feature app's (AppConfig.recurring_targets: an event generator's trigger,
    an Altcraft launch of a stored list, the daily trigger): `target_kind` names it and
    `parameters` hold what it sends, checked by that target when the schedule is saved and
    submitted through its app's own services at every fire.
    """

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="recurring_schedules"
    )
    name = models.CharField(max_length=120)
    target_kind = models.CharField(max_length=40)
    parameters = models.JSONField(default=dict)
    # What it fires, in words, as checked when saved ("Event generator Welcome, topics a, b").
    target_label = models.CharField(max_length=300)
    # The connection it sends through: its pauses, window and blackout dates show on the calendar.
    connection = models.ForeignKey(
        "dashboard.VendorConnection",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recurring_schedules",
    )
    cron = models.CharField(max_length=100)
    time_zone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    # The next fire the beat claims (null while disabled).
    next_fire_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150, blank=True)
    # It fires as whoever last set what it sends (four eyes: they cannot approve its runs).
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], name="recurring_schedule_tenant_name_unique"
            ),
            models.CheckConstraint(
                condition=Q(enabled=False) | Q(next_fire_at__isnull=False),
                name="recurring_schedule_enabled_has_next_fire",
            ),
        ]
        indexes = [
            # The beat's claim: enabled schedules whose next fire has come, oldest first.
            models.Index(
                fields=["next_fire_at"], condition=Q(enabled=True), name="recurring_schedule_due"
            ),
        ]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"Recurring schedule {self.name} ({self.cron} {self.time_zone})"


class FireOutcome(models.TextChoices):
    FIRED = "fired", _("Fired")  # its target was submitted (approvals and policies then apply)
    SKIPPED = (
        "skipped",
        _("Skipped"),
    )  # a pause, the send window, a blackout or a daily rule said no
    FAILED = "failed", _("Failed")  # the target refused it (the reason says why); nothing was sent


class RecurringFire(models.Model):
    """One fire of a recurring schedule: unique per schedule and fire time, written in the same
    transaction as what it submitted, so each fire happens once whatever beats run."""

    schedule = models.ForeignKey(RecurringSchedule, on_delete=models.CASCADE, related_name="fires")
    fire_at = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=FireOutcome.choices)
    reason = models.TextField(blank=True)
    # What the fire created, in words ("Trigger group #12", "Run #40").
    result_label = models.CharField(max_length=200, blank=True)
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "fire_at"], name="recurring_fire_once_per_time"
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=FireOutcome.values), name="recurring_fire_outcome_known"
            ),
        ]
        ordering = ["-fire_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} fire of {self.schedule_id} at {self.fire_at}"
