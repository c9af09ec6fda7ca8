"""Optimove TriggerDaily's failures in plain words (a run operation's `failure_explanations`)."""

from batchjobs.vendors.optimove_daily import client as optimove

# Optimove TriggerDaily: every documented 400 message and 401/403/429/500/504, headline written
# here, advice from the client's error classes (so the client stays the one source of advice).
FAILURES: dict[str, tuple[str, str]] = {
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
