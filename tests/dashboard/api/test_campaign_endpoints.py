"""The automation API's campaign endpoints: run an event generator, launch an Altcraft trigger."""

from __future__ import annotations

import pytest

from campaigns.altcraft_launches.models import AltcraftLaunch, LaunchState
from campaigns.event_generators.models import TriggerGroup
from dashboard.audit import Actor
from dashboard.runs.models import Run
from dashboard.runs.services import run_send
from dashboard.runs.states import RunState
from tests.dashboard.api.conftest import ARSENAL, GOOD, MATCH_START, make_generator
from tests.dashboard.api.test_endpoints import forget_idempotency_keys, problem

pytestmark = pytest.mark.django_db


# -- event generators -------------------------------------------------------------------------


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


# -- Altcraft launches ------------------------------------------------------------------------


def test_a_marketer_launches_an_altcraft_trigger_for_recipients(make_token, altcraft_trigger):
    _, client = make_token("marketer")
    response = client.post(
        "altcraft/launches",
        {
            "trigger": 8,
            "recipients": ["a@example.com", {"email": "example1@example.com"}, "A@example.com"],
            "content": {"page": "cart"},
        },
        HTTP_IDEMPOTENCY_KEY="cart-1",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == LaunchState.SENDING
    assert body["preview"]["rows"] == 3 and body["preview"]["valid"] == 2
    assert body["preview"]["duplicates_removed"] == 1 and body["preview"]["requests_needed"] == 1
    assert body["progress"]["chunks_sent"] == 1 and body["progress"]["chunks_failed"] == 0
    launch = AltcraftLaunch.objects.get()
    assert launch.parameters["content"] == {"page": "cart"}
    status = client.get(body["status_url"].removeprefix("/api/v1/t/acme/"))
    assert status.status_code == 200 and status.json()["id"] == launch.pk

    # A worker sends the one chunk to the Altcraft sandbox; the status shows the outcome.
    run_send(run_id=launch.chunks.get().run_id)
    progress = client.get(body["status_url"].removeprefix("/api/v1/t/acme/")).json()["progress"]
    assert progress["chunks_succeeded"] == 1 and progress["percent"] == 100
    assert progress["profiles_reached"] == 1  # the sandbox knows example1 only

    replay = client.post(
        "altcraft/launches",
        {
            "trigger": 8,
            "recipients": ["a@example.com", {"email": "example1@example.com"}, "A@example.com"],
            "content": {"page": "cart"},
        },
        HTTP_IDEMPOTENCY_KEY="cart-1",
    )
    assert replay.status_code == 200 and replay["Idempotency-Replayed"] == "true"
    assert replay.json()["id"] == launch.pk and AltcraftLaunch.objects.count() == 1
    changed = client.post(
        "altcraft/launches",
        {"trigger": 8, "recipients": ["c@example.com"]},
        HTTP_IDEMPOTENCY_KEY="cart-1",
    )
    problem(changed, 422, "idempotency_key_reused")


def test_a_launch_retried_after_its_key_expired_answers_with_it_and_keeps_its_files(
    make_token, altcraft_trigger, settings
):
    from campaigns.altcraft_launches import storage

    _, client = make_token("marketer")
    body = {"trigger": 8, "recipients": ["a@example.com"], "content": {"page": "cart"}}
    first = client.post("altcraft/launches", body, HTTP_IDEMPOTENCY_KEY="cart-2")
    assert first.status_code == 201, first.content
    launch = AltcraftLaunch.objects.get()
    forget_idempotency_keys(settings)

    retry = client.post("altcraft/launches", body, HTTP_IDEMPOTENCY_KEY="cart-2")
    assert retry.status_code == 200 and retry["Idempotency-Replayed"] == "true"
    assert retry.json()["id"] == launch.pk
    assert AltcraftLaunch.objects.count() == 1 and launch.chunks.count() == 1
    # Not prepared or confirmed again: its stored list and chunks are where they were.
    assert storage.absolute(launch.upload_path).exists()
    assert storage.absolute(launch.chunks_path).exists()


def test_a_dry_run_only_previews_and_approval_leaves_it_waiting(make_token, altcraft_trigger, team):
    from campaigns.altcraft_launches import services

    _, client = make_token("marketer")
    dry = client.post(
        "altcraft/launches",
        {"trigger": "Abandoned cart", "recipients": ["a@example.com"], "dry_run": True},
    )
    assert dry.status_code == 201 and dry.json()["state"] == LaunchState.PREVIEWED
    assert Run.objects.count() == 0

    services.altcraft_settings_update(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        approval_required=True,
        retention_hours=24,
    )
    waiting = client.post("altcraft/launches", {"trigger": 8, "recipients": ["b@example.com"]})
    assert waiting.status_code == 201 and waiting.json()["state"] == LaunchState.AWAITING_APPROVAL
    assert Run.objects.count() == 0


def test_invalid_recipients_are_a_422_with_their_rows(make_token, altcraft_trigger):
    _, client = make_token("marketer")
    response = client.post(
        "altcraft/launches", {"trigger": 8, "recipients": ["a@example.com", "nope", "also bad"]}
    )
    body = problem(response, 422, "invalid_recipients")
    assert body["field"] == "recipients.1"
    assert [(error["field"], error["row"]) for error in body["errors"]] == [
        ("recipients.1", 3),
        ("recipients.2", 4),
    ]
    assert AltcraftLaunch.objects.count() == 0

    skipped = client.post(
        "altcraft/launches",
        {"trigger": 8, "recipients": ["a@example.com", "nope"], "skip_invalid": True},
    )
    assert skipped.status_code == 201, skipped.content
    assert skipped.json()["preview"]["invalid_rows"] == [
        {"recipient": 1, "row": 3, "reason": "not an email address: 'nope'"}
    ]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"trigger": 8, "recipients": []}, 422, "invalid_request", "recipients"),
        ({"trigger": 8, "recipients": [{"phone": "1"}]}, 422, "invalid_recipient", "recipients.0"),
        ({"trigger": 8, "recipients": ["a@b.co\nc@d.co"]}, 422, "invalid_recipient", None),
        ({"trigger": 8, "recipients": ["a@b.co", " "]}, 422, "invalid_recipient", "recipients.1"),
        ({"trigger": 8, "recipients": ["a@b.co"], "colour": 1}, 422, "invalid_request", "colour"),
        ({"trigger": 8, "recipients": ["a@b.co"], "matching": "fax"}, 422, "invalid_request", None),
        ({"trigger": 8, "recipients": ["a@b.co"], "resource_id": 3}, 422, "invalid_request", None),
        ({"trigger": 8, "recipients": ["a@b.co"], "content": [1]}, 422, "invalid_request", None),
        ({"trigger": 99, "recipients": ["a@b.co"]}, 404, "not_found", "trigger"),
        ({"trigger": "Nope", "recipients": ["a@b.co"]}, 404, "not_found", "trigger"),
    ],
)
def test_bad_launch_bodies_are_refused_and_leave_nothing(
    make_token, altcraft_trigger, body, status, code, field
):
    _, client = make_token("marketer")
    refused = problem(client.post("altcraft/launches", body), status, code)
    if field:
        assert refused["field"] == field
    assert AltcraftLaunch.objects.count() == 0


def test_a_body_over_the_limit_is_a_413(make_token, altcraft_trigger, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    _, client = make_token("marketer")
    recipients = [f"person{index}@example.com" for index in range(100)]
    response = client.post("altcraft/launches", {"trigger": 8, "recipients": recipients})
    problem(response, 413, "body_too_large")
    assert AltcraftLaunch.objects.count() == 0


def test_an_auditor_cannot_launch_and_other_tenants_launches_are_404(
    make_token, altcraft_trigger, other_team
):
    _, auditor = make_token("auditor")
    forbidden = auditor.post("altcraft/launches", {"trigger": 8, "recipients": ["a@b.co"]})
    problem(forbidden, 403, "forbidden")
    _, marketer = make_token("marketer")
    launch_id = marketer.post(
        "altcraft/launches", {"trigger": 8, "recipients": ["a@example.com"], "dry_run": True}
    ).json()["id"]
    assert auditor.get(f"altcraft/launches/{launch_id}").status_code == 200
    _, theirs = make_token("marketer", team_=other_team)
    problem(theirs.get(f"altcraft/launches/{launch_id}"), 404, "not_found")
    problem(
        theirs.post("altcraft/launches", {"trigger": 8, "recipients": ["a@b.co"]}), 404, "not_found"
    )


@pytest.mark.parametrize("reference", ["%00", "x" * 300, "%F0%9F%98%80"])
def test_odd_generator_references_are_404_not_errors(make_token, generator, reference):
    _, client = make_token("marketer")
    response = client.post(
        f"event-generators/{reference}/run", {"topic_key": ARSENAL, "context": GOOD}
    )
    assert response.status_code in (400, 404), response.content
    assert response["Content-Type"] == "application/problem+json"


def test_a_nul_in_an_acting_path_is_audited_without_an_error(make_token):
    _, client = make_token("operator")
    response = client.post("runs/%00/approve", {"parameters_hash": "x"})
    assert response.status_code in (400, 404, 422), response.content


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


def test_every_call_is_audited_with_the_tokens_name(make_token, generator, altcraft_trigger):
    from dashboard.models import AuditEvent

    token, client = make_token("marketer", name="nightly-campaigns")
    client.post(f"event-generators/{MATCH_START}/run", {"topic_key": ARSENAL, "context": {}})
    client.post("altcraft/launches", {"trigger": 8, "recipients": ["a@example.com"]})
    calls = AuditEvent.objects.filter(action="api.called").order_by("pk")
    assert [(call.summary["endpoint"], call.summary["status"]) for call in calls] == [
        ("event_generator_run", 422),
        ("altcraft_launch_create", 201),
    ]
    assert all(call.summary["client"] == "nightly-campaigns" for call in calls)
    uploaded = AuditEvent.objects.get(action="altcraft.launch_uploaded")
    assert f"via API token “{token.name}”" in uploaded.actor_label


def test_rows_the_list_reader_refuses_are_a_422_and_leave_no_file(
    make_token, altcraft_trigger, settings
):
    _, client = make_token("marketer")
    response = client.post(
        "altcraft/launches", {"trigger": 8, "recipients": ["a@example.com", "x,y@example.com"]}
    )
    body = problem(response, 422, "invalid_recipients")
    assert body["field"] == "recipients.1" and body["errors"][0]["row"] == 3
    assert AltcraftLaunch.objects.count() == 0
    upload_dir = settings.ALTCRAFT_UPLOAD_DIR
    assert not upload_dir.exists() or list(upload_dir.iterdir()) == []


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
