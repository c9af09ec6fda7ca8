"""Every way a daily trigger or a job start can fail, in plain words with what to do next (the
one place failure codes are mapped to sentences): `run_explanation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from batchjobs.vendors.optimove_daily import client as optimove
from batchjobs.vendors.talkifai import client as talkifai
from dashboard.runs.models import Operation, Run
from dashboard.runs.operations import operation_for
from dashboard.runs.states import RunState
from dashboard.vendors.http import FailureClass


def _utc(moment: datetime) -> str:
    return f"{moment:%H:%M:%S} UTC"


@dataclass(frozen=True)
class Explanation:
    """What happened, in plain words, and what to do next. `detail` keeps the vendor's words."""

    headline: str
    advice: str
    detail: str = ""
    tone: str = "bad"  # the badge class: bad, warn


# Optimove TriggerDaily: every documented 400 message and 401/403/429/500/504, headline written
# here, advice from the client's error classes (so the client stays the one source of advice).
DAILY_FAILURES: dict[str, tuple[str, str]] = {
    optimove.TaskNotFound.code: (
        "Optimove has no daily batch task for this tenant (“task not found”).",
        optimove.TaskNotFound.advice,
    ),
    optimove.AlreadyRunning.code: (
        "Optimove says the batch process is already running (“already running”).",
        optimove.AlreadyRunning.advice,
    ),
    optimove.NotInCorrectState.code: (
        "Optimove's batch task is not in a state it can start from (“not in correct state”).",
        optimove.NotInCorrectState.advice,
    ),
    optimove.AlreadyTriggeredToday.code: (
        "Optimove says today's batch was already triggered (“already triggered today”).",
        optimove.AlreadyTriggeredToday.advice,
    ),
    optimove.ConfiguredIncorrectly.code: (
        "Optimove's batch task is misconfigured (“configured not correctly”).",
        optimove.ConfiguredIncorrectly.advice,
    ),
    optimove.ValidationFailed.code: (
        "The batch task did not confirm that it started (“validation failed”).",
        optimove.ValidationFailed.advice,
    ),
    optimove.BadRequest.code: (
        "Optimove refused the request with a message its documentation does not list.",
        optimove.BadRequest.advice,
    ),
    optimove.Unauthorized.code: (
        "Optimove refused the API key (401 Unauthorized).",
        optimove.Unauthorized.advice,
    ),
    optimove.TokenExpired.code: (
        "The API key has expired (403 Forbidden).",
        optimove.TokenExpired.advice
        + " An admin replaces it on the connection page; then request again.",
    ),
    optimove.RateLimited.code: (
        "Optimove's limit of one request per 10 minutes was hit (429 Too Many Requests).",
        optimove.RateLimited.advice,
    ),
    optimove.OptimoveServerError.code: (
        "Optimove had an internal error (500).",
        optimove.OptimoveServerError.advice,
    ),
    optimove.GatewayTimeout.code: (
        "Optimove's gateway gave up after 30 seconds (504 Gateway Timeout).",
        optimove.GatewayTimeout.advice,
    ),
    optimove.UnexpectedStatus.code: (
        "Optimove answered with a status its documentation does not list.",
        optimove.UnexpectedStatus.advice,
    ),
    optimove.UnexpectedAnswer.code: (
        "Optimove answered in an undocumented way, so it is unknown whether the batch started.",
        optimove.UnexpectedAnswer.advice,
    ),
    optimove.TriggerNotSent.code: (
        "The trigger never reached Optimove (connection failed).",
        optimove.TriggerNotSent.advice,
    ),
    optimove.NoAnswer.code: (
        "The trigger was sent but no answer came back.",
        optimove.NoAnswer.advice,
    ),
}


START_FAILURES: dict[str, tuple[str, str]] = {
    talkifai.JobNotFound.error_code: (
        "TalkifAI has no batch job with this id for this API key (“job not found”).",
        talkifai.JobNotFound.advice,
    ),
    talkifai.InvalidStatus.error_code: (
        "The job has ended (completed, failed or cancelled), so it cannot be started (“invalid status”).",
        talkifai.InvalidStatus.advice,
    ),
    talkifai.AlreadyRunning.error_code: (
        "The job is already calling its contacts (“already running”).",
        talkifai.AlreadyRunning.advice,
    ),
    talkifai.Unauthorized.error_code: (
        "TalkifAI refused the API key (401).",
        talkifai.Unauthorized.advice,
    ),
    talkifai.Forbidden.error_code: (
        "The API key may not start batch jobs (403).",
        talkifai.Forbidden.advice,
    ),
    talkifai.EndpointNotFound.error_code: (
        "TalkifAI has no such endpoint (404).",
        talkifai.EndpointNotFound.advice,
    ),
    talkifai.UnexpectedRedirect.error_code: (
        "TalkifAI redirected the call instead of answering it.",
        talkifai.UnexpectedRedirect.advice,
    ),
    talkifai.RequestRejected.error_code: (
        "TalkifAI refused the call.",
        talkifai.RequestRejected.advice,
    ),
    talkifai.RateLimited.error_code: (
        "TalkifAI is rate limiting this API key (429).",
        talkifai.RateLimited.advice,
    ),
    talkifai.TalkifaiServerError.error_code: (
        "TalkifAI had an internal error (5xx).",
        talkifai.TalkifaiServerError.advice,
    ),
    talkifai.GatewayTimeout.error_code: (
        "A gateway stopped waiting for TalkifAI (504); the job may have started.",
        talkifai.GatewayTimeout.advice,
    ),
    talkifai.StartNotConfirmed.error_code: (
        "TalkifAI did not confirm the start; the job may have started.",
        talkifai.StartNotConfirmed.advice,
    ),
    talkifai.UnreadableStartAnswer.error_code: (
        "TalkifAI's answer to the start was unreadable; the job may have started.",
        talkifai.UnreadableStartAnswer.advice,
    ),
    "connection_failed": (
        "The call never reached TalkifAI (connection failed).",
        talkifai.ADVICE_BY_FAILURE_CLASS[FailureClass.NOT_SENT],
    ),
    "no_answer": (
        "The call was sent but no answer came back.",
        talkifai.ADVICE_BY_FAILURE_CLASS[FailureClass.OUTCOME_UNKNOWN],
    ),
}


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
    """The plain explanation of a failure code of a run of `operation`."""
    table = DAILY_FAILURES if operation == Operation.OPTIMOVE_TRIGGER_DAILY else START_FAILURES
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
