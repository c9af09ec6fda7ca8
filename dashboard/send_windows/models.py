"""A connection's send window and its blackout dates."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from dashboard.send_windows.rules import Window


class SendWindow(models.Model):
    """When sending through its connection is allowed: these weekdays, from `start_time` to
    `end_time` local time in `time_zone`. No row: any time (blackout dates still apply)."""

    connection = models.OneToOneField(
        "dashboard.VendorConnection", on_delete=models.CASCADE, related_name="send_window"
    )
    # 0 = Monday ... 6 = Sunday, sorted, at least one.
    weekdays = models.JSONField(default=list)
    start_time = models.TimeField()
    end_time = models.TimeField()
    # An IANA zone (the brand's); the blackout dates are dates in it too.
    time_zone = models.CharField(max_length=64, default="UTC")
    updated_by_label = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # An empty window would refuse everything: a pause says that better, with a reason.
            models.CheckConstraint(
                condition=Q(start_time__lt=F("end_time")), name="send_window_start_before_end"
            ),
        ]

    def __str__(self) -> str:
        return f"Send window of connection {self.connection_id}: {self.rule.describe()}"

    @property
    def rule(self) -> Window:
        return Window(
            weekdays=frozenset(self.weekdays),
            start=self.start_time,
            end=self.end_time,
            zone=self.time_zone,
        )


class BlackoutDate(models.Model):
    """A local date (in the connection's window zone, UTC without one) when nothing is sent."""

    connection = models.ForeignKey(
        "dashboard.VendorConnection", on_delete=models.CASCADE, related_name="blackout_dates"
    )
    day = models.DateField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "day"], name="blackout_one_per_day"),
        ]
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d}" + (f" ({self.reason})" if self.reason else "")
