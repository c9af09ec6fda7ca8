"""Every way a daily trigger or a job start can fail, in plain words with what to do next (the
one place failure codes are mapped to sentences): `run_explanation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dashboard.runs.models import Run
from dashboard.runs.operations import operation_for
from dashboard.runs.states import RunState


def _utc(moment: datetime) -> str:
    return f"{moment:%H:%M:%S} UTC"


@dataclass(frozen=True)
class Explanation:
    """What happened, in plain words, and what to do next. `detail` keeps the vendor's words."""

    headline: str
    advice: str
    detail: str = ""
    tone: str = "bad"  # the badge class: bad, warn


# Codes the run engine itself writes, whatever the vendor.
ENGINE_FAILURES: dict[str, tuple[str, str]] = {
    "guardrail": (
        "TriggerDesk stopped the run before sending it.",
        "Nothing was sent. The reason is below; request again once it no longer applies.",
    ),
    "approval_expired": (
        "The request expired before anyone approved it.",
        "Nothing was sent. Request it again and have it approved in time.",
    ),
    "rejected_by_approver": (
        "An operator rejected the request.",
        "Nothing was sent. Their comment says why; request again if it is still needed.",
    ),
    "cancelled": ("The request was withdrawn.", "Nothing was sent."),
    "worker_lost": (
        "The worker stopped while sending; the vendor may have received the request.",
        "Do not send it again blindly: check with the vendor first.",
    ),
    "internal_error": (
        "An unexpected error happened while sending; the vendor may have acted.",
        "Do not send it again blindly: check with the vendor first.",
    ),
    "credentials_unreadable": (
        "The connection's API key cannot be decrypted.",
        "Nothing was sent. An admin sets the API key again on the connection page.",
    ),
    "invalid_parameters": (
        "TriggerDesk refused the parameters before sending.",
        "Nothing was sent. Request again with valid values.",
    ),
    "unencodable_request": (
        "The request could not be encoded, so it never left TriggerDesk.",
        "Nothing was sent. Check the connection's settings.",
    ),
    "poll_deadline": (
        "The vendor accepted the run but never reported a final status.",
        "Check the outcome in the vendor's own UI.",
    ),
}


def explain_failure(operation: str, code: str, detail: str = "") -> Explanation:
    """The plain explanation of a failure code of a run of `operation` (the vendor's own words
    come from its operation's `failure_explanations`, the engine's from ENGINE_FAILURES)."""
    table = operation_for(operation).failure_explanations
    headline, advice = table.get(code) or ENGINE_FAILURES.get(code) or ("", "")
    if not headline:
        headline = f"The call did not succeed ({code or 'no reason given'})."
        advice = "The details below say what the vendor answered."
    return Explanation(headline=headline, advice=advice, detail=detail)


def run_explanation(run: Run) -> Explanation | None:
    """What a person should know about a run that did not (yet) go as planned; None when it did."""
    detail = run.failure_message
    if run.state in (RunState.FAILED, RunState.CANCELLED):
        return explain_failure(run.operation, run.failure_code, detail)
    if run.state == RunState.QUEUED and run.failure_code:
        base = explain_failure(run.operation, run.failure_code, detail)
        when = f" at {_utc(run.next_attempt_at)}" if run.next_attempt_at else ""
        return Explanation(
            headline=f"{base.headline} TriggerDesk tries again{when}.",
            advice=base.advice,
            detail=detail,
            tone="warn",
        )
    if run.state == RunState.OUTCOME_UNKNOWN:
        base = explain_failure(run.operation, run.failure_code, detail)
        if run.needs_person:
            next_step = (
                "A person must decide: check in the vendor's UI, then record that it went "
                "through, or send it again."
            )
        elif run.reconcile_after:
            # One message: what happened (the headline) and what TriggerDesk does, when. The
            # advice meant for a person ("re-send after the window") would contradict it.
            return Explanation(
                headline=f"Outcome unknown. {base.headline}",
                advice=f"At {_utc(run.reconcile_after)}: "
                + operation_for(run.operation).reconcile_plan,
                tone="warn",
            )
        else:
            next_step = "TriggerDesk is checking with the vendor."
        return Explanation(
            headline=f"Outcome unknown. {base.headline}",
            advice=f"{next_step} {base.advice}",
            detail=detail,
            tone="warn",
        )
    return None
