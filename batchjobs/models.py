"""The batchjobs app's own records: the "files landed" signal of a UTC day, and the TalkifAI
batch jobs a tenant registered (the vendor has no endpoint that lists them).

Runs themselves (a daily trigger, a job start) live in the run engine (dashboard.runs).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy


class FilesLanded(models.Model):
    """Someone (a person in the UI, or a pipeline) says all of a UTC day's files are uploaded.

    Optimove does not check this: when the tenant asks for it (Tenant.require_files_landed), the
    daily trigger cannot be requested or approved for a day without this signal.
    """

    class Source(models.TextChoices):
        PERSON = "person", gettext_lazy("A person, in TriggerDesk")
        PIPELINE = "pipeline", gettext_lazy("A data pipeline (automation)")

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="files_landed"
    )
    utc_date = models.DateField()
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.PERSON)
    given_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who gave it as the audit names them: a username, or the pipeline's name.
    given_by_label = models.CharField(max_length=150)
    given_at = models.DateTimeField()
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            # One signal per day: a second one changes nothing, so it is not stored twice.
            models.UniqueConstraint(
                fields=["tenant", "utc_date"], name="files_landed_one_per_tenant_day"
            ),
            models.CheckConstraint(
                condition=Q(source__in=["person", "pipeline"]), name="files_landed_source_known"
            ),
        ]
        ordering = ["-utc_date"]
        verbose_name_plural = "files landed signals"

    def __str__(self) -> str:
        return f"Files landed for {self.utc_date:%Y-%m-%d} ({self.tenant_id})"


class BatchJob(models.Model):
    """A TalkifAI batch job the tenant registered by id, so that it can be watched and started."""

    tenant = models.ForeignKey(
        "dashboard.Tenant", on_delete=models.CASCADE, related_name="batch_jobs"
    )
    connection = models.ForeignKey(
        "dashboard.VendorConnection", on_delete=models.CASCADE, related_name="batch_jobs"
    )
    batch_job_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    registered_at = models.DateTimeField()

    class Meta:
        constraints = [
            # The same id may exist in two TalkifAI organisations (two connections), not twice in one.
            models.UniqueConstraint(
                fields=["tenant", "connection", "batch_job_id"],
                name="batch_job_unique_per_connection",
            ),
        ]
        ordering = ["name", "batch_job_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.batch_job_id})"
