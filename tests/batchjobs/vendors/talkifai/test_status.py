"""A batch job's status as TalkifAI reports it."""

from __future__ import annotations

import pytest

from batchjobs.vendors.talkifai import client as talkifai_client
from batchjobs.vendors.talkifai import status as talkifai_status
from dashboard.vendors.sandbox import Fault

pytestmark = pytest.mark.django_db


def test_batch_job_vendor_status(team, talkifai, register_job):
    job = register_job("job-scheduled-001")
    status = talkifai_status.batch_job_vendor_status(batch_job=job)
    assert status.detail.status == "scheduled" and status.can_start_now and not status.problem
    talkifai.inject_fault("batch_job_detail", Fault.SERVER_ERROR)
    status = talkifai_status.batch_job_vendor_status(batch_job=job)
    assert status.detail is None and not status.can_start_now
    assert status.problem == talkifai_client.TalkifaiServerError.advice
    talkifai.control("add_job", {"id": "job-extra", "status": "pending"})
    extra = register_job("job-extra")
    talkifai.reset()  # TalkifAI forgets the job after it was registered here
    assert (
        "no batch job with this id"
        in talkifai_status.batch_job_vendor_status(batch_job=extra).problem
    )
    job.connection.is_active = False
    assert "inactive" in talkifai_status.batch_job_vendor_status(batch_job=job).problem
