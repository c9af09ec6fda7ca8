"""The demo tenant's TalkifAI batch jobs (make demo; setup_demo calls it through
AppConfig.demo_data)."""

from __future__ import annotations

from typing import TextIO

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from batchjobs.models import BatchJob
from batchjobs.services import batch_job_register
from dashboard.audit.trail import Actor
from dashboard.management.commands._common import command_label
from dashboard.models import Tenant, VendorConnection

# The TalkifAI sandbox's jobs, one in each status. Registered under names without that status:
# the sandbox's own names ("Appointment reminders (running)") go stale as the jobs move on.
DEMO_BATCH_JOBS = [
    ("job-scheduled-001", "Spring renewals"),
    ("job-pending-001", "Win-back calls"),
    ("job-running-001", "Appointment reminders"),
    ("job-completed-001", "January survey"),
    ("job-failed-001", "Payment follow-up"),
    ("job-cancelled-001", "Holiday promo"),
]


def register_demo_batch_jobs(tenant: Tenant, stdout: TextIO) -> None:
    """Register the TalkifAI sandbox's jobs (the vendor has no list endpoint), checking each
    with the sandbox as a person registering it would; skipped when the sandbox is down."""
    connection = VendorConnection.objects.get(tenant=tenant, name="TalkifAI (sandbox)")
    marketer = Actor(
        user=get_user_model().objects.get(username="mia"),
        label=command_label("setup_demo", acting_as="mia"),
    )
    for batch_job_id, name in DEMO_BATCH_JOBS:
        if BatchJob.objects.filter(tenant=tenant, batch_job_id=batch_job_id).exists():
            continue
        try:
            batch_job_register(
                actor=marketer,
                tenant=tenant,
                connection=connection,
                batch_job_id=batch_job_id,
                name=name,
            )
        except ValidationError as error:
            stdout.write(f"Batch job {batch_job_id} not registered: {' '.join(error.messages)}")
