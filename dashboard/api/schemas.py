"""Request and response bodies of the automation API (pydantic, through django-ninja).

Request bodies forbid unknown fields: a misspelt field is an error, never silently ignored.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import BeforeValidator, ConfigDict, Field

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
    next_allowed_at: str | None = Field(
        None, description="With `outside_send_window`: when the window next opens (UTC)."
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


class OutcomeOut(Schema):
    """What a run, launch or trigger group came to, in the words the pages show."""

    word: str = Field(
        description='The state as the pages say it: "Succeeded", "Failed", "Sent", '
        '"Published", "Partly failed", "Sending", ...'
    )
    tone: str = Field(description='"good", "warn", "bad", or "" while nothing is decided.')
    detail: str = Field(
        description='The vendor\'s numbers or reason, e.g. "sent; 0 of 5,000 matched a profile".'
    )


class RunOut(Schema):
    id: int
    title: str = Field(
        description="What people call the run, as it was when it was requested: "
        '"Match Start Notifications → Arsenal", "Abandoned cart · chunk 1 of 3 (5,000 rows)", '
        '"Daily batch · 2026-12-06". Renaming a generator or connection later does not change it.'
    )
    operation: Operation
    operation_label: str
    description: str = Field(
        description="The run's parameters in one line, with their ids "
        '("Event generator <id> → topic <key>").'
    )
    state: RunState
    state_label: str
    terminal: bool
    needs_person: bool
    connection: str = Field(
        description="The connection's name as it was when the run was requested."
    )
    connection_id: int
    parameters: dict[str, Any]
    parameters_hash: str
    requested_by: str
    requested_at: datetime | None
    approval_required: bool
    approval_expires_at: datetime | None
    approvals_needed: int = Field(
        description="How many distinct operators must approve it (0: none), per the policies."
    )
    approval_reasons: list[str] = Field(
        description="Why it needs approval: one line per approval policy that applied."
    )
    approval_facts: dict[str, Any] = Field(
        description="What the policies judged: recipients, topics, audience_estimate, "
        "file_sha256 (those known)."
    )
    utc_date: date | None
    vendor_reference: str
    vendor_status: str
    progress: int | None
    failure_code: str
    failure_message: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    outcome: OutcomeOut


class RunDetailOut(RunOut):
    approvals: list[ApprovalOut]
    timeline: list[TimelineEntry]


class RunPage(Schema):
    items: list[RunOut]
    next_cursor: int | None = Field(
        description="Pass as `before` to read the next (older) page; null on the last page."
    )
