"""Every way a daily trigger or a job start can fail, in plain words with what to do next (the
one place failure codes are mapped to sentences): `run_explanation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext, gettext_lazy

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
        gettext_lazy("TriggerDesk stopped the run before sending it."),
        gettext_lazy(
            "Nothing was sent. The reason is below; request again once it no longer applies."
        ),
    ),
    "approval_expired": (
        gettext_lazy("The request expired before anyone approved it."),
        gettext_lazy("Nothing was sent. Request it again and have it approved in time."),
    ),
    "rejected_by_approver": (
        gettext_lazy("An operator rejected the request."),
        gettext_lazy(
            "Nothing was sent. Their comment says why; request again if it is still needed."
        ),
    ),
    "cancelled": (gettext_lazy("The request was withdrawn."), gettext_lazy("Nothing was sent.")),
    "worker_lost": (
        gettext_lazy("The worker stopped while sending; the vendor may have received the request."),
        gettext_lazy("Do not send it again blindly: check with the vendor first."),
    ),
    "internal_error": (
        gettext_lazy("An unexpected error happened while sending; the vendor may have acted."),
        gettext_lazy("Do not send it again blindly: check with the vendor first."),
    ),
    "credentials_unreadable": (
        gettext_lazy("The connection's API key cannot be decrypted."),
        gettext_lazy("Nothing was sent. An admin sets the API key again on the connection page."),
    ),
    "invalid_parameters": (
        gettext_lazy("TriggerDesk refused the parameters before sending."),
        gettext_lazy("Nothing was sent. Request again with valid values."),
    ),
    "unencodable_request": (
        gettext_lazy("The request could not be encoded, so it never left TriggerDesk."),
        gettext_lazy("Nothing was sent. Check the connection's settings."),
    ),
    "poll_deadline": (
        gettext_lazy("The vendor accepted the run but never reported a final status."),
        gettext_lazy("Check the outcome in the vendor's own UI."),
    ),
}


def explain_failure(operation: str, code: str, detail: str = "") -> Explanation:
    """The plain explanation of a failure code of a run of `operation` (the vendor's own words
    come from its operation's `failure_explanations`, the engine's from ENGINE_FAILURES)."""
    table = operation_for(operation).failure_explanations
    # Read in the active language now: an Explanation holds plain text (pages, API, tests).
    headline, advice = (
        str(text) for text in table.get(code) or ENGINE_FAILURES.get(code) or ("", "")
    )
    if not headline:
        headline = gettext("The call did not succeed (%(code)s).") % {
            "code": code or gettext("no reason given")
        }
        advice = gettext("The details below say what the vendor answered.")
    return Explanation(headline=headline, advice=advice, detail=detail)


def run_explanation(run: Run) -> Explanation | None:
    """What a person should know about a run that did not (yet) go as planned; None when it did."""
    detail = run.failure_message
    if run.state in (RunState.FAILED, RunState.CANCELLED):
        return explain_failure(run.operation, run.failure_code, detail)
    if run.state == RunState.QUEUED and run.failure_code:
        base = explain_failure(run.operation, run.failure_code, detail)
        if run.next_attempt_at:
            headline = gettext("%(headline)s TriggerDesk tries again at %(when)s.") % {
                "headline": base.headline,
                "when": _utc(run.next_attempt_at),
            }
        else:
            headline = gettext("%(headline)s TriggerDesk tries again.") % {
                "headline": base.headline
            }
        return Explanation(
            headline=headline,
            advice=base.advice,
            detail=detail,
            tone="warn",
        )
    if run.state == RunState.OUTCOME_UNKNOWN:
        base = explain_failure(run.operation, run.failure_code, detail)
        if run.needs_person:
            next_step = gettext(
                "A person must decide: check in the vendor's UI, then record that it went "
                "through, or send it again."
            )
        elif run.reconcile_after:
            # One message: what happened (the headline) and what TriggerDesk does, when. The
            # advice meant for a person ("re-send after the window") would contradict it.
            return Explanation(
                headline=gettext("Outcome unknown. %(headline)s") % {"headline": base.headline},
                advice=gettext("At %(when)s: %(plan)s")
                % {
                    "when": _utc(run.reconcile_after),
                    "plan": operation_for(run.operation).reconcile_plan,
                },
                tone="warn",
            )
        else:
            next_step = gettext("TriggerDesk is checking with the vendor.")
        return Explanation(
            headline=gettext("Outcome unknown. %(headline)s") % {"headline": base.headline},
            advice=f"{next_step} {base.advice}",
            detail=detail,
            tone="warn",
        )
    return None
