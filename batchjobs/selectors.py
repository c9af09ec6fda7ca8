"""Reads of the batchjobs app's TalkifAI batch jobs, scoped to one tenant. The daily trigger's
reads are in guardrails.py, failures in plain words in explanations.py, a job's status at
TalkifAI in vendors/talkifai/status.py.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from batchjobs.models import BatchJob
from batchjobs.vendors.talkifai import client as talkifai
from dashboard.models import (
    Membership,
    Tenant,
    VendorConnection,
    VendorKind,
)
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import IN_FLIGHT_STATES, RunState
from dashboard.tenancy.selectors import with_api_key

START_JOB = Operation.TALKIFAI_START_BATCH_JOB


def batch_job_list(*, tenant: Tenant) -> QuerySet[BatchJob]:
    return BatchJob.objects.filter(tenant=tenant).select_related(
        "tenant", "connection", "registered_by"
    )


def batch_job_get(*, tenant: Tenant, batch_job_pk: int) -> BatchJob:
    """One of the tenant's registered jobs, with its connection's API key (one query for what
    asking TalkifAI needs); 404 for another tenant's."""
    try:
        return with_api_key(batch_job_list(tenant=tenant), connection="connection").get(
            pk=batch_job_pk
        )
    except BatchJob.DoesNotExist:
        raise Http404("No such batch job.") from None


def talkifai_connection_list(*, tenant: Tenant) -> QuerySet[VendorConnection]:
    return VendorConnection.objects.filter(
        tenant=tenant, kind=VendorKind.TALKIFAI, is_active=True
    ).order_by("name")


def batch_job_start_runs(*, tenant: Tenant, batch_job: BatchJob | None = None) -> QuerySet[Run]:
    """The tenant's TalkifAI start runs, newest first (one job's when given)."""
    runs = Run.objects.filter(tenant=tenant, operation=START_JOB).select_related("connection")
    if batch_job is not None:
        runs = runs.filter(
            connection=batch_job.connection, parameters__batch_job_id=batch_job.batch_job_id
        )
    return runs.order_by("-created_at", "-id")


def last_start_run(*, batch_job: BatchJob) -> Run | None:
    """The job's latest start that says something about it ("Last start here"): a start that
    TalkifAI refused because the job was already running (a stale second tab) is left out."""
    return (
        batch_job_start_runs(tenant=batch_job.tenant, batch_job=batch_job)
        .exclude(state=RunState.FAILED, failure_code=talkifai.AlreadyRunning.error_code)
        .first()
    )


def open_start_run(*, batch_job: BatchJob) -> Run | None:
    """A start of this job that is still under way (queued, sending or unknown)."""
    return (
        batch_job_start_runs(tenant=batch_job.tenant, batch_job=batch_job)
        .filter(state__in=IN_FLIGHT_STATES)
        .first()
    )


def user_membership(*, user: AbstractBaseUser, tenant: Tenant) -> Membership | None:
    """The user's membership of the tenant, for services called outside a view (commands)."""
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, tenant=tenant).select_related("tenant").first()
