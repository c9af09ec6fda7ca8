"""Reads of the run engine, always scoped to one tenant."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404

from dashboard.clock import utc_now
from dashboard.models import AuditEvent, Tenant, VendorConnection
from dashboard.runs.models import Approval, Run, RunAttempt, RunState
from dashboard.runs.operations import operation_for


class RunFilters(TypedDict, total=False):
    """What the run list can be narrowed by; a missing or empty value means "any"."""

    state: str
    operation: str
    connection: VendorConnection | None
    requester: AbstractBaseUser | None


def run_list(*, tenant: Tenant, filters: RunFilters | None = None) -> QuerySet[Run]:
    """The tenant's runs, newest first, with what the list shows fetched in a fixed number of
    queries (connection, requester and every approval decision)."""
    filters = filters or {}
    runs = (
        Run.objects.filter(tenant=tenant)
        .select_related("connection", "requested_by")
        .prefetch_related(
            Prefetch(
                "approvals",
                queryset=Approval.objects.select_related("decided_by").order_by("decided_at"),
            )
        )
    )
    if filters.get("state"):
        runs = runs.filter(state=filters["state"])
    if filters.get("operation"):
        runs = runs.filter(operation=filters["operation"])
    if filters.get("connection") is not None:
        # Filtering on the pair keeps another tenant's connection from matching anything.
        runs = runs.filter(connection=filters["connection"], connection__tenant=tenant)
    if filters.get("requester") is not None:
        runs = runs.filter(requested_by=filters["requester"])
    return runs.order_by("-created_at", "-id")


def run_get(*, tenant: Tenant, run_id: int) -> Run:
    """One run of the tenant with its approvals and attempts; 404 for any other tenant's run."""
    try:
        return (
            Run.objects.select_related("tenant", "connection", "requested_by", "duplicate_of")
            .prefetch_related(
                Prefetch(
                    "approvals",
                    queryset=Approval.objects.select_related("decided_by").order_by(
                        "decided_at", "id"
                    ),
                ),
                Prefetch("attempts", queryset=RunAttempt.objects.order_by("number")),
            )
            .get(tenant=tenant, pk=run_id)
        )
    except Run.DoesNotExist:
        raise Http404("No such run.") from None


def run_timeline(*, run: Run) -> QuerySet[AuditEvent]:
    """The run's audit events in the order they happened: who moved it where, when and why."""
    return AuditEvent.objects.filter(
        tenant_id=run.tenant_id, object_type="run", object_id=str(run.pk)
    ).order_by("created_at", "id")


def run_description(run: Run) -> str:
    """The operation's one-line description of the run's parameters.

    A history page must still render when an operation was renamed or its parameters' shape
    changed since the run was recorded, so any failure falls back to the operation's label.
    """
    try:
        return operation_for(run.operation).describe(run.parameters)
    except Exception:
        return run.get_operation_display() or run.operation


def run_requester_choices(*, tenant: Tenant) -> QuerySet[Any]:
    """Users the run list can be filtered by: members, and anyone who requested one of the
    tenant's runs (a requester who has since left is still in the history)."""
    return (
        get_user_model()
        .objects.filter(
            Q(memberships__tenant=tenant)
            | Q(pk__in=Run.objects.filter(tenant=tenant).values("requested_by"))
        )
        .distinct()
        .order_by("username")
    )


def run_connection_choices(*, tenant: Tenant) -> QuerySet[VendorConnection]:
    """The tenant's connections, for the run list's filter."""
    return VendorConnection.objects.filter(tenant=tenant).order_by("name")


def runs_needing_attention(*, tenant: Tenant) -> QuerySet[Run]:
    """Runs a person must act on: requests awaiting approval, and unknown outcomes that
    automatic reconciliation could not settle."""
    return (
        Run.objects.filter(tenant=tenant)
        .filter(
            Q(state=RunState.AWAITING_APPROVAL)
            | Q(state=RunState.OUTCOME_UNKNOWN, needs_person=True)
        )
        .select_related("connection", "requested_by")
        .order_by("created_at")
    )


# -- what a run is waiting for ----------------------------------------------------------------


@dataclass(frozen=True)
class RunWait:
    """What an open run is waiting for, until when, and what happens then (the run page's
    countdown: rendered on the server with the deadline, refreshed by the live fragment)."""

    what: str
    until: datetime
    then: str
    now: datetime

    @property
    def seconds_left(self) -> float:
        return (self.until - self.now).total_seconds()

    @property
    def countdown(self) -> str:
        left = self.seconds_left
        if left >= 0:
            return f"in {format_duration(left)}"
        return f"{format_duration(-left)} overdue"


def format_duration(seconds: float) -> str:
    """'2 h 05 min', '7 min 12 s', '40 s': how long, for people."""
    seconds = max(0, math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def run_wait(run: Run, *, now: datetime | None = None) -> RunWait | None:
    """What `run` is waiting for now, or None when nothing (a terminal run, or a person)."""
    from dashboard.runs.heartbeat import HEARTBEAT_TTL_SECONDS
    from dashboard.runs.services import STALE_QUEUED_SECONDS

    now = now or utc_now()
    operation = operation_for(run.operation)
    if run.state == RunState.AWAITING_APPROVAL and run.approval_expires_at:
        return RunWait(
            "an operator's approval",
            run.approval_expires_at,
            "Then the request expires and nothing is sent.",
            now,
        )
    if run.state == RunState.QUEUED:
        if run.next_attempt_at and run.next_attempt_at > now:
            return RunWait(
                "the next send attempt", run.next_attempt_at, "Then a worker sends it.", now
            )
        return RunWait(
            "a worker to send it",
            run.updated_at + timedelta(seconds=STALE_QUEUED_SECONDS),
            "If none has by then, the sweeper queues it again (it has not been sent).",
            now,
        )
    if run.state == RunState.SENDING:
        return RunWait(
            "the vendor's answer",
            run.updated_at + timedelta(seconds=operation.max_send_seconds),
            "If no answer is recorded by then, or about "
            f"{format_duration(HEARTBEAT_TTL_SECONDS)} after its worker stops, the outcome becomes "
            "unknown: TriggerDesk never sends it blindly again.",
            now,
        )
    if run.state == RunState.ACCEPTED and run.next_poll_at:
        deadline = (
            f" TriggerDesk keeps asking until {run.poll_deadline:%Y-%m-%d %H:%M:%S} UTC."
            if run.poll_deadline
            else ""
        )
        return RunWait(
            "the vendor to finish",
            run.next_poll_at,
            "Then TriggerDesk reads its status." + deadline,
            now,
        )
    if run.state == RunState.OUTCOME_UNKNOWN and not run.needs_person and run.reconcile_after:
        return RunWait(
            "the automatic re-check",
            run.reconcile_after,
            operation.reconcile_plan,
            now,
        )
    return None
