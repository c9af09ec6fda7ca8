"""The automation API's event generator endpoints: list generators, run one."""

from __future__ import annotations

import pytest

from campaigns.event_generators.models import TriggerGroup
from dashboard.audit.trail import Actor
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.dashboard.api.conftest import (
    ARSENAL,
    GOOD,
    MATCH_START,
    _fresh_rate_limits,  # noqa: F401 - autouse: roomy API rate limits
    make_generator,
)
from tests.dashboard.api.test_endpoints import forget_idempotency_keys, problem


@pytest.fixture
def generator(team, sandbox_connection):
    # The API tests' generator (tests/dashboard/api/conftest.py), not tests/campaigns/conftest.py's.
    return make_generator(team, sandbox_connection)


pytestmark = pytest.mark.django_db


def test_event_generators_are_listed_with_topics_and_schema_version(make_token, generator):
    _, client = make_token("marketer")
    response = client.get("event-generators")
    assert response.status_code == 200
    [listed] = response.json()
    assert listed["external_id"] == MATCH_START and listed["schema_version"] == 1
    assert {topic["name"] for topic in listed["topics"]} == {"Arsenal", "Chelsea"}
    assert listed["context_schema"]["required"] == ["match_name"]


@pytest.mark.parametrize("reference", [MATCH_START, "Match start"])
def test_a_marketer_runs_a_generator_by_id_or_name_one_run_per_topic(
    make_token, generator, reference
):
    _, client = make_token("marketer")
    response = client.post(
        f"event-generators/{reference}/run",
        {"topic_keys": [ARSENAL, "Chelsea"], "context": GOOD},
        HTTP_IDEMPOTENCY_KEY="match-1",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["schema_version"] == 1 and body["context"] == GOOD
    assert [run["topic_name"] for run in body["runs"]] == ["Arsenal", "Chelsea"]
    for run in body["runs"]:
        assert run["state"] == RunState.QUEUED and run["status_url"].endswith(f"/runs/{run['id']}")
        assert run["parameters"]["topic_key"] == run["topic_key"]
    status = client.get(body["runs"][0]["status_url"].removeprefix("/api/v1/t/acme/"))
    assert status.status_code == 200

    replay = client.post(
        f"event-generators/{reference}/run",
        {"topic_keys": [ARSENAL, "Chelsea"], "context": GOOD},
        HTTP_IDEMPOTENCY_KEY="match-1",
    )
    assert replay.status_code == 200 and replay["Idempotency-Replayed"] == "true"
    assert replay.json()["trigger_group_id"] == body["trigger_group_id"]
    assert TriggerGroup.objects.count() == 1 and Run.objects.count() == 2

    other_body = client.post(
        f"event-generators/{reference}/run",
        {"topic_key": ARSENAL, "context": GOOD},
        HTTP_IDEMPOTENCY_KEY="match-1",
    )
    problem(other_body, 422, "idempotency_key_reused")


def test_a_generator_run_retried_after_its_key_expired_answers_with_its_group(
    make_token, generator, settings
):
    _, client = make_token("marketer")
    body = {"topic_keys": [ARSENAL, "Chelsea"], "context": GOOD}
    first = client.post(f"event-generators/{MATCH_START}/run", body, HTTP_IDEMPOTENCY_KEY="m-2")
    assert first.status_code == 201, first.content
    forget_idempotency_keys(settings)

    retry = client.post(f"event-generators/{MATCH_START}/run", body, HTTP_IDEMPOTENCY_KEY="m-2")
    assert retry.status_code == 200 and retry["Idempotency-Replayed"] == "true"
    assert retry.json()["trigger_group_id"] == first.json()["trigger_group_id"]
    assert TriggerGroup.objects.count() == 1 and Run.objects.count() == 2


def test_a_context_the_schema_refuses_names_each_field(make_token, generator):
    _, client = make_token("marketer")
    response = client.post(
        f"event-generators/{MATCH_START}/run",
        {"topic_key": ARSENAL, "context": {"match_name": "ab", "minute": 999, "venue": {}}},
    )
    body = problem(response, 422, "invalid_context")
    fields = {error["field"] for error in body["errors"]}
    assert {"context.match_name", "context.minute"} <= fields
    assert any(field.startswith("context.venue") for field in fields)
    assert Run.objects.count() == 0 and TriggerGroup.objects.count() == 0


def test_an_unknown_topic_is_a_422_naming_topic_keys(make_token, generator):
    _, client = make_token("marketer")
    response = client.post(
        f"event-generators/{MATCH_START}/run", {"topic_key": "Tottenham", "context": GOOD}
    )
    assert problem(response, 422, "unknown_topic")["field"] == "topic_keys"
    both = client.post(
        f"event-generators/{MATCH_START}/run",
        {"topic_key": ARSENAL, "topic_keys": [ARSENAL], "context": GOOD},
    )
    assert problem(both, 422, "invalid_request")["field"] == "topic_keys"
    typed = client.post(f"event-generators/{MATCH_START}/run", {"topic_key": ARSENAL})
    assert problem(typed, 422, "invalid_request")["field"] == "context"
    assert Run.objects.count() == 0


def test_a_probable_duplicate_is_a_409_unless_sent_anyway(make_token, generator):
    _, client = make_token("marketer")
    path = f"event-generators/{MATCH_START}/run"
    assert client.post(path, {"topic_key": ARSENAL, "context": GOOD}).status_code == 201
    problem(client.post(path, {"topic_key": ARSENAL, "context": GOOD}), 409, "probable_duplicate")
    assert Run.objects.count() == 1
    again = client.post(path, {"topic_key": ARSENAL, "context": GOOD, "send_anyway": True})
    assert again.status_code == 201 and Run.objects.count() == 2


def test_unknown_and_other_tenants_generators_are_404(
    make_token, generator, other_team, sandbox_connection
):
    make_generator(
        other_team,
        sandbox_connection,
        external_id="11111111-abcd-abcd-abcd-111111111111",
        name="Theirs",
    )
    _, client = make_token("marketer")
    body = {"topic_key": ARSENAL, "context": GOOD}
    problem(client.post("event-generators/Theirs/run", body), 404, "not_found")
    problem(
        client.post("event-generators/11111111-abcd-abcd-abcd-111111111111/run", body),
        404,
        "not_found",
    )
    problem(client.post("event-generators/nothing/run", body), 404, "not_found")
    assert [g["name"] for g in client.get("event-generators").json()] == ["Match start"]


def test_an_auditor_token_cannot_run_a_generator(make_token, generator):
    _, client = make_token("auditor")
    response = client.post(
        f"event-generators/{MATCH_START}/run", {"topic_key": ARSENAL, "context": GOOD}
    )
    problem(response, 403, "forbidden")
    assert client.get("event-generators").status_code == 200


@pytest.mark.parametrize("reference", ["%00", "x" * 300, "%F0%9F%98%80"])
def test_odd_generator_references_are_404_not_errors(make_token, generator, reference):
    _, client = make_token("marketer")
    response = client.post(
        f"event-generators/{reference}/run", {"topic_key": ARSENAL, "context": GOOD}
    )
    assert response.status_code in (400, 404), response.content
    assert response["Content-Type"] == "application/problem+json"


def test_campaign_runs_await_approval_where_the_tenant_requires_it(make_token, generator, team):
    from campaigns.event_generators.services import campaign_settings_update

    campaign_settings_update(
        actor=Actor(user=team.admin.user), tenant=team.tenant, approval_required=True
    )
    _, client = make_token("marketer")
    response = client.post(
        f"event-generators/{MATCH_START}/run", {"topic_key": "Arsenal", "context": GOOD}
    )
    assert response.status_code == 201
    [run] = response.json()["runs"]
    assert run["state"] == RunState.AWAITING_APPROVAL and run["approval_required"] is True


def test_a_service_refusing_the_tokens_user_is_a_403_problem_and_audited(
    make_token, generator, monkeypatch
):
    from django.core.exceptions import PermissionDenied

    from campaigns.event_generators import services as generator_services
    from dashboard.models import AuditEvent

    def refuse(**kwargs):
        raise PermissionDenied("Only the person who triggered it or an operator can do this.")

    monkeypatch.setattr(generator_services, "campaign_trigger", refuse)
    _, client = make_token("marketer")
    response = client.post(
        f"event-generators/{MATCH_START}/run",
        {"topic_keys": [ARSENAL], "context": GOOD},
        HTTP_IDEMPOTENCY_KEY="refused-1",
    )
    body = problem(response, 403, "forbidden")
    assert body["detail"] == "Only the person who triggered it or an operator can do this."
    call = AuditEvent.objects.filter(action="api.called").latest("pk")
    assert call.summary["status"] == 403


def test_a_group_and_its_runs_carry_the_pages_outcome_words(make_token, generator):
    _, client = make_token("marketer")
    body = client.post(
        "event-generators/Match start/run",
        {"topic_keys": [ARSENAL, "Chelsea"], "context": GOOD},
        HTTP_IDEMPOTENCY_KEY="outcome-1",
    ).json()
    assert body["outcome"] == {
        "word": "In progress",
        "tone": "",
        "detail": "0 of 2 topics finished",
    }
    assert body["runs"][0]["outcome"] == {"word": "Queued", "tone": "", "detail": ""}

    [first, second] = [run["id"] for run in body["runs"]]
    Run.objects.filter(pk=first).update(
        state=RunState.SUCCEEDED, vendor_status="published", audience_size=0
    )
    Run.objects.filter(pk=second).update(
        state=RunState.FAILED, failure_message="HTTP 422: not an API-triggered campaign"
    )
    replay = client.post(
        "event-generators/Match start/run",
        {"topic_keys": [ARSENAL, "Chelsea"], "context": GOOD},
        HTTP_IDEMPOTENCY_KEY="outcome-1",
    ).json()
    assert replay["outcome"] == {
        "word": "Partly failed",
        "tone": "warn",
        "detail": "1 of 2 topics failed; published to an audience of 0",
    }
    failed = client.get(f"runs/{second}").json()
    assert failed["outcome"] == {
        "word": "Failed",
        "tone": "bad",
        "detail": "HTTP 422: not an API-triggered campaign",
    }


def test_a_schedule_is_cancelled_before_it_fires_and_too_late_after(make_token, generator, team):
    from datetime import timedelta

    from campaigns.event_generators.models import ScheduledTrigger, ScheduleState
    from campaigns.event_generators.services import schedule_create
    from dashboard.clock import utc_now

    def planned():
        return schedule_create(
            actor=Actor(user=team.marketer.user),
            generator=generator,
            topic_keys=[ARSENAL],
            context=GOOD,
            fire_at=utc_now() + timedelta(hours=1),
        )

    waiting, fired = planned(), planned()
    ScheduledTrigger.objects.filter(pk=fired.pk).update(state=ScheduleState.FIRED)
    _, operator = make_token("operator")

    cancelled = operator.post(f"schedules/{waiting.pk}/cancel", {})
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert operator.post(f"schedules/{waiting.pk}/cancel", {}).json()["state"] == "cancelled"
    late = problem(operator.post(f"schedules/{fired.pk}/cancel", {}), 409, "too_late")
    assert late["errors"][0] == {"field": "state", "message": "fired"}
    fired.refresh_from_db()
    assert fired.state == ScheduleState.FIRED
