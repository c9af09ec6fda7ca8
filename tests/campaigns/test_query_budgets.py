"""What the campaign pages and their live parts cost in queries (issue 12): a live fragment 3
queries at most, a page a fixed number that is the same with 3 earlier triggers as with 30."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.event_generators import services
from dashboard.audit.trail import Actor
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT
from tests.factories import RunAttemptFactory

pytestmark = pytest.mark.django_db

LIVE_FRAGMENT_BUDGET = 3


def trigger(team, generator, key: str, topics=(ARSENAL, CHELSEA)):
    return services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=list(topics),
        context={**GOOD_CONTEXT, "match_id": key},
        idempotency_key=key,
    )


def earlier_triggers(team, generator, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        group = trigger(team, generator, f"earlier-{n}")
        for link in group.campaign_runs.all():
            RunAttemptFactory(run=link.run)
        Run.objects.filter(campaign_run__group=group).update(state=RunState.SUCCEEDED)


def test_campaign_run_and_group_pages_and_their_live_parts(
    team, generator, count_queries, django_assert_max_num_queries
):
    group = trigger(team, generator, "watched")
    run = group.campaign_runs.order_by("run_id").first().run
    RunAttemptFactory(run=run)
    client = team.client_for("operator")
    pages = {
        "run": reverse("campaign_run_detail", args=["acme", run.pk]),
        "group": reverse("trigger_group_detail", args=["acme", group.pk]),
        "home": reverse("campaign_home", args=["acme"]),
        "generator": reverse("event_generator_detail", args=["acme", generator.pk]),
    }
    earlier_triggers(team, generator, 3)
    few = {name: count_queries(client, url)[1] for name, url in pages.items()}
    earlier_triggers(team, generator, 27, start=3)
    many = {}
    for name, url in pages.items():
        with django_assert_max_num_queries(10):
            response, many[name] = count_queries(client, url)
        assert response.status_code == 200, name
    assert few == many
    for name in ("run", "group"):
        with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
            response, _ = count_queries(client, pages[name], htmx=True)
        assert response.status_code == 200, name  # queued runs: still polling

    Run.objects.filter(campaign_run__group=group).update(state=RunState.SUCCEEDED)
    for name in ("run", "group"):
        with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
            response, _ = count_queries(client, pages[name], htmx=True)
        assert response.status_code == 286, name  # all published: the poll stops


def test_live_parts_keep_to_the_tenant(team, other_team, generator):
    group = trigger(team, generator, "mine")
    run = group.campaign_runs.first().run
    outsider = other_team.client_for("operator")
    for url in (
        reverse("campaign_run_detail", args=["acme", run.pk]),
        reverse("trigger_group_detail", args=["acme", group.pk]),
        reverse("campaign_run_detail", args=["other", run.pk]),
    ):
        assert outsider.get(url, HTTP_HX_REQUEST="true").status_code == 404
