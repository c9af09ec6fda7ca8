"""The automation API's Altcraft launch endpoints: launch a trigger for recipients, see a launch."""

from __future__ import annotations

import pytest

from campaigns.altcraft_launches.models import AltcraftLaunch, LaunchState
from dashboard.audit.trail import Actor
from dashboard.runs.models import Run
from dashboard.runs.services import run_send
from tests.dashboard.api.conftest import (
    _fresh_rate_limits,  # noqa: F401 - autouse: roomy API rate limits
)
from tests.dashboard.api.test_endpoints import forget_idempotency_keys, problem

pytestmark = pytest.mark.django_db


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
    assert progress["rows_succeeded"] == 2 and progress["profiles_reported"] is True

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


def test_a_launch_that_reached_nobody_says_so_in_its_outcome(make_token, altcraft_trigger):
    _, client = make_token("marketer")
    body = client.post(
        "altcraft/launches",
        {"trigger": 8, "recipients": ["nobody@example.com", "nobody.else@example.com"]},
        HTTP_IDEMPOTENCY_KEY="nobody-1",
    ).json()
    assert body["outcome"] == {"word": "Sending", "tone": "", "detail": "0 of 1 request done"}

    run_send(run_id=AltcraftLaunch.objects.get().chunks.get().run_id)

    status = client.get(body["status_url"].removeprefix("/api/v1/t/acme/")).json()
    assert status["state"] == "sending" and status["progress"]["chunks_succeeded"] == 1
    assert status["outcome"] == {
        "word": "Sent",
        "tone": "warn",
        "detail": "sent; 0 of 2 matched a profile",
    }


def crm_rows() -> list[dict]:
    return [
        {"first_name": "Ann", "email": "ann@example.com", "page": "cart"},
        {"first_name": "Bob", "email": "", "page": "home"},
        {"first_name": "Cid", "email": "example1@example.com"},
    ]


def test_a_crm_export_sends_only_the_named_column(make_token, altcraft_trigger, sandboxes):
    _, client = make_token("marketer")

    refused = client.post(
        "altcraft/launches", {"trigger": 8, "column": "email", "recipients": crm_rows()}
    )
    body = problem(refused, 422, "empty_values")
    assert body["field"] == "recipients.1"
    assert body["errors"] == [{"field": "recipients.1", "row": 3, "message": "no email"}]
    assert "pass skip_empty: true" in body["detail"]
    assert AltcraftLaunch.objects.count() == 0

    response = client.post(
        "altcraft/launches",
        {"trigger": 8, "column": "email", "recipients": crm_rows(), "skip_empty": True},
    )
    assert response.status_code == 201, response.content
    preview = response.json()["preview"]
    assert (preview["column"], preview["ignored_columns"]) == ("email", ["first_name", "page"])
    assert (preview["valid"], preview["empty"], preview["empty_recipients"]) == (2, 1, [1])
    launch = AltcraftLaunch.objects.get()
    assert launch.state == LaunchState.SENDING
    run_send(run_id=launch.chunks.get().run_id)
    [received] = sandboxes["altcraft"].received_on("start_batch")
    assert '"data":[{"email":"ann@example.com"},{"email":"example1@example.com"}]' in (
        received.body.replace(" ", "")
    )
    assert "Ann" not in received.body and "cart" not in received.body


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (
            '{"trigger": 8, "column": "email", "recipients": '
            '[{"email": "a@example.com"}, {"first_name": "Bob"}]}',
            "column_missing",
            "recipients.1",
        ),
        (
            '{"trigger": 8, "column": "email", "recipients": '
            '[{"email": "a@example.com", "email": "b@example.com"}]}',
            "duplicate_column",
            "recipients.0",
        ),
        (
            '{"trigger": 8, "column": "email", "recipients": [{"email": "", "page": ""}]}',
            "invalid_recipient",
            "recipients.0",
        ),
        (
            '{"trigger": 8, "column": "email", "skip_empty": true, "recipients": '
            '[{"email": "", "page": "x"}]}',
            "empty_values",
            "recipients.0",
        ),
        (
            '{"trigger": 8, "column": "email", "recipients": [{"email": "a@b.co", "a,b": "x"}]}',
            "invalid_recipient",
            "recipients",
        ),
    ],
)
def test_a_crm_export_whose_column_is_missing_twice_or_empty_is_refused(
    make_token, altcraft_trigger, settings, raw, code, field
):
    _, client = make_token("marketer")

    body = problem(client.post("altcraft/launches", raw=raw), 422, code)

    assert body["field"] == field
    assert AltcraftLaunch.objects.count() == 0
    upload_dir = settings.ALTCRAFT_UPLOAD_DIR
    assert not upload_dir.exists() or list(upload_dir.iterdir()) == []


def test_cancelling_a_launch_withdraws_its_waiting_chunks_and_names_those_sent(
    make_token, altcraft_trigger, sandboxes
):
    _, marketer = make_token("marketer")
    _, operator = make_token("operator")
    body = {"trigger": 8, "recipients": ["a@example.com"], "content": {"page": "cart"}}
    sent = marketer.post("altcraft/launches", body, HTTP_IDEMPOTENCY_KEY="sent").json()
    waiting = marketer.post(
        "altcraft/launches", {**body, "recipients": ["b@example.com"]}, HTTP_IDEMPOTENCY_KEY="w"
    ).json()
    run_send(run_id=AltcraftLaunch.objects.get(pk=sent["id"]).chunks.get().run_id)

    cancelled = operator.post(f"altcraft/launches/{waiting['id']}/cancel", {})
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["chunks_cancelled"] == [1]
    assert cancelled.json()["chunks_too_late"] == []
    chunk_run = AltcraftLaunch.objects.get(pk=waiting["id"]).chunks.get().run
    assert chunk_run.state == "cancelled"
    # A worker that picks the cancelled chunk up sends nothing to Altcraft.
    before = len(sandboxes["altcraft"].received_on("start_batch"))
    run_send(run_id=chunk_run.pk)
    assert len(sandboxes["altcraft"].received_on("start_batch")) == before

    late = operator.post(f"altcraft/launches/{sent['id']}/cancel", {})
    assert late.status_code == 200
    assert late.json()["chunks_cancelled"] == []
    assert late.json()["chunks_too_late"] == [{"chunk": 1, "state": "succeeded"}]


def test_cancelling_an_unsent_launch_discards_it_and_a_closed_one_is_refused(
    make_token, altcraft_trigger
):
    _, marketer = make_token("marketer")
    dry = marketer.post(
        "altcraft/launches", {"trigger": 8, "recipients": ["a@example.com"], "dry_run": True}
    ).json()
    cancelled = marketer.post(f"altcraft/launches/{dry['id']}/cancel", {})
    assert cancelled.status_code == 200
    assert cancelled.json()["launch"]["state"] == LaunchState.DISCARDED
    assert Run.objects.count() == 0
    problem(marketer.post(f"altcraft/launches/{dry['id']}/cancel", {}), 409, "refused")
