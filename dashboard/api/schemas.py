"""Request and response bodies of the automation API (pydantic, through django-ninja).

Request bodies forbid unknown fields: a misspelt field is an error, never silently ignored.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from dashboard.runs.models import Operation
from dashboard.runs.states import RunState

DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def date_text_only(value: Any) -> Any:
    """Only a `YYYY-MM-DD` text is a date here: pydantic alone reads `0` (or "0", or
    "2026-01-05T00:00") as a date too, so a pipeline's wrong value would become 1970-01-01."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and DATE_TEXT.fullmatch(value):
        return value
    raise ValueError("Expected a date as text, YYYY-MM-DD.")


# A date of a request (body or query): see date_text_only.
IsoDate = Annotated[date, BeforeValidator(date_text_only)]


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
    utc_date: IsoDate = Field(description="The UTC day whose files have all landed, as YYYY-MM-DD.")
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


class TopicOut(Schema):
    key: str
    name: str


class EventGeneratorOut(Schema):
    id: int
    external_id: str
    name: str
    description: str
    connection: str
    topics: list[TopicOut]
    schema_version: int | None = Field(description="The current schema version's number.")
    context_schema: dict[str, Any] | None = Field(
        description="The JSON Schema a run's `context` must satisfy (the current version)."
    )


class EventGeneratorRunIn(Strict):
    """Send exactly one of `topic_keys` (a list) and `topic_key` (one topic): both, or
    neither, is a 422 `invalid_request`."""

    topic_keys: list[str] | None = Field(
        None,
        max_length=5000,
        description="Topics to trigger, each by its key (a UUID) or registered name. "
        "Exactly one of topic_keys and topic_key.",
    )
    topic_key: str | None = Field(
        None,
        max_length=200,
        description="One topic (key or name). Exactly one of topic_keys and topic_key.",
    )
    context: dict[str, Any] = Field(description="Checked against the generator's schema.")
    send_anyway: StrictBool = Field(
        False, description="Send even if an identical trigger was sent recently (409 otherwise)."
    )


class CampaignRunOut(RunOut):
    topic_key: str
    topic_name: str
    status_url: str


class TriggerGroupOut(Schema):
    trigger_group_id: int
    generator: str
    schema_version: int
    context: dict[str, Any]
    runs: list[CampaignRunOut]


class AltcraftLaunchIn(Strict):
    trigger: StrictInt | str = Field(
        description="The registered trigger campaign: its Altcraft trigger id or its name."
    )
    matching: str | None = Field(
        None,
        description="email, email_profile, phone, profile_id or custom; the trigger's default "
        "when omitted.",
    )
    field_name: str | None = Field(None, max_length=120)
    resource_id: StrictInt | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Only for profile imports; a bulk launch must leave it out.",
    )
    recipients: list[str | StrictInt | dict[str, str | StrictInt]] = Field(
        min_length=1,
        description="Values of the matching key, or objects {<column>: value} (column: email, "
        "phone, profile_id, or the custom field's name).",
    )
    content: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    skip_triggers: StrictBool | None = None
    skip_invalid: StrictBool = Field(
        False, description="Leave invalid recipients out (listed in the preview) instead of a 422."
    )
    dry_run: StrictBool = Field(False, description="Only preview: nothing is confirmed or sent.")


class InvalidRecipient(Schema):
    recipient: int = Field(description="Index in `recipients` (from 0).")
    row: int = Field(description="Row of the list as the launch page shows it (header is 1).")
    reason: str


class LaunchPreviewOut(Schema):
    rows: int
    valid: int
    invalid: int
    invalid_rows: list[InvalidRecipient]
    duplicates_removed: int
    requests_needed: int


class LaunchProgressOut(Schema):
    chunks: int
    chunks_sent: int
    chunks_succeeded: int
    chunks_failed: int
    chunks_unknown: int
    chunks_open: int
    percent: int
    profiles_reached: int


class AltcraftLaunchOut(Schema):
    id: int
    trigger: str
    trigger_id: int
    state: str
    state_label: str
    problem: str
    status_url: str
    preview: LaunchPreviewOut
    progress: LaunchProgressOut
    created_at: datetime
