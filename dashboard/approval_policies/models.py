"""An approval policy of a tenant: an operation (or any), conditions, approvals needed, expiry."""

from __future__ import annotations

from datetime import time

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

MAX_APPROVALS = 3
# ISO weekdays, Monday = 1.
WEEKDAYS = {
    1: pgettext_lazy("weekday", "Mon"),
    2: pgettext_lazy("weekday", "Tue"),
    3: pgettext_lazy("weekday", "Wed"),
    4: pgettext_lazy("weekday", "Thu"),
    5: pgettext_lazy("weekday", "Fri"),
    6: pgettext_lazy("weekday", "Sat"),
    7: pgettext_lazy("weekday", "Sun"),
}


class ApprovalPolicy(models.Model):
    """Requests of `operation` (blank: any) that meet its conditions (any of them, or all with
    `match_all`; none set: every request) wait for `approvals_needed` distinct operators, never
    the requester, within `valid_minutes`."""

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="approval_policies"
    )
    name = models.CharField(max_length=80)
    operation = models.CharField(max_length=60, blank=True)  # a runs.models.Operation, "" = any
    # "Above N": the condition holds when the request's count is greater than N.
    recipients_above = models.PositiveIntegerField(null=True, blank=True)
    topics_above = models.PositiveIntegerField(null=True, blank=True)
    audience_above = models.PositiveIntegerField(null=True, blank=True)
    # Office hours: a weekly window in a time zone; the condition holds outside it.
    outside_office_hours = models.BooleanField(default=False)
    office_days = models.CharField(max_length=7, default="12345")  # ISO weekdays, "12345"
    office_start = models.TimeField(default=time(9, 0))
    office_end = models.TimeField(default=time(18, 0))
    office_zone = models.CharField(max_length=64, default="UTC")
    match_all = models.BooleanField(default=False)
    approvals_needed = models.PositiveSmallIntegerField(default=1)
    valid_minutes = models.PositiveIntegerField(default=240)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="approval_policy_name_unique"),
            models.CheckConstraint(
                condition=Q(approvals_needed__gte=1, approvals_needed__lte=MAX_APPROVALS),
                name="approval_policy_approvals_1_to_3",
            ),
            models.CheckConstraint(
                condition=Q(valid_minutes__gte=1), name="approval_policy_valid_minutes_positive"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="approval_policy_name_given"),
        ]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"Approval policy {self.name!r}"

    @property
    def office_hours_label(self) -> str:
        """The office-hours window in words: "Mon-Fri 09:00-18:00 Europe/Paris"."""
        days = [int(day) for day in self.office_days]
        if days and days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
            day_text = f"{WEEKDAYS[days[0]]}-{WEEKDAYS[days[-1]]}"
        else:
            day_text = ", ".join(str(WEEKDAYS[day]) for day in days) or str(_("no day"))
        return f"{day_text} {self.office_start:%H:%M}-{self.office_end:%H:%M} {self.office_zone}"
