"""Request and response bodies of the automation API (pydantic, through django-ninja).

Request bodies forbid unknown fields: a misspelt field is an error, never silently ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from ninja import Schema
from pydantic import ConfigDict, Field, StrictBool, StrictInt

from dashboard.runs.models import Operation, RunState


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")


class Problem(Schema):
    """RFC 9457 problem details, with TriggerDesk's stable `code`."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


class FilesLandedIn(Strict):
    utc_date: date = Field(description="The UTC day whose files have all landed.")
    note: str = Field("", max_length=300)


class FilesLandedOut(Schema):
    utc_date: date
    source: str
    given_by: str
    given_at: datetime
    note: str


class DailyTriggerIn(Strict):
    files_uploaded_attested: StrictBool = Field(
        description="The pipeline attests that all of today's files have finished uploading "
        "(Optimove does not check it). Must be true."
    )
    wait_time_for_validation_seconds: StrictInt | None = Field(
        None,
        ge=0,
        le=30,
        description="Optimove's validation wait in seconds; null for the vendor's default.",
    )


class ApproveIn(Strict):
    parameters_hash: str = Field(
        max_length=64,
        description="The run's parameters_hash as read from GET runs/{id}: the approval is bound "
        "to exactly those parameters.",
    )
    comment: str = Field("", max_length=500)


class RejectIn(Strict):
    comment: str = Field("", max_length=500)


class ApprovalOut(Schema):
    decision: str
    decided_by: str
    decided_at: datetime
    comment: str


class TimelineEntry(Schema):
    at: datetime
    actor: str
    action: str
    summary: dict[str, Any]


class RunOut(Schema):
    id: int
    operation: Operation
    operation_label: str
    description: str
    state: RunState
    state_label: str
    terminal: bool
    needs_person: bool
    connection: str
    parameters: dict[str, Any]
    parameters_hash: str
    requested_by: str
    requested_at: datetime | None
    approval_required: bool
    approval_expires_at: datetime | None
    utc_date: date | None
    vendor_reference: str
    vendor_status: str
    progress: int | None
    failure_code: str
    failure_message: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RunDetailOut(RunOut):
    approvals: list[ApprovalOut]
    timeline: list[TimelineEntry]


class RunPage(Schema):
    items: list[RunOut]
    next_cursor: int | None = Field(
        description="Pass as `before` to read the next (older) page; null on the last page."
    )


class Blocker(Schema):
    code: str
    text: str


class DailyTriggerStateOut(Schema):
    utc_date: date
    can_request: bool
    blockers: list[Blocker]
    approval_required: bool
    files_landed_required: bool
    files_landed: bool
    window_ends_at: datetime | None
    open_run: RunOut | None
    triggered_today: RunOut | None
    latest_today: RunOut | None


class BatchJobOut(Schema):
    id: int
    batch_job_id: str
    name: str
    connection: str
