"""What an event-generator run's failure means, in plain words, and what to do next."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext, gettext_lazy

from dashboard.runs.models import Run
from dashboard.runs.states import RunState


@dataclass(frozen=True)
class Explanation:
    headline: str
    advice: str
    tone: str = "bad"


FAILURES: dict[str, tuple[str, str]] = {
    "bad_request": (
        gettext_lazy("Optimove refused the request body (400)."),
        gettext_lazy(
            "The context or topic key was not what Optimove expects. Check the schema against what "
            "marketing configured, then relaunch. Nothing was sent."
        ),
    ),
    "unauthorized": (
        gettext_lazy("Optimove did not accept the API key (401)."),
        gettext_lazy(
            "Nothing was sent. An admin checks the x-api-key in Optimove Personalize Admin → Developer "
            "Tools → API Keys and sets it again on the connection page, then relaunches this run."
        ),
    ),
    "forbidden": (
        gettext_lazy("The API key may not act for this brand (403)."),
        gettext_lazy(
            "Nothing was sent. Check that the connection's x-brand-key belongs to the same brand as "
            "its API key; if it does, ask Optimove Customer Success for the permission."
        ),
    ),
    "event_generator_not_found": (
        gettext_lazy("Optimove does not know this Event Generator for this brand (404)."),
        gettext_lazy(
            "Nothing was sent. The id is wrong or belongs to another brand: get the right Event "
            "Generator ID from the marketing team (Smart Campaigns), register it, then relaunch."
        ),
    ),
    "not_api_triggered": (
        gettext_lazy("This Event Generator is not an API-triggered campaign (422)."),
        gettext_lazy(
            "Nothing was sent. In Optimove Smart Campaigns it must be of type “API Triggered "
            "(Preference Center)”: ask marketing to change it, or use the generator that is."
        ),
    ),
    "rate_limited": (
        gettext_lazy(
            "Optimove's rate limit for this brand was hit (429: over 500 requests per second)."
        ),
        gettext_lazy(
            "TriggerDesk waits for the time Optimove names (Retry-After) and tries again by itself. "
            "If it keeps happening, other systems are using the same brand's limit."
        ),
    ),
    "server_error": (
        gettext_lazy("Optimove had an internal error (5xx)."),
        gettext_lazy(
            "TriggerDesk retries with backoff. If it persists for more than 5 minutes, contact "
            "Optimove support."
        ),
    ),
    "execution_not_found": (
        gettext_lazy("Optimove no longer knows this execution (404 on its status)."),
        gettext_lazy("The campaign was accepted; check its outcome in Mission Control."),
    ),
    "audience_resolution_failed": (
        gettext_lazy("Optimove could not resolve the topic's audience."),
        gettext_lazy(
            "Check the topic in the Preference Centre (does it exist, for this brand?), then "
            "relaunch for this topic."
        ),
    ),
    "connection_failed": (
        gettext_lazy("Optimove could not be reached; nothing was sent."),
        gettext_lazy(
            "TriggerDesk retries by itself. Check the connection's base URL if it keeps failing."
        ),
    ),
    "no_answer": (
        gettext_lazy(
            "The trigger was sent but no answer came back: the campaign may have been queued."
        ),
        gettext_lazy(
            "Check Mission Control before relaunching: Optimove does not deduplicate, so a second "
            "trigger sends a second campaign."
        ),
    ),
    "unreadable_acceptance": (
        gettext_lazy("Optimove accepted the trigger but its answer could not be read."),
        gettext_lazy("The campaign was probably queued. Check Mission Control before relaunching."),
    ),
    "poll_deadline": (
        gettext_lazy("Optimove accepted the trigger but never reported a final status."),
        gettext_lazy("Check the outcome in Mission Control."),
    ),
    "approval_expired": (
        gettext_lazy("The request expired before an operator approved it."),
        gettext_lazy("Nothing was sent. Relaunch it and have it approved in time."),
    ),
    "rejected_by_approver": (
        gettext_lazy("An operator rejected the request."),
        gettext_lazy("Nothing was sent. Their comment says why."),
    ),
}


def explain_run(run: Run) -> Explanation | None:
    """The plain explanation of a run that did not (yet) go as planned; None when it did."""
    code = run.failure_code
    if run.state == RunState.FAILED or (run.state == RunState.QUEUED and code):
        headline, advice = FAILURES.get(
            code,
            (
                gettext("Optimove reported a failure (%(code)s).")
                % {"code": code or gettext("no code given")},
                gettext("The vendor's message is below; fix the cause and relaunch."),
            ),
        )
        if run.state == RunState.QUEUED:
            return Explanation(str(headline), str(advice), tone="warn")
        return Explanation(str(headline), str(advice))
    if run.state == RunState.OUTCOME_UNKNOWN:
        headline, advice = FAILURES.get(code, FAILURES["no_answer"])
        return Explanation(str(headline), str(advice), tone="warn")
    if run.state == RunState.CANCELLED:
        return Explanation(
            gettext("Cancelled before it was sent."), gettext("Nothing was sent."), tone="warn"
        )
    return None
