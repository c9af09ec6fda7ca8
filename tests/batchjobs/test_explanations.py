"""Every way a daily trigger or a job start can fail, in plain words."""

from __future__ import annotations

import pytest

from batchjobs import explanations
from batchjobs.vendors.optimove_daily import client as optimove
from batchjobs.vendors.optimove_daily import explanations as daily_explanations
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.batchjobs.test_guardrails import DAILY, D, daily_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("code", sorted(daily_explanations.FAILURES))
def test_every_optimove_failure_has_a_plain_explanation(code):
    explanation = explanations.explain_failure(DAILY, code, "Optimove answered HTTP 400")
    assert explanation.headline and not explanation.headline.startswith("The call did not")
    assert explanation.advice
    assert explanation.detail == "Optimove answered HTTP 400"


def test_every_documented_optimove_answer_is_covered():
    documented = {error.code for error in optimove.REJECTION_BY_MESSAGE.values()} | {
        "unauthorized",
        "token_expired",
        "rate_limited",
        "server_error",
        "gateway_timeout",
    }
    assert documented <= set(daily_explanations.FAILURES)
    assert daily_explanations.FAILURES["validation_failed"][1] == optimove.ValidationFailed.advice


def test_unknown_codes_still_read_as_a_sentence():
    explanation = explanations.explain_failure(DAILY, "weird_thing")
    assert explanation.headline == "The call did not succeed (weird_thing)."


def test_explanations_by_state(daily, clock):
    clock.set(D.replace(hour=8))
    retrying = daily_run(
        daily,
        state=RunState.QUEUED,
        failure_code="rate_limited",
        next_attempt_at=D.replace(hour=8, minute=10),
    )
    explanation = explanations.run_explanation(retrying)
    assert explanation.tone == "warn"
    assert "TriggerDesk tries again at 08:10:00 UTC" in explanation.headline
    Run.objects.filter(pk=retrying.pk).update(state=RunState.FAILED)  # one in flight per tenant
    unknown = daily_run(
        daily,
        state=RunState.OUTCOME_UNKNOWN,
        failure_code="gateway_timeout",
        reconcile_after=D.replace(hour=8, minute=10, second=5),
    )
    explanation = explanations.run_explanation(unknown)
    assert explanation.headline.startswith("Outcome unknown. Optimove's gateway gave up")
    # One message: what happened, what TriggerDesk will do and when; no advice to re-send.
    assert explanation.advice.startswith("At 08:10:05 UTC")
    assert "TriggerDesk asks Optimove again" in explanation.advice
    assert "Try again" not in explanation.advice and not explanation.detail
    assert explanations.run_explanation(daily_run(daily, state=RunState.SUCCEEDED)) is None
