"""The navigation's count of approvals waiting for me (issue 9, item 16), on every page."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.runs.states import RunState
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db


def badge(client, url) -> str:
    page = client.get(url).content.decode()
    start = page.find('id="approvals-waiting"')
    return "" if start == -1 else page[start : page.find("</a>", start)]


def test_operators_see_how_many_requests_wait_for_them_on_every_page(team, other_team):
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    RunFactory(tenant=team.tenant, requested_by=team.operator.user)  # oscar's own: not for him
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user, state=RunState.QUEUED)
    RunFactory(tenant=other_team.tenant)  # another tenant's
    oscar = team.client_for("operator")
    for name in ("tenant_home", "run_list", "member_list", "connection_list", "daily_trigger"):
        assert "2 waiting for your approval" in badge(oscar, reverse(name, args=["acme"])), name
    assert "?state=awaiting_approval" in badge(oscar, reverse("tenant_home", args=["acme"]))
    assert "3 waiting for your approval" in badge(
        team.client_for("second_operator"), reverse("tenant_home", args=["acme"])
    )


def test_roles_that_cannot_approve_see_no_count(team):
    RunFactory(tenant=team.tenant, requested_by=team.operator.user)
    for role in ("marketer", "auditor"):
        assert badge(team.client_for(role), reverse("tenant_home", args=["acme"])) == "", role


def test_no_count_when_nothing_waits(team):
    assert badge(team.client_for("operator"), reverse("tenant_home", args=["acme"])) == ""


def test_the_count_is_one_query(team):
    for _ in range(5):
        RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    client = team.client_for("operator")
    url = reverse("connection_list", args=["acme"])
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    counts = [q["sql"] for q in queries.captured_queries if "awaiting_approval" in q["sql"]]
    assert len(counts) == 1
    assert "COUNT(" in counts[0]


def test_a_live_fragment_does_not_count(team):
    run = RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    client = team.client_for("operator")
    url = reverse("run_detail", args=["acme", run.pk])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"]]


def test_beyond_the_cap_the_badge_says_so_and_the_count_stops_there(team, monkeypatch):
    """A tenant whose approvers left can have thousands waiting: the badge says "99+" and its
    count reads no more of the index than that, whatever the backlog."""
    from dashboard.runs import selectors  # the module whose cap the badge reads

    monkeypatch.setattr(selectors, "APPROVALS_BADGE_CAP", 2)
    for _ in range(2):
        RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    client = team.client_for("operator")
    url = reverse("tenant_home", args=["acme"])
    assert "2 waiting for your approval" in badge(client, url)
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    with CaptureQueriesContext(connection) as queries:
        shown = badge(client, url)
    assert "2+ waiting for your approval" in shown
    assert "4 waiting" not in shown
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"]]
    assert any("LIMIT 3" in sql for sql in counts), counts
