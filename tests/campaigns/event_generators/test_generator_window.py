"""An event generator's own send window, on top of its connection's: set by operators and
admins (audited, bad input changes nothing), a trigger outside it refused with the next time
both allow (across New York's spring-forward), its queued runs held by the dispatcher until it
opens and released when it is lifted (against the sandbox)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from campaigns.event_generators import send_window, services
from campaigns.event_generators.models import TriggerGroup
from campaigns.event_generators.send_window import (
    check_generator_window,
    generator_window_set,
)
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.runs import dispatch
from dashboard.runs import services as run_services
from dashboard.runs.models import Operation, Run
from dashboard.runs.states import RunState
from dashboard.send_windows.services import OutsideSendWindow, WindowInput, send_window_set
from tests.campaigns.conftest import ARSENAL, GOOD_CONTEXT, MATCH_START

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

NEW_YORK_OFFICE = WindowInput("Mon-Fri", "09:00", "17:00", "America/New_York")


def oscar(team):
    return Actor(user=team.operator.user)


def test_a_generator_window_is_set_audited_and_bad_input_changes_nothing(team, generator):
    found = generator_window_set(
        actor=oscar(team), generator=generator, window=NEW_YORK_OFFICE, reason="US desk hours"
    )
    assert found.describe() == "Mon\u2013Fri 09:00\u201317:00 America/New_York"
    generator.refresh_from_db()
    assert generator.send_window == {
        "weekdays": [0, 1, 2, 3, 4],
        "start": "09:00",
        "end": "17:00",
        "time_zone": "America/New_York",
    }
    event = AuditEvent.objects.get(action="generator.send_window_changed")
    assert event.actor_label == "oscar" and event.summary["reason"] == "US desk hours"
    assert event.summary["from"]["window"] is None

    with pytest.raises(ValidationError) as raised:
        generator_window_set(
            actor=oscar(team),
            generator=generator,
            window=WindowInput("Mon", "10:00", "10:00"),
            reason="Oops",
        )
    assert "The window is empty" in raised.value.message_dict["end"][0]
    with pytest.raises(PermissionDenied):
        generator_window_set(
            actor=Actor(user=team.marketer.user), generator=generator, window=None, reason="x"
        )
    generator.refresh_from_db()
    assert generator.send_window["time_zone"] == "America/New_York"
    assert AuditEvent.objects.filter(action="generator.send_window_changed").count() == 1


def test_a_trigger_outside_the_generator_window_gets_the_next_time_both_allow(team, generator):
    generator_window_set(
        actor=oscar(team), generator=generator, window=NEW_YORK_OFFICE, reason="US desk"
    )
    # The connection is blacked out on the Monday after New York springs forward (2026-03-08).
    send_window_set(
        actor=oscar(team),
        connection=generator.connection,
        window=None,
        blackouts="2026-03-09 Migration",
        reason="Migration",
    )
    saturday = datetime(2026, 3, 7, 12, tzinfo=UTC)
    with pytest.raises(OutsideSendWindow) as raised:
        check_generator_window(generator=generator, at=saturday)
    # Tuesday 09:00 EDT (UTC-4) is 13:00 UTC; before the switch it would have been 14:00.
    assert raised.value.next_allowed_at == datetime(2026, 3, 10, 13, tzinfo=UTC)
    assert raised.value.messages == [
        "Outside the send window of event generator Match Start Notifications "
        "(Mon\u2013Fri 09:00\u201317:00 America/New_York): next allowed Tue 2026-03-10 09:00 "
        "America/New_York (13:00 UTC)."
    ]
    check_generator_window(generator=generator, at=datetime(2026, 3, 10, 13, tzinfo=UTC))


def closed_now_window() -> tuple[WindowInput, datetime]:
    """A window open only on the weekday three days from now (UTC), and when it opens."""
    opens = utc_now().date() + timedelta(days=3)
    return (
        WindowInput([opens.weekday()], "00:00", "23:59", "UTC"),
        datetime.combine(opens, time.min, tzinfo=UTC),
    )


def submit(team, generator, number):
    return run_services.run_submit(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=generator.connection,
        operation=Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
        parameters={
            "event_generator_id": MATCH_START,
            "topic_key": ARSENAL,
            "context": {**GOOD_CONTEXT, "match_id": f"m{number}"},
        },
        idempotency_key=f"gen-{number}",
        approval_required=False,
        check_duplicates=False,
    )


def test_the_dispatcher_holds_the_generators_runs_and_lifting_the_window_sends_them(
    team, generator, sandboxes
):
    runs = [submit(team, generator, number) for number in range(2)]
    window, opens = closed_now_window()
    generator_window_set(actor=oscar(team), generator=generator, window=window, reason="Hold")
    with pytest.raises(OutsideSendWindow):
        services.campaign_trigger(
            actor=Actor(user=team.marketer.user),
            generator=generator,
            topic_keys=[ARSENAL],
            context=GOOD_CONTEXT,
            idempotency_key="refused-1",
        )
    assert not TriggerGroup.objects.exists()

    dispatch.dispatch_sends(
        connection_id=generator.connection_id,
        operation=Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
        run_id=runs[0].pk,
    )
    assert sandboxes["optimove_campaigns"].received_on("run") == []
    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.QUEUED and run.next_attempt_at == opens

    generator_window_set(actor=oscar(team), generator=generator, window=None, reason="Lifted")
    event = AuditEvent.objects.filter(action="generator.send_window_changed").order_by("-id")[0]
    assert event.summary["released"] == 2
    dispatch.dispatch_sends(
        connection_id=generator.connection_id, operation=Operation.OPTIMOVE_RUN_EVENT_GENERATOR
    )
    sent = sandboxes["optimove_campaigns"].received_on("run")
    assert sorted(json.loads(r.body)["context"]["match_id"] for r in sent) == ["m0", "m1"]
    assert set(Run.objects.values_list("state", flat=True)) == {RunState.ACCEPTED}


def test_the_generator_page_shows_and_changes_its_window(team, generator):
    page = reverse("event_generator_detail", args=["acme", generator.pk])
    post = reverse("event_generator_send_window", args=["acme", generator.pk])
    data = {
        "weekdays": ["0", "1", "2", "3", "4"],
        "start": "09:00",
        "end": "17:00",
        "time_zone": "America/New_York",
        "reason": "US desk",
    }
    operator = team.client_for("operator")
    response = operator.post(post, {**data, "start": "17:00"})
    assert response.status_code == 422
    assert "The window is empty: it starts and ends at 17:00." in response.content.decode()
    generator.refresh_from_db()
    assert generator.send_window is None

    assert operator.post(post, data).status_code == 302
    html = team.client_for("auditor").get(page).content.decode()
    assert "Mon\u2013Fri 09:00\u201317:00 America/New_York" in html
    assert "Change its send window" not in html
    assert team.client_for("marketer").post(post, data).status_code == 403


def test_the_api_shows_and_sets_a_generators_window(team, generator, make_token, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 6000
    _, operator = make_token("operator", name="ops-bot")
    path = f"event-generators/{MATCH_START}/send-window"

    shown = operator.get(path).json()
    assert (shown["window"], shown["text"], shown["allowed_now"]) == (None, "Any time", True)

    bad = operator.post(
        path, {"window": {"weekdays": [], "start": "09:00", "end": "17:00"}, "reason": "x"}
    )
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (
        422,
        "invalid",
        "weekdays",
    )
    generator.refresh_from_db()
    assert generator.send_window is None

    window = {
        "weekdays": "Mon-Fri",
        "start": "09:00",
        "end": "17:00",
        "time_zone": "America/New_York",
    }
    response = operator.post(path, {"window": window, "reason": "US desk"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["text"] == "Mon\u2013Fri 09:00\u201317:00 America/New_York"
    assert body["window"]["weekdays"] == [0, 1, 2, 3, 4]
    event = AuditEvent.objects.get(action="generator.send_window_changed")
    assert event.actor_label == "oscar via API token “ops-bot”"

    _, marketer = make_token("marketer")
    refused = marketer.post(path, {"window": None, "reason": "x"})
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")


def test_a_window_lifted_just_after_the_dispatcher_read_it_releases_the_runs_all_the_same(
    team, generator, sandboxes, monkeypatch
):
    runs = [submit(team, generator, number) for number in range(2)]
    window, _opens = closed_now_window()
    generator_window_set(actor=oscar(team), generator=generator, window=window, reason="Hold")
    operation = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
    dispatch.dispatch_sends(
        connection_id=generator.connection_id, operation=operation, run_id=runs[0].pk
    )
    read_rules, lifting = send_window.generator_rules, []

    def lifted_after_the_read(found_generator):
        found = read_rules(found_generator)
        if found.is_set and not lifting:
            lifting.append(True)
            generator_window_set(actor=oscar(team), generator=generator, window=None, reason="Go")
        return found

    monkeypatch.setattr(send_window, "generator_rules", lifted_after_the_read)
    dispatch.dispatch_sends(connection_id=generator.connection_id, operation=operation)

    sent = sandboxes["optimove_campaigns"].received_on("run")
    assert sorted(json.loads(r.body)["context"]["match_id"] for r in sent) == ["m0", "m1"]
