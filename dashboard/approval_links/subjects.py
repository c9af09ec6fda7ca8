"""The kinds of approval request a link can decide, behind one small interface.

A subject loads its request (scoped to the link's tenant), describes it for the link's page
with the same facts the approvals pages show, and approves or rejects it through its own
services: the link adds no rule of its own beyond "this recipient, once, before it expires".
The core knows runs (run_subject.py); a feature app names its kinds in
`AppConfig.approval_link_subjects` (kind -> dotted path to a subject instance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.utils.module_loading import import_string

from dashboard import plugins
from dashboard.audit.trail import Actor
from dashboard.models import Membership

CORE_SUBJECTS = {"run": "dashboard.approval_links.run_subject.RUN_SUBJECT"}


@dataclass
class RequestDescription:
    """What the link's page shows of a request: exactly what would be sent and why it waits."""

    title: str
    requested_by: str
    description: str
    fingerprint: str  # the parameters hash (a run) or file SHA-256 (a launch) being approved
    fingerprint_label: str
    awaiting: bool  # still waiting for approvals
    state_words: str  # its state in words, for a link that can no longer decide
    expires_at: datetime | None
    page_path: str  # the request's own page
    approvals_given: int = 0
    approvals_needed: int = 1
    reasons: list[str] = field(default_factory=list)  # which policies asked, and why
    facts: list[tuple[str, Any]] = field(default_factory=list)  # recipients, file hash ...
    preview: str = ""  # the parameters or the first rows, as they will be sent


class ApprovalSubject(Protocol):
    """One kind of approval request."""

    kind: str

    def get(self, *, tenant_id: int, subject_id: int) -> Any | None:
        """The request, or None when the tenant has no such request."""

    def describe(self, request: Any) -> RequestDescription:
        """What the link's page shows of it."""

    def approve(
        self,
        *,
        actor: Actor,
        membership: Membership,
        request: Any,
        fingerprint_seen: str,
        comment: str,
    ) -> str:
        """Approve it through the kind's own service; the message for the approver."""

    def reject(self, *, actor: Actor, membership: Membership, request: Any, comment: str) -> str:
        """Reject it through the kind's own service; the message for the approver."""


def subject_for(kind: str) -> ApprovalSubject | None:
    """The subject of `kind` (imported on first use), or None for a kind nobody provides."""
    path = CORE_SUBJECTS.get(kind)
    if path is None:
        path = dict(entry for _label, entry in plugins.declared("approval_link_subjects")).get(kind)
    return import_string(path) if path else None
