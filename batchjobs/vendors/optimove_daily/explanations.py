"""Optimove TriggerDaily's failures in plain words (a run operation's `failure_explanations`)."""

from django.utils.translation import gettext_lazy

from batchjobs.vendors.optimove_daily import client as optimove

# Optimove TriggerDaily: every documented 400 message and 401/403/429/500/504, headline written
# here, advice from the client's error classes (so the client stays the one source of advice).
FAILURES: dict[str, tuple[str, str]] = {
    optimove.TaskNotFound.code: (
        gettext_lazy("Optimove has no daily batch task for this tenant (“task not found”)."),
        optimove.TaskNotFound.advice,
    ),
    optimove.AlreadyRunning.code: (
        gettext_lazy("Optimove says the batch process is already running (“already running”)."),
        optimove.AlreadyRunning.advice,
    ),
    optimove.NotInCorrectState.code: (
        gettext_lazy(
            "Optimove's batch task is not in a state it can start from (“not in correct state”)."
        ),
        optimove.NotInCorrectState.advice,
    ),
    optimove.AlreadyTriggeredToday.code: (
        gettext_lazy(
            "Optimove says today's batch was already triggered (“already triggered today”)."
        ),
        optimove.AlreadyTriggeredToday.advice,
    ),
    optimove.ConfiguredIncorrectly.code: (
        gettext_lazy("Optimove's batch task is misconfigured (“configured not correctly”)."),
        optimove.ConfiguredIncorrectly.advice,
    ),
    optimove.ValidationFailed.code: (
        gettext_lazy("The batch task did not confirm that it started (“validation failed”)."),
        optimove.ValidationFailed.advice,
    ),
    optimove.BadRequest.code: (
        gettext_lazy(
            "Optimove refused the request with a message its documentation does not list."
        ),
        optimove.BadRequest.advice,
    ),
    optimove.Unauthorized.code: (
        gettext_lazy("Optimove refused the API key (401 Unauthorized)."),
        optimove.Unauthorized.advice,
    ),
    optimove.TokenExpired.code: (
        gettext_lazy("The API key has expired (403 Forbidden)."),
        optimove.TokenExpired.advice
        + gettext_lazy(" An admin replaces it on the connection page; then request again."),
    ),
    optimove.RateLimited.code: (
        gettext_lazy(
            "Optimove's limit of one request per 10 minutes was hit (429 Too Many Requests)."
        ),
        optimove.RateLimited.advice,
    ),
    optimove.OptimoveServerError.code: (
        gettext_lazy("Optimove had an internal error (500)."),
        optimove.OptimoveServerError.advice,
    ),
    optimove.GatewayTimeout.code: (
        gettext_lazy("Optimove's gateway gave up after 30 seconds (504 Gateway Timeout)."),
        optimove.GatewayTimeout.advice,
    ),
    optimove.UnexpectedStatus.code: (
        gettext_lazy("Optimove answered with a status its documentation does not list."),
        optimove.UnexpectedStatus.advice,
    ),
    optimove.UnexpectedAnswer.code: (
        gettext_lazy(
            "Optimove answered in an undocumented way, so it is unknown whether the batch started."
        ),
        optimove.UnexpectedAnswer.advice,
    ),
    optimove.TriggerNotSent.code: (
        gettext_lazy("The trigger never reached Optimove (connection failed)."),
        optimove.TriggerNotSent.advice,
    ),
    optimove.NoAnswer.code: (
        gettext_lazy("The trigger was sent but no answer came back."),
        optimove.NoAnswer.advice,
    ),
}
