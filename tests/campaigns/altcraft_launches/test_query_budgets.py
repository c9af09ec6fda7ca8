"""What the Altcraft pages and a launch's live progress cost in queries (issue 12): the progress
3 queries at most, a page a fixed number whatever the number of earlier launches."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.altcraft_launches import services
from tests.campaigns.altcraft_launches.conftest import actor_of, csv_bytes, prepare, send_all

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

LIVE_FRAGMENT_BUDGET = 3


def confirmed_launch(team, trigger, rows: int = 5):
    emails = [f"person{n}@example.com" for n in range(rows)]
    launch = prepare(team.marketer, trigger, csv_bytes("email", emails))
    return services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )


def test_launch_page_home_and_live_progress(
    team, trigger, count_queries, django_assert_max_num_queries
):
    watched = confirmed_launch(team, trigger)
    client = team.client_for("operator")
    pages = {
        "launch": reverse("altcraft_launch_detail", args=["acme", watched.pk]),
        "home": reverse("altcraft_home", args=["acme"]),
    }
    for _ in range(3):
        confirmed_launch(team, trigger)
    few = {name: count_queries(client, url)[1] for name, url in pages.items()}
    for _ in range(27):
        confirmed_launch(team, trigger)
    many = {}
    for name, url in pages.items():
        with django_assert_max_num_queries(8):
            response, many[name] = count_queries(client, url)
        assert response.status_code == 200, name
    assert few == many

    url = pages["launch"]
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response, _ = count_queries(client, url, htmx=True)
    assert response.status_code == 200  # queued: still polling
    send_all(watched)  # what a worker does: every chunk sent, the launch done
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response, _ = count_queries(client, url, htmx=True)
    assert response.status_code == 286  # nothing can change any more: the poll stops
    assert 'id="launch-done"' in response.content.decode()


def test_live_progress_keeps_to_the_tenant(team, other_team, trigger):
    launch = confirmed_launch(team, trigger)
    outsider = other_team.client_for("operator")
    url = reverse("altcraft_launch_detail", args=["acme", launch.pk])
    assert outsider.get(url, HTTP_HX_REQUEST="true").status_code == 404
