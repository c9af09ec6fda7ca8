"""Which approval policies apply to a request, and what they ask: a pure function of the
policies and the request's facts (no database, no clock), so it is tested exhaustively."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ApprovalFacts:
    """What a request would do, as its operation counts it (None: it cannot tell, and a
    condition on it does not hold). `file_sha256`: the file it sends, for the approver."""

    recipients: int | None = None
    topics: int | None = None
    audience_estimate: int | None = None
    file_sha256: str = ""

    def as_dict(self) -> dict[str, int | str]:
        """The known facts, as stored on the run and shown to the approver."""
        found = {
            "recipients": self.recipients,
            "topics": self.topics,
            "audience_estimate": self.audience_estimate,
            "file_sha256": self.file_sha256,
        }
        return {key: value for key, value in found.items() if value not in (None, "")}


class Policy(Protocol):
    """What evaluation reads of a policy (models.ApprovalPolicy, saved or not)."""

    name: str
    operation: str
    recipients_above: int | None
    topics_above: int | None
    audience_above: int | None
    outside_office_hours: bool
    office_days: str
    office_start: time
    office_end: time
    office_zone: str
    match_all: bool
    approvals_needed: int
    valid_minutes: int


@dataclass(frozen=True)
class Verdict:
    """The policies that apply to a request: approvals needed (the most any asks, 0: none),
    why (one line per policy, naming it) and how long the request may wait (the shortest)."""

    approvals_needed: int = 0
    reasons: tuple[str, ...] = field(default_factory=tuple)
    valid_minutes: int | None = None

    @property
    def required(self) -> bool:
        return self.approvals_needed > 0


def within_office_hours(policy: Policy, moment: datetime) -> bool:
    """Whether `moment` (aware) falls in the policy's weekly window, in its time zone."""
    local = moment.astimezone(ZoneInfo(policy.office_zone))
    if str(local.isoweekday()) not in policy.office_days:
        return False
    return policy.office_start <= local.time().replace(tzinfo=None) < policy.office_end


def _count(number: int) -> str:
    return f"{number:,}"


def conditions_met(policy: Policy, facts: ApprovalFacts, moment: datetime) -> list[str]:
    """The policy's conditions that hold for this request, in words; [] when the policy does
    not apply (one condition fails under `match_all`, or none holds)."""
    met: list[str] = []
    checked = 0
    for threshold, value, noun in (
        (policy.recipients_above, facts.recipients, "recipients"),
        (policy.topics_above, facts.topics, "topics"),
        (policy.audience_above, facts.audience_estimate, "an audience estimate of"),
    ):
        if threshold is None:
            continue
        checked += 1
        if value is not None and value > threshold:
            if noun.startswith("an "):
                met.append(f"{noun} {_count(value)}, above {_count(threshold)}")
            else:
                met.append(f"{_count(value)} {noun}, above {_count(threshold)}")
    if policy.outside_office_hours:
        checked += 1
        if not within_office_hours(policy, moment):
            local = moment.astimezone(ZoneInfo(policy.office_zone))
            met.append(
                f"outside office hours ({local:%a %H:%M} {policy.office_zone}; "
                f"office hours {_office_hours(policy)})"
            )
    if checked == 0:
        return ["every request"]
    if policy.match_all and len(met) < checked:
        return []
    return met


def _office_hours(policy: Policy) -> str:
    label = getattr(policy, "office_hours_label", None)
    if isinstance(label, str):
        return label
    return f"days {policy.office_days} {policy.office_start:%H:%M}-{policy.office_end:%H:%M}"


def evaluate(
    policies: Iterable[Policy],
    *,
    operation: str,
    operation_label: str,
    facts: ApprovalFacts,
    moment: datetime,
) -> Verdict:
    """The verdict of `policies` on a request of `operation` with `facts` at `moment`."""
    needed = 0
    reasons: list[str] = []
    valid: int | None = None
    for policy in policies:
        if policy.operation and policy.operation != operation:
            continue
        met = conditions_met(policy, facts, moment)
        if not met:
            continue
        needed = max(needed, policy.approvals_needed)
        valid = policy.valid_minutes if valid is None else min(valid, policy.valid_minutes)
        words = "every request" if met == ["every request"] else " and ".join(met)
        what = operation_label if policy.operation else f"any request ({operation_label})"
        reasons.append(
            f"{what}: {words}; needs {policy.approvals_needed} "
            f"approval{'s' if policy.approvals_needed != 1 else ''} (policy '{policy.name}')"
        )
    return Verdict(approvals_needed=needed, reasons=tuple(reasons), valid_minutes=valid)
