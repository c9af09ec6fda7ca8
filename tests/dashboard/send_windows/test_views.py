"""The connection page's "Send window" section: shown in words to every member, changed by
operators and admins (bad input: the form again with the error, nothing changed)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.models import AuditEvent
from dashboard.send_windows.models import BlackoutDate, SendWindow

pytestmark = pytest.mark.django_db


def page(connection):
    return reverse("connection_detail", args=["acme", connection.pk])


def post_url(connection):
    return reverse("connection_send_window", args=["acme", connection.pk])


GOOD = {
    "weekdays": ["0", "1", "2", "3", "4"],
    "start": "08:00",
    "end": "21:00",
    "time_zone": "Europe/Berlin",
    "blackouts": "2026-12-24 Christmas Eve\r\n2026-12-31",
    "reason": "Brand rules",
}


def test_an_operator_sets_the_window_and_everyone_sees_it_in_words(client, team, daily_connection):
    client.force_login(team.operator.user)
    response = client.post(post_url(daily_connection), GOOD)
    assert response.status_code == 302

    client.force_login(team.auditor.user)
    html = client.get(page(daily_connection)).content.decode()
    assert "Mon\u2013Fri 08:00\u201321:00 Europe/Berlin; not on 2026-12-24, 2026-12-31" in html
    assert "Not on Thu 2026-12-24: Christmas Eve" in html
    assert "Change the send window" not in html  # an auditor only reads
    event = AuditEvent.objects.get(action="send_window.changed")
    assert event.actor_label == "oscar" and event.summary["reason"] == "Brand rules"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start": "09:00", "end": "09:00"}, "The window is empty: it starts and ends at 09:00."),
        ({"weekdays": []}, "Choose at least one weekday"),
        (
            {"blackouts": "2026-12-24\r\n2026-12-32 Typo"},
            "Blackout date 2 (&#x27;2026-12-32&#x27;)",
        ),
        ({"reason": ""}, "Say why the send window changes."),
    ],
)
def test_bad_input_shows_the_form_again_with_the_error_and_changes_nothing(
    client, team, daily_connection, change, message
):
    client.force_login(team.admin.user)
    response = client.post(post_url(daily_connection), {**GOOD, **change})
    assert response.status_code == 422
    html = response.content.decode()
    assert message in html
    assert "<details open>" in html  # the form stays open with what was typed
    assert not SendWindow.objects.exists() and not BlackoutDate.objects.exists()
    assert not AuditEvent.objects.filter(action="send_window.changed").exists()


def test_a_marketer_cannot_change_the_window(client, team, daily_connection):
    client.force_login(team.marketer.user)
    response = client.post(post_url(daily_connection), GOOD)
    assert response.status_code == 403
    assert not SendWindow.objects.exists()


def test_another_tenants_connection_is_a_404(client, team, other_team):
    from tests.factories import VendorConnectionFactory

    theirs = VendorConnectionFactory(tenant=other_team.tenant, name="Theirs")
    client.force_login(team.admin.user)
    response = client.post(post_url(theirs), GOOD)
    assert response.status_code == 404
    assert not SendWindow.objects.exists()


def test_a_queued_run_held_by_the_window_says_so_on_its_page(client, team, daily_connection):
    from datetime import timedelta

    from dashboard.clock import utc_now
    from dashboard.runs.states import RunState
    from tests.factories import RunFactory

    today = utc_now().date()
    SendWindow.objects.create(
        connection=daily_connection,
        weekdays=list(range(7)),
        start_time="00:00",
        end_time="23:59",
        time_zone="UTC",
    )
    for offset in (-1, 0, 1):
        BlackoutDate.objects.create(
            connection=daily_connection, day=today + timedelta(days=offset), reason="freeze"
        )
    run = RunFactory(
        tenant=team.tenant,
        connection=daily_connection,
        state=RunState.QUEUED,
        approval_required=False,
        operation="optimove_trigger_daily",
    )
    client.force_login(team.marketer.user)
    html = client.get(reverse("run_detail", args=["acme", run.pk])).content.decode()
    assert "Held: outside the send window of Optimove batch" in html
    assert f"it goes at {(today + timedelta(days=2)):%a %Y-%m-%d} 00:00 UTC" in html
