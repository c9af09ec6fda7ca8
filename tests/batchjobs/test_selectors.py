"""Reads of the registered TalkifAI batch jobs."""

from __future__ import annotations

import pytest

from batchjobs import selectors
from dashboard.models import Role
from tests.factories import (
    MembershipFactory,
)

pytestmark = pytest.mark.django_db


def test_batch_job_get_is_tenant_scoped(team, other_team, talkifai, register_job):
    from django.http import Http404

    job = register_job("job-pending-001")
    with pytest.raises(Http404):
        selectors.batch_job_get(tenant=other_team.tenant, batch_job_pk=job.pk)
    MembershipFactory(tenant=other_team.tenant, role=Role.OPERATOR)
    assert selectors.batch_job_get(tenant=team.tenant, batch_job_pk=job.pk) == job
