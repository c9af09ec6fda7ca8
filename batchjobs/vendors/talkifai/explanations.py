"""TalkifAI's job-start failures in plain words (a run operation's `failure_explanations`):
headline written here, advice from the client's error classes."""

from django.utils.translation import gettext_lazy

from batchjobs.vendors.talkifai import client as talkifai
from dashboard.vendors.http import FailureClass

FAILURES: dict[str, tuple[str, str]] = {
    talkifai.JobNotFound.error_code: (
        gettext_lazy("TalkifAI has no batch job with this id for this API key (“job not found”)."),
        talkifai.JobNotFound.advice,
    ),
    talkifai.InvalidStatus.error_code: (
        gettext_lazy(
            "The job has ended (completed, failed or cancelled), so it cannot be started (“invalid status”)."
        ),
        talkifai.InvalidStatus.advice,
    ),
    talkifai.AlreadyRunning.error_code: (
        gettext_lazy("The job is already calling its contacts (“already running”)."),
        talkifai.AlreadyRunning.advice,
    ),
    talkifai.Unauthorized.error_code: (
        gettext_lazy("TalkifAI refused the API key (401)."),
        talkifai.Unauthorized.advice,
    ),
    talkifai.Forbidden.error_code: (
        gettext_lazy("The API key may not start batch jobs (403)."),
        talkifai.Forbidden.advice,
    ),
    talkifai.EndpointNotFound.error_code: (
        gettext_lazy("TalkifAI has no such endpoint (404)."),
        talkifai.EndpointNotFound.advice,
    ),
    talkifai.UnexpectedRedirect.error_code: (
        gettext_lazy("TalkifAI redirected the call instead of answering it."),
        talkifai.UnexpectedRedirect.advice,
    ),
    talkifai.RequestRejected.error_code: (
        gettext_lazy("TalkifAI refused the call."),
        talkifai.RequestRejected.advice,
    ),
    talkifai.RateLimited.error_code: (
        gettext_lazy("TalkifAI is rate limiting this API key (429)."),
        talkifai.RateLimited.advice,
    ),
    talkifai.TalkifaiServerError.error_code: (
        gettext_lazy("TalkifAI had an internal error (5xx)."),
        talkifai.TalkifaiServerError.advice,
    ),
    talkifai.GatewayTimeout.error_code: (
        gettext_lazy("A gateway stopped waiting for TalkifAI (504); the job may have started."),
        talkifai.GatewayTimeout.advice,
    ),
    talkifai.StartNotConfirmed.error_code: (
        gettext_lazy("TalkifAI did not confirm the start; the job may have started."),
        talkifai.StartNotConfirmed.advice,
    ),
    talkifai.UnreadableStartAnswer.error_code: (
        gettext_lazy("TalkifAI's answer to the start was unreadable; the job may have started."),
        talkifai.UnreadableStartAnswer.advice,
    ),
    "connection_failed": (
        gettext_lazy("The call never reached TalkifAI (connection failed)."),
        talkifai.ADVICE_BY_FAILURE_CLASS[FailureClass.NOT_SENT],
    ),
    "no_answer": (
        gettext_lazy("The call was sent but no answer came back."),
        talkifai.ADVICE_BY_FAILURE_CLASS[FailureClass.OUTCOME_UNKNOWN],
    ),
}
