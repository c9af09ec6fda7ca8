"""The pause page, the connection page's pause, the banner on every page and a held run's
reason on its page."""

from __future__ import annotations

import pytest

from dashboard.audit.trail import Actor
from dashboard.pauses.models import SendingPause
from dashboard.pauses.services import sending_pause
from dashboard.runs.states import RunState
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


def test_an_operator_pauses_the_tenant_and_every_page_shows_the_banner(team):
    client = team.client_for("operator")
    response = client.post("/t/acme/pause/new/", {"connection": "", "reason": "Wrong audience"})
    assert response.status_code == 302
    pause = SendingPause.objects.get()
    assert (pause.connection, pause.paused_by_label) == (None, "oscar")

    for role, path in [("marketer", "/t/acme/"), ("auditor", "/t/acme/runs/"), ("admin", "/t/acme/connections/")]:  # fmt: skip
        page = team.client_for(role).get(path).content.decode()
        assert 'id="pause-banner"' in page, (role, path)
        assert "Sending is paused for Acme Sports</strong> by oscar" in page
        assert "Wrong audience" in page


def test_no_banner_while_nothing_is_paused(team):
    page = team.client_for("marketer").get("/t/acme/").content.decode()
    assert 'id="pause-banner"' not in page


def test_the_pause_form_refuses_an_empty_reason_and_a_second_pause(team):
    client = team.client_for("admin")
    empty = client.post("/t/acme/pause/new/", {"connection": "", "reason": "  "})
    assert empty.status_code == 422
    assert "Say why sending is paused." in empty.content.decode()
    missing = client.post("/t/acme/pause/new/", {"connection": "999999", "reason": "x"})
    assert missing.status_code == 422
    assert "Acme Sports has no connection" in missing.content.decode()
    assert not SendingPause.objects.exists()

    client.post("/t/acme/pause/new/", {"connection": "", "reason": "First"})
    again = client.post("/t/acme/pause/new/", {"connection": "", "reason": "Second"})
    assert again.status_code == 422
    assert "Sending is already paused for Acme Sports" in again.content.decode()
    assert list(SendingPause.objects.values_list("reason", flat=True)) == ["First"]


def test_a_marketer_may_not_pause_or_resume(team):
    client = team.client_for("marketer")
    assert client.post("/t/acme/pause/new/", {"reason": "x"}).status_code == 403
    assert client.post("/t/acme/pause/resume/", {}).status_code == 403
    page = client.get("/t/acme/pause/").content.decode()
    assert "Pause sending</button>" not in page


def test_resume_lists_the_held_runs_and_may_cancel_them(team, daily_connection):
    run = RunFactory(
        tenant=team.tenant,
        connection=daily_connection,
        operation="optimove_trigger_daily",
        state=RunState.QUEUED,
        approval_required=False,
    )
    sending_pause(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        connection=daily_connection,
        reason="Check the files",
    )
    client = team.client_for("operator")
    page = client.get("/t/acme/pause/").content.decode()
    assert "Paused: Optimove batch (Acme Sports)" in page
    assert f"#{run.pk} " in page and "Held runs (1)" in page

    detail = client.get(f"/t/acme/runs/{run.pk}/").content.decode()
    assert 'id="run-held"' in detail
    assert "Held: sending paused for Optimove batch (Acme Sports) by oscar at " in detail
    assert "Check the files" in detail

    response = client.post(
        "/t/acme/pause/resume/",
        {"connection": str(daily_connection.pk), "cancel_held": "on"},
        follow=True,
    )
    assert (
        "Sending resumed for Optimove batch (Acme Sports): 0 held runs sent on, 1 cancelled."
        in (response.content.decode())
    )
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED


def test_resuming_what_is_not_paused_says_so(team):
    response = team.client_for("operator").post("/t/acme/pause/resume/", {}, follow=True)
    assert "Sending is not paused for Acme Sports; there is nothing to resume." in (
        response.content.decode()
    )


def test_the_connection_page_pauses_that_connection(team, daily_connection):
    client = team.client_for("operator")
    page = client.get(f"/t/acme/connections/{daily_connection.pk}/").content.decode()
    assert 'id="connection-pause"' in page and "data-confirm=" in page
    client.post(
        "/t/acme/pause/new/", {"connection": str(daily_connection.pk), "reason": "Key leaked"}
    )
    assert SendingPause.objects.get().connection == daily_connection
    page = client.get(f"/t/acme/connections/{daily_connection.pk}/").content.decode()
    assert "Paused by oscar since" in page and "Key leaked" in page
